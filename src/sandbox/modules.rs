//! Code libraries: artifact code that imports other artifacts' code as ES modules.
//!
//! ```js
//! import { slugify, words as split } from "artifact:text_tools";
//! import * as m from "artifact:math_lib";
//! export function run(args, ctx) { return slugify(args.text); }
//! ```
//!
//! Artifact code is compiled as a strict-mode function whose body is the code, so that
//! every call gets fresh top-level bindings (see [`super::worker`]). A real module
//! record would be evaluated once and keep its state, so modules are not given to the
//! engine as modules: [`parse`] finds the `import` and `export` statements and the
//! code is rewritten around them. Each import becomes a binding from the loader the
//! worker provides (`const { slugify, words: split } = __ecology_import__("text_tools",
//! […])`), put on the wrapper's first line so that the code's own lines keep their
//! numbers; `export` is taken off declarations, `export { … }` lists are blanked, and
//! the exported names are collected into the namespace the wrapper returns when it
//! is asked for one.
//!
//! The scanner knows strings, comments, template literals and regular expression
//! literals, so `import` in any of them is text, not a statement; it does not parse
//! JavaScript. What it cannot read with certainty is refused rather than guessed, and
//! the worker checks what it found against boa's own parse of the code as a module
//! before compiling anything, so a misreading is a compile error, never different
//! behaviour. The scanner is iterative and bounded by the length of the code: the
//! world process runs it on every write of code, and hostile code must not be able
//! to exhaust its stack.

use std::fmt::Write as _;

/// What an import specifier must start with: modules are artifacts.
pub const SCHEME: &str = "artifact:";

/// The worker's loader, a global function.
pub const LOADER: &str = "__ecology_import__";

/// The local name of an anonymous default export.
const DEFAULT_LOCAL: &str = "__ecology_default__";

/// One `import … from "artifact:id"` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The artifact id (the specifier after `artifact:`).
    pub id: String,
    /// Named bindings: (exported name, local name); `default` for a default import.
    pub names: Vec<(String, String)>,
    /// `import * as local`.
    pub namespace: Option<String>,
    /// Where the specifier is: 1-based line and column.
    pub line: usize,
    pub col: usize,
}

/// One exported name and the local binding it exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub name: String,
    pub local: String,
}

