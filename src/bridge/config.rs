//! How a world reaches language models: endpoints, models and their prices, the clock
//! mode, retries and limits. Validated from a scene's `config.llm` section.
//!
//! Endpoints are OpenAI-compatible servers. Five presets are always there (and a
//! scene may override them): `openai`, `openrouter` (hosted; key from
//! `OPENAI_API_KEY` / `OPENROUTER_API_KEY`), `ollama`, `vllm` and `llamacpp` (local,
//! no key). A scene names the *environment variable* that holds a key, never the key.
//!
//! Prices are integers: micro-dollars per million tokens, so a cost is
//! `ceil((prompt × input + completion × output) / 1 000 000)` µ$ with no float in the
//! ledger. Hosted models carry their list prices; local models a notional price, so
//! that thinking is scarce in a world whatever serves it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether the world waits for the models (written `Lockstep` / `Realtime` in scenes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClockMode {
    /// A step does not begin until every answer asked for in earlier steps is in:
    /// results do not depend on latency (batch runs).
    #[default]
    Lockstep,
    /// The world keeps stepping while requests are in flight; answers arrive when
    /// they arrive (live runs, the desktop app).
    Realtime,
}

impl ClockMode {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "lockstep" => Some(Self::Lockstep),
            "realtime" => Some(Self::Realtime),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lockstep => "lockstep",
            Self::Realtime => "realtime",
        }
    }
}

/// An OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Up to and including the version, e.g. `https://api.openai.com/v1`;
    /// `/chat/completions` is appended.
    pub base_url: String,
    /// The environment variable that holds the API key, if the server wants one.
    pub api_key_env: Option<String>,
    /// Requests per second at most (none: unlimited).
    pub requests_per_sec: Option<f64>,
    /// Wall-clock limit of one attempt, in milliseconds. A request that runs out of
    /// it is not sent again: the server may still be working on it.
    pub timeout_ms: u64,
    /// Requests in flight to this endpoint at once (none: only the world's cap).
    /// A local server often generates one answer at a time; more only queue there,
    /// where their timeouts run.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
}

impl Endpoint {
    /// An endpoint at `base_url` with the timeout that suits where it is: a server on
    /// this machine (loopback) gets a long one.
    pub fn at(base_url: &str, api_key_env: Option<String>) -> Self {
        let local = is_loopback(base_url);
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key_env,
            requests_per_sec: None,
            timeout_ms: if local { LOCAL_TIMEOUT_MS } else { DEFAULT_TIMEOUT_MS },
            max_concurrency: None,
        }
    }

    /// A server that generates one answer at a time (llama.cpp, Ollama by default):
    /// requests wait their turn here, not in its queue where their timeouts run.
    fn one_at_a_time(self) -> Self {
        Self { max_concurrency: Some(1), ..self }
    }
}

/// Whether `url` names this machine (`localhost`, `127.x.x.x`, `[::1]`).
pub fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = rest.split('/').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost") || host.starts_with("127.") || host == "::1"
}

/// A model a world may think with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// Which endpoint serves it.
    pub endpoint: String,
    /// The name the server knows it by (default: the model's own name).
    pub api_name: Option<String>,
    /// Micro-dollars per million prompt tokens.
    pub input_micro_usd_per_mtok: u64,
    /// Micro-dollars per million completion tokens.
    pub output_micro_usd_per_mtok: u64,
    /// The price is notional (a model with no list price, e.g. served locally): the
    /// world still makes thinking scarce with it.
    #[serde(default)]
    pub notional: bool,
}

impl Model {
    /// The cost of a call in micro-dollars, rounded up.
    pub fn cost_micro_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        let micro_mtok = u128::from(prompt_tokens) * u128::from(self.input_micro_usd_per_mtok)
            + u128::from(completion_tokens) * u128::from(self.output_micro_usd_per_mtok);
        u64::try_from(micro_mtok.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// How failed attempts are retried: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled each time after.
    pub base_ms: u64,
    /// Longest wait between attempts (a `Retry-After` is honoured up to this too).
    pub max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_ms: 500, max_ms: 30_000 }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempts count from 1), before jitter.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let doubled = self.base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        doubled.min(self.max_ms)
    }
}

