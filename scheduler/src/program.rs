//! The control-flow structure the scheduler predicts over.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// Identifies one unit of the script (a pipeline that runs external programs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct UnitId(pub u32);

/// Identifies one `for`/`while`/`until` loop of the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LoopId(pub u32);

/// What the scheduler needs to know about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// The unit.
    pub id: UnitId,
    /// Names of the shell variables its words expand (positional parameters as `1`, `@`, ...).
    pub vars: Vec<Vec<u8>>,
    /// Words that may name paths it reads or writes: until the unit has run once, all the
    /// scheduler knows of what it touches (see [`PathGuess`]).
    pub paths: Vec<PathGuess>,
}

/// How a unit may use the path a word names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    /// An argument or `<`: probably read.
    Read,
    /// `>`: written.
    Write,
    /// `>>`, `<>`: written, and seen first.
    Append,
}

/// A word of a unit that may name a path, evaluated with a predicted state to guess what a
/// unit that never ran touches: enough to hold a run back behind an earlier unit expected
/// to write what it reads, never to commit or discard one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGuess {
    /// How.
    pub how: PathUse,
    /// The word.
    pub word: Vec<Piece>,
}

/// The paths `guesses` name with the variables `vars`, as accesses: absolute (relative words
/// are joined to `cwd`), normalized, none under `/dev` or `/proc`.
pub(crate) fn guessed_trace(
    guesses: &[PathGuess],
    vars: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    cwd: &[u8],
) -> crate::Trace {
    let lookup = |name: &[u8]| -> Option<Option<Vec<u8>>> { vars.get(name).cloned() };
    let mut trace = crate::Trace::default();
    for g in guesses {
        let Some(word) = eval(&g.word, &lookup) else {
            continue;
        };
        if word.is_empty() {
            continue;
        }
        let mut abs = if word.starts_with(b"/") || cwd.is_empty() {
            word
        } else {
            let mut p = cwd.to_vec();
            p.push(b'/');
            p.extend_from_slice(&word);
            p
        };
        if !abs.starts_with(b"/") {
            continue;
        }
        abs = normalize(&abs);
        if abs.starts_with(b"/dev/") || abs.starts_with(b"/proc/") {
            continue;
        }
        let access = |kind| crate::Access {
            path: abs.clone(),
            kind,
        };
        match g.how {
            PathUse::Read => trace.reads.push(access(crate::AccessKind::Read)),
            PathUse::Write => trace.writes.push(access(crate::AccessKind::Write)),
            PathUse::Append => trace.writes.push(access(crate::AccessKind::Append)),
        }
    }
    trace
}

/// `p` without `.` components, `..` applied, and single slashes.
fn normalize(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(p.len());
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Part of an assigned value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal bytes.
    Lit(Vec<u8>),
    /// The value of a variable (empty when unset).
    Var(Vec<u8>),
    /// An unquoted variable inside a command substitution: computable only when its value is
    /// one non-empty word without blanks or glob characters.
    Split(Vec<u8>),
    /// `$(basename ARG [SUFFIX])`: GNU basename's output, trailing newlines removed.
    Basename {
        /// The name.
        arg: Vec<Piece>,
        /// The suffix to remove.
        suffix: Option<Vec<Piece>>,
    },
    /// `$(dirname ARG)`: GNU dirname's output, trailing newlines removed.
    Dirname(Vec<Piece>),
}

/// A variable's value by name: `None` unknown, `Some(None)` unset.
pub(crate) type Lookup<'a> = dyn Fn(&[u8]) -> Option<Option<Vec<u8>>> + 'a;

/// The value `pieces` make, given each variable's value (`None`: unknown, `Some(None)`:
/// unset); `None` if it cannot be computed.
pub(crate) fn eval(pieces: &[Piece], lookup: &Lookup<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Lit(b) => out.extend_from_slice(b),
            Piece::Var(v) => out.extend(lookup(v)?.unwrap_or_default()),
            Piece::Split(v) => {
                let value = lookup(v)?.unwrap_or_default();
                if value.is_empty() || value.iter().any(|b| b" \t\n*?[".contains(b)) {
                    return None;
                }
                out.extend(value);
            }
            Piece::Basename { arg, suffix } => {
                let suffix = match suffix {
                    Some(s) => Some(eval(s, lookup)?),
                    None => None,
                };
                out.extend(substituted(basename(
                    &eval(arg, lookup)?,
                    suffix.as_deref(),
                )?));
            }
            Piece::Dirname(arg) => out.extend(substituted(dirname(&eval(arg, lookup)?)?)),
        }
    }
    Some(out)
}

