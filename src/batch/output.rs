//! A batch directory: what each run left, the tables assembled from them, and the
//! manifest that says which sweep they belong to.
//!
//! ```text
//! DIR/
//!   manifest.json        the sweep, the program, the runs here, start and end times
//!   runs.csv             one row per run: id, seed, parameters, how it ended, final indicators
//!   timeseries.csv       one row per health sample of every run
//!   runs/<run_id>/
//!     result.json        written last: the run is done
//!     failed.json        or why it failed (it is tried again on the next batch)
//!     timeseries.csv     its samples
//!     events.jsonl       its event stream (with --events)
//!     checkpoint         while it runs: where it resumes from
//! ```
//!
//! The tables are always rebuilt from the runs' own files, in the sweep's run order,
//! so a directory that shards were merged into has the same tables, byte for byte
//! (but for `wall_secs`), as one batch that ran everything.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BatchError, sweep::RunSpec};
use crate::{economy::kpis::KpiSample, run::write_atomically};

/// What the first line of `manifest.json` says it is.
pub const MANIFEST_FORMAT: &str = "agent-ecology batch";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoppedBy {
    /// It ran its steps (or reached its time).
    Length,
    /// Its health indicator crossed the sweep's line.
    Kpi,
    /// It ran `max_steps` without the indicator crossing.
    MaxSteps,
}

/// A finished run, as `result.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub run_id: String,
    pub index: usize,
    pub point_index: usize,
    pub point: BTreeMap<String, Value>,
    pub seed: u64,
    pub stopped_by: StoppedBy,
    pub steps: u64,
    pub sim_time_secs: f64,
    /// The health indicators of the final world.
    pub kpis: KpiSample,
    pub events: u64,
    pub llm_calls: u64,
    pub llm_cost_micro_usd: u64,
    pub checksum: String,
    /// Wall-clock seconds of the last stretch of the run (since it was resumed, if it was).
    pub wall_secs: f64,
    /// The step it was resumed at from a checkpoint, if it was.
    #[serde(default)]
    pub resumed_at_step: Option<u64>,
}

/// A run that could not finish, as `failed.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFailure {
    pub run_id: String,
    pub index: usize,
    pub error: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The sweep file as it was given.
    pub sweep_file: String,
    /// Identifies the sweep: a hash of its runs (ids, in order) and stop condition.
    /// Directories of different sweeps are never mixed.
    pub sweep_id: String,
    /// BLAKE3 of the sweep file's text.
    pub sweep_file_blake3: String,
    pub ecology_version: String,
    /// The commit the program was built from, when it was built from a git checkout.
    pub git_commit: Option<String>,
    /// The swept parameters (the columns of runs.csv after `seed`).
    pub parameters: Vec<String>,
    /// Runs in the whole sweep.
    pub runs_total: usize,
    /// The slice of the sweep this directory holds (`"2/3"`), if it is one.
    pub shard: Option<String>,
    /// The runs this directory holds, in sweep order.
    pub runs: Vec<RunSpec>,
    pub done: usize,
    pub failed: usize,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self, BatchError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| BatchError::io(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| BatchError::Output(format!("{}:{}:{}: {e}", path.display(), e.line(), e.column())))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(BatchError::Output(format!("{} is not the manifest of a batch", path.display())));
        }
        Ok(manifest)
    }

    pub fn write(&self, dir: &Path) -> Result<(), BatchError> {
        let path = dir.join("manifest.json");
        let mut text = serde_json::to_string_pretty(self).map_err(|e| BatchError::Output(e.to_string()))?;
        text.push('\n');
        write_atomically(&path, text.as_bytes()).map_err(|e| BatchError::io(&path, e))
    }
}

/// Where run `run_id`'s files are in `out`.
pub fn run_dir(out: &Path, run_id: &str) -> PathBuf {
    out.join("runs").join(run_id)
}

/// What a run's directory says of it.
pub enum RunState {
    Done(Box<RunResult>),
    Failed(RunFailure),
    /// Not run, or interrupted.
    Pending,
}

