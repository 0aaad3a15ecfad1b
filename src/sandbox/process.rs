//! One sandbox worker process, as the world process sees it.
//!
//! Messages travel over a shared-memory region ([`super::shm`]) whose descriptor the
//! worker inherits as fd 3; its stdin and stdout are not used. Waiting for a message
//! spins briefly, then parks, checking between naps that the worker is still alive
//! and that the call's deadline has not passed. A worker that misses a deadline is
//! killed; one that exits has died. Either way it is finished, and the pool starts a
//! new one when it is next needed.

use std::{
    collections::{HashSet, VecDeque},
    os::{fd::AsRawFd, unix::process::CommandExt, unix::process::ExitStatusExt},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    protocol::{CallResult, FromWorker, MAX_FRAME_BYTES, decode},
    shm::{Direction, Region, Wait, WaitError},
};

/// How long a new worker may take to say it is ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the host spins waiting for a worker before parking: enough for a short
/// call or a quick host call to come back without a trip through the scheduler.
const HOST_SPIN: Duration = Duration::from_micros(40);

/// Compiled code a worker keeps, by hash, before the host asks it to forget some.
const CODE_CACHE_ENTRIES: usize = 4096;

/// The descriptor number the worker finds its shared region at.
pub const WORKER_SHM_FD: i32 = 3;

/// Why no message came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerFailure {
    #[error("the call ran past its deadline and its worker was stopped")]
    Timeout,
    #[error("the sandbox worker died ({0})")]
    Died(String),
    #[error("the sandbox worker could not be started: {0}")]
    Start(String),
    #[error("the sandbox worker broke the protocol: {0}")]
    Protocol(String),
}

/// Settings a worker is started with.
#[derive(Debug, Clone)]
pub struct WorkerSpawn<'a> {
    pub exe: &'a Path,
    pub heap_bytes: usize,
    pub recursion: usize,
    pub stack_bytes: usize,
    pub show_stderr: bool,
}

pub struct WorkerProcess {
    child: Child,
    region: Region,
    out_buf: Vec<u8>,
    in_buf: Vec<u8>,
    /// Code hashes the worker has compiled, oldest first.
    known: HashSet<u64>,
    known_order: VecDeque<u64>,
    forget: Vec<u64>,
    dead: bool,
    /// It asked to be replaced once the work in hand is done.
    retiring: bool,
}