/// A command substitution's value: the output without its trailing newlines.
fn substituted(mut printed: Vec<u8>) -> Vec<u8> {
    while printed.last() == Some(&b'\n') {
        printed.pop();
    }
    printed
}

/// What `basename NAME [SUFFIX]` (GNU coreutils) prints, without its newline; `None` for a
/// name it would read as an option.
pub(crate) fn basename(name: &[u8], suffix: Option<&[u8]>) -> Option<Vec<u8>> {
    if name.first() == Some(&b'-') || suffix.is_some_and(|s| s.first() == Some(&b'-')) {
        return None;
    }
    let trimmed = trim_slashes(name);
    if trimmed.is_empty() {
        return Some(if name.is_empty() {
            Vec::new()
        } else {
            b"/".to_vec()
        });
    }
    let base = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    };
    let out = match suffix {
        Some(s) if !s.is_empty() && base.len() > s.len() && base.ends_with(s) => {
            &base[..base.len() - s.len()]
        }
        _ => base,
    };
    Some(out.to_vec())
}

/// What `dirname NAME` (GNU coreutils) prints, without its newline; `None` for a name it
/// would read as an option.
pub(crate) fn dirname(name: &[u8]) -> Option<Vec<u8>> {
    if name.first() == Some(&b'-') {
        return None;
    }
    let trimmed = trim_slashes(name);
    if trimmed.is_empty() {
        return Some(if name.is_empty() {
            b".".to_vec()
        } else {
            b"/".to_vec()
        });
    }
    match trimmed.iter().rposition(|&b| b == b'/') {
        None => Some(b".".to_vec()),
        Some(i) => {
            let dir = trim_slashes(&trimmed[..i]);
            Some(if dir.is_empty() {
                b"/".to_vec()
            } else {
                dir.to_vec()
            })
        }
    }
}

fn trim_slashes(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    &s[..end]
}

/// How two items of an and-or list are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    /// `&&`: the next item runs if the previous succeeded.
    And,
    /// `||`: the next item runs if the previous failed.
    Or,
}

/// One node of the control-flow tree, as the parser reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Children run one after another.
    Seq(Vec<Node>),
    /// A unit: gated, may be speculated.
    Unit(UnitSpec),
    /// A command the shell runs itself that changes no variable (`cd`, `test`, `:`, ...).
    /// Prediction walks past it; its exit status is unknown.
    Builtin,
    /// A builtin that changes what every unit observes: the exported environment, cwd,
    /// umask or expansion options (`cd`, `export`, `umask`, `set -f`, `IFS=..`). Nothing
    /// after it is speculated until the shell reports the new context at a gate.
    ContextChange,
    /// `var=value` (also `read var`, `let`, `var=$(..)`, loop-external assignments).
    /// With `value`, prediction computes the new value; without it, units expanding `var`
    /// are not speculated until the shell reports the value.
    Assign {
        /// The variable.
        var: Vec<u8>,
        /// The value, when it is a concatenation of literals and plain variables.
        value: Option<Vec<Piece>>,
    },
    /// `if cond; then ..; elif cond; then ..; else ..; fi`.
    If {
        /// First condition.
        cond: Box<Node>,
        /// Runs when `cond` succeeds.
        then: Box<Node>,
        /// `(condition, body)` pairs, tried in order.
        elifs: Vec<(Node, Node)>,
        /// Runs when no condition succeeded.
        otherwise: Option<Box<Node>>,
    },
    /// `a && b || c`.
    AndOr {
        /// First item; always runs.
        first: Box<Node>,
        /// Following items with the connector before each.
        rest: Vec<(Connector, Node)>,
    },
    /// `case` with its arms in order; the subject is not modelled.
    Case {
        /// Arm bodies.
        arms: Vec<Node>,
    },
    /// `for var in words; do body; done`.
    For {
        /// The loop; its word list arrives with [`Event::LoopStarted`](crate::Event::LoopStarted).
        id: LoopId,
        /// Loop variable.
        var: Vec<u8>,
        /// The word list when it is literal (no expansion), so it can be predicted before
        /// the loop starts.
        words: Option<Vec<Vec<u8>>>,
        /// Loop body.
        body: Box<Node>,
    },
    /// `while cond; do body; done` (or `until` when `until` is set).
    While {
        /// The loop.
        id: LoopId,
        /// `until` instead of `while`.
        until: bool,
        /// Condition, evaluated before each iteration.
        cond: Box<Node>,
        /// Loop body.
        body: Box<Node>,
    },
    /// A function definition; defining it runs nothing. Calls are not predicted.
    Function {
        /// Function name.
        name: Vec<u8>,
        /// Function body.
        body: Box<Node>,
    },
    /// A call of a function defined in the script. Prediction walks into the body of the
    /// last definition with that name (calls nest at most 8 deep).
    Call {
        /// Function name.
        name: Vec<u8>,
    },
    /// `! pipeline`: the status is inverted.
    Not(Box<Node>),
    /// `{ ..; }`.
    Group(Box<Node>),
    /// `( .. )`.
    Subshell(Box<Node>),
    /// `.. &`: never speculated; prediction stops here.
    Background(Box<Node>),
    /// Anything prediction cannot see through (`exit`, `exec`, `break`, `eval`, calls, ...).
    Unknown,
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // kept whole for debugging output
pub(crate) enum Flat {
    Seq(Vec<usize>),
    Unit(UnitSpec),
    Builtin,
    ContextChange,
    Assign {
        var: Vec<u8>,
        value: Option<Vec<Piece>>,
    },
    If {
        conds: Vec<usize>,
        bodies: Vec<usize>,
        otherwise: Option<usize>,
    },
    /// `ops[i]` joins `items[i]` and `items[i + 1]`.
    AndOr {
        items: Vec<usize>,
        ops: Vec<Connector>,
    },
    Case(Vec<usize>),
    For {
        id: LoopId,
        var: Vec<u8>,
        words: Option<Vec<Vec<u8>>>,
        body: usize,
    },
    While {
        id: LoopId,
        until: bool,
        cond: usize,
        body: usize,
    },
    Function {
        name: Vec<u8>,
        body: usize,
    },
    Call(Vec<u8>),
    Not(usize),
    Group(usize),
    Subshell(usize),
    Background(usize),
    Unknown,
}

