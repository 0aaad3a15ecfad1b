//! Experiments: many runs of one scene with different parameters and seeds.
//!
//! [`sweep`] reads sweep files and expands them into runs.

pub mod sweep;
