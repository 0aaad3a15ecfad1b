//! A run's control directory: how a person outside the process steers it.
//!
//! `ecology run --control DIR` keeps `DIR/requests.json` up to date with the world's
//! capability requests (rewritten atomically whenever one is made or decided), and
//! picks up decisions that `ecology capabilities approve|deny` leave in
//! `DIR/decisions/<id>.json`. A decision is applied like any intervention: scheduled
//! at the current time, so the world applies it at the start of its next step, with
//! its event; the file is then moved to `DIR/decisions/applied/`. Every applied
//! decision is also appended to `DIR/interventions.ron` as a scene intervention, so
//! the run can be replayed with the same decisions at the same time.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Simulation, write_atomically};
use crate::{
    economy::capabilities::CapabilityRequests,
    scene::{
        raw::{InterventionSpec, SystemAct},
        timeline::{InterventionAct, ScheduledIntervention, Timeline},
    },
    world::time::SimClock,
};

/// How often a running world looks for decisions, at most.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// A decision as `ecology capabilities` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionFile {
    pub request: u64,
    pub approve: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What `requests.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestsFile {
    pub scene: String,
    pub step: u64,
    pub time_secs: f64,
    /// False once the run has ended: decisions can no longer be applied.
    pub running: bool,
    pub requests: Vec<Value>,
}

/// The running side of a control directory.
pub struct Control {
    dir: PathBuf,
    /// What `requests.json` last said: requests made, and decided.
    written: Option<(usize, usize)>,
    polled: Option<Instant>,
}

fn decisions_dir(dir: &Path) -> PathBuf {
    dir.join("decisions")
}

impl Control {
    /// Opens (creating) `dir` for a run.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(decisions_dir(dir).join("applied"))?;
        Ok(Self { dir: dir.to_owned(), written: None, polled: None })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Between steps: publishes the requests if they changed, and schedules the
    /// decisions left for them (at most every 50 ms of wall time). Returns how many
    /// decisions were scheduled.
    pub fn sync(&mut self, sim: &mut Simulation) -> io::Result<usize> {
        let (made, decided) = {
            let requests = sim.world().resource::<CapabilityRequests>();
            (requests.iter().count(), requests.iter().filter(|r| !r.is_pending()).count())
        };
        if self.written != Some((made, decided)) {
            self.publish(sim, true)?;
            self.written = Some((made, decided));
        }
        if self.polled.is_some_and(|at| at.elapsed() < POLL_EVERY) {
            return Ok(0);
        }
        self.polled = Some(Instant::now());
        let mut files: Vec<PathBuf> = std::fs::read_dir(decisions_dir(&self.dir))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let now = sim.world().resource::<SimClock>().now();
        let mut scheduled = 0;
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let applied = decisions_dir(&self.dir).join("applied").join(path.file_name().unwrap_or_default());
            // Half-written files cannot happen (writers rename into place); anything
            // unreadable is set aside rather than retried forever.
            let Ok(decision) = serde_json::from_str::<DecisionFile>(&text) else {
                std::fs::rename(&path, applied.with_extension("unreadable"))?;
                continue;
            };
            let act = SystemAct::DecideCapability {
                request: decision.request,
                approve: decision.approve,
                limit: decision.limit,
                note: decision.note.clone(),
            };
            let spec = InterventionSpec { at: now.as_secs_f64(), actor: None, action: None, system: Some(act.clone()) };
            sim.world_mut()
                .resource_mut::<Timeline>()
                .schedule(ScheduledIntervention { at: now, act: InterventionAct::System(act) });
            let mut line = ron::ser::to_string(&spec).map_err(io::Error::other)?;
            line.push_str(",\n");
            use io::Write as _;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("interventions.ron"))?
                .write_all(line.as_bytes())?;
            std::fs::rename(&path, applied)?;
            scheduled += 1;
        }
        Ok(scheduled)
    }

    /// Writes `requests.json`; `running` false at the end of the run.
    pub fn publish(&self, sim: &Simulation, running: bool) -> io::Result<()> {
        let world = sim.world();
        let clock = world.resource::<SimClock>();
        let file = RequestsFile {
            scene: sim.scene_name().to_owned(),
            step: clock.step(),
            time_secs: clock.now().as_secs_f64(),
            running,
            requests: world.resource::<CapabilityRequests>().iter().map(|r| r.to_json()).collect(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        write_atomically(&self.dir.join("requests.json"), &text)
    }
}

/// Why a control directory cannot be used from outside.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}: no run is controlled from here (it has no requests.json; start one with --control)")]
    NoRun(String),
    #[error("{0}: {1}")]
    Unreadable(String, String),
    #[error("there is no capability request {0} (see `ecology capabilities list`)")]
    NoSuchRequest(u64),
    #[error("capability request {0} was already decided: {1}")]
    Decided(u64, String),
    #[error("the run controlled from {0} has ended; decisions can no longer reach it")]
    Ended(String),
    #[error("cannot write the decision: {0}")]
    Write(String),
}

/// Reads a control directory's `requests.json`.
pub fn read_requests(dir: &Path) -> Result<RequestsFile, ControlError> {
    let path = dir.join("requests.json");
    let text = std::fs::read_to_string(&path).map_err(|_| ControlError::NoRun(dir.display().to_string()))?;
    serde_json::from_str(&text).map_err(|e| ControlError::Unreadable(path.display().to_string(), e.to_string()))
}

/// Leaves a decision for the run controlled from `dir`, after checking that the
/// request exists and waits for one. Returns the request as it stood.
pub fn decide(dir: &Path, decision: &DecisionFile) -> Result<Value, ControlError> {
    let file = read_requests(dir)?;
    let request = file
        .requests
        .iter()
        .find(|r| r["id"] == decision.request)
        .cloned()
        .ok_or(ControlError::NoSuchRequest(decision.request))?;
    if request["status"] != "pending" {
        let status = request["status"].as_str().unwrap_or("?").to_owned();
        return Err(ControlError::Decided(decision.request, status));
    }
    if !file.running {
        return Err(ControlError::Ended(dir.display().to_string()));
    }
    let dir = decisions_dir(dir);
    std::fs::create_dir_all(&dir).map_err(|e| ControlError::Write(e.to_string()))?;
    let text = serde_json::to_vec_pretty(decision).map_err(|e| ControlError::Write(e.to_string()))?;
    write_atomically(&dir.join(format!("{:08}.json", decision.request)), &text)
        .map_err(|e| ControlError::Write(e.to_string()))?;
    Ok(request)
}