/// Reads what the directory of run `run_id` holds.
pub fn run_state(out: &Path, run_id: &str) -> Result<RunState, BatchError> {
    let dir = run_dir(out, run_id);
    let read = |name: &str| -> Result<Option<String>, BatchError> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BatchError::io(&path, e)),
        }
    };
    let parse_error = |name: &str, e: serde_json::Error| {
        BatchError::Output(format!("{}:{}:{}: {e}", dir.join(name).display(), e.line(), e.column()))
    };
    if let Some(text) = read("result.json")? {
        let result: RunResult = serde_json::from_str(&text).map_err(|e| parse_error("result.json", e))?;
        return Ok(RunState::Done(Box::new(result)));
    }
    if let Some(text) = read("failed.json")? {
        return Ok(RunState::Failed(serde_json::from_str(&text).map_err(|e| parse_error("failed.json", e))?));
    }
    Ok(RunState::Pending)
}

/// A cell of CSV: quoted when it holds a comma, a quote or a line break.
fn cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

/// A parameter's value as a cell: strings as they are, anything else as JSON.
fn value_cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => cell(text),
        Some(other) => cell(&other.to_string()),
    }
}

/// The indicator columns of runs.csv: every column of a sample but its step and time.
fn kpi_columns() -> impl Iterator<Item = &'static str> {
    KpiSample::CSV_HEADER.split(',').skip(2)
}

/// The header of runs.csv for these parameters.
pub fn runs_header(parameters: &[String]) -> String {
    let mut header = String::from("run_id,point,seed");
    for name in parameters {
        header.push(',');
        header.push_str(&cell(name));
    }
    header.push_str(",status,stopped_by,steps,sim_time_secs");
    for name in kpi_columns() {
        header.push(',');
        header.push_str(name);
    }
    header.push_str(",events,llm_calls,llm_cost_micro_usd,checksum,error,wall_secs");
    header
}

fn runs_row(spec: &RunSpec, parameters: &[String], state: &RunState) -> String {
    let mut row = format!("{},{},{}", spec.run_id, spec.point_index, spec.seed);
    for name in parameters {
        row.push(',');
        row.push_str(&value_cell(spec.point.get(name)));
    }
    match state {
        RunState::Done(result) => {
            let stopped = serde_json::to_value(result.stopped_by).ok().and_then(|v| v.as_str().map(str::to_owned));
            let _ = write!(row, ",done,{},{},{}", stopped.unwrap_or_default(), result.steps, result.sim_time_secs);
            // The sample's own row, without its step and time.
            let sample = result.kpis.csv_row();
            for value in sample.split(',').skip(2) {
                row.push(',');
                row.push_str(value);
            }
            let _ = write!(
                row,
                ",{},{},{},{},,{:.3}",
                result.events, result.llm_calls, result.llm_cost_micro_usd, result.checksum, result.wall_secs
            );
        }
        RunState::Failed(_) | RunState::Pending => {
            let (status, error) = match state {
                RunState::Failed(failure) => ("failed", cell(&failure.error)),
                _ => ("pending", String::new()),
            };
            // Only the status and the error are known.
            let _ = write!(row, ",{status},,,");
            for _ in kpi_columns() {
                row.push(',');
            }
            let _ = write!(row, ",,,,,{error},");
        }
    }
    row
}

/// Writes runs.csv and timeseries.csv for `runs` (in the order given) from their
/// directories. Returns how many are done and how many failed.
pub fn write_tables(out: &Path, runs: &[RunSpec], parameters: &[String]) -> Result<(usize, usize), BatchError> {
    let mut table = runs_header(parameters);
    table.push('\n');
    let mut series = String::from("run_id,");
    series.push_str(KpiSample::CSV_HEADER);
    series.push('\n');
    let (mut done, mut failed) = (0, 0);
    for spec in runs {
        let state = run_state(out, &spec.run_id)?;
        table.push_str(&runs_row(spec, parameters, &state));
        table.push('\n');
        match state {
            RunState::Done(_) => {
                done += 1;
                let path = run_dir(out, &spec.run_id).join("timeseries.csv");
                let text = std::fs::read_to_string(&path).map_err(|e| BatchError::io(&path, e))?;
                for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
                    series.push_str(&spec.run_id);
                    series.push(',');
                    series.push_str(line);
                    series.push('\n');
                }
            }
            RunState::Failed(_) => failed += 1,
            RunState::Pending => {}
        }
    }
    for (name, text) in [("runs.csv", table), ("timeseries.csv", series)] {
        let path = out.join(name);
        write_atomically(&path, text.as_bytes()).map_err(|e| BatchError::io(&path, e))?;
    }
    Ok((done, failed))
}

