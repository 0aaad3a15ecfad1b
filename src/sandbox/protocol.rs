//! What the world process and its sandbox workers say to each other.
//!
//! Frames are a little-endian `u32` length followed by a postcard-encoded message,
//! over the shared-memory streams of [`super::shm`]. JSON values
//! cross as JSON text: postcard cannot carry a self-describing value, and both ends
//! already speak JSON at the edges (artifact arguments and results are JSON).
//!
//! A call may make host calls (RPCs) while it runs; the host answers each with a
//! `Reply`. While a worker waits for a reply it may instead receive a nested `Call`
//! (an invoke made by the code it is running): it runs that call to completion and
//! goes back to waiting, so one worker serves a whole chain of nested invokes.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Largest frame either side accepts; anything bigger is a broken or hostile peer.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Which function of the artifact's code a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entry {
    /// `run(args, ctx)`: a service.
    Run,
    /// `check_permission(request)`: a contract.
    CheckPermission,
    /// `step(view)`: an agent's loop.
    Step,
}

impl Entry {
    pub fn function_name(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::CheckPermission => "check_permission",
            Self::Step => "step",
        }
    }
}

/// What code in a call may do through host functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallMode {
    /// A service (`run`): everything, as the running artifact.
    Act,
    /// A contract (`check_permission`): look, and invoke other code; no transfers,
    /// writes or paid reads while deciding.
    Check,
    /// An agent's `step`: look only; it acts by returning intents.
    Look,
}

/// One call of artifact code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    pub id: u64,
    /// Identifies the code; the worker caches what it compiled under this hash.
    pub code_hash: u64,
    /// The source, when the host believes the worker has not seen this hash.
    pub code: Option<String>,
    /// Hashes the worker may drop from its cache (once it has what this call needs).
    pub forget: Vec<u64>,
    /// Every module the code imports, directly or not (see [`super::modules`]).
    pub modules: Vec<ModuleSource>,
    pub entry: Entry,
    /// First argument, as JSON text.
    pub input: String,
    /// Second argument (`ctx`), as JSON text.
    pub ctx: String,
    /// Simulated time for `Date`, in milliseconds.
    pub now_ms: u64,
    /// Seed of `Math.random` for this call.
    pub seed: u64,
    /// Loop iterations allowed per loop (boa's per-frame limit).
    pub loop_limit: u64,
    /// Largest result, in bytes of JSON, the call may return.
    pub result_limit: u64,
    /// What host functions the code may call.
    pub mode: CallMode,
}

/// A module a call may import: an artifact's code, sent like the call's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSource {
    /// The artifact id, as `import … from "artifact:<id>"` names it.
    pub id: String,
    pub code_hash: u64,
    /// The source, when the host believes the worker has not seen this hash.
    pub code: Option<String>,
}

/// Host functions artifact code can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HostCall {
    Invoke,
    Transfer,
    Write,
    Read,
    Balance,
    Resource,
    Artifact,
    Query,
    Events,
    Invocations,
    Quota,
    /// The `llm` syscall (only for artifacts with `can_call_llm`).
    Llm,
}

impl HostCall {
    /// Whether code running in `mode` may make this call.
    pub fn allowed_in(self, mode: CallMode) -> bool {
        match self {
            Self::Transfer | Self::Write | Self::Read | Self::Llm => mode == CallMode::Act,
            Self::Invoke => mode != CallMode::Look,
            _ => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Invoke => "invoke",
            Self::Transfer => "transfer",
            Self::Write => "write",
            Self::Read => "read",
            Self::Balance => "kernel.balance",
            Self::Resource => "kernel.resource",
            Self::Artifact => "kernel.artifact",
            Self::Query => "kernel.query",
            Self::Events => "kernel.events",
            Self::Invocations => "kernel.invocations",
            Self::Quota => "kernel.quota",
            Self::Llm => "llm",
        }
    }
}

/// Host → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    Call(CallRequest),
    /// The answer to the worker's pending host call: a JSON value, or the kernel's
    /// error as JSON.
    Reply(Result<String, String>),
    /// Independent calls to run one after another, each answered with its own
    /// `Done` as it finishes (so a call that kills the worker loses only itself).
    Batch(Vec<CallRequest>),
}

/// How a call failed inside the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// The code threw.
    Thrown,
    /// A runtime limit stopped it (loop iterations, recursion, stack).
    Limit,
    /// The code does not compile.
    Compile,
    /// The code does not define the entry function.
    NoEntry,
    /// The result is not JSON (a function, a BigInt, a cycle).
    NotJson,
    /// The result is larger than allowed.
    TooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// The end of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallResult {
    pub id: u64,
    /// The result as JSON text.
    pub outcome: Result<String, Failure>,
    /// VM instructions the call executed itself (nested calls report their own).
    pub instructions: u64,
    /// Peak heap growth during the call, nested calls included, in bytes.
    pub peak_bytes: u64,
    /// The worker holds more than calls may leave behind, even after collecting
    /// garbage: the host replaces it before the next call (set on top-level calls).
    pub retire: bool,
}

/// Worker → host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromWorker {
    /// Start-up finished; the worker waits for calls.
    Ready,
    /// A host call from the running code; the worker waits for a `Reply`.
    Rpc {
        call: HostCall,
        args: String,
    },
    Done(CallResult),
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(out: &mut impl Write, message: &T) -> io::Result<()> {
    let body = postcard::to_stdvec(message).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    out.write_all(&(body.len() as u32).to_le_bytes())?;
    out.write_all(&body)?;
    out.flush()
}

/// Reads one frame (blocking).
pub fn read_frame<T: for<'de> Deserialize<'de>>(input: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<T> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    buf.resize(len, 0);
    input.read_exact(buf)?;
    decode(buf)
}

pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> io::Result<T> {
    postcard::from_bytes(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let message = ToWorker::Reply(Err("{\"code\":\"NOT_FOUND\"}".into()));
        let mut wire = Vec::new();
        write_frame(&mut wire, &message).unwrap();
        let mut buf = Vec::new();
        let back: ToWorker = read_frame(&mut wire.as_slice(), &mut buf).unwrap();
        assert_eq!(back, message);
        let mut huge = Vec::from((MAX_FRAME_BYTES as u32 + 1).to_le_bytes());
        huge.extend([0; 8]);
        assert!(read_frame::<ToWorker>(&mut huge.as_slice(), &mut buf).is_err());
    }
}
