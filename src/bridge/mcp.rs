//! MCP servers: tools outside the world, reached over the Model Context Protocol.
//!
//! A scene lists servers (a command and its arguments; stdio transport). [`McpBridge`]
//! starts each one the first time it is needed, through the official Rust SDK
//! (`rmcp`), and keeps it running: a *supervisor* task per server owns the process,
//! and when the process dies it is started again after a backoff (0.5 s, doubling to
//! 30 s; a server that stayed up a while starts over at 0.5 s). A call in flight when
//! its server dies fails at once (`unavailable`); a call made while it is down waits
//! for it to come back, up to the call's timeout.
//!
//! Like the LLM bridge, this knows nothing of budgets or agents: the kernel
//! (`kernel::mcp`) charges and delivers. Calls go out on a tokio runtime of their own
//! and come back over a channel, handed to the world in request-id order. They are
//! recorded in, and replayed from, the same cache directory as calls to models (keys
//! of the body `{"mcp": server, "tool": name, "arguments": …}`); a replay starts no
//! server at all: even the tool lists come from the recording.
//!
//! What servers print on stderr is kept (the last lines, for error messages), never
//! forwarded: servers like to greet, and a run's output is not theirs.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bevy_ecs::prelude::*;
use rmcp::{
    ServiceExt,
    model::CallToolRequestParams,
    service::{Peer, RoleClient, ServiceError},
    transport::{ConfigureCommandExt, TokioChildProcess},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::{
    BridgeOptions,
    cache::{self, CacheKey, CacheMode, LlmCache},
    client::{Failure, FailureKind},
};

/// First wait before a dead server is started again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A server that stayed up this long is healthy again: its next restart is quick.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Lines of a server's stderr kept for error messages.
const STDERR_LINES: usize = 20;

/// One server, as the scene declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServerConfig {
    /// The program (found on `PATH` unless it is a path).
    pub command: String,
    /// The program as the scene names it (a path relative to the scene, or a name):
    /// what recordings are keyed by, so that they replay wherever the scene is.
    #[serde(default)]
    pub declared_command: String,
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory of the server (default: the world's).
    pub cwd: Option<PathBuf>,
    /// The working directory as the scene names it.
    #[serde(default)]
    pub declared_cwd: Option<PathBuf>,
    /// Scrip a call costs its payer (paid to the gateway's owner, the kernel).
    pub scrip_per_call: u64,
    /// LLM budget a call costs its payer, in µ$.
    pub micro_usd_per_call: u64,
    /// A capability the payer must hold to use the server (none: anyone may).
    pub capability: Option<String>,
}

/// The world's MCP servers and how long to wait for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpConfig {
    pub servers: BTreeMap<String, McpServerConfig>,
    /// Longest a call may take, waiting for a restarting server included.
    pub call_timeout_ms: u64,
    /// Longest a server may take to start and list its tools.
    pub start_timeout_ms: u64,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self { servers: BTreeMap::new(), call_timeout_ms: 30_000, start_timeout_ms: 30_000 }
    }
}

/// A tool as a server lists it: what an interface is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// How one call ended: the server's `CallToolResult` as JSON text, or why not.
#[derive(Debug, Clone, PartialEq)]
pub struct McpFinished {
    pub outcome: Result<String, Failure>,
    /// Wall-clock milliseconds the call took (as recorded, when replayed).
    pub latency_ms: u64,
}

impl McpFinished {
    fn failed(kind: FailureKind, message: impl Into<String>) -> Self {
        Self { outcome: Err(Failure { kind, message: message.into() }), latency_ms: 0 }
    }
}

/// What a supervisor tells callers about its server.
#[derive(Clone, Default)]
struct Link {
    peer: Option<Peer<RoleClient>>,
    pid: Option<u32>,
    /// Times the server was started (successfully or not).
    starts: u64,
    /// Why it is not up, when it is not.
    error: Option<String>,
}

/// One server's keeper.
struct Supervisor {
    name: String,
    link: watch::Sender<Link>,
    /// The tools of its first successful start.
    tools: watch::Sender<Option<Result<Vec<McpTool>, String>>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stop: StopSignal,
}