/// The world's language models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmConfig {
    pub clock: ClockMode,
    /// Endpoints by name: the presets, then the scene's.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Models by name: the default price table, then the scene's.
    pub models: BTreeMap<String, Model>,
    /// The model of a request (or an agent) that names none.
    pub default_model: Option<String>,
    /// Requests in flight at once, across all endpoints.
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
    /// Completion tokens asked for when a request does not say.
    pub max_tokens: u64,
    /// The model that scores the mint's winners (none: the offline scorer).
    pub scorer_model: Option<String>,
    /// The LLM budget the mint starts with, to pay its scorer.
    pub scorer_budget_micro_usd: u64,
}

/// Requests in flight at most, by default.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// Completion tokens per request, by default.
pub const DEFAULT_MAX_TOKENS: u64 = 1024;
/// Wall-clock limit of one attempt, by default.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;
/// Wall-clock limit of one attempt to a server on this machine: a small machine
/// digests a long prompt slowly, and giving up only wastes what it did.
pub const LOCAL_TIMEOUT_MS: u64 = 600_000;
/// The price of a model with no list price, in dollars per million tokens (input and
/// output alike): what a small hosted model costs, so that thinking stays scarce.
pub const NOTIONAL_USD_PER_MTOK: f64 = 0.10;

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            clock: ClockMode::default(),
            endpoints: preset_endpoints(),
            models: default_models(),
            default_model: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            retry: RetryPolicy::default(),
            max_tokens: DEFAULT_MAX_TOKENS,
            scorer_model: None,
            scorer_budget_micro_usd: 0,
        }
    }
}