impl WorkerProcess {
    /// Starts a worker and waits until it is ready.
    pub fn spawn(settings: &WorkerSpawn) -> Result<Self, WorkerFailure> {
        let (region, fd) = Region::create().map_err(|e| WorkerFailure::Start(format!("shared memory: {e}")))?;
        let raw = fd.as_raw_fd();
        let mut command = Command::new(settings.exe);
        command
            .arg("sandbox-worker")
            .arg("--heap-bytes")
            .arg(settings.heap_bytes.to_string())
            .arg("--recursion")
            .arg(settings.recursion.to_string())
            .arg("--stack-bytes")
            .arg(settings.stack_bytes.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if settings.show_stderr { Stdio::inherit() } else { Stdio::null() });
        // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl):
        // hand the region's descriptor to the worker at a known number.
        unsafe {
            command.pre_exec(move || {
                if raw == WORKER_SHM_FD {
                    if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(raw, WORKER_SHM_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| WorkerFailure::Start(format!("{}: {e}", settings.exe.display())))?;
        drop(fd);
        let mut worker = Self {
            child,
            region,
            out_buf: Vec::with_capacity(1 << 12),
            in_buf: Vec::with_capacity(1 << 12),
            known: HashSet::new(),
            known_order: VecDeque::new(),
            forget: Vec::new(),
            dead: false,
            retiring: false,
        };
        match worker.receive(Instant::now() + STARTUP_TIMEOUT) {
            Ok(FromWorker::Ready) => Ok(worker),
            Ok(other) => Err(WorkerFailure::Protocol(format!("expected Ready, got {other:?}"))),
            Err(e) => Err(WorkerFailure::Start(e.to_string())),
        }
    }

    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Notes what a call's result says: the worker holds more than calls may leave
    /// behind, and is to be replaced when it goes back to its lane.
    pub fn note_result(&mut self, result: &CallResult) {
        self.retiring |= result.retire;
    }

    pub fn is_retiring(&self) -> bool {
        self.retiring
    }

    /// The code to send with a call of `hash`: `None` when the worker has it.
    /// Marks it known, and decides what the worker should forget to stay bounded.
    pub fn code_to_send(&mut self, hash: u64, code: &str) -> (Option<String>, Vec<u64>) {
        if self.known.contains(&hash) {
            return (None, std::mem::take(&mut self.forget));
        }
        self.known.insert(hash);
        self.known_order.push_back(hash);
        while self.known_order.len() > CODE_CACHE_ENTRIES {
            if let Some(old) = self.known_order.pop_front() {
                self.known.remove(&old);
                self.forget.push(old);
            }
        }
        (Some(code.to_owned()), std::mem::take(&mut self.forget))
    }

    pub fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WorkerFailure> {
        if self.dead {
            return Err(WorkerFailure::Died("it had already stopped".into()));
        }
        self.out_buf.clear();
        self.out_buf.extend_from_slice(&[0; 4]);
        if let Err(e) = postcard::to_io(message, &mut self.out_buf) {
            return Err(WorkerFailure::Protocol(e.to_string()));
        }
        let len = (self.out_buf.len() - 4) as u32;
        self.out_buf[..4].copy_from_slice(&len.to_le_bytes());
        // Writing only waits when the worker's inbox is full; it is never fuller than
        // one message, so no deadline is needed beyond the worker staying alive.
        let Self { child, region, out_buf, .. } = self;
        let mut alive = || matches!(child.try_wait(), Ok(None));
        let mut wait = Wait { spin: HOST_SPIN, deadline: None, alive: &mut alive };
        match region.write_all(Direction::ToWorker, out_buf, &mut wait) {
            Ok(()) => Ok(()),
            Err(_) => Err(self.died("it stopped reading")),
        }
    }

    /// Waits for the next message until `deadline`; kills the worker if it passes.
    pub fn receive(&mut self, deadline: Instant) -> Result<FromWorker, WorkerFailure> {
        self.receive_spinning(deadline, HOST_SPIN)
    }

    /// Like [`WorkerProcess::receive`], spinning for `spin` before parking. A host
    /// waiting on a long batch should not spin: the workers need the cores.
    pub fn receive_spinning(&mut self, deadline: Instant, spin: Duration) -> Result<FromWorker, WorkerFailure> {
        if self.dead {
            return Err(WorkerFailure::Died("it had already stopped".into()));
        }
        let mut len = [0u8; 4];
        self.read_exact_into(&mut len, deadline, spin)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            self.kill();
            return Err(WorkerFailure::Protocol(format!("a frame of {len} bytes")));
        }
        let mut body = std::mem::take(&mut self.in_buf);
        body.resize(len, 0);
        let read = self.read_exact_into(&mut body, deadline, spin);
        let message = read.and_then(|()| decode(&body).map_err(|e| WorkerFailure::Protocol(e.to_string())));
        self.in_buf = body;
        if matches!(message, Err(WorkerFailure::Protocol(_))) {
            self.kill();
        }
        message
    }

    /// Whether a message (or the start of one) is waiting, without waiting for it.
    pub fn has_message(&self) -> bool {
        self.region.has_data(Direction::ToHost)
    }

    /// Tells the worker which core the host is waiting on (see
    /// [`Region::note_waiting_here`]).
    pub fn note_waiting_here(&self) {
        self.region.note_waiting_here();
    }

    /// Whether the worker last waited on the core the host noted (see
    /// [`Region::peer_shares_my_core`]).
    pub fn shares_my_core(&self) -> bool {
        self.region.peer_shares_my_core()
    }

    /// Waits until a message is waiting or the worker is found gone (true: the next
    /// receive takes the message or says how the worker ended), or until `until`
    /// passes (false).
    pub fn wait_for_message(&mut self, until: Instant) -> bool {
        if self.dead {
            return true;
        }
        let Self { child, region, .. } = self;
        let mut alive = || matches!(child.try_wait(), Ok(None));
        let mut wait = Wait { spin: Duration::ZERO, deadline: Some(until), alive: &mut alive };
        match region.wait_for_data(Direction::ToHost, &mut wait) {
            Ok(()) | Err(WaitError::PeerGone) => true,
            Err(WaitError::Timeout) => !matches!(self.child.try_wait(), Ok(None)),
        }
    }

    fn read_exact_into(&mut self, out: &mut [u8], deadline: Instant, spin: Duration) -> Result<(), WorkerFailure> {
        let Self { child, region, .. } = self;
        let mut alive = || matches!(child.try_wait(), Ok(None));
        let mut wait = Wait { spin, deadline: Some(deadline), alive: &mut alive };
        match region.read_exact(Direction::ToHost, out, &mut wait) {
            Ok(()) => Ok(()),
            Err(WaitError::Timeout) => {
                self.kill();
                Err(WorkerFailure::Timeout)
            }
            Err(WaitError::PeerGone) => Err(self.died("it stopped")),
        }
    }

    /// The worker is gone: reap it and say how it ended.
    fn died(&mut self, how: &str) -> WorkerFailure {
        self.dead = true;
        let _ = self.child.kill();
        let status = match self.child.wait() {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(libc::SIGABRT)) => "aborted: out of memory or out of stack".to_owned(),
                (None, Some(libc::SIGSEGV)) => "crashed, most likely a stack overflow".to_owned(),
                (None, Some(libc::SIGKILL)) => "killed".to_owned(),
                (None, Some(libc::SIGXCPU)) => "out of CPU time".to_owned(),
                (None, Some(signal)) => format!("signal {signal}"),
                (None, None) => "unknown".to_owned(),
            },
            Err(e) => e.to_string(),
        };
        WorkerFailure::Died(format!("{how}; {status}"))
    }

    /// Stops the worker for good.
    pub fn kill(&mut self) {
        if !self.dead {
            self.dead = true;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
