//! Sweep files: one base scene, parameters addressed by path into it, a design that
//! picks the parameter points, and replicate seeds.
//!
//! ```ron
//! Sweep(
//!     scene: "default",                       // the embedded scene, or a path
//!     parameters: {
//!         "config.mint.period_secs": Values([30.0, 60.0]),
//!         "principals.alice.scrip": Values([50, 500]),
//!         "config.mint.mint_ratio": IntRange(min: 1, max: 20),
//!     },
//!     design: Grid,                           // Zip, Random(n), LatinHypercube(n)
//!     seeds: Replicates(3),                   // or Seeds([1, 2, 3])
//!     stop: Steps(600),                       // or Until(600.0), or
//!                                             // Kpi(kpi: "frozen_share", above: 0.3, max_steps: 6000)
//! )
//! ```
//!
//! A path walks the scene as its RON reads: struct fields by name, and in lists of
//! things with an `id` (principals, artifacts) the one with that id; a number picks a
//! list item by position. Every point is applied to the scene and validated before
//! any run starts, so a bad path or value fails at once, naming the path.
//!
//! Expansion is deterministic: the random designs draw from a stream seeded by the
//! sweep's `sample_seed`, and each run's id is a hash of the base scene's world (its
//! checksum before the first step, which covers the code its files hold), its point
//! and its seed, stable across machines and re-runs.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scene::{Scene, SceneFile};

/// A parameter's values: listed (for `Grid` and `Zip`), or a range to sample (for
/// `Random` and `LatinHypercube`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Domain {
    Values(Vec<Value>),
    /// Real numbers in `[min, max)`.
    Range {
        min: f64,
        max: f64,
    },
    /// Integers in `[min, max]`.
    IntRange {
        min: i64,
        max: i64,
    },
}

/// How parameter points are chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Design {
    /// Every combination of the listed values (full factorial).
    Grid,
    /// The i-th value of every parameter together; all lists the same length.
    Zip,
    /// `n` points, each parameter drawn independently.
    Random(usize),
    /// `n` points, each parameter's range cut into `n` strata, each stratum used once.
    LatinHypercube(usize),
}

/// The seeds each point runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Seeds {
    /// Seeds 1 ..= n.
    Replicates(u64),
    Seeds(Vec<u64>),
}

/// When a run stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Stop {
    Steps(u64),
    /// Simulated seconds.
    Until(f64),
    /// At the first health sample where indicator `kpi` (a column of the metrics CSV)
    /// is above `above` or below `below`, and at `max_steps` at the latest.
    Kpi {
        kpi: String,
        #[serde(default)]
        above: Option<f64>,
        #[serde(default)]
        below: Option<f64>,
        max_steps: u64,
    },
}

impl Stop {
    /// Whether a run stops at `sample` (for `Kpi`; the others stop by the clock).
    pub fn reached_by(&self, sample: &crate::economy::kpis::KpiSample) -> bool {
        let Self::Kpi { kpi, above, below, .. } = self else { return false };
        let Some(value) = sample.get(kpi) else { return false };
        above.is_some_and(|a| value > a) || below.is_some_and(|b| value < b)
    }

    fn check(&self) -> Result<(), SweepError> {
        if let Self::Kpi { kpi, above, below, .. } = self {
            let known = crate::economy::kpis::KpiSample::CSV_HEADER.split(',').any(|name| name == kpi);
            if !known {
                return Err(SweepError::Design(format!(
                    "stop: no indicator {kpi:?}; one of {}",
                    crate::economy::kpis::KpiSample::CSV_HEADER
                )));
            }
            if above.is_none() && below.is_none() {
                return Err(SweepError::Design(format!("stop: {kpi} needs `above` or `below`")));
            }
        }
        Ok(())
    }
}