/// The flattened control-flow tree of one script.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) nodes: Vec<Flat>,
    pub(crate) parent: Vec<Option<usize>>,
    pub(crate) units: HashMap<UnitId, usize>,
    /// Function name → body node (last definition).
    pub(crate) functions: HashMap<Vec<u8>, usize>,
    /// Function name → call nodes.
    pub(crate) calls: HashMap<Vec<u8>, Vec<usize>>,
}

impl Program {
    /// Flattens `root`. Node 0 is the root.
    pub fn new(root: Node) -> Program {
        let mut p = Program {
            nodes: Vec::new(),
            parent: Vec::new(),
            units: HashMap::new(),
            functions: HashMap::new(),
            calls: HashMap::new(),
        };
        p.add(root, None);
        p
    }

    /// Whether every assignment of `var` in the program has a value prediction computes
    /// (then a unit expanding it needs no state edge to what ran before the assignment).
    pub(crate) fn computed(&self, var: &[u8]) -> bool {
        let mut any = false;
        for n in &self.nodes {
            if let Flat::Assign { var: v, value } = n
                && v == var
            {
                if value.is_none() {
                    return false;
                }
                any = true;
            }
        }
        any
    }

    /// The spec of `unit`, if the program has it.
    pub fn unit(&self, unit: UnitId) -> Option<&UnitSpec> {
        match &self.nodes[*self.units.get(&unit)?] {
            Flat::Unit(spec) => Some(spec),
            _ => None,
        }
    }