/// Tells a supervisor to stop (a watch channel, so waiting for it is a future).
struct StopSignal(watch::Sender<bool>);

impl StopSignal {
    fn new() -> Self {
        Self(watch::Sender::new(false))
    }
    fn stop(&self) {
        self.0.send_replace(true);
    }
    fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
    async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// A server as the outside sees it: for status lines and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub up: bool,
    pub pid: Option<u32>,
    pub starts: u64,
    pub error: Option<String>,
}

/// The running part, started when a server is first needed.
struct Started {
    runtime: tokio::runtime::Runtime,
    cache: Option<Arc<LlmCache>>,
}

/// The world's connection to its MCP servers. Not part of the world's state (a
/// checkpoint keeps only the counts and the answers in hand, see [`McpBridgeState`]).
#[derive(Resource)]
pub struct McpBridge {
    options: BridgeOptions,
    started: Option<Started>,
    servers: BTreeMap<String, Arc<Supervisor>>,
    sender: mpsc::UnboundedSender<(u64, McpFinished)>,
    receiver: mpsc::UnboundedReceiver<(u64, McpFinished)>,
    ready: BTreeMap<u64, McpFinished>,
    in_flight: BTreeMap<u64, tokio::task::AbortHandle>,
    occurrences: HashMap<String, u32>,
    cache_error: Arc<Mutex<Option<String>>>,
}

impl Default for McpBridge {
    fn default() -> Self {
        Self::new(BridgeOptions::default())
    }
}