/// Why code cannot be read as a module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct ModuleError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// The imports and exports of a piece of code, and how to rewrite it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Module {
    pub imports: Vec<Import>,
    pub exports: Vec<Export>,
    /// Replacements of byte ranges of the code, in order.
    edits: Vec<Edit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Edit {
    start: usize,
    end: usize,
    text: EditText,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EditText {
    /// Spaces, keeping line breaks (so lines keep their numbers).
    Blank,
    Insert(&'static str),
}

impl Module {
    /// Code with neither imports nor exports.
    pub fn is_plain(&self) -> bool {
        self.imports.is_empty() && self.exports.is_empty()
    }

    /// The artifacts imported, each once, in order of first import.
    pub fn dependencies(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for import in &self.imports {
            if !out.contains(&import.id.as_str()) {
                out.push(&import.id);
            }
        }
        out
    }

    pub fn exports_name(&self, name: &str) -> bool {
        self.exports.iter().any(|e| e.name == name)
    }

    /// `code` with its import statements blanked and `export` taken off; line
    /// breaks stay where they were.
    pub fn body(&self, code: &str) -> String {
        let mut out = String::with_capacity(code.len() + 32);
        let mut at = 0;
        for edit in &self.edits {
            out.push_str(&code[at..edit.start]);
            match edit.text {
                EditText::Blank => {
                    out.extend(
                        code[edit.start..edit.end]
                            .chars()
                            .filter(|c| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')),
                    );
                    out.push(' ');
                }
                EditText::Insert(text) => {
                    out.push_str(text);
                    // What it replaces may span lines (`export // …⏎ default 1`).
                    out.extend(
                        code[edit.start..edit.end]
                            .chars()
                            .filter(|c| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')),
                    );
                }
            }
            at = edit.end;
        }
        out.push_str(&code[at..]);
        out
    }

    /// Statements binding every import, on one line, to run before the body.
    pub fn prelude(&self) -> String {
        let mut out = String::new();
        for import in &self.imports {
            let id = js_string(&import.id);
            let names: Vec<String> = import.names.iter().map(|(name, _)| js_string(name)).collect();
            let load = format!("{LOADER}({id}, [{}])", names.join(", "));
            let pattern = || {
                let fields: Vec<String> = import.names.iter().map(|(name, local)| format!("{name}: {local}")).collect();
                format!("{{ {} }}", fields.join(", "))
            };
            match (&import.namespace, import.names.is_empty()) {
                (Some(ns), true) => {
                    let _ = write!(out, "const {ns} = {load}; ");
                }
                (Some(ns), false) => {
                    let _ = write!(out, "const {ns} = {load}, {} = {ns}; ", pattern());
                }
                (None, true) => {
                    let _ = write!(out, "{load}; ");
                }
                (None, false) => {
                    let _ = write!(out, "const {} = {load}; ", pattern());
                }
            }
        }
        out
    }

    /// A JS expression for the module's namespace: a frozen object without prototype
    /// whose getters read the exported bindings (so a namespace sees their current
    /// values, as a module namespace does).
    pub fn namespace(&self) -> String {
        let mut out = String::from("Object.freeze({ __proto__: null");
        for export in &self.exports {
            let _ = write!(out, ", get {}() {{ return {}; }}", export.name, export.local);
        }
        out.push_str(" })");
        out
    }
}

fn js_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Reads the imports and exports of `code`.
pub fn parse(code: &str) -> Result<Module, ModuleError> {
    // Neither word, no statement: `import` and `export` cannot be written with escapes.
    if !code.contains("import") && !code.contains("export") {
        return Ok(Module::default());
    }
    let mut parser = Parser { lexer: Lexer::new(code), module: Module::default() };
    parser.run()?;
    Ok(parser.module)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Str,
    Template,
    Regex,
    Number,
    /// One character of punctuation (`?.` is [`Kind::OptionalDot`]).
    Punct(u8),
    OptionalDot,
    End,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    /// Brackets open around the token (its own excluded).
    depth: u32,
    /// A line break comes between this token and the one before.
    newline_before: bool,
}

impl Token {
    fn is(&self, kind: Kind) -> bool {
        self.kind == kind
    }
}

/// Keywords after which `/` starts a regular expression, not a division.
const BEFORE_EXPRESSION: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: u32,
    /// The depth at which each open `${` of a template literal was opened.
    templates: Vec<u32>,
    last: Option<Token>,
    peeked: Option<Token>,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, bytes: src.as_bytes(), pos: 0, depth: 0, templates: Vec::new(), last: None, peeked: None }
    }

    fn text(&self, token: &Token) -> &'a str {
        &self.src[token.start..token.end]
    }

    fn error(&self, at: usize, message: impl Into<String>) -> ModuleError {
        let (line, col) = line_col(self.src, at);
        ModuleError { line, col, message: message.into() }
    }

    fn peek(&mut self) -> Result<Token, ModuleError> {
        if let Some(token) = self.peeked {
            return Ok(token);
        }
        let token = self.lex()?;
        self.peeked = Some(token);
        Ok(token)
    }

    fn next(&mut self) -> Result<Token, ModuleError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lex()?,
        };
        if !token.is(Kind::End) {
            self.last = Some(token);
        }
        Ok(token)
    }

    /// Whether a `/` here starts a regular expression.
    fn regex_allowed(&self) -> bool {
        match self.last {
            None => true,
            Some(last) => match last.kind {
                Kind::Punct(b')' | b']') => false,
                Kind::Punct(b'+' | b'-') if last.end - last.start == 2 => false,
                Kind::Punct(_) | Kind::OptionalDot => true,
                Kind::Ident => BEFORE_EXPRESSION.contains(&self.text(&last)),
                Kind::Str | Kind::Template | Kind::Regex | Kind::Number | Kind::End => false,
            },
        }
    }

    /// Skips white space and comments; true if a line break was among them.
    fn skip_trivia(&mut self) -> Result<bool, ModuleError> {
        let mut newline = false;
        while self.pos < self.bytes.len() {
            match self.bytes[self.pos] {
                b'\n' | b'\r' => {
                    newline = true;
                    self.pos += 1;
                }
                b' ' | b'\t' | 0x0b | 0x0c => self.pos += 1,
                b'/' if self.bytes.get(self.pos + 1) == Some(&b'/') => self.skip_line(),
                b'#' if self.pos == 0 && self.bytes.get(1) == Some(&b'!') => self.skip_line(),
                b'/' if self.bytes.get(self.pos + 1) == Some(&b'*') => {
                    let start = self.pos;
                    let Some(end) = self.src[self.pos + 2..].find("*/") else {
                        return Err(self.error(start, "a comment is not closed"));
                    };
                    newline |= self.src[self.pos..self.pos + 2 + end].contains(['\n', '\r']);
                    self.pos += end + 4;
                }
                // Other white space (no-break spaces, line separators): outside ASCII,
                // handled as part of identifiers would be wrong, so step over it.
                0xc2 | 0xe1..=0xe3 | 0xef if self.src[self.pos..].starts_with(char::is_whitespace) => {
                    let c = self.src[self.pos..].chars().next().map_or(1, char::len_utf8);
                    newline |= self.src[self.pos..].starts_with(['\u{2028}', '\u{2029}']);
                    self.pos += c;
                }
                _ => break,
            }
        }
        Ok(newline)
    }

    fn skip_line(&mut self) {
        while self.pos < self.bytes.len() && !matches!(self.bytes[self.pos], b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn lex(&mut self) -> Result<Token, ModuleError> {
        let newline_before = self.skip_trivia()?;
        let start = self.pos;
        let token = |kind, end, depth| Token { kind, start, end, depth, newline_before };
        let Some(&c) = self.bytes.get(self.pos) else {
            if !self.templates.is_empty() {
                return Err(self.error(start, "a template literal is not closed"));
            }
            return Ok(token(Kind::End, start, self.depth));
        };
        let depth = self.depth;
        match c {
            b'"' | b'\'' => {
                self.pos += 1;
                while let Some(&b) = self.bytes.get(self.pos) {
                    self.pos += 1;
                    match b {
                        b'\\' => self.pos += 1,
                        b'\n' | b'\r' => return Err(self.error(start, "a string is not closed on its line")),
                        _ if b == c => return Ok(token(Kind::Str, self.pos, depth)),
                        _ => {}
                    }
                }
                Err(self.error(start, "a string is not closed"))
            }
            b'`' => {
                self.pos += 1;
                self.template_rest(start, newline_before)
            }
            b'}' if self.templates.last().is_some_and(|&d| d + 1 == self.depth) => {
                // The end of a `${…}` substitution: the template goes on.
                self.templates.pop();
                self.depth -= 1;
                self.pos += 1;
                self.template_rest(start, newline_before)
            }
            b'(' | b'[' | b'{' => {
                self.pos += 1;
                self.depth += 1;
                Ok(token(Kind::Punct(c), self.pos, depth))
            }
            b')' | b']' | b'}' => {
                if self.depth == 0 {
                    return Err(self.error(start, format!("an unmatched {:?}", c as char)));
                }
                self.depth -= 1;
                self.pos += 1;
                Ok(token(Kind::Punct(c), self.pos, self.depth))
            }
            b'?' if self.bytes.get(self.pos + 1) == Some(&b'.')
                && !self.bytes.get(self.pos + 2).is_some_and(u8::is_ascii_digit) =>
            {
                self.pos += 2;
                Ok(token(Kind::OptionalDot, self.pos, depth))
            }
            // `++` and `--` as one token: after one, `/` divides (`i++ / 2`).
            b'+' | b'-' if self.bytes.get(self.pos + 1) == Some(&c) => {
                self.pos += 2;
                Ok(token(Kind::Punct(c), self.pos, depth))
            }
            b'.' if self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit) => Ok(self.number(start, token)),
            b'0'..=b'9' => Ok(self.number(start, token)),
            b'/' if self.regex_allowed() => {
                self.pos += 1;
                let mut class = false;
                loop {
                    let Some(&b) = self.bytes.get(self.pos) else {
                        return Err(self.error(start, "a regular expression is not closed"));
                    };
                    self.pos += 1;
                    match b {
                        b'\\' => self.pos += 1,
                        b'[' => class = true,
                        b']' => class = false,
                        b'/' if !class => break,
                        b'\n' | b'\r' => return Err(self.error(start, "a regular expression is not closed")),
                        _ => {}
                    }
                }
                while self.bytes.get(self.pos).is_some_and(|&b| is_ident_byte(b)) {
                    self.pos += 1;
                }
                Ok(token(Kind::Regex, self.pos, depth))
            }
            _ if is_ident_byte(c) => {
                while self.bytes.get(self.pos).is_some_and(|&b| is_ident_byte(b)) {
                    self.pos += 1;
                }
                // Identifiers may hold non-ASCII letters; never stop inside a character.
                while !self.src.is_char_boundary(self.pos) {
                    self.pos += 1;
                }
                Ok(token(Kind::Ident, self.pos, depth))
            }
            _ => {
                let len = self.src[self.pos..].chars().next().map_or(1, char::len_utf8);
                self.pos += len;
                Ok(token(Kind::Punct(c), self.pos, depth))
            }
        }
    }

    fn number(&mut self, start: usize, token: impl Fn(Kind, usize, u32) -> Token) -> Token {
        let depth = self.depth;
        while let Some(&b) = self.bytes.get(self.pos) {
            let exponent_sign = matches!(b, b'+' | b'-')
                && matches!(self.bytes[self.pos - 1], b'e' | b'E')
                && !self.src[start..self.pos].starts_with("0x")
                && !self.src[start..self.pos].starts_with("0X");
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || exponent_sign {
                self.pos += 1;
            } else {
                break;
            }
        }
        token(Kind::Number, self.pos, depth)
    }

    /// The rest of a template literal after `` ` `` or the `}` of a substitution: up
    /// to its end, or to the next `${` (which opens a substitution).
    fn template_rest(&mut self, start: usize, newline_before: bool) -> Result<Token, ModuleError> {
        let depth = self.depth;
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'`' => return Ok(Token { kind: Kind::Template, start, end: self.pos, depth, newline_before }),
                b'$' if self.bytes.get(self.pos) == Some(&b'{') => {
                    self.pos += 1;
                    self.templates.push(self.depth);
                    self.depth += 1;
                    return Ok(Token { kind: Kind::Template, start, end: self.pos, depth, newline_before });
                }
                _ => {}
            }
        }
        Err(self.error(start, "a template literal is not closed"))
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'\\' || b >= 0x80
}