    fn add(&mut self, node: Node, parent: Option<usize>) -> usize {
        let me = self.nodes.len();
        self.nodes.push(Flat::Unknown);
        self.parent.push(parent);
        let p = Some(me);
        let flat = match node {
            Node::Seq(children) => {
                Flat::Seq(children.into_iter().map(|c| self.add(c, p)).collect())
            }
            Node::Unit(spec) => {
                self.units.insert(spec.id, me);
                Flat::Unit(spec)
            }
            Node::Builtin => Flat::Builtin,
            Node::ContextChange => Flat::ContextChange,
            Node::Assign { var, value } => Flat::Assign { var, value },
            Node::If {
                cond,
                then,
                elifs,
                otherwise,
            } => {
                let mut conds = vec![self.add(*cond, p)];
                let mut bodies = vec![self.add(*then, p)];
                for (c, b) in elifs {
                    conds.push(self.add(c, p));
                    bodies.push(self.add(b, p));
                }
                let otherwise = otherwise.map(|o| self.add(*o, p));
                Flat::If {
                    conds,
                    bodies,
                    otherwise,
                }
            }
            Node::AndOr { first, rest } => {
                let mut items = vec![self.add(*first, p)];
                let mut ops = Vec::new();
                for (op, n) in rest {
                    ops.push(op);
                    items.push(self.add(n, p));
                }
                Flat::AndOr { items, ops }
            }
            Node::Case { arms } => Flat::Case(arms.into_iter().map(|a| self.add(a, p)).collect()),
            Node::For {
                id,
                var,
                words,
                body,
            } => Flat::For {
                id,
                var,
                words,
                body: self.add(*body, p),
            },
            Node::While {
                id,
                until,
                cond,
                body,
            } => Flat::While {
                id,
                until,
                cond: self.add(*cond, p),
                body: self.add(*body, p),
            },
            Node::Function { name, body } => {
                let body = self.add(*body, p);
                self.functions.insert(name.clone(), body);
                Flat::Function { name, body }
            }
            Node::Call { name } => {
                self.calls.entry(name.clone()).or_default().push(me);
                Flat::Call(name)
            }
            Node::Not(c) => Flat::Not(self.add(*c, p)),
            Node::Group(c) => Flat::Group(self.add(*c, p)),
            Node::Subshell(c) => Flat::Subshell(self.add(*c, p)),
            Node::Background(c) => Flat::Background(self.add(*c, p)),
            Node::Unknown => Flat::Unknown,
        };
        self.nodes[me] = flat;
        me
    }

    /// Node indices from the root down to `node`, inclusive.
    pub(crate) fn ancestry(&self, node: usize) -> Vec<usize> {
        let mut chain = vec![node];
        let mut n = node;
        while let Some(p) = self.parent[n] {
            chain.push(p);
            n = p;
        }
        chain.reverse();
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_and_dirname_agree_with_coreutils() {
        let names: &[&[u8]] = &[
            b"a",
            b"/a/b",
            b"/a/b/",
            b"a//b//",
            b"/",
            b"//",
            b"///x",
            b"",
            b"x.tar.gz",
            b".txt",
            b"dir/.txt",
            b"a b/c d",
            b"/usr/",
            b"usr",
            b"./x",
            b"../..",
        ];
        for &n in names {
            let os = std::ffi::OsStr::new(std::str::from_utf8(n).unwrap());
            let run = |prog: &str, extra: Option<&str>| {
                let mut c = std::process::Command::new(prog);
                c.arg(os);
                if let Some(e) = extra {
                    c.arg(e);
                }
                let mut o = c.output().unwrap().stdout;
                while o.last() == Some(&b'\n') {
                    o.pop();
                }
                o
            };
            assert_eq!(
                basename(n, None).unwrap(),
                run("basename", None),
                "basename {n:?}"
            );
            assert_eq!(
                basename(n, Some(b".txt")).unwrap(),
                run("basename", Some(".txt")),
                "basename {n:?} .txt"
            );
            assert_eq!(dirname(n).unwrap(), run("dirname", None), "dirname {n:?}");
        }
        assert_eq!(basename(b"-x", None), None);
    }

    #[test]
    fn values_are_computed_or_not() {
        let vars = |n: &[u8]| -> Option<Option<Vec<u8>>> {
            match n {
                b"2" => Some(Some(b"out".to_vec())),
                b"item" => Some(Some(b"in/a b.txt".to_vec())),
                b"f" => Some(Some(b"in/c.txt".to_vec())),
                b"unset" => Some(None),
                _ => None,
            }
        };
        let bn = |arg: Piece| Piece::Basename {
            arg: vec![arg],
            suffix: None,
        };
        let v = |s: &str| s.as_bytes().to_vec();
        let got = eval(
            &[
                Piece::Var(v("2")),
                Piece::Lit(v("/")),
                bn(Piece::Split(v("f"))),
                Piece::Lit(v(".zip")),
            ],
            &vars,
        );
        assert_eq!(got, Some(v("out/c.txt.zip")));
        // Word splitting would make two arguments: not computed.
        assert_eq!(eval(&[bn(Piece::Split(v("item")))], &vars), None);
        assert_eq!(
            eval(&[bn(Piece::Var(v("item")))], &vars),
            Some(v("a b.txt"))
        );
        assert_eq!(
            eval(&[Piece::Dirname(vec![Piece::Var(v("f"))])], &vars),
            Some(v("in"))
        );
        assert_eq!(
            eval(&[Piece::Var(v("unset")), Piece::Lit(v("x"))], &vars),
            Some(v("x"))
        );
        assert_eq!(eval(&[Piece::Var(v("unknown"))], &vars), None);
    }
}