impl Drop for McpBridge {
    fn drop(&mut self) {
        let Some(started) = self.started.take() else { return };
        for supervisor in self.servers.values() {
            supervisor.stop.stop();
        }
        // Give the supervisors a moment to close their servers' stdin and reap them;
        // whatever is left is killed with the runtime (the processes die with us).
        let supervisors: Vec<Arc<Supervisor>> = self.servers.values().cloned().collect();
        started.runtime.block_on(async {
            let all_down = async {
                for supervisor in supervisors {
                    let mut link = supervisor.link.subscribe();
                    let _ = link.wait_for(|l| l.peer.is_none() && l.pid.is_none()).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(3), all_down).await;
        });
        started.runtime.shutdown_background();
    }
}

impl McpBridge {
    pub fn new(options: BridgeOptions) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            options,
            started: None,
            servers: BTreeMap::new(),
            sender,
            receiver,
            ready: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            occurrences: HashMap::new(),
            cache_error: Arc::default(),
        }
    }

    pub fn options(&self) -> &BridgeOptions {
        &self.options
    }

    /// Calls submitted and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len() + self.ready.len()
    }

    /// The first recording that could not be written, if one could not.
    pub fn take_cache_error(&mut self) -> Option<String> {
        self.cache_error.lock().ok().and_then(|mut e| e.take())
    }

    fn replaying(&self) -> bool {
        self.options.replay
    }

    fn start(&mut self) -> Result<&Started, String> {
        if self.started.is_none() {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ecology-mcp")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime for MCP servers: {e}"))?;
            let mode = if self.options.replay { CacheMode::Replay } else { CacheMode::Record };
            let cache = match &self.options.cache_dir {
                Some(dir) => Some(Arc::new(LlmCache::open(dir, mode).map_err(|e| e.to_string())?)),
                None if self.options.replay => return Err("--replay needs --llm-cache DIR (the recorded calls)".into()),
                None => None,
            };
            self.started = Some(Started { runtime, cache });
        }
        self.started.as_ref().ok_or_else(|| "the MCP bridge did not start".to_owned())
    }

    /// The supervisor of server `name`, started if it is not running.
    fn supervisor(&mut self, name: &str, config: &McpServerConfig) -> Result<Arc<Supervisor>, String> {
        if let Some(supervisor) = self.servers.get(name) {
            return Ok(supervisor.clone());
        }
        let started = self.start()?;
        let supervisor = Arc::new(Supervisor {
            name: name.to_owned(),
            link: watch::Sender::new(Link::default()),
            tools: watch::Sender::new(None),
            stderr: Arc::default(),
            stop: StopSignal::new(),
        });
        started.runtime.spawn(supervise(supervisor.clone(), config.clone()));
        self.servers.insert(name.to_owned(), supervisor.clone());
        Ok(supervisor)
    }

    /// The tools of server `name`: listed by the server (waiting for it to start, up
    /// to `timeout`), or, when replaying, as recorded. A listing is recorded too.
    pub fn list_tools(
        &mut self,
        name: &str,
        config: &McpServerConfig,
        timeout: Duration,
    ) -> Result<Vec<McpTool>, String> {
        let body =
            json!({"mcp": name, "list_tools": {"command": config.declared_command, "args": config.args}}).to_string();
        let key = CacheKey { hash: cache::hash_body(&body), occurrence: 0 };
        let cache = self.start()?.cache.clone();
        if self.replaying() {
            let cache = cache.ok_or("--replay needs --llm-cache DIR")?;
            return match cache.load_raw(&key) {
                Some(entry) => match entry.response {
                    Some(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", key.file_name())),
                    None => Err(entry.failure.map_or_else(|| "recorded without tools".into(), |f| f.message)),
                },
                None => Err(format!(
                    "replay: the tools of MCP server {name} were never recorded (expected {})",
                    key.file_name()
                )),
            };
        }
        let supervisor = self.supervisor(name, config)?;
        let started = self.start()?;
        let waited = started.runtime.block_on(async {
            let mut tools = supervisor.tools.subscribe();
            tokio::time::timeout(timeout, tools.wait_for(Option::is_some)).await.ok().and_then(|r| r.ok()?.clone())
        });
        let listed = match waited {
            Some(listed) => listed,
            None => Err(format!(
                "MCP server {name} did not start and list its tools within {} s{}",
                timeout.as_secs_f64(),
                last_words(&supervisor)
            )),
        };
        if let (Some(cache), Ok(tools)) = (cache, &listed) {
            let text = serde_json::to_string(tools).unwrap_or_default();
            if let Err(error) = cache.store_raw(&key, &body, Some(&text), None, 0, 1) {
                self.note_cache_error(&key, &error);
            }
        }
        listed
    }

    fn note_cache_error(&self, key: &CacheKey, error: &std::io::Error) {
        if let Ok(mut first) = self.cache_error.lock() {
            first.get_or_insert_with(|| format!("cannot record {key}: {error}"));
        }
    }

    /// Sends request `id`: tool `tool` of server `name` with `arguments`. Its answer is
    /// collected with [`McpBridge::wait`] or [`McpBridge::collect`].
    pub fn submit(
        &mut self,
        id: u64,
        name: &str,
        config: &McpServerConfig,
        timeout: Duration,
        tool: &str,
        arguments: Value,
    ) -> Result<(), String> {
        let body = json!({"mcp": name, "tool": tool, "arguments": arguments}).to_string();
        let hash = cache::hash_body(&body);
        let occurrence = {
            let count = self.occurrences.entry(hash.clone()).or_insert(0);
            *count += 1;
            *count - 1
        };
        let key = CacheKey { hash, occurrence };
        let supervisor = if self.replaying() { None } else { Some(self.supervisor(name, config)?) };
        let (sender, cache_error) = (self.sender.clone(), self.cache_error.clone());
        let started = self.start()?;
        let cache = started.cache.clone();
        let tool = tool.to_owned();
        let task = started.runtime.spawn(async move {
            let finished = call(supervisor, cache, &key, &body, tool, arguments, timeout, &cache_error).await;
            let _ = sender.send((id, finished));
        });
        self.in_flight.insert(id, task.abort_handle());
        Ok(())
    }

    /// Waits for the answer to request `id` (others that arrive meanwhile are kept).
    pub fn wait(&mut self, id: u64) -> McpFinished {
        loop {
            if let Some(finished) = self.ready.remove(&id) {
                return finished;
            }
            if !self.in_flight.contains_key(&id) {
                return McpFinished::failed(FailureKind::Cancelled, "the request was never sent");
            }
            match self.receiver.blocking_recv() {
                Some((done, finished)) => self.arrived(done, finished),
                None => return McpFinished::failed(FailureKind::Cancelled, "the bridge closed"),
            }
        }
    }

    /// Answers that are in, in request-id order; with `all`, first waits until every
    /// request in flight has one.
    pub fn collect(&mut self, all: bool) -> Vec<(u64, McpFinished)> {
        while let Ok((done, finished)) = self.receiver.try_recv() {
            self.arrived(done, finished);
        }
        while all && !self.in_flight.is_empty() {
            match self.receiver.blocking_recv() {
                Some((done, finished)) => self.arrived(done, finished),
                None => break,
            }
        }
        std::mem::take(&mut self.ready).into_iter().collect()
    }

    fn arrived(&mut self, done: u64, finished: McpFinished) {
        self.in_flight.remove(&done);
        self.ready.insert(done, finished);
    }

    /// Gives up on every request in flight; returns their ids.
    pub fn cancel_all(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = std::mem::take(&mut self.ready).into_keys().collect();
        for (id, task) in std::mem::take(&mut self.in_flight) {
            task.abort();
            ids.push(id);
        }
        ids.sort_unstable();
        ids
    }

    /// Every server started so far, in name order.
    pub fn servers(&self) -> Vec<ServerStatus> {
        self.servers
            .values()
            .map(|s| {
                let link = s.link.borrow();
                ServerStatus {
                    name: s.name.clone(),
                    up: link.peer.is_some(),
                    pid: link.pid,
                    starts: link.starts,
                    error: link.error.clone(),
                }
            })
            .collect()
    }

    /// Waits until server `name` is up (at most `timeout`); whether it is.
    pub fn wait_until_up(&self, name: &str, timeout: Duration) -> bool {
        let (Some(supervisor), Some(started)) = (self.servers.get(name), self.started.as_ref()) else {
            return false;
        };
        started.runtime.block_on(async {
            let mut link = supervisor.link.subscribe();
            tokio::time::timeout(timeout, link.wait_for(|l| l.peer.is_some())).await.is_ok_and(|r| r.is_ok())
        })
    }

    /// Waits until every call in flight has its answer (kept, to be collected).
    pub(crate) fn wait_in_flight(&mut self) {
        while !self.in_flight.is_empty() {
            match self.receiver.blocking_recv() {
                Some((done, finished)) => self.arrived(done, finished),
                None => break,
            }
        }
    }

    /// What a checkpoint keeps; call [`McpBridge::wait_in_flight`] first.
    pub(crate) fn state(&self) -> McpBridgeState {
        let answers = self
            .ready
            .iter()
            .map(|(&id, f)| {
                let (result, failure) = match &f.outcome {
                    Ok(text) => (Some(text.clone()), None),
                    Err(failure) => (None, Some((failure.kind, failure.message.clone()))),
                };
                (id, McpAnswerState { result, failure, latency_ms: f.latency_ms })
            })
            .collect();
        McpBridgeState { occurrences: self.occurrences.iter().map(|(h, n)| (h.clone(), *n)).collect(), answers }
    }

    /// Takes over what a checkpoint kept.
    pub(crate) fn restore(&mut self, state: McpBridgeState) {
        self.occurrences = state.occurrences.into_iter().collect();
        for (id, kept) in state.answers {
            let outcome = match (kept.result, kept.failure) {
                (Some(text), _) => Ok(text),
                (None, Some((kind, message))) => Err(Failure { kind, message }),
                (None, None) => Err(Failure { kind: FailureKind::Cancelled, message: "lost".into() }),
            };
            self.ready.insert(id, McpFinished { outcome, latency_ms: kept.latency_ms });
        }
    }

    /// Moves the counts and the answers in hand to `other`, a bridge with other
    /// options (servers already running are left to stop with this one).
    pub(crate) fn hand_over(&mut self, other: &mut McpBridge) {
        self.wait_in_flight();
        other.occurrences = std::mem::take(&mut self.occurrences);
        other.ready = std::mem::take(&mut self.ready);
    }
}

