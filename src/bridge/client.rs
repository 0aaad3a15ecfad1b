//! Talking to an OpenAI-compatible `chat/completions` endpoint, with retries.
//!
//! One call is a sequence of attempts. An attempt waits for the endpoint's rate
//! limit, for a slot of the endpoint's own (a local server that generates one answer
//! at a time has one) and for a slot under the global concurrency cap (both held only
//! while the HTTP request is open, not while backing off), then posts the body. What
//! is retried: connection failures and resets, `408`, `429` (after its `Retry-After`
//! when it gives one), `5xx`, and bodies that are not a chat completion. What is not:
//! other `4xx` (a wrong key or model will not fix itself), and a request that timed
//! out — the server may still be generating its answer, and sending it again would
//! only double its work. Between attempts the wait
//! doubles from `base_ms` up to `max_ms`, with jitter (a random half of it), so that
//! many agents refused at once do not come back at once.
//!
//! The API key travels only in the `Authorization` header; any message that could
//! reach an event or a report is scrubbed of it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use super::config::RetryPolicy;

/// An API key, never printed.
#[derive(Clone, Default)]
pub struct Secret(Option<String>);

impl Secret {
    pub fn new(key: Option<String>) -> Self {
        Self(key.filter(|k| !k.is_empty()))
    }

    /// `text` with every occurrence of the key replaced.
    pub fn scrub(&self, text: String) -> String {
        match &self.0 {
            Some(key) if text.contains(key.as_str()) => text.replace(key.as_str(), "[redacted]"),
            _ => text,
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Secret([redacted])" } else { "Secret(none)" })
    }
}

/// Spaces an endpoint's requests evenly: at most `1 / interval` per second.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<tokio::time::Instant>>,
}

impl RateLimiter {
    pub fn per_sec(requests_per_sec: f64) -> Self {
        Self { interval: Duration::from_secs_f64(1.0 / requests_per_sec), next: Mutex::new(None) }
    }

    /// Waits for the next free slot.
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// One endpoint as the client uses it.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// `…/chat/completions`.
    pub url: String,
    pub key: Secret,
    /// Why no call can be made (a key's variable is not set), if none can.
    pub unusable: Option<String>,
    pub timeout: Duration,
    pub limiter: Option<RateLimiter>,
    /// Requests open to this endpoint at once, if it limits them.
    pub slots: Option<Semaphore>,
}

/// What every call shares: the HTTP client, the concurrency cap, the retry policy.
pub struct Client {
    http: reqwest::Client,
    slots: Semaphore,
    retry: RetryPolicy,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON text, not always valid).
    pub arguments: String,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Whether the server reported the token counts (otherwise they are estimated
    /// from the text, four characters a token).
    pub usage_reported: bool,
}

/// Why a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request timed out (it is not sent again: the server may still be on it).
    Timeout,
    /// The server kept failing (5xx, 429, resets, garbage) until attempts ran out.
    Unavailable,
    /// The server refused the request itself (4xx other than 408/429).
    Refused,
    /// The call could not be made (no key, bad URL).
    Unusable,
    /// Replaying a recorded run and this request was never recorded.
    ReplayMiss,
    /// The run ended before the answer came.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// How one call ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub outcome: Result<Answer, Failure>,
    /// Wall-clock milliseconds from the first attempt to the last answer.
    pub latency_ms: u64,
    pub attempts: u32,
    /// The raw body of the answer that was used (for the recording).
    pub raw: Option<String>,
}

impl Finished {
    /// A call that failed before any attempt was made.
    pub fn failed(kind: FailureKind, message: impl Into<String>) -> Self {
        let failure = Failure { kind, message: message.into() };
        Self { outcome: Err(failure), latency_ms: 0, attempts: 0, raw: None }
    }
}

/// What one attempt came to.
enum Attempt {
    Done(Answer, String),
    /// Worth another try, after at least this long (a `Retry-After`).
    Retry(Failure, Option<Duration>),
    Fatal(Failure),
}