/// Combines batch directories of one sweep (its shards) into `out`: their runs'
/// directories are copied there and the tables rebuilt over all of them in sweep
/// order, so `out` holds what one batch of the whole sweep would have. Refuses
/// directories of different sweeps, and a set of shards that misses runs.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<Manifest, BatchError> {
    let Some(first) = dirs.first() else {
        return Err(BatchError::Output("nothing to merge: name the shards' directories".into()));
    };
    let out_abs = std::path::absolute(out).map_err(|e| BatchError::io(out, e))?;
    let mut manifests = Vec::with_capacity(dirs.len());
    for dir in dirs {
        if std::path::absolute(dir).map_err(|e| BatchError::io(dir, e))? == out_abs {
            return Err(BatchError::Output(format!(
                "{} is one of the directories to merge; give another --out",
                out.display()
            )));
        }
        manifests.push(Manifest::read(dir)?);
    }
    let reference = &manifests[0];
    for (dir, manifest) in dirs.iter().zip(&manifests).skip(1) {
        if manifest.sweep_id != reference.sweep_id {
            return Err(BatchError::Output(format!(
                "{} and {} hold outputs of different sweeps ({} and {}): they cannot be merged",
                first.display(),
                dir.display(),
                reference.sweep_file,
                manifest.sweep_file
            )));
        }
    }
    let mut runs: BTreeMap<usize, (&RunSpec, &Path)> = BTreeMap::new();
    for (dir, manifest) in dirs.iter().zip(&manifests) {
        for run in &manifest.runs {
            runs.entry(run.index).or_insert((run, dir.as_path()));
        }
    }
    if runs.len() != reference.runs_total {
        let missing = (0..reference.runs_total).filter(|i| !runs.contains_key(i)).count();
        let shards: Vec<&str> = manifests.iter().map(|m| m.shard.as_deref().unwrap_or("all")).collect();
        return Err(BatchError::Output(format!(
            "the directories hold {} of the sweep's {} runs ({missing} missing; shards given: {}): merge every shard",
            runs.len(),
            reference.runs_total,
            shards.join(", ")
        )));
    }
    std::fs::create_dir_all(out.join("runs")).map_err(|e| BatchError::io(out, e))?;
    for (run, dir) in runs.values() {
        copy_run(&run_dir(dir, &run.run_id), &run_dir(out, &run.run_id))?;
    }
    let all: Vec<RunSpec> = runs.values().map(|(run, _)| (*run).clone()).collect();
    let (done, failed) = write_tables(out, &all, &reference.parameters)?;
    let finished_at = manifests.iter().map(|m| m.finished_at.clone()).collect::<Option<Vec<String>>>();
    let manifest = Manifest {
        shard: None,
        runs: all,
        done,
        failed,
        started_at: manifests.iter().map(|m| m.started_at.clone()).min().unwrap_or_default(),
        finished_at: finished_at.and_then(|times| times.into_iter().max()),
        ..reference.clone()
    };
    manifest.write(out)?;
    Ok(manifest)
}

/// Copies a run's files (not its checkpoint, nor a write a kill cut short: a merged
/// directory holds finished work).
fn copy_run(from: &Path, to: &Path) -> Result<(), BatchError> {
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        // A run that never started has no directory.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BatchError::io(from, e)),
    };
    std::fs::create_dir_all(to).map_err(|e| BatchError::io(to, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BatchError::io(from, e))?;
        let name = entry.file_name();
        if name == "checkpoint" || name.to_string_lossy().ends_with(".tmp~") || !entry.path().is_file() {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name)).map_err(|e| BatchError::io(&entry.path(), e))?;
    }
    Ok(())
}

/// Now, as RFC 3339 in UTC (seconds).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the Unix epoch as RFC 3339 in UTC.
pub fn rfc3339(secs: u64) -> String {
    // Days to a civil date (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_389_200), "2026-12-04T13:00:00Z");
    }

    #[test]
    fn cells_are_quoted_only_when_they_must_be() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(value_cell(Some(&serde_json::json!(30.0))), "30.0");
        assert_eq!(value_cell(Some(&serde_json::json!([1, 2]))), "\"[1,2]\"");
    }
}