impl LlmConfig {
    /// The model `name`, or the default model when `name` is `None`.
    pub fn model(&self, name: Option<&str>) -> Result<(&str, &Model), String> {
        let name = match name.or(self.default_model.as_deref()) {
            Some(name) => name,
            None => {
                return Err("no model named and the world has no default (config.llm.default_model, or \
                            `ecology run --llm-model`)"
                    .into());
            }
        };
        match self.models.get_key_value(name) {
            Some((name, model)) => Ok((name.as_str(), model)),
            None => Err(format!(
                "model {name:?} has no price in this world; add it to config.llm.models (known: {})",
                self.models.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// The endpoints every world knows.
pub fn preset_endpoints() -> BTreeMap<String, Endpoint> {
    let endpoint = |base_url: &str, key: Option<&str>| Endpoint::at(base_url, key.map(str::to_owned));
    // vLLM batches many requests at once; Ollama and llama.cpp's server generate one
    // at a time unless told otherwise.
    BTreeMap::from([
        ("openai".to_owned(), endpoint("https://api.openai.com/v1", Some("OPENAI_API_KEY"))),
        ("openrouter".to_owned(), endpoint("https://openrouter.ai/api/v1", Some("OPENROUTER_API_KEY"))),
        ("ollama".to_owned(), endpoint("http://localhost:11434/v1", None).one_at_a_time()),
        ("vllm".to_owned(), endpoint("http://localhost:8000/v1", None)),
        ("llamacpp".to_owned(), endpoint("http://localhost:8080/v1", None).one_at_a_time()),
    ])
}

/// List prices of common hosted models ($ per million tokens, input/output) and the
/// notional $0.10/$0.10 for local ones (those on a loopback endpoint).
const PRICE_TABLE: &[(&str, &str, f64, f64)] = &[
    ("gpt-4o", "openai", 2.50, 10.00),
    ("gpt-4o-mini", "openai", 0.15, 0.60),
    ("gpt-4.1", "openai", 2.00, 8.00),
    ("gpt-4.1-mini", "openai", 0.40, 1.60),
    ("gpt-4.1-nano", "openai", 0.10, 0.40),
    ("o4-mini", "openai", 1.10, 4.40),
    ("anthropic/claude-3.5-haiku", "openrouter", 0.80, 4.00),
    ("anthropic/claude-sonnet-4", "openrouter", 3.00, 15.00),
    ("google/gemini-2.0-flash-001", "openrouter", 0.10, 0.40),
    ("meta-llama/llama-3.1-8b-instruct", "openrouter", 0.02, 0.05),
    ("deepseek/deepseek-chat", "openrouter", 0.30, 0.85),
    ("llama3.2", "ollama", 0.10, 0.10),
    ("llama3.1:8b", "ollama", 0.10, 0.10),
    ("qwen2.5:7b", "ollama", 0.10, 0.10),
    ("mistral", "ollama", 0.10, 0.10),
];

/// Dollars per million tokens as integer micro-dollars per million tokens.
pub fn micro_per_mtok(usd: f64) -> Option<u64> {
    let micro = (usd * 1e6).round();
    (usd.is_finite() && usd >= 0.0 && micro <= 1e15).then_some(micro as u64)
}

/// The default price table.
pub fn default_models() -> BTreeMap<String, Model> {
    PRICE_TABLE
        .iter()
        .map(|&(name, endpoint, input, output)| {
            let model = Model {
                endpoint: endpoint.to_owned(),
                api_name: None,
                input_micro_usd_per_mtok: micro_per_mtok(input).unwrap_or(0),
                output_micro_usd_per_mtok: micro_per_mtok(output).unwrap_or(0),
                notional: !matches!(endpoint, "openai" | "openrouter"),
            };
            (name.to_owned(), model)
        })
        .collect()
}

/// A model chosen on the command line (`--llm-model`, `--llm-endpoint`,
/// `--llm-key-env`), over what the scene says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelOverride {
    /// The model of agents and requests that name none.
    pub model: Option<String>,
    /// Where it is served: an endpoint's name, or the base URL of any
    /// OpenAI-compatible server (e.g. `http://127.0.0.1:8090/v1`).
    pub endpoint: Option<String>,
    /// The environment variable holding the key for a server given by URL.
    pub key_env: Option<String>,
}

/// The name of the endpoint a [`ModelOverride`] gives by URL.
pub const CHOSEN_ENDPOINT: &str = "chosen";

impl ModelOverride {
    pub fn is_empty(&self) -> bool {
        self.model.is_none() && self.endpoint.is_none()
    }
}

impl LlmConfig {
    /// Makes `choice` the world's default model. A model served by a given endpoint
    /// keeps its price if it has one (in the scene or the built-in table), and gets
    /// the notional price otherwise; without an endpoint the model must have a price
    /// already. Says what is wrong, naming the flag.
    pub fn choose(&mut self, choice: &ModelOverride) -> Result<(), String> {
        if choice.key_env.is_some() && choice.endpoint.is_none() {
            return Err("--llm-key-env: give the server too, with --llm-endpoint URL".into());
        }
        let endpoint = match choice.endpoint.as_deref() {
            None => None,
            Some(name) if self.endpoints.contains_key(name) && choice.key_env.is_none() => Some(name.to_owned()),
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                if let Some(var) = &choice.key_env
                    && !is_variable_name(var)
                {
                    return Err(format!(
                        "--llm-key-env {var:?}: give the name of the variable that holds the key \
                         (e.g. OPENAI_API_KEY), never the key"
                    ));
                }
                // A server on this machine is taken to generate one answer at a time.
                let mut given = Endpoint::at(url, choice.key_env.clone());
                if is_loopback(url) {
                    given = given.one_at_a_time();
                }
                self.endpoints.insert(CHOSEN_ENDPOINT.to_owned(), given);
                Some(CHOSEN_ENDPOINT.to_owned())
            }
            Some(other) => {
                return Err(format!(
                    "--llm-endpoint {other:?}: expected an http:// or https:// URL or an endpoint's name ({})",
                    self.endpoints.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        };
        let name = match (&choice.model, &self.default_model) {
            (Some(model), _) => model.clone(),
            (None, Some(default)) => default.clone(),
            (None, None) if endpoint.is_some() => {
                return Err("--llm-endpoint: name the model it serves with --llm-model".into());
            }
            (None, None) => return Ok(()),
        };
        match endpoint {
            Some(endpoint) => {
                let notional = micro_per_mtok(NOTIONAL_USD_PER_MTOK).unwrap_or(0);
                let model = self.models.entry(name.clone()).or_insert(Model {
                    endpoint: endpoint.clone(),
                    api_name: None,
                    input_micro_usd_per_mtok: notional,
                    output_micro_usd_per_mtok: notional,
                    notional: true,
                });
                model.endpoint = endpoint;
            }
            None => {
                self.model(Some(&name)).map_err(|why| {
                    format!("--llm-model: {why}; or serve it from any OpenAI-compatible server with --llm-endpoint URL")
                })?;
            }
        }
        self.default_model = Some(name);
        Ok(())
    }
}

/// `OPENAI_API_KEY`-like: letters, digits and `_`, not starting with a digit. (A key
/// such as `sk-…` has a dash and is refused.)
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_rounds_up_in_integers() {
        let mini = &default_models()["gpt-4o-mini"];
        assert_eq!(mini.input_micro_usd_per_mtok, 150_000);
        // 1000 × 0.15 µ$ + 100 × 0.6 µ$ = 150 + 60.
        assert_eq!(mini.cost_micro_usd(1000, 100), 210);
        assert_eq!(mini.cost_micro_usd(1, 0), 1);
        assert_eq!(mini.cost_micro_usd(0, 0), 0);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryPolicy { max_attempts: 9, base_ms: 100, max_ms: 1000 };
        assert_eq!(retry.backoff_ms(1), 100);
        assert_eq!(retry.backoff_ms(2), 200);
        assert_eq!(retry.backoff_ms(4), 800);
        assert_eq!(retry.backoff_ms(5), 1000);
    }

    #[test]
    fn a_model_chosen_on_a_server_keeps_a_known_price_or_gets_the_notional_one() {
        let mut llm = LlmConfig::default();
        let choice = |model: &str, endpoint: &str| ModelOverride {
            model: Some(model.into()),
            endpoint: Some(endpoint.into()),
            key_env: None,
        };
        llm.choose(&choice("smollm2-135m", "http://127.0.0.1:8090/v1/")).unwrap();
        let (name, model) = llm.model(None).unwrap();
        assert_eq!(name, "smollm2-135m");
        assert!(model.notional);
        assert_eq!(model.input_micro_usd_per_mtok, 100_000);
        let served = &llm.endpoints[&model.endpoint];
        assert_eq!(served.base_url, "http://127.0.0.1:8090/v1");
        assert_eq!((served.max_concurrency, served.timeout_ms), (Some(1), LOCAL_TIMEOUT_MS));

        llm.choose(&choice("gpt-4o-mini", "https://example.net/v1")).unwrap();
        let (_, model) = llm.model(None).unwrap();
        assert!(!model.notional);
        assert_eq!(model.input_micro_usd_per_mtok, 150_000);
        assert_eq!(llm.endpoints[&model.endpoint].max_concurrency, None);

        let unknown = ModelOverride { model: Some("nobody-knows".into()), ..ModelOverride::default() };
        assert!(llm.choose(&unknown).unwrap_err().contains("--llm-endpoint"));
        assert!(llm.choose(&choice("m", "ftp://x")).is_err());
    }

    #[test]
    fn loopback_is_recognised() {
        for url in ["http://localhost:1/v1", "http://127.0.0.1/v1", "http://[::1]:8/v1", "http://LOCALHOST"] {
            assert!(is_loopback(url), "{url}");
        }
        for url in ["https://api.openai.com/v1", "http://10.0.0.2:8080/v1", "http://localhost.example.com/v1"] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn every_preset_model_has_an_endpoint() {
        let endpoints = preset_endpoints();
        for (name, model) in default_models() {
            assert!(endpoints.contains_key(&model.endpoint), "{name}");
        }
    }
}