impl Client {
    pub fn new(max_concurrency: usize, retry: RetryPolicy) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(max_concurrency)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { http, slots: Semaphore::new(max_concurrency.max(1)), retry })
    }

    /// Makes one call to completion: retried as the policy says, never panicking on
    /// what the server sends.
    pub async fn complete(&self, route: &Route, body: String, jitter_seed: u64) -> Finished {
        let started = Instant::now();
        if let Some(why) = &route.unusable {
            return Finished::failed(FailureKind::Unusable, why.clone());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(limiter) = &route.limiter {
                limiter.wait().await;
            }
            let own = match &route.slots {
                Some(slots) => slots.acquire().await.map(Some),
                None => Ok(None),
            };
            let result = match (own, self.slots.acquire().await) {
                (Ok(_own), Ok(_permit)) => self.attempt(route, body.clone()).await,
                _ => Attempt::Fatal(Failure { kind: FailureKind::Cancelled, message: "shut down".into() }),
            };
            let latency_ms = started.elapsed().as_millis() as u64;
            let (failure, retry_after) = match result {
                Attempt::Done(answer, raw) => {
                    return Finished { outcome: Ok(answer), latency_ms, attempts: attempt, raw: Some(raw) };
                }
                Attempt::Fatal(failure) => {
                    return Finished { outcome: Err(failure), latency_ms, attempts: attempt, raw: None };
                }
                Attempt::Retry(failure, retry_after) => (failure, retry_after),
            };
            if attempt >= self.retry.max_attempts {
                let message = format!("{} (gave up after {attempt} attempts)", failure.message);
                let failure = Failure { kind: failure.kind, message: route.key.scrub(message) };
                return Finished { outcome: Err(failure), latency_ms, attempts: attempt, raw: None };
            }
            let backoff = self.retry.backoff_ms(attempt);
            // Full jitter over the upper half: between backoff/2 and backoff.
            let jitter = splitmix(jitter_seed ^ u64::from(attempt)) % (backoff / 2 + 1);
            let mut wait = Duration::from_millis(backoff / 2 + jitter);
            if let Some(after) = retry_after {
                wait = wait.max(after.min(Duration::from_millis(self.retry.max_ms)));
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, route: &Route, body: String) -> Attempt {
        let mut request = self
            .http
            .post(&route.url)
            .timeout(route.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &route.key.0 {
            request = request.bearer_auth(key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return transport_failure(route, &error),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map(|secs| Duration::from_secs_f64(secs.min(3600.0)));
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) => return transport_failure(route, &error),
        };
        // Whatever the server sends is scrubbed of the key before anything else sees it
        // (a message cut short could no longer be recognised).
        let text = route.key.scrub(text);
        if status.is_success() {
            return match parse_answer(&text) {
                Ok(answer) => Attempt::Done(answer, text),
                Err(why) => Attempt::Retry(
                    Failure { kind: FailureKind::Unavailable, message: format!("{}: {why}", route.name) },
                    None,
                ),
            };
        }
        let message = format!("{}: HTTP {status}: {}", route.name, excerpt(&error_text(&text), 300));
        let code = status.as_u16();
        if code == 429 || code == 408 || status.is_server_error() {
            Attempt::Retry(Failure { kind: FailureKind::Unavailable, message }, retry_after)
        } else {
            Attempt::Fatal(Failure { kind: FailureKind::Refused, message })
        }
    }
}

fn transport_failure(route: &Route, error: &reqwest::Error) -> Attempt {
    // reqwest's message names the URL, never a header.
    let mut message = format!("{}: {error}", route.name);
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let message = route.key.scrub(message);
    if error.is_builder() {
        return Attempt::Fatal(Failure { kind: FailureKind::Unusable, message });
    }
    if error.is_timeout() {
        // Not sent again: the server may still be working on it (see the module doc).
        let message = format!(
            "{message} (after {:.0} s; raise the endpoint's timeout_secs for a slow server)",
            route.timeout.as_secs_f64()
        );
        return Attempt::Fatal(Failure { kind: FailureKind::Timeout, message });
    }
    Attempt::Retry(Failure { kind: FailureKind::Unavailable, message }, None)
}

/// The `error.message` of an OpenAI-style error body, or the body.
fn error_text(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| text.to_owned())
}

/// At most `chars` characters of `text`, on one line.
pub fn excerpt(text: &str, chars: usize) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(chars + 1).collect();
    if one_line.chars().count() > chars {
        let mut cut: String = one_line.chars().take(chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        one_line
    }
}

/// Reads a chat completion. Anything else — not JSON, an error object, no choices,
/// no message — is an error saying what was wrong.
pub fn parse_answer(text: &str) -> Result<Answer, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the answer is not JSON ({e}): {}", excerpt(text, 120)))?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
        return Err(format!("the server answered with an error: {}", excerpt(&message, 200)));
    }
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| format!("the answer has no choices: {}", excerpt(text, 120)))?;
    let message = choice.get("message").filter(|m| m.is_object()).ok_or("the answer's choice has no message")?;
    let content = message.get("content").and_then(Value::as_str).map(str::to_owned);
    let mut tool_calls = Vec::new();
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for (i, call) in calls.iter().enumerate() {
            let function = call.get("function").ok_or_else(|| format!("tool call {i} has no function"))?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("tool call {i} has no function name"))?;
            let arguments = match function.get("arguments") {
                Some(Value::String(text)) => text.clone(),
                None | Some(Value::Null) => "{}".to_owned(),
                // Some servers send the arguments as an object rather than as text.
                Some(other) => other.to_string(),
            };
            let id = call.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{i}"), str::to_owned);
            tool_calls.push(ToolCall { id, name: name.to_owned(), arguments });
        }
    }
    let finish_reason = choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned);
    let usage = value.get("usage");
    let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
    let (prompt_tokens, completion_tokens, usage_reported) = match (count("prompt_tokens"), count("completion_tokens"))
    {
        (Some(prompt), Some(completion)) => (prompt, completion, true),
        _ => {
            let written = content.as_deref().map_or(0, str::len)
                + tool_calls.iter().map(|c| c.name.len() + c.arguments.len()).sum::<usize>();
            (0, (written as u64).div_ceil(4), false)
        }
    };
    Ok(Answer { content, tool_calls, finish_reason, prompt_tokens, completion_tokens, usage_reported })
}

/// A well-mixed 64-bit value (splitmix64), for jitter.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Shared by every call of one world.
pub type SharedClient = Arc<Client>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tool_calls_and_usage() {
        let body = r#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[
            {"id":"c1","type":"function","function":{"name":"transfer","arguments":"{\"to\":\"bob\"}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":12,"completion_tokens":5}}"#;
        let answer = parse_answer(body).unwrap();
        assert_eq!(answer.tool_calls[0].name, "transfer");
        assert_eq!(answer.tool_calls[0].arguments, r#"{"to":"bob"}"#);
        assert_eq!((answer.prompt_tokens, answer.completion_tokens, answer.usage_reported), (12, 5, true));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in ["", "<html>", "{}", r#"{"choices":[]}"#, r#"{"choices":[{}]}"#, r#"{"error":{"message":"x"}}"#] {
            assert!(parse_answer(body).is_err(), "{body}");
        }
    }

    #[test]
    fn the_key_is_scrubbed() {
        let secret = Secret::new(Some("sk-123".into()));
        assert_eq!(secret.scrub("bad key sk-123!".into()), "bad key [redacted]!");
        assert!(!format!("{secret:?}").contains("sk-123"));
    }
}
