//! A fake language model: a real HTTP/1.1 server speaking OpenAI's chat-completions
//! protocol on `127.0.0.1:<random port>`, for tests and benches.
//!
//! It is hand-written over a raw [`tokio::net::TcpListener`] (keep-alive,
//! `Content-Length` bodies) so that it can do what a real server does at its worst:
//! answer late, answer 429 or 500, answer garbage, or reset the connection.
//!
//! Replies are scripted ([`FakeLlm::push`], first in first out); when the script is
//! empty the default reply is used ([`FakeLlm::set_default`]; initially
//! `Reply::text("ok", 10, 5)`). Every request is recorded ([`FakeLlm::requests`]),
//! whatever it is answered with. The server runs on its own thread with its own
//! tokio runtime and stops when the [`FakeLlm`] is dropped (the port is then closed).
#![allow(dead_code)]

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

/// What the server answers one request with.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `200` with a chat completion. A tool call's arguments are sent as JSON text:
    /// a `Value::String` is sent verbatim (so malformed arguments can be sent), any
    /// other value is serialized.
    Answer { content: Option<String>, tool_calls: Vec<(String, Value)>, prompt_tokens: u64, completion_tokens: u64 },
    /// This status with this body (wrap it with [`Reply::error_body`] for an
    /// OpenAI-style error), and a `Retry-After` header (seconds) when given.
    Status { code: u16, retry_after: Option<u64>, body: String },
    /// `200` with this body as it is (garbage, usually).
    Raw(String),
    /// The connection is reset (closed with `SO_LINGER` 0) without a response.
    Reset,
}

impl Reply {
    /// An answer in text.
    pub fn text(content: impl Into<String>, prompt_tokens: u64, completion_tokens: u64) -> Reply {
        Reply::Answer { content: Some(content.into()), tool_calls: Vec::new(), prompt_tokens, completion_tokens }
    }

    /// An answer that is one tool call (and no text).
    pub fn tool(
        name: impl Into<String>,
        args_json: impl Into<Value>,
        prompt_tokens: u64,
        completion_tokens: u64,
    ) -> Reply {
        Reply::Answer {
            content: None,
            tool_calls: vec![(name.into(), args_json.into())],
            prompt_tokens,
            completion_tokens,
        }
    }

    /// `code` with an OpenAI-style error body.
    pub fn status(code: u16, retry_after: Option<u64>) -> Reply {
        Reply::Status { code, retry_after, body: Reply::error_body(code, &format!("fake error {code}")) }
    }

