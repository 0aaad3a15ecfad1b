//! One sandbox worker process, as the world process sees it.
//!
//! Reads from the worker wait with `poll` against the call's deadline, on the calling
//! thread (a reader thread would add a context switch to every round trip). A worker
//! that misses a deadline is killed; one that closes its output has died. Either way
//! it is finished, and the pool starts a new one when it is next needed.

use std::{
    collections::{HashSet, VecDeque},
    io::{self, Write},
    os::fd::{AsRawFd, RawFd},
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::protocol::{FromWorker, MAX_FRAME_BYTES, decode};

/// How long a new worker may take to say it is ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Compiled code a worker keeps, by hash, before the host asks it to forget some.
const CODE_CACHE_ENTRIES: usize = 4096;

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
    stdin: ChildStdin,
    stdout: ChildStdout,
    out_buf: Vec<u8>,
    in_buf: Vec<u8>,
    in_start: usize,
    /// Code hashes the worker has compiled, oldest first.
    known: HashSet<u64>,
    known_order: VecDeque<u64>,
    forget: Vec<u64>,
    dead: bool,
}

impl WorkerProcess {
    /// Starts a worker and waits until it is ready.
    pub fn spawn(settings: &WorkerSpawn) -> Result<Self, WorkerFailure> {
        let mut child = Command::new(settings.exe)
            .arg("sandbox-worker")
            .arg("--heap-bytes")
            .arg(settings.heap_bytes.to_string())
            .arg("--recursion")
            .arg(settings.recursion.to_string())
            .arg("--stack-bytes")
            .arg(settings.stack_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if settings.show_stderr { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .map_err(|e| WorkerFailure::Start(format!("{}: {e}", settings.exe.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(WorkerFailure::Start("no pipes to the worker".into()));
        };
        let mut worker = Self {
            child,
            stdin,
            stdout,
            out_buf: Vec::with_capacity(1 << 12),
            in_buf: Vec::with_capacity(1 << 16),
            in_start: 0,
            known: HashSet::new(),
            known_order: VecDeque::new(),
            forget: Vec::new(),
            dead: false,
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
        self.out_buf.clear();
        self.out_buf.extend_from_slice(&[0; 4]);
        let encoded = postcard::to_io(message, &mut self.out_buf).map(|_| ());
        if let Err(e) = encoded {
            return Err(WorkerFailure::Protocol(e.to_string()));
        }
        let len = (self.out_buf.len() - 4) as u32;
        self.out_buf[..4].copy_from_slice(&len.to_le_bytes());
        // One write per frame: a frame is one system call, not two.
        if let Err(e) = self.stdin.write_all(&self.out_buf) {
            return Err(self.died(&format!("writing to it failed: {e}")));
        }
        Ok(())
    }

    /// Waits for the next message until `deadline`; kills the worker if it passes.
    pub fn receive(&mut self, deadline: Instant) -> Result<FromWorker, WorkerFailure> {
        self.fill(4, deadline)?;
        let start = self.in_start;
        let len = u32::from_le_bytes([
            self.in_buf[start],
            self.in_buf[start + 1],
            self.in_buf[start + 2],
            self.in_buf[start + 3],
        ]) as usize;
        if len > MAX_FRAME_BYTES {
            self.kill();
            return Err(WorkerFailure::Protocol(format!("a frame of {len} bytes")));
        }
        self.fill(4 + len, deadline)?;
        let body = &self.in_buf[start + 4..start + 4 + len];
        let message = decode(body).map_err(|e| WorkerFailure::Protocol(e.to_string()));
        self.in_start += 4 + len;
        if self.in_start == self.in_buf.len() {
            self.in_buf.clear();
            self.in_start = 0;
        }
        if message.is_err() {
            self.kill();
        }
        message
    }

    /// Makes sure `n` unread bytes are buffered.
    fn fill(&mut self, n: usize, deadline: Instant) -> Result<(), WorkerFailure> {
        if self.dead {
            return Err(WorkerFailure::Died("it had already stopped".into()));
        }
        if self.in_start > 0 && self.in_buf.len() - self.in_start < n {
            self.in_buf.drain(..self.in_start);
            self.in_start = 0;
        }
        let fd = self.stdout.as_raw_fd();
        while self.in_buf.len() - self.in_start < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if !wait_readable(fd, left) {
                self.kill();
                return Err(WorkerFailure::Timeout);
            }
            let len = self.in_buf.len();
            let want = (n - (len - self.in_start)).max(1 << 16);
            self.in_buf.resize(len + want, 0);
            // SAFETY: reading into the spare capacity we just sized; the length is
            // corrected right after.
            let read = unsafe { libc::read(fd, self.in_buf[len..].as_mut_ptr().cast(), want) };
            match read {
                r if r > 0 => self.in_buf.truncate(len + r as usize),
                0 => {
                    self.in_buf.truncate(len);
                    return Err(self.died("it closed its output"));
                }
                _ => {
                    self.in_buf.truncate(len);
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(self.died(&format!("reading failed: {error}")));
                    }
                }
            }
        }
        Ok(())
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

/// Waits until `fd` has data (or was closed), at most `timeout`.
fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, ms) };
        if ready > 0 {
            return true;
        }
        if ready == 0 && Instant::now() >= deadline {
            return false;
        }
        // Interrupted, or woke a little early: try again until the deadline.
    }
}
