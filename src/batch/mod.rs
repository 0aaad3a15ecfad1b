//! Experiments: many runs of one scene with different parameters and seeds.
//!
//! [`sweep`] reads sweep files and expands them into runs; [`runner`] runs them in
//! parallel, resumably, into a directory whose layout [`output`] owns (and merges,
//! when a sweep ran in shards); [`plot`] draws its charts.

pub mod output;
pub mod plot;
pub mod runner;
pub mod sweep;

pub use runner::{Batch, BatchOptions, BatchSummary, Progress, Shard};

/// Why a batch cannot run, or its outputs cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Sweep(#[from] sweep::SweepError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Output(String),
}

impl BatchError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }
}