/// An answer in hand, as a checkpoint keeps it.
#[derive(Serialize, Deserialize)]
struct McpAnswerState {
    result: Option<String>,
    failure: Option<(FailureKind, String)>,
    latency_ms: u64,
}

/// What a checkpoint keeps of the MCP bridge.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct McpBridgeState {
    occurrences: BTreeMap<String, u32>,
    answers: BTreeMap<u64, McpAnswerState>,
}

/// The last lines a server wrote on stderr, as the end of an error message.
fn last_words(supervisor: &Supervisor) -> String {
    let lines = supervisor.stderr.lock().map(|l| l.iter().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let error = supervisor.link.borrow().error.clone();
    match (error, lines.is_empty()) {
        (Some(error), true) => format!(": {error}"),
        (Some(error), false) => format!(": {error}; it said: {}", lines.join(" | ")),
        (None, false) => format!("; it said: {}", lines.join(" | ")),
        (None, true) => String::new(),
    }
}

/// Keeps one server running until the bridge stops.
async fn supervise(supervisor: Arc<Supervisor>, config: McpServerConfig) {
    let mut backoff = FIRST_BACKOFF;
    while !supervisor.stop.is_stopped() {
        let began = Instant::now();
        supervisor.link.send_modify(|l| l.starts += 1);
        match launch(&supervisor, &config).await {
            Ok(service) => {
                let peer = service.peer().clone();
                match peer.list_all_tools().await {
                    Ok(tools) => {
                        let tools = tools
                            .into_iter()
                            .map(|t| McpTool {
                                name: t.name.to_string(),
                                description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                                input_schema: Value::Object((*t.input_schema).clone()),
                            })
                            .collect();
                        supervisor.tools.send_if_modified(|first| {
                            let unset = !matches!(first, Some(Ok(_)));
                            if unset {
                                *first = Some(Ok(tools));
                            }
                            unset
                        });
                        supervisor.link.send_modify(|l| {
                            l.peer = Some(peer);
                            l.error = None;
                        });
                    }
                    Err(error) => {
                        let message = format!("listing its tools failed: {error}");
                        supervisor.tools.send_if_modified(|first| {
                            let unset = first.is_none();
                            if unset {
                                *first = Some(Err(message.clone()));
                            }
                            unset
                        });
                        supervisor.link.send_modify(|l| l.error = Some(message));
                    }
                }
                tokio::select! {
                    quit = service.waiting() => {
                        let why = match quit {
                            Ok(reason) => format!("the server exited ({reason:?})"),
                            Err(error) => format!("the server's connection failed: {error}"),
                        };
                        supervisor.link.send_modify(|l| { l.peer = None; l.pid = None; l.error = Some(why); });
                    }
                    () = supervisor.stop.stopped() => {
                        supervisor.link.send_modify(|l| { l.peer = None; });
                        // Closing stdin is how an MCP client asks a stdio server to stop.
                        // The service is gone with the select's other branch; its drop
                        // closes the transport and kills the child.
                        supervisor.link.send_modify(|l| { l.pid = None; });
                        return;
                    }
                }
            }
            Err(error) => {
                supervisor.tools.send_if_modified(|first| {
                    let unset = first.is_none();
                    if unset {
                        *first = Some(Err(error.clone()));
                    }
                    unset
                });
                supervisor.link.send_modify(|l| {
                    l.peer = None;
                    l.pid = None;
                    l.error = Some(error);
                });
            }
        }
        if began.elapsed() >= HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = supervisor.stop.stopped() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

type Running = rmcp::service::RunningService<RoleClient, ()>;

/// Starts the server's process and the MCP handshake.
async fn launch(supervisor: &Supervisor, config: &McpServerConfig) -> Result<Running, String> {
    let mut command = tokio::process::Command::new(&config.command).configure(|c| {
        c.args(&config.args).envs(&config.env).kill_on_drop(true);
        if let Some(dir) = &config.cwd {
            c.current_dir(dir);
        }
    });
    die_with_parent(&mut command);
    let (process, stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", config.command))?;
    let pid = process.id();
    if let Some(stderr) = stderr {
        tokio::spawn(keep_stderr(stderr, supervisor.stderr.clone()));
    }
    supervisor.link.send_modify(|l| l.pid = pid);
    match ().serve(process).await {
        Ok(service) => Ok(service),
        Err(error) => {
            Err(format!("the MCP handshake with {} failed: {error}{}", config.command, last_words(supervisor)))
        }
    }
}

/// Asks the kernel to kill the server when the world's process dies, however it dies.
fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: prctl has no memory-safety preconditions and is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

async fn keep_stderr(stderr: tokio::process::ChildStderr, kept: Arc<Mutex<VecDeque<String>>>) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut kept) = kept.lock() {
            if kept.len() == STDERR_LINES {
                kept.pop_front();
            }
            kept.push_back(super::client::excerpt(&line, 200));
        }
    }
}

/// One call: from the recording if it may be served from there, else from the server
/// (and then recorded).
#[allow(clippy::too_many_arguments)]
async fn call(
    supervisor: Option<Arc<Supervisor>>,
    cache: Option<Arc<LlmCache>>,
    key: &CacheKey,
    body: &str,
    tool: String,
    arguments: Value,
    timeout: Duration,
    cache_error: &Mutex<Option<String>>,
) -> McpFinished {
    if let Some(cache) = &cache {
        if let Some(entry) = cache.load_raw(key) {
            let outcome = match (entry.response, entry.failure) {
                (Some(text), _) => Ok(text),
                (None, Some(failure)) => Err(failure),
                (None, None) => Err(Failure { kind: FailureKind::Unavailable, message: "recorded empty".into() }),
            };
            return McpFinished { outcome, latency_ms: entry.latency_ms };
        }
        if cache.mode() == CacheMode::Replay {
            let message = format!(
                "replay: MCP call {key} ({tool}) was never recorded in {} (expected {})",
                cache.dir().display(),
                key.file_name()
            );
            return McpFinished::failed(FailureKind::ReplayMiss, message);
        }
    }
    let Some(supervisor) = supervisor else {
        return McpFinished::failed(FailureKind::Unusable, "no server");
    };
    let began = Instant::now();
    let outcome = tokio::time::timeout(timeout, async {
        let mut link = supervisor.link.subscribe();
        let peer = match link.wait_for(|l| l.peer.is_some()).await {
            Ok(link) => link.peer.clone(),
            Err(_) => None,
        };
        let Some(peer) = peer else {
            return Err(Failure { kind: FailureKind::Unavailable, message: "the server stopped".into() });
        };
        let mut params = CallToolRequestParams::new(tool.clone());
        if let Value::Object(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        match peer.call_tool(params).await {
            Ok(result) => serde_json::to_string(&result)
                .map_err(|e| Failure { kind: FailureKind::Unavailable, message: format!("unreadable result: {e}") }),
            Err(ServiceError::McpError(error)) => {
                Err(Failure { kind: FailureKind::Refused, message: format!("the server refused: {}", error.message) })
            }
            Err(ServiceError::TransportClosed | ServiceError::TransportSend(_) | ServiceError::Cancelled { .. }) => {
                Err(Failure {
                    kind: FailureKind::Unavailable,
                    message: format!("MCP server {} went away during the call", supervisor.name),
                })
            }
            Err(error) => Err(Failure { kind: FailureKind::Unavailable, message: error.to_string() }),
        }
    })
    .await
    .unwrap_or_else(|_| {
        let down = supervisor.link.borrow().peer.is_none();
        let message = if down {
            format!("MCP server {} was down for the whole {} s the call could wait", supervisor.name, timeout.as_secs())
        } else {
            format!("{tool} took longer than {} s", timeout.as_secs())
        };
        Err(Failure { kind: FailureKind::Timeout, message })
    });
    let latency_ms = began.elapsed().as_millis() as u64;
    if let Some(cache) = &cache {
        let (response, failure) = match &outcome {
            Ok(text) => (Some(text.as_str()), None),
            Err(failure) => (None, Some(failure)),
        };
        if let Err(error) = cache.store_raw(key, body, response, failure, latency_ms, 1)
            && let Ok(mut first) = cache_error.lock()
        {
            first.get_or_insert_with(|| format!("cannot record {key}: {error}"));
        }
    }
    McpFinished { outcome, latency_ms }
}
