//! The `ecology` binary: parse the command line, run, map errors to exit codes
//! (0 ok, 2 bad input, 1 internal failure).

mod cli;

use std::process::ExitCode;

/// Counts heap use in sandbox workers (and only there); see `sandbox::alloc`.
#[global_allocator]
static ALLOCATOR: agent_ecology::sandbox::alloc::WorkerAllocator = agent_ecology::sandbox::alloc::WorkerAllocator;

fn main() -> ExitCode {
    // Before the first allocation of any size that could be backed by one; workers
    // are this binary too, so this covers them.
    agent_ecology::sandbox::alloc::no_huge_pages();
    match cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if cli::is_bad_input(&err) { ExitCode::from(2) } else { ExitCode::from(1) }
        }
    }
}
