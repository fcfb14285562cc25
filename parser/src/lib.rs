//! Bash script → units with exact source spans, the variables they expand, the control-flow
//! structure around them, and the instrumented script that wraps each unit in a gate.
//!
//! A *unit* is a pipeline that runs at least one external program. Builtins that change shell
//! state (assignments, `cd`, `export`, `read`, `set`, `source`, `exit`, …) are never units: the
//! real bash keeps all control flow and state, hs only decides whether a unit's effects are
//! already known.
//!
//! ```
//! let script = parser::parse(b"x=1\ngrep -c $x file | sort > out\n").unwrap();
//! assert_eq!(script.units.len(), 1);
//! assert_eq!(script.units[0].text, b"grep -c $x file | sort > out");
//! assert!(script.units[0].vars.names.contains("x"));
//! let text = parser::instrument(b"x=1\ngrep -c $x file | sort > out\n", &script);
//! assert_eq!(text, b"x=1\nif __hs_gate 0 \"$_\"; then grep -c $x file | sort > out; else __hs_replay; fi\n");
//! ```
//!
//! Design decision: brush-parser builds the AST, but its spans are incomplete and its `Display`
//! output is not faithful (here-documents break), so nothing it prints is ever executed. A
//! unit's text is cut from the original bytes by *token* spans: the unit ends at the first
//! separator where the tokens so far parse as exactly that pipeline. Instrumentation only
//! inserts text on the unit's own lines, so `$LINENO`, here-documents and error messages stay
//! those of the original script.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod source;
mod value;
mod vars;
mod walk;

use serde::Serialize;

pub use crate::value::Piece;
pub use crate::vars::VarRefs;

/// Identifies a unit within one script: its index in [`Script::units`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UnitId(pub u32);

/// Identifies a loop (`for`, `while`, `until`, `for ((…))`) within one script: its index in
/// [`Script::loops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LoopId(pub u32);

/// A byte range `start..end` of the original script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// How a unit is wrapped in the instrumented script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// `if __hs_gate N "$_"; then UNIT; else __hs_replay; fi`: the engine may answer with a
    /// result. The last argument keeps `$_` as it was (bash sets `$_` to a call's last
    /// argument). Units that expand positional parameters pass them on: `__hs_gate N "$@" "$_"`.
    Wrap,
    /// `__hs_note N "$_"; UNIT &`: a background unit; the gate only reports it.
    Prefix,
    /// Left as it is (see [`Unit::why_no_gate`]).
    None,
}

/// A redirection whose target is a literal path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Redirect {
    /// The fd number written before the operator, if any.
    pub fd: Option<i32>,
    /// The operator: `<`, `>`, `>>`, `<>`, `>|`, `&>`, `&>>`.
    pub op: String,
    /// The target path.
    #[serde(serialize_with = "lossy")]
    pub target: Vec<u8>,
}

/// How a unit uses a path one of its words names ([`PathWord`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathUse {
    /// An argument, or the target of `<`: probably read.
    Read,
    /// The target of `>`, `>|`, `&>`: written.
    Write,
    /// The target of `>>`, `&>>`, `<>`: written, and seen first.
    Append,
}

/// A word of a unit that may name a path: a redirection's target or an argument, as pieces
/// the scheduler evaluates with the state it predicts. Before a unit has run, these are all
/// hs knows of what it touches (a guess, to hold back a reader of what an earlier unit
/// writes; never a reason to commit or discard).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathWord {
    /// How.
    #[serde(rename = "use")]
    pub how: PathUse,
    /// The word.
    pub word: Vec<Piece>,
}

/// A pipeline that runs external programs.
#[derive(Clone, Debug, Serialize)]
pub struct Unit {
    /// Its id.
    pub id: UnitId,
    /// Where its text is in the original script (here-document bodies not included).
    pub span: Span,
    /// The 1-based line it starts on.
    pub line: usize,
    /// Its exact text: `&script[span.start..span.end]`.
    #[serde(serialize_with = "lossy")]
    pub text: Vec<u8>,
    /// Bodies of its here-documents, which follow the line the unit ends on.
    pub heredocs: Vec<Span>,
    /// The command words of its simple commands, as written.
    pub commands: Vec<String>,
    /// The shell state its words expand.
    pub vars: VarRefs,
    /// Redirections with literal targets.
    pub redirects: Vec<Redirect>,
    /// Words that may name paths it reads or writes (a guess, see [`PathWord`]).
    pub paths: Vec<PathWord>,
    /// Whether it runs asynchronously (`&`).
    pub background: bool,
    /// How it is gated.
    pub gate: Gate,
    /// Why it has no gate, when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_no_gate: Option<String>,
}

