//! The desktop app (feature `gui`): watch and steer an economy live.
//!
//! Built the way rerun's viewer is: the world runs on its own thread ([`session`]),
//! the window keeps a [`model::Model`] of what it has been told, draws it, and
//! changes the world only by sending [`session::Command`]s. Nothing outside this
//! module imports it; `--no-default-features` builds the binary without it.

pub mod app;
pub mod model;
pub mod panels;
pub mod session;

pub use app::EcologyApp;
pub use session::{Command, Session, SessionOptions, Speed};

use crate::scene::Scene;

/// Why the window could not run.
#[derive(Debug, thiserror::Error)]
pub enum GuiError {
    /// There is no display to open a window on.
    #[error("no display: {0}")]
    NoDisplay(String),
    #[error("the window failed: {0}")]
    Window(String),
}

/// Whether a display looks reachable (on Linux and the BSDs, `DISPLAY` or
/// `WAYLAND_DISPLAY` is set; elsewhere there always is one).
pub fn display_available() -> bool {
    if cfg!(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd", target_os = "netbsd")) {
        ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
    } else {
        true
    }
}

/// Opens the window on `scene` and returns when it is closed.
pub fn run_window(scene: Scene, options: SessionOptions) -> Result<(), GuiError> {
    if !display_available() {
        return Err(GuiError::NoDisplay("neither DISPLAY nor WAYLAND_DISPLAY is set".into()));
    }
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Agent Ecology")
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([800.0, 500.0]),
        ..Default::default()
    };
    eframe::run_native(
        "Agent Ecology",
        native,
        Box::new(move |_cc| Ok(Box::new(EcologyApp::new(Session::start(scene, options))))),
    )
    .map_err(|error| {
        let text = error.to_string();
        // winit reports a missing or refused display in its own words.
        let lower = text.to_lowercase();
        if lower.contains("display") || lower.contains("wayland") || lower.contains("x11") {
            GuiError::NoDisplay(text)
        } else {
            GuiError::Window(text)
        }
    })
}
