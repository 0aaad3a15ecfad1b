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
pub(crate) use save::put_default_model;
pub(crate) use spawn::spawn_scene;
pub use timeline::{InterventionAct, ScheduledIntervention, Timeline};
pub use validate::ValidScene;

use crate::{sandbox::modules::line_col, world::StepSystems};

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
        let text = read_text(path).map_err(|problem| match problem {
            TextProblem::Io(error) => SceneError::Io { file: name.clone(), error },
            TextProblem::NotUtf8 { line, col, byte } => SceneError::Parse {
                file: name.clone(),
                line,
                col,
                message: format!("not UTF-8 text: byte 0x{byte:02x} cannot start a character here"),
            },
            other => SceneError::Parse { file: name.clone(), line: 1, col: 1, message: other.to_string() },
        })?;
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

    /// Reads a file a scene refers to (`content_file`, `code_file`): next to the scene
    /// file or in a directory above it, then relative to the working directory, then
    /// among the assets compiled into the binary. Only regular files within the scene's
    /// directory tree or the working directory's tree are read, and at most
    /// [`MAX_SCENE_FILE_BYTES`] of UTF-8 text: a scene cannot copy `/proc/self/environ`
    /// into a world, nor read `/dev/zero` forever.
    pub(crate) fn read_file(&self, path: &str) -> Result<String, String> {
        let roots: Vec<PathBuf> = self
            .dir
            .iter()
            .cloned()
            .chain(std::env::current_dir().ok())
            .filter_map(|dir| dir.canonicalize().ok())
            .collect();
        let mut tried = Vec::new();
        let mut outside = None;
        let mut candidates: Vec<PathBuf> = self.dir.iter().flat_map(|d| d.ancestors()).map(|d| d.join(path)).collect();
        candidates.push(PathBuf::from(path));
        for candidate in candidates {
            let real = match candidate.canonicalize() {
                Ok(real) => real,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tried.push(candidate.display().to_string());
                    continue;
                }
                Err(e) => return Err(format!("cannot read {}: {e}", candidate.display())),
            };
            if !roots.iter().any(|root| real.starts_with(root)) {
                outside.get_or_insert(real);
                continue;
            }
            return read_text(&real).map_err(|problem| format!("cannot read {}: {problem}", real.display()));
        }
        if let Some(text) = embedded_asset(path) {
            return Ok(text.to_owned());
        }
        if let Some(real) = outside {
            return Err(format!(
                "{} is outside the scene's directory and the working directory; a scene reads files only within them",
                real.display()
            ));
        }
        tried.push("the assets compiled into this binary".to_owned());
        Err(format!("cannot find {path:?} (looked in: {})", tried.join(", ")))
    }
}

/// The largest file a scene is read from or may refer to, in bytes.
pub const MAX_SCENE_FILE_BYTES: u64 = 16 << 20;

/// Why a file's text could not be read.
#[derive(Debug, thiserror::Error)]
enum TextProblem {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it is larger than {MAX_SCENE_FILE_BYTES} bytes")]
    TooLarge,
    #[error("it is not UTF-8 text: byte 0x{byte:02x} at line {line}, column {col} cannot start a character there")]
    NotUtf8 { line: usize, col: usize, byte: u8 },
}

/// The text of a regular file of at most [`MAX_SCENE_FILE_BYTES`], or why not; a
/// byte that is not UTF-8 is reported with its line and column.
fn read_text(path: &Path) -> Result<String, TextProblem> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    // Non-blocking, so that opening a pipe returns at once and is refused below
    // instead of waiting for a writer; a regular file reads the same either way.
    let file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(TextProblem::Io)?;
    let meta = file.metadata().map_err(TextProblem::Io)?;
    if !meta.is_file() {
        return Err(TextProblem::NotAFile);
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_SCENE_FILE_BYTES) as usize);
    // Bounded whatever the metadata said: the file may grow while it is read.
    file.take(MAX_SCENE_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(TextProblem::Io)?;
    if bytes.len() as u64 > MAX_SCENE_FILE_BYTES {
        return Err(TextProblem::TooLarge);
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        // Everything before `at` is UTF-8, so it converts whole.
        let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let (line, col) = line_col(before, at);
        TextProblem::NotUtf8 { line, col, byte: bytes[at] }
    })
}