/// What kind of loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopKind {
    /// `for var in words`
    For,
    /// `while`/`until`, and C-style `for ((…))`
    While,
}

/// A loop.
#[derive(Clone, Debug, Serialize)]
pub struct Loop {
    /// Its id.
    pub id: LoopId,
    /// `for` or `while`.
    pub kind: LoopKind,
    /// The loop variable (`for` only).
    pub var: String,
    /// The 1-based line of its keyword.
    pub line: usize,
    /// Whether the instrumented script reports its expanded word list (`__hs_loop ID WORDS…`).
    pub reported: bool,
    /// Whether the instrumented script counts its iterations, so that gates inside it report
    /// their iteration (`__hs_gate "UNIT:I,J"`, outermost counted loop first).
    pub counted: bool,
}

/// `&&` or `||`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `&&`
    And,
    /// `||`
    Or,
}

/// One arm of a `case`.
#[derive(Clone, Debug, Serialize)]
pub struct Arm {
    /// Its patterns, as written.
    pub patterns: Vec<String>,
    /// Its body.
    pub body: Node,
    /// Whether it ends with `;&` or `;;&` instead of `;;`.
    pub fallthrough: bool,
}

/// The control-flow structure around units.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    /// Commands run one after another.
    Seq {
        /// The commands.
        items: Vec<Node>,
    },
    /// A unit.
    Unit {
        /// Which.
        id: UnitId,
    },
    /// A pipeline of builtins or functions only (runs in subshells; not a unit).
    Pipeline {
        /// Its commands.
        commands: Vec<Node>,
    },
    /// `first && x || y …`
    AndOr {
        /// The first pipeline.
        first: Box<Node>,
        /// The rest, each with the operator before it.
        rest: Vec<(Op, Node)>,
    },
    /// `! pipeline`
    Not {
        /// The negated pipeline.
        body: Box<Node>,
    },
    /// `if c1; then b1; elif c2; then b2; else b3; fi`
    If {
        /// (condition, body) pairs.
        branches: Vec<(Node, Node)>,
        /// The `else` body.
        otherwise: Option<Box<Node>>,
    },
    /// `case w in …) …;; esac`
    Case {
        /// Its arms.
        arms: Vec<Arm>,
    },
    /// `for var in words; do body; done`
    For {
        /// The loop.
        id: LoopId,
        /// The loop variable.
        var: String,
        /// The body.
        body: Box<Node>,
    },
    /// `while`/`until cond; do body; done`, and C-style `for ((…))`.
    While {
        /// The loop.
        id: LoopId,
        /// `until` instead of `while`.
        until: bool,
        /// The condition.
        cond: Box<Node>,
        /// The body.
        body: Box<Node>,
    },
    /// A function definition.
    Function {
        /// Its name.
        name: String,
        /// Its body.
        body: Box<Node>,
    },
    /// A call of a function defined in the script.
    Call {
        /// The function.
        name: String,
        /// Its line.
        line: usize,
    },
    /// `{ …; }`
    Group {
        /// The body.
        body: Box<Node>,
    },
    /// `( … )`
    Subshell {
        /// The body.
        body: Box<Node>,
    },
    /// `… &`
    Background {
        /// What runs in the background.
        body: Box<Node>,
    },
    /// A builtin (state-changing or not), `[[ ]]` or `(( ))`.
    Builtin {
        /// Its name.
        name: String,
        /// Its line.
        line: usize,
        /// Variables it may assign, as far as its words show (`read a b`, `local x=1`,
        /// `printf -v v`, `x=1 cmd` prefixes do not count). `*` when unknowable (`eval`,
        /// `source`, names computed at run time).
        assigns: Vec<String>,
    },
    /// Assignments and redirections without a command.
    Assign {
        /// Its line.
        line: usize,
        /// The variables assigned (array elements by array name).
        assigns: Vec<String>,
        /// Per assignment, its value as pieces hs can compute, when it is one.
        values: Vec<Option<Vec<Piece>>>,
    },
    /// Something hs does not look into (a coprocess, a unit it could not cut out).
    Opaque {
        /// Its line.
        line: usize,
    },
}

