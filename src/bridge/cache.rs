//! Recording calls to models, and replaying them offline.
//!
//! A request is keyed by the BLAKE3 hash of the exact body sent (model, messages,
//! tools, limits — never the key or the URL) and by how many times the same body was
//! asked for before in the run, so that two agents asking the same question each get
//! back the answer they got when it was recorded. Occurrences are counted in the
//! world's own order (the Act phase), which is deterministic.
//!
//! Each entry is one JSON file, `<hash>-<occurrence>.json`, written atomically
//! (temporary file, then rename): the request, the raw response body or the failure,
//! and the latency and attempts as measured when recorded — replaying gives the same
//! events, to the byte, as the run that was recorded.
//!
//! When recording, an entry that holds an answer is served again instead of calling
//! the model (a failure is not: it is tried afresh). When replaying, only entries are
//! served; a request without one is an error that names it.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{Failure, FailureKind, Finished, excerpt, parse_answer};

/// What the cache is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Serve recorded answers, call the model for the rest and record them.
    Record,
    /// Serve recorded answers and outcomes only; never call a model.
    Replay,
}

/// Which entry a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub hash: String,
    pub occurrence: u32,
}

impl CacheKey {
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.hash, self.occurrence)
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", &self.hash[..16.min(self.hash.len())], self.occurrence)
    }
}

/// The hash part of a key.
pub fn hash_body(body: &str) -> String {
    blake3::hash(body.as_bytes()).to_hex()[..32].to_owned()
}

/// One recorded call.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    request: Value,
    latency_ms: u64,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<Failure>,
}

impl<'de> Deserialize<'de> for Failure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            kind: String,
            message: String,
        }
        let raw = Raw::deserialize(d)?;
        let kind = match raw.kind.as_str() {
            "timeout" => FailureKind::Timeout,
            "refused" => FailureKind::Refused,
            "unusable" => FailureKind::Unusable,
            _ => FailureKind::Unavailable,
        };
        Ok(Failure { kind, message: raw.message })
    }
}

/// A recorded entry as it was written.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub response: Option<String>,
    pub failure: Option<Failure>,
    pub latency_ms: u64,
    pub attempts: u32,
}

/// A directory of recorded calls.
#[derive(Debug)]
pub struct LlmCache {
    dir: PathBuf,
    mode: CacheMode,
}