/// 1-based line and column (in characters) of byte `at` of `src`.
pub fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| before[nl + 1..].chars().count()) + 1;
    (line, col)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    module: Module,
}

impl Parser<'_> {
    fn run(&mut self) -> Result<(), ModuleError> {
        let mut before: Option<Token> = None;
        loop {
            let token = self.lexer.next()?;
            if token.is(Kind::End) {
                return Ok(());
            }
            let after_dot = before.is_some_and(|b| b.is(Kind::Punct(b'.')) || b.is(Kind::OptionalDot));
            if token.is(Kind::Ident) && !after_dot {
                match self.lexer.text(&token) {
                    "import" => {
                        self.refuse_dynamic(&token)?;
                        if token.depth == 0 {
                            self.import(token)?;
                        }
                    }
                    "export" if token.depth == 0 => self.export(token)?,
                    _ => {}
                }
            }
            before = self.lexer.last;
        }
    }

    fn error(&self, token: &Token, message: impl Into<String>) -> ModuleError {
        self.lexer.error(token.start, message)
    }

    /// `import(…)` and `import.meta` are refused wherever they are.
    fn refuse_dynamic(&mut self, token: &Token) -> Result<(), ModuleError> {
        let next = self.lexer.peek()?;
        if next.is(Kind::Punct(b'(')) {
            return Err(self.error(
                token,
                "dynamic import() is not available: import artifacts with `import … from \"artifact:id\"` \
                 at the top level",
            ));
        }
        if next.is(Kind::Punct(b'.')) {
            return Err(self.error(token, "import.meta is not available to artifact code"));
        }
        Ok(())
    }

    fn blank(&mut self, start: usize, end: usize) {
        self.module.edits.push(Edit { start, end, text: EditText::Blank });
    }

    fn insert(&mut self, at: usize, text: &'static str) {
        self.module.edits.push(Edit { start: at, end: at, text: EditText::Insert(text) });
    }

    fn expect_ident(&mut self, what: &str) -> Result<Token, ModuleError> {
        let token = self.lexer.next()?;
        if !token.is(Kind::Ident) {
            let found = self.describe(&token);
            return Err(self.error(&token, format!("expected {what}, found {found}")));
        }
        Ok(token)
    }

    fn expect_word(&mut self, word: &str) -> Result<Token, ModuleError> {
        let token = self.lexer.next()?;
        if !token.is(Kind::Ident) || self.lexer.text(&token) != word {
            let found = self.describe(&token);
            return Err(self.error(&token, format!("expected `{word}`, found {found}")));
        }
        Ok(token)
    }

    fn describe(&self, token: &Token) -> String {
        match token.kind {
            Kind::End => "the end of the code".to_owned(),
            _ => format!("`{}`", self.lexer.text(token)),
        }
    }

    fn is_word(&self, token: &Token, word: &str) -> bool {
        token.is(Kind::Ident) && self.lexer.text(token) == word
    }

    /// An import statement, from its `import`.
    fn import(&mut self, keyword: Token) -> Result<(), ModuleError> {
        let mut names = Vec::new();
        let mut namespace = None;
        let mut token = self.lexer.next()?;
        if !token.is(Kind::Str) {
            if token.is(Kind::Ident) {
                names.push(("default".to_owned(), self.lexer.text(&token).to_owned()));
                let next = self.lexer.peek()?;
                if next.is(Kind::Punct(b',')) {
                    self.lexer.next()?;
                    token = self.lexer.next()?;
                } else {
                    token = next;
                }
            }
            if token.is(Kind::Punct(b'*')) {
                self.expect_word("as")?;
                let binding = self.expect_ident("a name for the namespace")?;
                namespace = Some(self.lexer.text(&binding).to_owned());
                self.expect_word("from")?;
            } else if token.is(Kind::Punct(b'{')) {
                names.extend(self.import_list(token)?);
                self.expect_word("from")?;
            } else if self.is_word(&token, "from") && !names.is_empty() {
                // `import name from "…"`: the `from` was peeked, consume it.
                self.lexer.next()?;
            } else {
                let found = self.describe(&token);
                return Err(self.error(&token, format!("expected `{{`, `*` or `from` in an import, found {found}")));
            }
            token = self.lexer.next()?;
            if !token.is(Kind::Str) {
                let found = self.describe(&token);
                return Err(self.error(&token, format!("expected the module's name, found {found}")));
            }
        }
        let id = self.specifier(&token)?;
        let (line, col) = line_col(self.lexer.src, token.start);
        let mut end = token.end;
        let next = self.lexer.peek()?;
        if (self.is_word(&next, "with") || self.is_word(&next, "assert")) && !next.newline_before {
            return Err(self.error(&next, "import attributes are not supported"));
        }
        if next.is(Kind::Punct(b';')) {
            end = self.lexer.next()?.end;
        }
        self.blank(keyword.start, end);
        self.module.imports.push(Import { id, names, namespace, line, col });
        Ok(())
    }

    /// `{ a, b as c, default as d }`, from its `{`.
    fn import_list(&mut self, open: Token) -> Result<Vec<(String, String)>, ModuleError> {
        let mut names = Vec::new();
        loop {
            let token = self.lexer.next()?;
            if token.is(Kind::Punct(b'}')) && token.depth == open.depth {
                return Ok(names);
            }
            if token.is(Kind::Str) {
                return Err(self.error(&token, "string names in imports are not supported"));
            }
            if !token.is(Kind::Ident) {
                let found = self.describe(&token);
                return Err(self.error(&token, format!("expected a name to import, found {found}")));
            }
            let name = self.lexer.text(&token).to_owned();
            let mut next = self.lexer.next()?;
            let local = if self.is_word(&next, "as") {
                let local = self.expect_ident("a local name")?;
                let local = self.lexer.text(&local).to_owned();
                next = self.lexer.next()?;
                local
            } else {
                name.clone()
            };
            names.push((name, local));
            if next.is(Kind::Punct(b'}')) && next.depth == open.depth {
                return Ok(names);
            }
            if !next.is(Kind::Punct(b',')) {
                let found = self.describe(&next);
                return Err(self.error(&next, format!("expected `,` or `}}` in an import list, found {found}")));
            }
        }
    }

    /// The artifact id a module specifier names.
    fn specifier(&self, token: &Token) -> Result<String, ModuleError> {
        let text = self.lexer.text(token);
        let inner = &text[1..text.len() - 1];
        if inner.contains('\\') {
            return Err(self.error(token, format!("write the module name {text} without escapes")));
        }
        match inner.strip_prefix(SCHEME) {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(self.error(token, format!("only artifacts can be imported (\"artifact:<id>\"), not {text}"))),
        }
    }

    fn add_export(&mut self, at: &Token, name: &str, local: &str) -> Result<(), ModuleError> {
        if self.module.exports_name(name) {
            return Err(self.error(at, format!("{name} is exported twice")));
        }
        self.module.exports.push(Export { name: name.to_owned(), local: local.to_owned() });
        Ok(())
    }

    /// An export statement, from its `export`.
    fn export(&mut self, keyword: Token) -> Result<(), ModuleError> {
        let token = self.lexer.next()?;
        let word = if token.is(Kind::Ident) { self.lexer.text(&token) } else { "" };
        match word {
            "default" => self.export_default(keyword, token),
            "function" | "class" | "async" => {
                self.blank(keyword.start, keyword.end);
                let mut declares = token;
                if word == "async" {
                    declares = self.expect_word("function")?;
                }
                if self.lexer.text(&declares) == "function" && self.lexer.peek()?.is(Kind::Punct(b'*')) {
                    self.lexer.next()?;
                }
                let name = self.expect_ident("the name of what is exported")?;
                let name = self.lexer.text(&name);
                self.add_export(&token, name, name)
            }
            "const" | "let" | "var" => {
                self.blank(keyword.start, keyword.end);
                self.export_declarators(&token)
            }
            _ if token.is(Kind::Punct(b'{')) => self.export_list(keyword, token),
            _ if token.is(Kind::Punct(b'*')) => {
                Err(self
                    .error(&token, "`export * from` is not supported: import the module and export what you mean to"))
            }
            _ => {
                let found = self.describe(&token);
                Err(self.error(&token, format!("cannot export {found}: export a declaration or a list of names")))
            }
        }
    }

    fn export_default(&mut self, keyword: Token, default: Token) -> Result<(), ModuleError> {
        let mut next = self.lexer.peek()?;
        if self.is_word(&next, "async") {
            self.lexer.next()?;
            let after = self.lexer.peek()?;
            if !self.is_word(&after, "function") || after.newline_before {
                // `export default async (x) => …`: an expression.
                return self.export_default_expression(keyword, default);
            }
            next = after;
        }
        let word = if next.is(Kind::Ident) { self.lexer.text(&next) } else { "" };
        if word != "function" && word != "class" {
            return self.export_default_expression(keyword, default);
        }
        // A declaration, named or not: it stays a declaration (hoisted, as in a module).
        self.blank(keyword.start, default.end);
        let mut declares = self.lexer.next()?;
        if word == "function" && self.lexer.peek()?.is(Kind::Punct(b'*')) {
            declares = self.lexer.next()?;
        }
        let name = self.lexer.peek()?;
        if name.is(Kind::Ident) && self.lexer.text(&name) != "extends" {
            let local = self.lexer.text(&name);
            return self.add_export(&default, "default", local);
        }
        self.insert(declares.end, " __ecology_default__");
        self.add_export(&default, "default", DEFAULT_LOCAL)
    }

    fn export_default_expression(&mut self, keyword: Token, default: Token) -> Result<(), ModuleError> {
        self.module.edits.push(Edit {
            start: keyword.start,
            end: default.end,
            text: EditText::Insert("const __ecology_default__ ="),
        });
        self.add_export(&default, "default", DEFAULT_LOCAL)
    }

    /// The names declared by `export const a = …, b = …`, from the keyword. The
    /// initialisers are skipped up to a `,` at the statement's level (which can only
    /// separate declarators there) or the statement's end.
    fn export_declarators(&mut self, keyword: &Token) -> Result<(), ModuleError> {
        let level = keyword.depth;
        loop {
            let name = self.lexer.next()?;
            if name.is(Kind::Punct(b'{')) || name.is(Kind::Punct(b'[')) {
                return Err(self.error(&name, "exporting a destructuring pattern is not supported: export names"));
            }
            if !name.is(Kind::Ident) {
                let found = self.describe(&name);
                return Err(self.error(&name, format!("expected a name to export, found {found}")));
            }
            let text = self.lexer.text(&name);
            self.add_export(&name, text, text)?;
            let mut before = name;
            loop {
                let next = self.lexer.peek()?;
                if next.is(Kind::End) || (next.depth == level && next.is(Kind::Punct(b';'))) {
                    return Ok(());
                }
                if next.depth == level && next.is(Kind::Punct(b',')) {
                    self.lexer.next()?;
                    break;
                }
                if next.depth == level
                    && next.newline_before
                    && ends_expression(&before)
                    && self.starts_statement(&next)
                {
                    return Ok(());
                }
                let token = self.lexer.next()?;
                let after_dot = before.is(Kind::Punct(b'.')) || before.is(Kind::OptionalDot);
                if self.is_word(&token, "import") && !after_dot {
                    self.refuse_dynamic(&token)?;
                }
                before = token;
            }
        }
    }

    /// Whether a token after a line break begins a new statement rather than going
    /// on with the expression before it (automatic semicolon insertion).
    fn starts_statement(&self, token: &Token) -> bool {
        token.is(Kind::Ident) && !matches!(self.lexer.text(token), "in" | "instanceof" | "of")
    }

    /// `export { a, b as c };`, from its `{`.
    fn export_list(&mut self, keyword: Token, open: Token) -> Result<(), ModuleError> {
        let mut end;
        loop {
            let token = self.lexer.next()?;
            if token.is(Kind::Punct(b'}')) && token.depth == open.depth {
                end = token.end;
                break;
            }
            if !token.is(Kind::Ident) {
                let found = self.describe(&token);
                return Err(self.error(&token, format!("expected a name to export, found {found}")));
            }
            let local = self.lexer.text(&token);
            let mut next = self.lexer.next()?;
            let name = if self.is_word(&next, "as") {
                let name = self.lexer.next()?;
                if !name.is(Kind::Ident) {
                    return Err(self.error(&name, "export names must be plain names"));
                }
                next = self.lexer.next()?;
                self.lexer.text(&name)
            } else {
                local
            };
            self.add_export(&token, name, local)?;
            if next.is(Kind::Punct(b'}')) && next.depth == open.depth {
                end = next.end;
                break;
            }
            if !next.is(Kind::Punct(b',')) {
                let found = self.describe(&next);
                return Err(self.error(&next, format!("expected `,` or `}}` in an export list, found {found}")));
            }
        }
        let next = self.lexer.peek()?;
        if self.is_word(&next, "from") {
            return Err(self.error(&next, "`export … from` is not supported: import the names, then export them"));
        }
        if next.is(Kind::Punct(b';')) {
            end = self.lexer.next()?.end;
        }
        self.blank(keyword.start, end);
        Ok(())
    }
}