/// A sweep file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Sweep", deny_unknown_fields)]
pub struct SweepFile {
    /// `"default"` (the embedded scene) or a scene file, relative to the sweep file.
    pub scene: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, Domain>,
    #[serde(default = "grid")]
    pub design: Design,
    #[serde(default = "one_replicate")]
    pub seeds: Seeds,
    /// Default: the scene's `config.steps`.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Seed of the random designs' draws.
    #[serde(default)]
    pub sample_seed: u64,
}

fn grid() -> Design {
    Design::Grid
}

fn one_replicate() -> Seeds {
    Seeds::Replicates(1)
}

/// A sweep that cannot run, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SweepError {
    #[error("{file}:{line}:{col}: {message}")]
    Parse { file: String, line: usize, col: usize, message: String },
    #[error("parameter {path}: {message}")]
    Parameter { path: String, message: String },
    #[error("{0}")]
    Design(String),
    #[error("scene: {0}")]
    Scene(String),
}

impl SweepError {
    fn parameter(path: &str, message: impl Into<String>) -> Self {
        Self::Parameter { path: path.to_owned(), message: message.into() }
    }
}

/// One run of a sweep: a parameter point and a seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Stable: a hash of the base scene, the point and the seed.
    pub run_id: String,
    /// Place in the sweep's list of runs (what shards slice and outputs are ordered by).
    pub index: usize,
    /// Index of the point in the design (runs of one point share it).
    pub point_index: usize,
    pub point: BTreeMap<String, Value>,
    pub seed: u64,
}

impl SweepFile {
    /// Reads a sweep file and its base scene (`"default"`: the embedded one;
    /// otherwise a path relative to the sweep file).
    pub fn load(path: &std::path::Path) -> Result<(Self, Scene), SweepError> {
        Self::parse_at(path, &Self::read_text(path)?)
    }

    /// The text of the sweep file at `path`.
    pub fn read_text(path: &std::path::Path) -> Result<String, SweepError> {
        std::fs::read_to_string(path)
            .map_err(|e| SweepError::Design(format!("cannot read the sweep file {}: {e}", path.display())))
    }

    /// Parses `text`, read from the sweep file at `path`, and loads its base scene.
    pub fn parse_at(path: &std::path::Path, text: &str) -> Result<(Self, Scene), SweepError> {
        let sweep = Self::from_ron_str(&path.display().to_string(), text)?;
        let scene = if sweep.scene == "default" {
            Scene::embedded_default()
        } else {
            Scene::load(&path.parent().unwrap_or(std::path::Path::new(".")).join(&sweep.scene))
        }
        .map_err(|e| SweepError::Scene(e.to_string()))?;
        Ok((sweep, scene))
    }