    /// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
    pub fn error_body(code: u16, message: &str) -> String {
        let (kind, code_name) = match code {
            400 => ("invalid_request_error", Value::Null),
            401 => ("invalid_request_error", json!("invalid_api_key")),
            404 => ("invalid_request_error", json!("model_not_found")),
            429 => ("rate_limit_exceeded", json!("rate_limit_exceeded")),
            _ => ("server_error", Value::Null),
        };
        json!({"error": {"message": message, "type": kind, "param": null, "code": code_name}}).to_string()
    }
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The `Authorization` header, e.g. `Bearer sk-…`.
    pub authorization: Option<String>,
    /// The body, parsed (a `Value::String` holding the text if it was not JSON).
    pub body: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

struct State {
    script: VecDeque<Reply>,
    default: Reply,
    latency: Duration,
    requests: Vec<Recorded>,
    answered: u64,
    /// Requests being answered now, and the most there ever were at once.
    active: usize,
    peak: usize,
}

/// The running server. Dropping it stops it.
pub struct FakeLlm {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeLlm {
    /// Starts a server on a free port of 127.0.0.1; it is listening when this returns.
    pub fn start() -> FakeLlm {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State {
            script: VecDeque::new(),
            default: Reply::text("ok", 10, 5),
            latency: Duration::ZERO,
            requests: Vec::new(),
            answered: 0,
            active: 0,
            peak: 0,
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-llm-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake LLM runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    let accept = async {
                        loop {
                            match listener.accept().await {
                                Ok((stream, _)) => {
                                    let _ = stream.set_nodelay(true);
                                    tokio::spawn(serve(stream, shared.clone()));
                                }
                                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                            }
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime drops every connection still open.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
            .expect("fake LLM thread");
        FakeLlm { port, state, stop: Some(stop), thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Queues a reply: the next request not yet answered gets the first reply queued.
    pub fn push(&self, reply: Reply) {
        self.state.lock().unwrap().script.push_back(reply);
    }

    /// The reply used when the script is empty.
    pub fn set_default(&self, reply: Reply) {
        self.state.lock().unwrap().default = reply;
    }

    /// Added before every reply (an async sleep: other connections go on meanwhile).
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// The most requests that were being answered at once (waiting out the latency
    /// included).
    pub fn peak_concurrency(&self) -> usize {
        self.state.lock().unwrap().peak
    }

    /// Scripted replies not yet used.
    pub fn script_left(&self) -> usize {
        self.state.lock().unwrap().script.len()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request read off the wire.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

enum Read {
    Request(Request),
    Closed,
    Bad(String),
}

const MAX_HEAD: usize = 64 * 1024;

/// Reads one request; `buffer` keeps what was read past it (pipelining).
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Read {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_HEAD {
            return Read::Bad("request head too large".into());
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Read::Closed,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let (Some(method), Some(path)) = (request_line.next(), request_line.next()) else {
        return Read::Bad("malformed request line".into());
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut request = Request { method: method.to_owned(), path: path.to_owned(), headers, body: Vec::new() };
    if request.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
        return Read::Bad("chunked bodies are not supported by the fake".into());
    }
    let length = match request.header("content-length").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Read::Bad("bad Content-Length".into()),
    };
    buffer.drain(..head_end + 4);
    while buffer.len() < length {
        let mut chunk = [0u8; 64 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Read::Closed,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    request.body = buffer.drain(..length).collect();
    Read::Request(request)
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

async fn respond(stream: &mut TcpStream, code: u16, extra: &[(&str, String)], body: &str) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        reason(code),
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await
}

/// One connection: requests answered in turn until the client closes it.
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buffer).await {
            Read::Request(request) => request,
            Read::Closed => return,
            Read::Bad(why) => {
                let _ =
                    respond(&mut stream, 400, &[("connection", "close".into())], &Reply::error_body(400, &why)).await;
                return;
            }
        };
        let text = String::from_utf8_lossy(&request.body).into_owned();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let close = request.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if request.method != "POST" || !request.path.ends_with("/chat/completions") {
            let message = format!("Unknown request URL: {} {}", request.method, request.path);
            let _ = respond(&mut stream, 404, &[], &Reply::error_body(404, &message)).await;
            if close {
                return;
            }
            continue;
        }
        let (reply, latency, number) = {
            let mut state = state.lock().unwrap();
            state.requests.push(Recorded {
                authorization: request.header("authorization").map(str::to_owned),
                body: body.clone(),
                at: std::time::Instant::now(),
            });
            let reply = state.script.pop_front().unwrap_or_else(|| state.default.clone());
            state.answered += 1;
            state.active += 1;
            state.peak = state.peak.max(state.active);
            (reply, state.latency, state.answered)
        };
        // Counted out however this request ends (the task may be dropped mid-sleep).
        let _active = Active(state.clone());
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let sent = match reply {
            Reply::Reset => {
                let _ = stream.set_zero_linger();
                return;
            }
            Reply::Raw(text) => respond(&mut stream, 200, &[], &text).await,
            Reply::Status { code, retry_after, body } => {
                let extra: Vec<(&str, String)> =
                    retry_after.map(|s| ("retry-after", s.to_string())).into_iter().collect();
                respond(&mut stream, code, &extra, &body).await
            }
            Reply::Answer { content, tool_calls, prompt_tokens, completion_tokens } => {
                let answer = completion(&body, number, content, &tool_calls, prompt_tokens, completion_tokens);
                respond(&mut stream, 200, &[], &answer.to_string()).await
            }
        };
        if sent.is_err() || close {
            return;
        }
    }
}

/// One request being answered, for [`FakeLlm::peak_concurrency`].
struct Active(Arc<Mutex<State>>);

impl Drop for Active {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.lock() {
            state.active -= 1;
        }
    }
}

/// A chat completion as OpenAI writes it.
fn completion(
    request: &Value,
    number: u64,
    content: Option<String>,
    tool_calls: &[(String, Value)],
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Value {
    let model = request.get("model").and_then(Value::as_str).unwrap_or("fake-model");
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !tool_calls.is_empty() {
        let calls: Vec<Value> = tool_calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| {
                let arguments = match args {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                json!({
                    "id": format!("call_{number}_{i}"),
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                })
            })
            .collect();
        message["tool_calls"] = Value::Array(calls);
    }
    let finish_reason = if tool_calls.is_empty() { "stop" } else { "tool_calls" };
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({
        "id": format!("chatcmpl-fake{number}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_fake",
    })
}