impl LlmCache {
    /// Opens `dir`: created when recording; it must exist to replay.
    pub fn open(dir: &Path, mode: CacheMode) -> io::Result<Self> {
        match mode {
            CacheMode::Record => fs::create_dir_all(dir)?,
            CacheMode::Replay => {
                if !dir.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{}: no such directory of recorded calls", dir.display()),
                    ));
                }
            }
        }
        Ok(Self { dir: dir.to_owned(), mode })
    }

    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    /// The recorded outcome of `key`, if it may be served.
    pub fn load(&self, key: &CacheKey) -> Option<Finished> {
        let text = fs::read_to_string(self.dir.join(key.file_name())).ok()?;
        let entry: Entry = serde_json::from_str(&text).ok()?;
        let (latency_ms, attempts) = (entry.latency_ms, entry.attempts);
        match (entry.response, entry.failure) {
            (Some(raw), _) => {
                let outcome = parse_answer(&raw).map_err(|message| Failure { kind: FailureKind::Unavailable, message });
                Some(Finished { outcome, latency_ms, attempts, raw: Some(raw) })
            }
            (None, Some(failure)) if self.mode == CacheMode::Replay => {
                Some(Finished { outcome: Err(failure), latency_ms, attempts, raw: None })
            }
            _ => None,
        }
    }

    /// The directory of the recording.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry of `key` as it was written, if it may be served: an answer always,
    /// a failure only when replaying (when recording, failures are tried afresh).
    pub fn load_raw(&self, key: &CacheKey) -> Option<RawEntry> {
        let text = fs::read_to_string(self.dir.join(key.file_name())).ok()?;
        let entry: Entry = serde_json::from_str(&text).ok()?;
        if entry.response.is_none() && self.mode != CacheMode::Replay {
            return None;
        }
        if entry.response.is_none() && entry.failure.is_none() {
            return None;
        }
        Some(RawEntry {
            response: entry.response,
            failure: entry.failure,
            latency_ms: entry.latency_ms,
            attempts: entry.attempts,
        })
    }

    /// Records a call that is not a chat completion (its response is kept as text).
    pub fn store_raw(
        &self,
        key: &CacheKey,
        body: &str,
        response: Option<&str>,
        failure: Option<&Failure>,
        latency_ms: u64,
        attempts: u32,
    ) -> io::Result<()> {
        let entry = Entry {
            request: serde_json::from_str(body).unwrap_or(Value::Null),
            latency_ms,
            attempts,
            response: response.map(str::to_owned),
            failure: failure.cloned(),
        };
        self.write_entry(key, &entry)
    }

    /// Records how `key` went.
    pub fn store(&self, key: &CacheKey, body: &str, finished: &Finished) -> io::Result<()> {
        if self.mode == CacheMode::Replay {
            return Ok(());
        }
        let entry = Entry {
            request: serde_json::from_str(body).unwrap_or(Value::Null),
            latency_ms: finished.latency_ms,
            attempts: finished.attempts,
            response: finished.raw.clone(),
            failure: finished.outcome.as_ref().err().cloned(),
        };
        self.write_entry(key, &entry)
    }

    fn write_entry(&self, key: &CacheKey, entry: &Entry) -> io::Result<()> {
        if self.mode == CacheMode::Replay {
            return Ok(());
        }
        let path = self.dir.join(key.file_name());
        let temp = self.dir.join(format!(".{}.tmp", key.file_name()));
        let mut file = fs::File::create(&temp)?;
        file.write_all(&serde_json::to_vec_pretty(entry).map_err(io::Error::other)?)?;
        file.sync_all()?;
        fs::rename(&temp, &path)
    }

    /// The failure of a request that was never recorded, naming it.
    pub fn miss(&self, key: &CacheKey, body: &str) -> Failure {
        let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let model = request.get("model").and_then(Value::as_str).unwrap_or("?");
        let messages = request.get("messages").and_then(Value::as_array);
        let last = messages
            .and_then(|m| m.last())
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .map(|c| excerpt(c, 80))
            .unwrap_or_default();
        Failure {
            kind: FailureKind::ReplayMiss,
            message: format!(
                "replay: request {key} (model {model}, {} messages, last: {last:?}) was never recorded in {} \
                 (expected {})",
                messages.map_or(0, Vec::len),
                self.dir.display(),
                key.file_name()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_replays_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let record = LlmCache::open(dir.path(), CacheMode::Record).unwrap();
        let key = CacheKey { hash: hash_body("{}"), occurrence: 0 };
        let raw = r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let finished = Finished {
            outcome: parse_answer(raw).map_err(|_| unreachable!()),
            latency_ms: 42,
            attempts: 2,
            raw: Some(raw.into()),
        };
        record.store(&key, r#"{"model":"m"}"#, &finished).unwrap();
        let replay = LlmCache::open(dir.path(), CacheMode::Replay).unwrap();
        assert_eq!(replay.load(&key), Some(finished));
        let other = CacheKey { occurrence: 1, ..key };
        assert_eq!(replay.load(&other), None);
        assert!(replay.miss(&other, r#"{"model":"m","messages":[]}"#).message.contains("model m"));
    }

    #[test]
    fn a_recorded_failure_is_retried_when_recording() {
        let dir = tempfile::tempdir().unwrap();
        let record = LlmCache::open(dir.path(), CacheMode::Record).unwrap();
        let key = CacheKey { hash: hash_body("x"), occurrence: 0 };
        let failure = Failure { kind: FailureKind::Timeout, message: "slow".into() };
        let finished = Finished { outcome: Err(failure), latency_ms: 9, attempts: 5, raw: None };
        record.store(&key, "{}", &finished).unwrap();
        assert_eq!(record.load(&key), None);
        let replay = LlmCache::open(dir.path(), CacheMode::Replay).unwrap();
        assert_eq!(replay.load(&key).map(|f| f.attempts), Some(5));
    }
}
