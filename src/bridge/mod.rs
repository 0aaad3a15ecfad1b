//! Bridges to the world outside: language models over HTTP.
//!
//! [`LlmBridge`] is a resource holding a tokio runtime (started on the first request,
//! so worlds that never think never start one), the HTTP [`client`], the recording
//! [`cache`], and the channel answers come back on. The world thread submits a
//! request and either waits for it (code that called a model needs the answer to go
//! on) or leaves it in flight and collects it in a later step's Ingest phase. Answers
//! are handed back in request-id order, whatever order they arrived in.
//!
//! The bridge knows nothing of budgets or agents: reserving, charging and delivering
//! are the kernel's (`kernel::llm`).

pub mod cache;
pub mod client;
pub mod config;
pub mod mcp;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bevy_ecs::prelude::*;
use tokio::sync::mpsc;

use self::{
    cache::{CacheKey, CacheMode, LlmCache},
    client::{Client, FailureKind, Finished, RateLimiter, Route, Secret},
    config::LlmConfig,
};

/// How a run uses the outside world, from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeOptions {
    /// Record every call here (and serve answers already recorded).
    pub cache_dir: Option<PathBuf>,
    /// Serve only from `cache_dir`; never call a model.
    pub replay: bool,
}

/// The running part: started on the first request.
struct Started {
    runtime: tokio::runtime::Runtime,
    client: Option<Arc<Client>>,
    routes: BTreeMap<String, Arc<Route>>,
    cache: Option<Arc<LlmCache>>,
}

/// The world's connection to its language models.
#[derive(Resource)]
pub struct LlmBridge {
    options: BridgeOptions,
    started: Option<Started>,
    sender: mpsc::UnboundedSender<(u64, Finished)>,
    receiver: mpsc::UnboundedReceiver<(u64, Finished)>,
    /// Answers in, not yet taken.
    ready: BTreeMap<u64, Finished>,
    /// Submitted, no answer yet.
    in_flight: BTreeMap<u64, tokio::task::AbortHandle>,
    /// How many times each body was asked for (the cache key's occurrence).
    occurrences: HashMap<String, u32>,
    /// The first recording that could not be written.
    cache_error: Arc<std::sync::Mutex<Option<String>>>,
    /// While the world thread waits for answers: how many it waits on (0 otherwise),
    /// for whoever shows progress on another thread.
    waiting: Arc<AtomicUsize>,
}

impl Default for LlmBridge {
    fn default() -> Self {
        Self::new(BridgeOptions::default())
    }
}

impl Drop for LlmBridge {
    fn drop(&mut self) {
        // Do not wait for calls nobody will collect.
        if let Some(started) = self.started.take() {
            started.runtime.shutdown_background();
        }
    }
}

