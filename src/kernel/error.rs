//! The one error shape of the kernel (SPEC §4).
//!
//! Every failed action reports `{code, category, message, details, retriable,
//! retry_after}`. The category and retriability follow from the code (resource errors
//! are retriable; permission and validation errors are not), so constructors take
//! the code and the category is never chosen by hand.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, as a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    NotFound,
    Deleted,
    AccessDenied,
    InsufficientFunds,
    InsufficientResource,
    QuotaExceeded,
    BudgetExhausted,
    Frozen,
    InvalidArgs,
    DepthExceeded,
    ExecutionError,
    Timeout,
    AlreadyExists,
    NotOwner,
}

/// The broad class of an error, which decides whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    Validation,
    Permission,
    Resource,
    Execution,
    System,
}

impl ErrorCode {
    pub fn category(self) -> ErrorCategory {
        use ErrorCode::*;
        match self {
            NotFound | Deleted | InvalidArgs | AlreadyExists => ErrorCategory::Validation,
            AccessDenied | NotOwner => ErrorCategory::Permission,
            InsufficientFunds | InsufficientResource | QuotaExceeded | BudgetExhausted | Frozen => {
                ErrorCategory::Resource
            }
            DepthExceeded | ExecutionError | Timeout => ErrorCategory::Execution,
        }
    }

    /// Resource errors can succeed later (the window rolls, someone pays); the rest
    /// fail the same way every time.
    pub fn retriable(self) -> bool {
        self.category() == ErrorCategory::Resource
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            NotFound => "NOT_FOUND",
            Deleted => "DELETED",
            AccessDenied => "ACCESS_DENIED",
            InsufficientFunds => "INSUFFICIENT_FUNDS",
            InsufficientResource => "INSUFFICIENT_RESOURCE",
            QuotaExceeded => "QUOTA_EXCEEDED",
            BudgetExhausted => "BUDGET_EXHAUSTED",
            Frozen => "FROZEN",
            InvalidArgs => "INVALID_ARGS",
            DepthExceeded => "DEPTH_EXCEEDED",
            ExecutionError => "EXECUTION_ERROR",
            Timeout => "TIMEOUT",
            AlreadyExists => "ALREADY_EXISTS",
            NotOwner => "NOT_OWNER",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed kernel operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct KernelError {
    pub code: ErrorCode,
    pub category: ErrorCategory,
    pub message: String,
    /// Structured facts about the failure (ids, amounts, the failing field).
    pub details: serde_json::Map<String, serde_json::Value>,
    pub retriable: bool,
    /// Simulated seconds after which a retry can succeed, when the kernel knows.
    pub retry_after: Option<f64>,
}

/// The most bytes of text an error message, a thrown value or an event's text field
/// carries. Text from code (what it throws, ids and arguments it passes) is cut to
/// this before it reaches a caller, an inbox or the event stream, so that what a call
/// can put there does not grow with what it is willing to allocate.
pub const MAX_TEXT_BYTES: usize = 2048;

/// Cuts `text` to at most [`MAX_TEXT_BYTES`], at a character boundary, saying how
/// many bytes were cut.
pub fn bound_text(text: &mut String) {
    if text.len() <= MAX_TEXT_BYTES {
        return;
    }
    // Room for the note below, whose number has at most 20 digits.
    let mut end = MAX_TEXT_BYTES - 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… ({cut} bytes cut)"));
}

/// A JSON value cut the same way: long strings in it are cut, and a value whose text
/// is still longer than [`MAX_TEXT_BYTES`] is replaced by the note of its size.
pub fn bound_value(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) => bound_text(text),
        Value::Array(_) | Value::Object(_) => {
            let len = serde_json::to_string(value).map_or(usize::MAX, |t| t.len());
            if len > MAX_TEXT_BYTES {
                *value = Value::String(format!("({len} bytes of JSON cut)"));
            }
        }
        _ => {}
    }
}

impl KernelError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        bound_text(&mut message);
        Self {
            code,
            category: code.category(),
            message,
            details: serde_json::Map::new(),
            retriable: code.retriable(),
            retry_after: None,
        }
    }

    /// Adds a structured detail.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        let mut value = value.into();
        bound_value(&mut value);
        self.details.insert(key.to_owned(), value);
        self
    }

    pub fn with_retry_after(mut self, secs: f64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// A failure of the machinery rather than of the request (a worker that cannot
    /// start): category `system`, worth retrying.
    pub fn system(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { category: ErrorCategory::System, retriable: true, ..Self::new(code, message) }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgs, message)
    }

    pub fn not_found(id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no artifact {id:?}")).with("id", id)
    }

    pub fn not_a_principal(id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{id:?} is not a principal")).with("id", id)
    }

    pub fn deleted(id: &str) -> Self {
        Self::new(ErrorCode::Deleted, format!("artifact {id:?} was deleted")).with("id", id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_decides_retriable() {
        let e = KernelError::new(ErrorCode::QuotaExceeded, "x");
        assert_eq!(e.category, ErrorCategory::Resource);
        assert!(e.retriable);
        let e = KernelError::new(ErrorCode::AccessDenied, "x");
        assert_eq!(e.category, ErrorCategory::Permission);
        assert!(!e.retriable);
        assert!(!KernelError::invalid("x").retriable);
    }

    #[test]
    fn serialises_in_spec_shape() {
        let e = KernelError::not_found("bob");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "NOT_FOUND");
        assert_eq!(v["category"], "validation");
        assert_eq!(v["details"]["id"], "bob");
        assert_eq!(v["retriable"], false);
        assert!(v["retry_after"].is_null());
        assert_eq!(serde_json::to_value(ErrorCode::NotOwner).unwrap(), ErrorCode::NotOwner.as_str());
    }
}
