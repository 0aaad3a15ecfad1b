//! Scenes: RON files that describe a world — its settings, principals, artifacts and
//! a timeline of interventions.
//!
//! A scene goes through three forms: the raw file ([`raw::SceneFile`], exactly what
//! serde reads, unknown fields refused), the validated scene ([`ValidScene`], every
//! reference resolved and every value checked, errors with file:line:col), and the
//! spawned world. `scenes/default.ron` is compiled into the binary, together with
//! everything under `assets/`, so the binary runs anywhere without its source tree.

pub mod error;
pub mod raw;
mod save;
mod spawn;
pub(crate) mod state;
pub mod timeline;
pub mod validate;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;
use ron::extensions::Extensions;

pub use error::{SceneError, SceneWarning};
pub use raw::{InterventionSpec, SceneFile};
pub(crate) use spawn::spawn_scene;
pub use timeline::{InterventionAct, ScheduledIntervention, Timeline};
pub use validate::ValidScene;

use crate::world::StepSystems;

/// The scene a run uses when none is given.
pub const DEFAULT_SCENE_NAME: &str = "scenes/default.ron (embedded)";
const DEFAULT_SCENE: &str = include_str!("../../scenes/default.ron");

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// The text of a file under `assets/` as it was when the binary was built.
pub fn embedded_asset(path: &str) -> Option<&'static str> {
    let path = path.trim_start_matches("./");
    embedded::ASSETS.iter().find(|(name, _)| *name == path).map(|(_, text)| *text)
}

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<Timeline>().add_systems(
        Update,
        timeline::apply_due_interventions.in_set(StepSystems::Ingest).after(crate::kernel::llm::ingest_answers),
    );
}

fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(Extensions::IMPLICIT_SOME | Extensions::UNWRAP_VARIANT_NEWTYPES)
}

/// Reads a list of scene interventions: `[(at: 1.0, ...), ...]`, or the entries alone,
/// one per line with a comma after each, as `ecology run --control DIR` keeps them in
/// `DIR/interventions.ron`.
pub fn interventions_from_ron_str(name: &str, text: &str) -> Result<Vec<InterventionSpec>, SceneError> {
    let bare = !text.trim_start().starts_with('[');
    let parse_error = |e: ron::error::SpannedError, shift: usize| SceneError::Parse {
        file: name.to_owned(),
        line: e.span.start.line.saturating_sub(shift).max(1),
        col: e.span.start.col,
        message: e.code.to_string(),
    };
    if bare {
        // The bracket goes on a line of its own, so positions only move by a line.
        ron_options().from_str(&format!("[\n{text}\n]")).map_err(|e| parse_error(e, 1))
    } else {
        ron_options().from_str(text).map_err(|e| parse_error(e, 0))
    }
}

/// A parsed scene and where it came from (for error positions and relative paths).
#[derive(Debug, Clone)]
pub struct Scene {
    file: SceneFile,
    name: String,
    dir: Option<PathBuf>,
    source: Option<Arc<str>>,
}

impl Scene {
    /// Reads and parses a scene file.
    pub fn load(path: &Path) -> Result<Scene, SceneError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SceneError::Io { file: name.clone(), source })?;
        let mut scene = Self::from_ron_str(&name, &text)?;
        scene.dir = Some(path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf));
        Ok(scene)
    }

    /// Parses scene text; `name` is what errors call it.
    pub fn from_ron_str(name: &str, text: &str) -> Result<Scene, SceneError> {
        let file: SceneFile = ron_options().from_str(text).map_err(|e| SceneError::Parse {
            file: name.to_owned(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: e.code.to_string(),
        })?;
        Ok(Scene { file, name: name.to_owned(), dir: None, source: Some(Arc::from(text)) })
    }

    /// The scene with `extra` interventions after its own (read with
    /// [`interventions_from_ron_str`], say from a control directory's
    /// `interventions.ron`). Its text no longer describes all of it, so errors found
    /// in it from now on name paths, not positions.
    pub fn with_interventions(mut self, extra: Vec<InterventionSpec>) -> Scene {
        self.file.interventions.extend(extra);
        self.source = None;
        self
    }

    /// The directory of the scene file, when it was read from one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The scene compiled into the binary.
    pub fn embedded_default() -> Result<Scene, SceneError> {
        Self::from_ron_str(DEFAULT_SCENE_NAME, DEFAULT_SCENE)
    }

    /// A scene built in code (no source text to point into).
    pub fn from_file(name: &str, file: SceneFile) -> Scene {
        Scene { file, name: name.to_owned(), dir: None, source: None }
    }

    /// The scene describing `world` as it is now.
    pub fn from_world(world: &World, name: &str) -> Scene {
        Self::from_file(name, save::scene_from_world(world, name))
    }

    pub fn file(&self) -> &SceneFile {
        &self.file
    }

    pub fn file_mut(&mut self) -> &mut SceneFile {
        &mut self.file
    }

    /// What errors call this scene: its path, or the name it was given.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Checks everything and resolves references and files.
    pub fn validate(&self) -> Result<ValidScene, SceneError> {
        validate::validate(self)
    }

    /// The scene as RON text, in the form the loader reads.
    pub fn to_ron_string(&self) -> Result<String, SceneError> {
        let pretty = ron::ser::PrettyConfig::new().struct_names(false).indentor("  ".to_owned());
        let mut text =
            ron_options().to_string_pretty(&self.file, pretty).map_err(|e| SceneError::Save(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }

    /// Reads a file a scene refers to: next to the scene file or in any directory
    /// above it, then relative to the working directory, then among the assets
    /// compiled into the binary.
    pub(crate) fn read_file(&self, path: &str) -> Result<String, String> {
        let mut tried = Vec::new();
        let mut candidates: Vec<PathBuf> = self.dir.iter().flat_map(|d| d.ancestors()).map(|d| d.join(path)).collect();
        candidates.push(PathBuf::from(path));
        for candidate in candidates {
            match std::fs::read_to_string(&candidate) {
                Ok(text) => return Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => tried.push(candidate.display().to_string()),
                Err(e) => return Err(format!("cannot read {}: {e}", candidate.display())),
            }
        }
        if let Some(text) = embedded_asset(path) {
            return Ok(text.to_owned());
        }
        tried.push("the assets compiled into this binary".to_owned());
        Err(format!("cannot find {path:?} (looked in: {})", tried.join(", ")))
    }
}
