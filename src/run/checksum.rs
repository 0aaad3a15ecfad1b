//! The checksum of a world: one hex digest over its whole state and its event log.
//!
//! Everything that makes two worlds different goes in — clock, RNG position, settings,
//! supply and held scrip, the services' records, statistics, pending interventions,
//! every entity's parts (rate windows and inboxes included) in id order, and the
//! running digest of the event log — and nothing that does not: `Entity` numbers and
//! hash-map order never reach the hasher. What goes in is the list of parts the
//! world is made of, declared once in [`crate::scene::state`] for checkpoints, saved
//! scenes and this alike.

pub use crate::scene::state::{effects_checksum, world_checksum};