impl LlmBridge {
    pub fn new(options: BridgeOptions) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            options,
            started: None,
            sender,
            receiver,
            ready: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            occurrences: HashMap::new(),
            cache_error: Arc::default(),
            waiting: Arc::default(),
        }
    }

    /// How many answers the world thread is waiting on right now (0 when it is not
    /// waiting): lockstep can look hung behind a slow server, and this says why.
    pub fn waiting(&self) -> Arc<AtomicUsize> {
        self.waiting.clone()
    }

    /// The first recording that could not be written, if one could not.
    pub fn take_cache_error(&mut self) -> Option<String> {
        self.cache_error.lock().ok().and_then(|mut e| e.take())
    }

    pub fn options(&self) -> &BridgeOptions {
        &self.options
    }

    /// Calls submitted and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len() + self.ready.len()
    }

    /// Opens the cache, if any, before the run starts: a missing replay directory is
    /// the user's mistake, better said at once.
    pub fn check_options(&self) -> Result<(), String> {
        match &self.options.cache_dir {
            Some(dir) => LlmCache::open(dir, self.cache_mode()).map(|_| ()).map_err(|e| e.to_string()),
            None if self.options.replay => Err("--replay needs --llm-cache DIR (the recorded calls)".into()),
            None => Ok(()),
        }
    }

    fn cache_mode(&self) -> CacheMode {
        if self.options.replay { CacheMode::Replay } else { CacheMode::Record }
    }

    fn start(&mut self, config: &LlmConfig) -> Result<&Started, String> {
        if self.started.is_none() {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ecology-llm")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime for model calls: {e}"))?;
            let cache = match &self.options.cache_dir {
                Some(dir) => Some(Arc::new(LlmCache::open(dir, self.cache_mode()).map_err(|e| e.to_string())?)),
                None => None,
            };
            let client = if self.options.replay {
                None
            } else {
                // reqwest is built without a default TLS provider: install ring's.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let _guard = runtime.enter();
                Some(Arc::new(Client::new(config.max_concurrency, config.retry)?))
            };
            let routes = config
                .endpoints
                .iter()
                .map(|(name, endpoint)| {
                    let (key, unusable) = match &endpoint.api_key_env {
                        Some(var) => match std::env::var(var) {
                            Ok(key) if !key.is_empty() => (Secret::new(Some(key)), None),
                            _ => (
                                Secret::default(),
                                Some(format!("{name}: its API key is read from ${var}, which is not set")),
                            ),
                        },
                        None => (Secret::default(), None),
                    };
                    let route = Route {
                        name: name.clone(),
                        url: format!("{}/chat/completions", endpoint.base_url.trim_end_matches('/')),
                        key,
                        unusable,
                        timeout: Duration::from_millis(endpoint.timeout_ms),
                        limiter: endpoint.requests_per_sec.filter(|r| *r > 0.0).map(RateLimiter::per_sec),
                        slots: endpoint.max_concurrency.map(|n| tokio::sync::Semaphore::new(n.max(1))),
                    };
                    (name.clone(), Arc::new(route))
                })
                .collect();
            self.started = Some(Started { runtime, client, routes, cache });
        }
        self.started.as_ref().ok_or_else(|| "the bridge did not start".to_owned())
    }

    /// Sends request `id` (a chat-completions body) to `endpoint`. Its answer is
    /// collected with [`LlmBridge::wait`] or [`LlmBridge::collect`].
    pub fn submit(&mut self, config: &LlmConfig, id: u64, endpoint: &str, body: String) -> Result<(), String> {
        let hash = cache::hash_body(&body);
        let occurrence = {
            let count = self.occurrences.entry(hash.clone()).or_insert(0);
            *count += 1;
            *count - 1
        };
        let key = CacheKey { hash, occurrence };
        let sender = self.sender.clone();
        let (runtime, call) = self.call(config, endpoint, key, body, id)?;
        let task = runtime.spawn(async move {
            let finished = call.await;
            let _ = sender.send((id, finished));
        });
        self.in_flight.insert(id, task.abort_handle());
        Ok(())
    }

    /// Makes one call outside the world's stream of requests and waits for it: the
    /// world's request counts are not touched, so the recording's keys of the world's
    /// own calls stay as they were. Recorded (and in a replay, served) like any call,
    /// keyed by the body alone: the same question in the same state gets the same
    /// answer.
    pub fn ask_aside(&mut self, config: &LlmConfig, endpoint: &str, body: String) -> Finished {
        let key = CacheKey { hash: cache::hash_body(&body), occurrence: 0 };
        match self.call(config, endpoint, key, body, 0) {
            Ok((runtime, call)) => runtime.block_on(call),
            Err(why) => Finished::failed(FailureKind::Unusable, why),
        }
    }

    /// One call, ready to run on the runtime it comes with (started if need be).
    fn call(
        &mut self,
        config: &LlmConfig,
        endpoint: &str,
        key: CacheKey,
        body: String,
        id: u64,
    ) -> Result<(&tokio::runtime::Runtime, impl Future<Output = Finished> + use<>), String> {
        let cache_error = self.cache_error.clone();
        let started = self.start(config)?;
        let route = started.routes.get(endpoint).cloned();
        let (client, cache) = (started.client.clone(), started.cache.clone());
        let call = async move { complete(client, cache, route, &key, body, id, &cache_error).await };
        Ok((&started.runtime, call))
    }

    /// Waits for the answer to request `id` (others that arrive meanwhile are kept).
    pub fn wait(&mut self, id: u64) -> Finished {
        loop {
            if let Some(finished) = self.ready.remove(&id) {
                return finished;
            }
            if !self.in_flight.contains_key(&id) {
                return Finished::failed(FailureKind::Cancelled, "the request was never sent");
            }
            match self.blocking_recv() {
                Some((done, finished)) => self.arrived(done, finished),
                None => return Finished::failed(FailureKind::Cancelled, "the bridge closed"),
            }
        }
    }

    /// Answers that are in, in request-id order; with `all`, first waits until every
    /// request in flight has one.
    pub fn collect(&mut self, all: bool) -> Vec<(u64, Finished)> {
        while let Ok((done, finished)) = self.receiver.try_recv() {
            self.arrived(done, finished);
        }
        while all && !self.in_flight.is_empty() {
            match self.blocking_recv() {
                Some((done, finished)) => self.arrived(done, finished),
                None => break,
            }
        }
        std::mem::take(&mut self.ready).into_iter().collect()
    }

    /// The next answer, waiting for it, with [`LlmBridge::waiting`] saying so.
    fn blocking_recv(&mut self) -> Option<(u64, Finished)> {
        self.waiting.store(self.in_flight.len(), Ordering::Relaxed);
        let next = self.receiver.blocking_recv();
        self.waiting.store(0, Ordering::Relaxed);
        next
    }

    /// Request `done` is answered: keep the answer until it is taken.
    fn arrived(&mut self, done: u64, finished: Finished) {
        self.in_flight.remove(&done);
        self.ready.insert(done, finished);
    }

    /// Gives up on every request in flight; returns their ids.
    pub fn cancel_all(&mut self) -> BTreeSet<u64> {
        let mut ids: BTreeSet<u64> = self.ready.keys().copied().collect();
        self.ready.clear();
        for (id, task) in std::mem::take(&mut self.in_flight) {
            task.abort();
            ids.insert(id);
        }
        ids
    }
}