fn ends_expression(token: &Token) -> bool {
    matches!(
        token.kind,
        Kind::Ident | Kind::Str | Kind::Template | Kind::Regex | Kind::Number | Kind::Punct(b')' | b']' | b'}')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(code: &str) -> Vec<String> {
        parse(code).unwrap().dependencies().into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn finds_imports_and_bindings() {
        let code = "import { slugify, words as split } from \"artifact:text_tools\";\n\
                    import * as m from 'artifact:math_lib'\n\
                    import d, { x } from \"artifact:d\";\n\
                    import \"artifact:side\";\n\
                    export function run(args) { return slugify(args.text); }";
        let module = parse(code).unwrap();
        assert_eq!(module.dependencies(), ["text_tools", "math_lib", "d", "side"]);
        assert_eq!(module.imports[0].names, [("slugify".into(), "slugify".into()), ("words".into(), "split".into())]);
        assert_eq!(module.imports[1].namespace.as_deref(), Some("m"));
        assert_eq!((module.imports[1].line, module.imports[1].col), (2, 20));
        assert_eq!(module.imports[2].names, [("default".into(), "d".into()), ("x".into(), "x".into())]);
        assert_eq!(module.exports, [Export { name: "run".into(), local: "run".into() }]);
        let body = module.body(code);
        assert_eq!(body.lines().count(), code.lines().count(), "lines keep their numbers");
        assert!(!body.contains("import") && !body.contains("export"), "{body}");
        let prelude = module.prelude();
        assert!(
            prelude.contains(
                r#"const { slugify: slugify, words: split } = __ecology_import__("text_tools", ["slugify", "words"]);"#
            ),
            "{prelude}"
        );
        assert!(prelude.contains(r#"const m = __ecology_import__("math_lib", []);"#), "{prelude}");
        assert!(prelude.contains(r#"__ecology_import__("side", []);"#), "{prelude}");
    }

    #[test]
    fn import_in_strings_comments_templates_and_regexes_is_text() {
        let code = r#"
            // import { a } from "artifact:comment";
            /* export const b = 1; import "artifact:block" */
            const s = "import { c } from 'artifact:string'";
            const t = `import ${ "x" + `export ${1}` } from "artifact:template"`;
            const r = /import "artifact:regex"/g;
            const q = a / 2 / 3, i = q++ / 2; const o = { import: 1, export: 2 }; o.import;
            function run() { return s + t; }"#;
        let module = parse(code).unwrap();
        assert!(module.is_plain(), "{module:?}");
        assert_eq!(module.body(code), code);
    }

    #[test]
    fn exports_of_every_kind() {
        let code = "export const a = 1, b = [1, 2].map((x) => x * 2);\n\
                    export let c\n\
                    export async function f() {}\n\
                    export function* g() {}\n\
                    export class K {}\n\
                    const h = 1, i = 2;\n\
                    export { h, i as j };\n\
                    export default function () { return 1 }";
        let module = parse(code).unwrap();
        let names: Vec<(&str, &str)> = module.exports.iter().map(|e| (e.name.as_str(), e.local.as_str())).collect();
        assert_eq!(
            names,
            [
                ("a", "a"),
                ("b", "b"),
                ("c", "c"),
                ("f", "f"),
                ("g", "g"),
                ("K", "K"),
                ("h", "h"),
                ("j", "i"),
                ("default", DEFAULT_LOCAL)
            ]
        );
        let body = module.body(code);
        assert!(body.contains("function __ecology_default__ () { return 1 }"), "{body}");
        assert!(!body.contains("export"), "{body}");
        let expression = parse("export default 1 + 2;").unwrap();
        assert_eq!(expression.body("export default 1 + 2;"), "const __ecology_default__ = 1 + 2;");
        let split = "export //\ndefault 1";
        assert_eq!(parse(split).unwrap().body(split), "const __ecology_default__ =\n 1", "lines stay where they were");
        let named = parse("export default class Shape {}").unwrap();
        assert_eq!(named.exports[0].local, "Shape");
    }

    #[test]
    fn a_declaration_ends_at_a_line_break_before_a_new_statement() {
        let module = parse("export const a = f(1)\nlet x = 1, y = 2\n").unwrap();
        assert_eq!(module.exports.len(), 1, "{module:?}");
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        let fails = |code: &str, needle: &str| {
            let error = parse(code).unwrap_err();
            assert!(error.message.contains(needle), "{code}: {error}");
        };
        fails("import x from './x'", "only artifacts");
        fails("import x from 'lodash'", "only artifacts");
        fails("const m = import('artifact:x')", "dynamic import()");
        fails("function f() { return import.meta }", "import.meta");
        fails("export * from 'artifact:x'", "export * from");
        fails("export { a } from 'artifact:x'", "export … from");
        fails("export const { a } = o", "destructuring");
        fails("export const a = 1; export { a }", "exported twice");
        fails("import { a } from 'artifact:x' with { type: 'json' }", "attributes");
        fails("export const s = 'open", "not closed");
        fails("export function () {}", "expected the name");
        let at = parse("\n\n   import x from 'y'").unwrap_err();
        assert_eq!((at.line, at.col), (3, 18));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// The world process scans whatever code is written: it never panics, and a
        /// rewrite keeps every line where it was.
        #[test]
        fn any_text_scans_without_panicking(
            code in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just("import "), proptest::prelude::Just("export "),
                    proptest::prelude::Just("{ a as b }"), proptest::prelude::Just(" from "),
                    proptest::prelude::Just("\"artifact:x\""), proptest::prelude::Just("`${"),
                    proptest::prelude::Just("}"), proptest::prelude::Just("/"), proptest::prelude::Just("\n"),
                    proptest::prelude::Just("'é\\"), proptest::prelude::Just("/*"), proptest::prelude::Just("*/"),
                    proptest::prelude::Just("default "), proptest::prelude::Just("function f() "),
                    proptest::prelude::Just("const a = 1, "), proptest::prelude::Just("("), proptest::prelude::Just(")"),
                    proptest::prelude::Just("++"), proptest::prelude::Just("\u{2028}"), proptest::prelude::Just(";"),
                ],
                0..40,
            )
        ) {
            let code = code.concat();
            if let Ok(module) = parse(&code) {
                let body = module.body(&code);
                proptest::prop_assert_eq!(body.matches('\n').count(), code.matches('\n').count());
            }
        }
    }

    #[test]
    fn dependencies_are_listed_once() {
        assert_eq!(imports("import {a} from 'artifact:x'; import {b} from 'artifact:x'"), ["x"]);
        assert_eq!(imports("function run() { return 1 }"), Vec::<String>::new());
    }
}
