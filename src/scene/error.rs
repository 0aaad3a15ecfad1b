//! Scene errors that point at the problem: file, line and column, and what was
//! expected.
//!
//! Syntax and type errors come from RON with exact positions. Semantic errors (an
//! owner that does not exist, a disk allocation too small for what a principal owns)
//! are found after parsing, when positions are gone; they carry the path of the bad
//! value (`principals[2].owner`) and a position recovered by finding that entry and
//! field in the source text.

use std::io;

use crate::sandbox::modules::line_col;

/// Why a scene cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// (The error is part of the message and not a `source`, so it is said once.)
    #[error("{file}: {error}")]
    Io { file: String, error: io::Error },
    #[error("{file}:{line}:{col}: {message}")]
    Parse { file: String, line: usize, col: usize, message: String },
    #[error("{file}{}: {path}: {message}", at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Invalid { file: String, at: Option<(usize, usize)>, path: String, message: String },
    #[error("cannot write the scene as RON: {0}")]
    Save(String),
}

/// Something in a scene that is probably a mistake, but not certainly: the scene is
/// used as it is, and the warning is shown to whoever loads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {path}: {message}", at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct SceneWarning {
    pub file: String,
    pub at: Option<(usize, usize)>,
    pub path: String,
    pub message: String,
}

impl SceneError {
    /// Line and column of the problem, when known (1-based).
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::Parse { line, col, .. } => Some((*line, *col)),
            Self::Invalid { at, .. } => *at,
            Self::Io { .. } | Self::Save(_) => None,
        }
    }
}

/// Something to look for in a scene's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Anchor {
    Text(String),
    /// The `n`-th occurrence (1-based) of a text, e.g. the third `id:` of a section.
    Nth(&'static str, usize),
}

impl From<&str> for Anchor {
    fn from(text: &str) -> Self {
        Anchor::Text(text.to_owned())
    }
}

impl From<String> for Anchor {
    fn from(text: String) -> Self {
        Anchor::Text(text)
    }
}

/// Finds the position of the last of `anchors`, each searched for after the previous
/// one, in `source`. When a later anchor is missing, the last one found is used, so
/// the error at least points at the right entry.
pub(crate) fn locate(source: &str, anchors: &[Anchor]) -> Option<(usize, usize)> {
    let mut from = 0;
    let mut found = None;
    'anchors: for anchor in anchors {
        let (text, times) = match anchor {
            Anchor::Text(text) => (text.as_str(), 1),
            Anchor::Nth(text, n) => (*text, *n),
        };
        for _ in 0..times {
            match source[from..].find(text) {
                Some(at) => {
                    found = Some(from + at);
                    from += at + text.len();
                }
                None => break 'anchors,
            }
        }
    }
    found.map(|at| line_col(source, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_anchors() {
        let src = "Scene(\n  principals: [\n    (id: \"a\"),\n    (id: \"b\", owner: \"zed\"),\n  ],\n)";
        let anchors = ["principals".into(), "\"b\"".into(), "owner".into()];
        assert_eq!(locate(src, &anchors), Some((4, 15)));
        let anchors = ["principals".into(), "\"b\"".into(), "quota".into()];
        assert_eq!(locate(src, &anchors), Some((4, 10)));
        assert_eq!(locate(src, &[Anchor::Nth("id:", 2)]), Some((4, 6)));
        assert_eq!(locate(src, &["nowhere".into()]), None);
    }
}