/// An answer in hand, as a checkpoint keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct AnswerState {
    answer: Option<client::Answer>,
    failure: Option<(FailureKind, String)>,
    latency_ms: u64,
    attempts: u32,
}

/// What a checkpoint keeps of the bridge: how often each request body was asked for
/// (the recording's keys go on from there), and the answers to the calls in flight.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct BridgeState {
    occurrences: BTreeMap<String, u32>,
    answers: BTreeMap<u64, AnswerState>,
}

impl LlmBridge {
    /// Waits until every call in flight has its answer (kept, to be collected as
    /// usual), so that a checkpoint can carry the answers instead of the calls.
    pub(crate) fn wait_in_flight(&mut self) {
        while !self.in_flight.is_empty() {
            match self.blocking_recv() {
                Some((done, finished)) => self.arrived(done, finished),
                None => break,
            }
        }
    }

    /// The state a checkpoint keeps; call [`LlmBridge::wait_in_flight`] first.
    pub(crate) fn state(&self) -> BridgeState {
        let answers = self
            .ready
            .iter()
            .map(|(&id, finished)| {
                let (answer, failure) = match &finished.outcome {
                    Ok(answer) => (Some(answer.clone()), None),
                    Err(failure) => (None, Some((failure.kind, failure.message.clone()))),
                };
                (id, AnswerState { answer, failure, latency_ms: finished.latency_ms, attempts: finished.attempts })
            })
            .collect();
        let occurrences = self.occurrences.iter().map(|(hash, n)| (hash.clone(), *n)).collect();
        BridgeState { occurrences, answers }
    }

    /// Takes over what a checkpoint kept: counts of requests, and answers in hand.
    pub(crate) fn restore(&mut self, state: BridgeState) {
        self.occurrences = state.occurrences.into_iter().collect();
        for (id, kept) in state.answers {
            let outcome = match (kept.answer, kept.failure) {
                (Some(answer), _) => Ok(answer),
                (None, Some((kind, message))) => Err(client::Failure { kind, message }),
                (None, None) => Err(client::Failure { kind: FailureKind::Cancelled, message: "lost".into() }),
            };
            self.ready
                .insert(id, Finished { outcome, latency_ms: kept.latency_ms, attempts: kept.attempts, raw: None });
        }
    }

    /// Moves what this bridge carries over between runs (counts and answers in hand)
    /// to `other`, a bridge with other options.
    pub(crate) fn hand_over(&mut self, other: &mut LlmBridge) {
        self.wait_in_flight();
        other.occurrences = std::mem::take(&mut self.occurrences);
        other.ready = std::mem::take(&mut self.ready);
    }
}

/// One call: from the recording if it may be served from there, else from the model
/// (and then recorded).
async fn complete(
    client: Option<Arc<Client>>,
    cache: Option<Arc<LlmCache>>,
    route: Option<Arc<Route>>,
    key: &CacheKey,
    body: String,
    id: u64,
    cache_error: &std::sync::Mutex<Option<String>>,
) -> Finished {
    if let Some(cache) = &cache {
        if let Some(finished) = cache.load(key) {
            return finished;
        }
        if cache.mode() == CacheMode::Replay {
            let miss = cache.miss(key, &body);
            return Finished::failed(miss.kind, miss.message);
        }
    }
    let (Some(client), Some(route)) = (client, route) else {
        return Finished::failed(FailureKind::Unusable, "no such endpoint");
    };
    let finished = client.complete(&route, body.clone(), client::splitmix(id)).await;
    if let Some(cache) = &cache {
        // A recording that cannot be written is a lost recording, not a lost answer:
        // the run goes on and says so at the end.
        if let Err(error) = cache.store(key, &body, &finished)
            && let Ok(mut first) = cache_error.lock()
        {
            first.get_or_insert_with(|| format!("cannot record {key}: {error}"));
        }
    }
    finished
}