    /// Parses sweep text; `name` is what errors call it.
    pub fn from_ron_str(name: &str, text: &str) -> Result<Self, SweepError> {
        let options = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        options.from_str(text).map_err(|e| SweepError::Parse {
            file: name.to_owned(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: e.code.to_string(),
        })
    }

    /// The parameter points of the design, in design order.
    pub fn points(&self) -> Result<Vec<BTreeMap<String, Value>>, SweepError> {
        let params: Vec<(&String, &Domain)> = self.parameters.iter().collect();
        match &self.design {
            Design::Grid => grid_points(&params),
            Design::Zip => zip_points(&params),
            Design::Random(n) => Ok(self.sampled(&params, *n, false)?),
            Design::LatinHypercube(n) => Ok(self.sampled(&params, *n, true)?),
        }
    }

    fn sampled(
        &self,
        params: &[(&String, &Domain)],
        n: usize,
        stratified: bool,
    ) -> Result<Vec<BTreeMap<String, Value>>, SweepError> {
        if n == 0 {
            return Err(SweepError::Design("a sampled design needs at least one point".into()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.sample_seed);
        let mut points = vec![BTreeMap::new(); n];
        for (path, domain) in params {
            // Latin hypercube: stratum i of n for point perm[i]; otherwise anywhere.
            let mut strata: Vec<usize> = (0..n).collect();
            shuffle(&mut strata, &mut rng);
            for (i, point) in points.iter_mut().enumerate() {
                let u = unit(&mut rng);
                let u = if stratified { (strata[i] as f64 + u) / n as f64 } else { u };
                point.insert((*path).clone(), sample(path, domain, u)?);
            }
        }
        Ok(points)
    }

    /// The seeds every point runs with.
    pub fn seed_list(&self) -> Vec<u64> {
        match &self.seeds {
            Seeds::Replicates(n) => (1..=*n).collect(),
            Seeds::Seeds(seeds) => seeds.clone(),
        }
    }

    /// Every run: each point with each seed, points in design order. Each point is
    /// applied to `base` and validated first, so nothing runs if any would fail.
    pub fn runs(&self, base: &Scene) -> Result<Vec<RunSpec>, SweepError> {
        if let Some(stop) = &self.stop {
            stop.check()?;
        }
        let points = self.points()?;
        let seeds = self.seed_list();
        if seeds.is_empty() {
            return Err(SweepError::Design("no seeds to run".into()));
        }
        let base_world = crate::run::Simulation::new(base, None).map_err(|e| SweepError::Scene(e.to_string()))?;
        let base_digest = base_world.checksum();
        drop(base_world);
        let mut runs = Vec::with_capacity(points.len() * seeds.len());
        for (point_index, point) in points.into_iter().enumerate() {
            apply(base, &point)?.validate().map_err(|e| SweepError::Scene(format!("at point {point:?}: {e}")))?;
            for &seed in &seeds {
                runs.push(RunSpec {
                    run_id: run_id(&base_digest, &point, seed),
                    index: runs.len(),
                    point_index,
                    point: point.clone(),
                    seed,
                });
            }
        }
        Ok(runs)
    }
}

fn grid_points(params: &[(&String, &Domain)]) -> Result<Vec<BTreeMap<String, Value>>, SweepError> {
    let mut points = vec![BTreeMap::new()];
    for (path, domain) in params {
        let values = listed(path, domain)?;
        points = points
            .into_iter()
            .flat_map(|point| {
                values.iter().map(move |v| {
                    let mut next = point.clone();
                    next.insert((*path).clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    Ok(points)
}

fn zip_points(params: &[(&String, &Domain)]) -> Result<Vec<BTreeMap<String, Value>>, SweepError> {
    let lists: Vec<(&String, &Vec<Value>)> =
        params.iter().map(|(p, d)| listed(p, d).map(|v| (*p, v))).collect::<Result<_, _>>()?;
    let len = lists.first().map_or(1, |(_, v)| v.len());
    if let Some((path, values)) = lists.iter().find(|(_, v)| v.len() != len) {
        return Err(SweepError::parameter(
            path,
            format!("Zip needs lists of one length: {} values, not {len}", values.len()),
        ));
    }
    Ok((0..len).map(|i| lists.iter().map(|(p, v)| ((*p).clone(), v[i].clone())).collect()).collect())
}

fn listed<'a>(path: &str, domain: &'a Domain) -> Result<&'a Vec<Value>, SweepError> {
    match domain {
        Domain::Values(values) if !values.is_empty() => Ok(values),
        Domain::Values(_) => Err(SweepError::parameter(path, "no values")),
        _ => Err(SweepError::parameter(
            path,
            "Grid and Zip need listed Values; ranges are for Random and LatinHypercube",
        )),
    }
}

/// A value of `domain` at `u` in [0, 1).
fn sample(path: &str, domain: &Domain, u: f64) -> Result<Value, SweepError> {
    match domain {
        Domain::Range { min, max } if min < max => Ok(Value::from(min + (max - min) * u)),
        Domain::IntRange { min, max } if min <= max => {
            let span = (max - min + 1) as f64;
            Ok(Value::from(min + ((u * span) as i64).min(max - min)))
        }
        Domain::Values(values) if !values.is_empty() => {
            // A list samples uniformly among its values.
            Ok(values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone())
        }
        _ => Err(SweepError::parameter(path, "an empty range")),
    }
}

/// A uniform draw in [0, 1) from 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Fisher–Yates, from the sweep's own stream.
fn shuffle(items: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn run_id(base: &str, point: &BTreeMap<String, Value>, seed: u64) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(base.as_bytes());
    hasher.update(serde_json::to_string(point).unwrap_or_default().as_bytes());
    hasher.update(&seed.to_le_bytes());
    hasher.finalize().to_hex()[..16].to_owned()
}

/// The scene of run `spec`: `base` with its point set, validated, with its seed.
pub fn scene_for(base: &Scene, spec: &RunSpec) -> Result<crate::scene::ValidScene, SweepError> {
    let mut valid = apply(base, &spec.point)?.validate().map_err(|e| SweepError::Scene(e.to_string()))?;
    valid.config.seed = spec.seed;
    Ok(valid)
}

/// `base` with every parameter of `point` set.
pub fn apply(base: &Scene, point: &BTreeMap<String, Value>) -> Result<Scene, SweepError> {
    let mut tree = serde_json::to_value(base.file()).map_err(|e| SweepError::Scene(e.to_string()))?;
    for (path, value) in point {
        set(&mut tree, path, value.clone())?;
        // Type-check this parameter alone, so the error names it.
        serde_json::from_value::<SceneFile>(tree.clone())
            .map_err(|e| SweepError::parameter(path, format!("{value} does not fit there: {e}")))?;
    }
    let file: SceneFile = serde_json::from_value(tree).map_err(|e| SweepError::Scene(e.to_string()))?;
    let mut scene = base.clone();
    *scene.file_mut() = file;
    Ok(scene)
}

/// Sets `value` at `path` in the scene's tree.
fn set(tree: &mut Value, path: &str, value: Value) -> Result<(), SweepError> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(SweepError::parameter(path, "empty segment"));
    }
    let mut node = tree;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        node = match node {
            Value::Object(map) => {
                if last {
                    map.insert((*segment).to_owned(), value);
                    return Ok(());
                }
                // A field left out of the scene (its default) is created.
                map.entry((*segment).to_owned()).or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(items) => {
                let found = match segment.parse::<usize>() {
                    Ok(index) => items.get_mut(index),
                    Err(_) => items.iter_mut().find(|item| item.get("id").and_then(Value::as_str) == Some(segment)),
                };
                let Some(item) = found else {
                    return Err(SweepError::parameter(path, format!("no item {segment:?} in that list")));
                };
                if last {
                    *item = value;
                    return Ok(());
                }
                item
            }
            _ => {
                return Err(SweepError::parameter(
                    path,
                    format!("{segment:?} is inside a value, not a struct or list"),
                ));
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(text: &str) -> SweepFile {
        SweepFile::from_ron_str("test.ron", text).unwrap()
    }

    #[test]
    fn a_two_by_two_grid_with_three_seeds_is_twelve_runs() {
        let file = sweep(
            r#"Sweep(scene: "default", parameters: {
                "config.mint.period_secs": Values([30.0, 90.0]),
                "principals.alice.scrip": Values([50, 500]),
            }, seeds: Replicates(3))"#,
        );
        let base = Scene::embedded_default().unwrap();
        let runs = file.runs(&base).unwrap();
        assert_eq!(runs.len(), 12);
        let mut combos: Vec<(String, u64)> =
            runs.iter().map(|r| (serde_json::to_string(&r.point).unwrap(), r.seed)).collect();
        combos.sort();
        combos.dedup();
        assert_eq!(combos.len(), 12, "every (point, seed) once");
        assert!(runs.iter().all(|r| (1..=3).contains(&r.seed)));
        let ids: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids.len(), 12, "run ids are distinct");
        assert_eq!(file.runs(&base).unwrap(), runs, "and stable");

        let scene = apply(&base, &runs[0].point).unwrap();
        let valid = scene.validate().unwrap();
        let alice = valid.principals.iter().find(|p| p.id.as_str() == "alice").unwrap();
        assert_eq!(alice.scrip, runs[0].point["principals.alice.scrip"].as_u64().unwrap());
        assert_eq!(valid.config.mint.period.as_secs_f64(), runs[0].point["config.mint.period_secs"].as_f64().unwrap());
    }

    #[test]
    fn a_bad_path_fails_before_any_run_naming_it() {
        let base = Scene::embedded_default().unwrap();
        for (path, value) in [
            ("config.mint.perod_secs", "30.0"),
            ("principals.nobody.scrip", "5"),
            ("principals.alice.scrip", "\"lots\""),
        ] {
            let file = sweep(&format!(r#"Sweep(scene: "default", parameters: {{"{path}": Values([{value}])}})"#));
            let err = file.runs(&base).unwrap_err();
            assert!(err.to_string().contains(path), "{err}");
        }
    }

    #[test]
    fn a_kpi_stop_names_a_known_indicator_and_fires_when_crossed() {
        let base = Scene::embedded_default().unwrap();
        let bad = sweep(r#"Sweep(scene: "default", stop: Kpi(kpi: "ginny", above: 0.5, max_steps: 100))"#);
        assert!(bad.runs(&base).unwrap_err().to_string().contains("ginny"));
        let stop = Stop::Kpi { kpi: "frozen_share".into(), above: Some(0.2), below: None, max_steps: 600 };
        stop.check().unwrap();
        let mut sim = crate::run::Simulation::new(&base, None).unwrap();
        sim.run_steps(600);
        let kpis = sim.world().resource::<crate::economy::kpis::Kpis>();
        let first = kpis.series().iter().position(|s| stop.reached_by(s));
        let at = first.expect("the default scene's frozen share passes 0.2");
        assert!(kpis.series()[at].frozen_share > 0.2);
        assert!(kpis.series()[..at].iter().all(|s| s.frozen_share <= 0.2));
    }

    #[test]
    fn a_sweep_file_finds_its_scene_next_to_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.ron"), r#"Scene(principals: [(id: "a", scrip: 5)])"#).unwrap();
        let path = dir.path().join("sweep.ron");
        std::fs::write(&path, r#"Sweep(scene: "base.ron", parameters: {"principals.a.scrip": Values([1, 2])})"#)
            .unwrap();
        let (sweep, scene) = SweepFile::load(&path).unwrap();
        assert_eq!(sweep.runs(&scene).unwrap().len(), 2);
        std::fs::write(&path, r#"Sweep(scene: "missing.ron")"#).unwrap();
        assert!(SweepFile::load(&path).unwrap_err().to_string().contains("missing.ron"));
    }

    #[test]
    fn zip_pairs_and_latin_hypercube_covers_every_stratum() {
        let zip = sweep(
            r#"Sweep(scene: "default", parameters: {"a": Values([1, 2, 3]), "b": Values([4, 5, 6])}, design: Zip)"#,
        );
        let points = zip.points().unwrap();
        assert_eq!(points.len(), 3);
        assert_eq!(points[1]["a"], 2);
        assert_eq!(points[1]["b"], 5);

        let lhs = sweep(
            r#"Sweep(scene: "default", parameters: {"x": Range(min: 0.0, max: 1.0), "n": IntRange(min: 0, max: 9)},
                design: LatinHypercube(10), sample_seed: 7)"#,
        );
        let points = lhs.points().unwrap();
        let mut strata: Vec<usize> = points.iter().map(|p| (p["x"].as_f64().unwrap() * 10.0) as usize).collect();
        strata.sort();
        assert_eq!(strata, (0..10).collect::<Vec<_>>());
        let mut ints: Vec<i64> = points.iter().map(|p| p["n"].as_i64().unwrap()).collect();
        ints.sort();
        assert_eq!(ints, (0..10).collect::<Vec<_>>());
        assert_eq!(lhs.points().unwrap(), points, "the same sample seed draws the same points");
    }
}