/// A parsed script.
#[derive(Clone, Debug, Serialize)]
pub struct Script {
    /// Its units, in source order.
    pub units: Vec<Unit>,
    /// Its loops, in source order.
    pub loops: Vec<Loop>,
    /// Its structure.
    pub body: Node,
    /// Functions it exports (`export -f f`, `declare -fx f`): their bodies are not
    /// instrumented, since child shells run them too.
    pub exported: Vec<String>,
    /// Why the script must run unchanged (e.g. it turns on `set -x`), if it must.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    #[serde(skip)]
    edits: Vec<Edit>,
}

/// A text change: replace `at..delete_to` with `text`.
#[derive(Clone, Debug)]
struct Edit {
    at: usize,
    delete_to: usize,
    text: String,
    /// Part of a `for` loop's word-list report (left out by [`instrument_gates`]).
    loop_report: bool,
}

impl Edit {
    fn insert(at: usize, text: String) -> Self {
        Edit {
            at,
            delete_to: at,
            text,
            loop_report: false,
        }
    }
}

/// Why a script could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The 1-based line, when known.
    pub line: Option<usize>,
}

/// The kinds of [`Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The tokenizer failed (e.g. an unterminated quote).
    #[error("cannot tokenize script: {0}")]
    Tokenize(String),
    /// The parser failed.
    #[error("cannot parse script: {0}")]
    Syntax(String),
}

/// Parses a bash script.
pub fn parse(bytes: &[u8]) -> Result<Script, Error> {
    let src = source::Source::new(bytes);
    let options = brush_parser::ParserOptions::default();
    let tokens = brush_parser::uncached_tokenize_str(&src.text, &options.tokenizer_options())
        .map_err(|e| Error {
            kind: ErrorKind::Tokenize(e.to_string()),
            line: None,
        })?;
    let program = brush_parser::parse_tokens(&tokens, &options).map_err(|e| {
        let line = match &e {
            brush_parser::ParseError::ParsingNear(p) => Some(p.line),
            _ => None,
        };
        Error {
            kind: ErrorKind::Syntax(e.to_string()),
            line,
        }
    })?;
    let unsupported = unsupported(&tokens);
    let mut walker = walk::Walker::new(&src, tokens, options);
    let body = walker.program(&program);
    let mut exported: Vec<String> = walker.exported.iter().cloned().collect();
    exported.sort();
    Ok(Script {
        exported,
        units: walker.units,
        loops: walker.loops,
        body,
        unsupported,
        edits: walker.edits,
    })
}

/// The instrumented script: `bytes` with every gated unit wrapped and loop headers reporting
/// their words. Only inserts text within lines, so line numbers do not move. Returns the script
/// unchanged when [`Script::unsupported`] is set.
pub fn instrument(bytes: &[u8], script: &Script) -> Vec<u8> {
    apply(bytes, script, true)
}

/// Like [`instrument`], but `for` loops do not report their words: for runs where nothing
/// listens to those reports, since the captured word list costs memory in every fork.
pub fn instrument_gates(bytes: &[u8], script: &Script) -> Vec<u8> {
    apply(bytes, script, false)
}

