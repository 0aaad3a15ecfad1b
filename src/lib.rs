//! Agent Ecology: a simulator of an economy in which LLM agents and executable
//! artifacts live under real scarcity.
//!
//! The world is a `bevy_ecs` world driven by a `bevy_app` [`App`](bevy_app::App)
//! without rendering. Every artifact — data, tool, contract, agent — is an entity
//! with a stable [`ArtifactId`](world::ids::ArtifactId); what it is follows from its
//! components. The [`kernel`] is the only writer of the ledger: every change is made
//! *as* a principal and leaves an event. [`scene`] files (RON) describe worlds, and
//! [`run`] drives them headless and reports.
//!
//! ```
//! use agent_ecology::{run::Simulation, scene::Scene};
//!
//! let scene = Scene::from_ron_str("inline.ron", r#"Scene(
//!     principals: [(id: "alice"), (id: "bob")],
//!     interventions: [(at: 0.0, as: "alice", do: Transfer(to: "bob", amount: 30))],
//! )"#).unwrap();
//! let mut sim = Simulation::new(&scene, None).unwrap();
//! sim.run_steps(1);
//! let report = sim.report();
//! assert_eq!(report.principals["bob"].scrip, 130);
//! ```

pub mod agents;
pub mod batch;
pub mod bridge;
pub mod economy;
#[cfg(feature = "gui")]
pub mod gui;
pub mod kernel;
pub mod run;
pub mod sandbox;
pub mod scene;
pub mod world;

use bevy_app::{App, Plugin};

/// Everything a world needs: phases, ids, the kernel and the intervention timeline.
pub struct EcologyPlugin;

impl Plugin for EcologyPlugin {
    fn build(&self, app: &mut App) {
        world::plugin(app);
        kernel::plugin(app);
        economy::plugin(app);
        sandbox::plugin(app);
        agents::plugin(app);
        scene::plugin(app);
    }
}

/// The names most users of the library need.
pub mod prelude {
    pub use crate::{
        EcologyPlugin,
        kernel::{Action, ActionResult, ErrorCode, Kernel, KernelError, state},
        run::{Report, Simulation},
        scene::Scene,
        world::{StepSystems, ids::ArtifactId, time::SimTime},
    };
}