fn apply(bytes: &[u8], script: &Script, loops: bool) -> Vec<u8> {
    if script.unsupported.is_some() {
        return bytes.to_vec();
    }
    let mut edits: Vec<&Edit> = script
        .edits
        .iter()
        .filter(|e| loops || !e.loop_report)
        .collect();
    // Stable: edits at one position keep the order they were made in.
    edits.sort_by_key(|e| e.at);
    let extra: usize = edits.iter().map(|e| e.text.len()).sum();
    let mut out = Vec::with_capacity(bytes.len() + extra);
    let mut at = 0;
    for e in edits {
        out.extend_from_slice(&bytes[at..e.at]);
        out.extend_from_slice(e.text.as_bytes());
        at = e.delete_to;
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// The script's words as the shell could expand them: comments and operators left out,
/// single-quoted text (outside double quotes) blanked. Here-document bodies count as words.
/// Empty when the script does not tokenize.
pub fn expandable_words(bytes: &[u8]) -> Vec<String> {
    let src = source::Source::new(bytes);
    let options = brush_parser::ParserOptions::default();
    let Ok(tokens) = brush_parser::uncached_tokenize_str(&src.text, &options.tokenizer_options())
    else {
        return Vec::new();
    };
    tokens
        .iter()
        .filter_map(|t| match t {
            brush_parser::Token::Word(w, _) => Some(blank_single_quotes(w)),
            _ => None,
        })
        .collect()
}

fn blank_single_quotes(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in w.chars() {
        if escaped {
            escaped = false;
            out.push(if single { ' ' } else { c });
            continue;
        }
        match c {
            '\\' if !single => {
                escaped = true;
                out.push(c);
            }
            '\'' if !double => {
                single = !single;
                out.push(' ');
            }
            '"' if !single => {
                double = !double;
                out.push(c);
            }
            _ => out.push(if single { ' ' } else { c }),
        }
    }
    out
}

/// Constructs whose output would show the instrumentation (`set -x`, `set -v`, listing all
/// functions or variables, DEBUG traps).
fn unsupported(tokens: &[brush_parser::Token]) -> Option<String> {
    let word = |i: usize| match tokens.get(i) {
        Some(brush_parser::Token::Word(w, _)) => Some(w.as_str()),
        _ => None,
    };
    for i in 0..tokens.len() {
        let Some(w) = word(i) else { continue };
        let next = word(i + 1);
        let reason = match w {
            "set" => {
                let mut j = i + 1;
                let mut found = None;
                if next.is_none() {
                    found = Some("`set` without arguments lists hs's functions");
                }
                while let Some(a) = word(j) {
                    if a == "--" {
                        break; // positional parameters follow
                    }
                    if a.starts_with('-')
                        && !a.starts_with("--")
                        && (a.contains('x') || a.contains('v'))
                    {
                        found = Some("`set -x`/`set -v` would show the instrumentation");
                    }
                    if (a == "-o" || a == "+o") && matches!(word(j + 1), Some("xtrace" | "verbose"))
                    {
                        found = Some("`set -o xtrace`/`verbose` would show the instrumentation");
                    }
                    j += 1;
                }
                found
            }
            "declare" | "typeset" | "local" if matches!(next, Some(a) if a.starts_with('-') && (a.contains('f') || a.contains('F'))) => {
                Some("listing functions would show hs's functions")
            }
            "declare" | "typeset"
                if next.is_none() || next == Some("-p") && word(i + 2).is_none() =>
            {
                Some("listing all variables would show hs's variables")
            }
            "compgen" => Some("compgen can list hs's functions"),
            // `type f` and `command -V f` print a function's body, gates included.
            "type"
                if defines_function(tokens)
                    && !tokens[i + 1..]
                        .iter()
                        .map_while(|t| match t {
                            brush_parser::Token::Word(w, _) => Some(w.as_str()),
                            _ => None,
                        })
                        .any(|a| {
                            a.starts_with('-')
                                && (a.contains('t') || a.contains('p') || a.contains('P'))
                        }) =>
            {
                Some("`type` prints function bodies, which hold gates")
            }
            "command"
                if next.is_some_and(|a| a.starts_with('-') && a.contains('V'))
                    && defines_function(tokens) =>
            {
                Some("`command -V` prints function bodies, which hold gates")
            }
            "BASH_XTRACEFD" => Some("BASH_XTRACEFD"),
            "extdebug" | "functrace" => Some("debugging options see every command"),
            "trap"
                if tokens[i + 1..]
                    .iter()
                    .take_while(|t| matches!(t, brush_parser::Token::Word(..)))
                    .any(|t| matches!(t.to_str(), "DEBUG" | "RETURN")) =>
            {
                Some("a DEBUG or RETURN trap sees every command")
            }
            _ => None,
        };
        // `$BASH_COMMAND` (in a trap) can name a compound command, gates included.
        let reason = reason.or_else(|| {
            w.contains("BASH_COMMAND")
                .then_some("$BASH_COMMAND can show gates")
        });
        if let Some(r) = reason {
            return Some(r.to_string());
        }
    }
    None
}

/// Whether the script has a function definition (`name()` or `function name`).
fn defines_function(tokens: &[brush_parser::Token]) -> bool {
    tokens.windows(3).any(|t| {
        matches!((&t[0], &t[1], &t[2]), (brush_parser::Token::Word(..), brush_parser::Token::Operator(a, _), brush_parser::Token::Operator(b, _)) if a == "(" && b == ")")
    }) || tokens.iter().any(|t| matches!(t, brush_parser::Token::Word(w, _) if w == "function"))
}

fn lossy<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(bytes))
}
