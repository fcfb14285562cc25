//! A simulated shell and sandbox on a virtual clock, to drive the scheduler without
//! processes (quinn-proto's `Pair`, for hs).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scheduler::{
    Access, AccessKind, Action, Config, Connector, Event, Flags, Instance, LoopId, Node, PathGuess,
    PathUse, Piece, Program, RunId, Scheduler, State, Trace, UnitId, UnitSpec,
};

/// One thing a simulated unit does. Paths may contain `$var`, expanded with the unit's state.
#[derive(Debug, Clone)]
pub enum Op {
    /// Print a path's content digest (or that it is missing).
    Read(String),
    /// Replace a file with a digest of everything this unit has read and its state.
    Write(String),
    /// Append such a line.
    Append(String),
    /// Print the entries of a directory.
    List(String),
    /// Remove a path if it exists.
    Delete(String),
    /// Create a directory if missing.
    Mkdir(String),
    /// Exit 1 when a path is missing.
    FailIfMissing(String),
    /// Print the unit's variables and context.
    Echo,
    /// Mark the run unsafe (network, tty, ...).
    Unsafe(Flags),
    /// Like `Write`, but the tracer misses every access of this unit: the trace comes back
    /// empty with `Flags::UNTRACED`.
    Untraced(String),
}

/// A simulated unit.
#[derive(Debug, Clone)]
pub struct SimUnit {
    pub id: u32,
    pub vars: Vec<String>,
    pub ops: Vec<Op>,
    /// Run time in milliseconds.
    pub ms: u64,
    /// The path words the parser would report (`$var` expanded with the predicted state).
    pub paths: Vec<(PathUse, String)>,
}

/// The simulated script.
#[derive(Debug, Clone)]
pub enum SimNode {
    Seq(Vec<SimNode>),
    Unit(SimUnit),
    /// `var=value` (a builtin).
    Assign(String, String),
    /// `var=value` that the parser missed: reported as a plain builtin.
    Sneaky(String, String),
    /// `var=$from`.
    AssignVar(String, String),
    /// `var=value`, but reported to the scheduler as an assignment of unknown value
    /// (`read var`, `var=$(..)`).
    AssignUnknown(String, String),
    /// `export`/`cd`: changes the context.
    Context(String),
    /// A context change the parser missed: reported as a plain builtin.
    SneakyContext(String),
    If(Box<SimNode>, Box<SimNode>, Option<Box<SimNode>>),
    AndOr(Box<SimNode>, Vec<(Connector, SimNode)>),
    /// `for var in words`; `literal` says whether the parser could see the words.
    For {
        id: u32,
        var: String,
        words: Vec<String>,
        literal: bool,
        body: Box<SimNode>,
    },
    /// `[ "$var" = value ]`: a builtin condition.
    Test(String, String),
    /// `case $var in v1) ..;; v2) ..;; *) ..;; esac`: the first arm whose value matches,
    /// else the last arm.
    Case(String, Vec<(String, SimNode)>),
    /// `! node`.
    Not(Box<SimNode>),
    /// `name() { body; }`.
    Function(String, Box<SimNode>),
    /// `name` (a call).
    Call(String),
    /// `( .. )`: variable and context changes stay inside.
    Subshell(Box<SimNode>),
    /// `while cond; do body; done`, with a safety cap on iterations.
    While {
        id: u32,
        cond: Box<SimNode>,
        body: Box<SimNode>,
    },
}

pub fn unit(id: u32, vars: &[&str], ops: Vec<Op>, ms: u64) -> SimNode {
    SimNode::Unit(SimUnit {
        id,
        vars: vars.iter().map(|s| s.to_string()).collect(),
        ops,
        ms,
        paths: vec![],
    })
}

/// `node` with each unit's path words taken from its ops, as the parser would find them in
/// its redirections and arguments: what a unit that never ran is guessed to touch.
pub fn with_guesses(node: &SimNode) -> SimNode {
    map_units(node, &mut |u| {
        u.paths = u
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Read(p) | Op::FailIfMissing(p) => Some((PathUse::Read, p.clone())),
                Op::Write(p) | Op::Untraced(p) => Some((PathUse::Write, p.clone())),
                Op::Append(p) => Some((PathUse::Append, p.clone())),
                _ => None,
            })
            .collect();
    })
}

/// `node` with `f` applied to every unit.
pub fn map_units(node: &SimNode, f: &mut dyn FnMut(&mut SimUnit)) -> SimNode {
    let mut n = node.clone();
    visit_units(&mut n, f);
    n
}

fn visit_units(node: &mut SimNode, f: &mut dyn FnMut(&mut SimUnit)) {
    match node {
        SimNode::Unit(u) => f(u),
        SimNode::Seq(v) => v.iter_mut().for_each(|n| visit_units(n, f)),
        SimNode::If(c, t, e) => {
            visit_units(c, f);
            visit_units(t, f);
            if let Some(e) = e {
                visit_units(e, f);
            }
        }
        SimNode::AndOr(first, rest) => {
            visit_units(first, f);
            rest.iter_mut().for_each(|(_, n)| visit_units(n, f));
        }
        SimNode::Case(_, arms) => arms.iter_mut().for_each(|(_, n)| visit_units(n, f)),
        SimNode::For { body, .. }
        | SimNode::Not(body)
        | SimNode::Function(_, body)
        | SimNode::Subshell(body) => visit_units(body, f),
        SimNode::While { cond, body, .. } => {
            visit_units(cond, f);
            visit_units(body, f);
        }
        SimNode::Assign(..)
        | SimNode::Sneaky(..)
        | SimNode::AssignVar(..)
        | SimNode::AssignUnknown(..)
        | SimNode::Context(_)
        | SimNode::SneakyContext(_)
        | SimNode::Test(..)
        | SimNode::Call(_) => {}
    }
}

/// A path word as pieces: literals and `$name`.
fn word_pieces(w: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = w;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('$') {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            out.push(Piece::Var(after.as_bytes()[..n].to_vec()));
            rest = &after[n..];
        } else {
            let n = rest.find('$').unwrap_or(rest.len());
            out.push(Piece::Lit(rest.as_bytes()[..n].to_vec()));
            rest = &rest[n..];
        }
    }
    out
}

pub fn s(x: &str) -> String {
    x.to_string()
}

impl SimNode {
    /// The control-flow tree the parser would report.
    pub fn to_node(&self) -> Node {
        match self {
            SimNode::Seq(v) => Node::Seq(v.iter().map(|n| n.to_node()).collect()),
            SimNode::Unit(u) => Node::Unit(UnitSpec {
                id: UnitId(u.id),
                vars: u.vars.iter().map(|v| v.as_bytes().to_vec()).collect(),
                paths: u
                    .paths
                    .iter()
                    .map(|(how, w)| PathGuess {
                        how: *how,
                        word: word_pieces(w),
                    })
                    .collect(),
            }),
            SimNode::Test(..) | SimNode::Sneaky(..) | SimNode::SneakyContext(_) => Node::Builtin,
            SimNode::Context(_) => Node::ContextChange,
            SimNode::Assign(var, value) => Node::Assign {
                var: var.as_bytes().to_vec(),
                value: Some(vec![Piece::Lit(value.as_bytes().to_vec())]),
            },
            SimNode::AssignVar(var, from) => Node::Assign {
                var: var.as_bytes().to_vec(),
                value: Some(vec![
                    Piece::Lit(b"<".to_vec()),
                    Piece::Var(from.as_bytes().to_vec()),
                    Piece::Lit(b">".to_vec()),
                ]),
            },
            SimNode::AssignUnknown(var, _) => Node::Assign {
                var: var.as_bytes().to_vec(),
                value: None,
            },
            SimNode::Case(_, arms) => Node::Case {
                arms: arms.iter().map(|(_, n)| n.to_node()).collect(),
            },
            SimNode::Subshell(b) => Node::Subshell(Box::new(b.to_node())),
            SimNode::Not(b) => Node::Not(Box::new(b.to_node())),
            SimNode::Function(name, body) => Node::Function {
                name: name.as_bytes().to_vec(),
                body: Box::new(body.to_node()),
            },
            SimNode::Call(name) => Node::Call {
                name: name.as_bytes().to_vec(),
            },
            SimNode::If(c, t, e) => Node::If {
                cond: Box::new(c.to_node()),
                then: Box::new(t.to_node()),
                elifs: vec![],
                otherwise: e.as_ref().map(|e| Box::new(e.to_node())),
            },
            SimNode::AndOr(first, rest) => Node::AndOr {
                first: Box::new(first.to_node()),
                rest: rest.iter().map(|(c, n)| (*c, n.to_node())).collect(),
            },
            SimNode::For {
                id,
                var,
                words,
                literal,
                body,
            } => Node::For {
                id: LoopId(*id),
                var: var.as_bytes().to_vec(),
                words: literal.then(|| words.iter().map(|w| w.as_bytes().to_vec()).collect()),
                body: Box::new(body.to_node()),
            },
            SimNode::While { id, cond, body } => Node::While {
                id: LoopId(*id),
                until: false,
                cond: Box::new(cond.to_node()),
                body: Box::new(body.to_node()),
            },
        }
    }

    fn units(&self, out: &mut HashMap<u32, SimUnit>) {
        match self {
            SimNode::Seq(v) => v.iter().for_each(|n| n.units(out)),
            SimNode::Unit(u) => {
                out.insert(u.id, u.clone());
            }
            SimNode::Assign(..)
            | SimNode::Sneaky(..)
            | SimNode::AssignVar(..)
            | SimNode::AssignUnknown(..)
            | SimNode::Context(_)
            | SimNode::SneakyContext(_)
            | SimNode::Test(..) => {}
            SimNode::Case(_, arms) => arms.iter().for_each(|(_, n)| n.units(out)),
            SimNode::Subshell(b) | SimNode::Function(_, b) | SimNode::Not(b) => b.units(out),
            SimNode::Call(_) => {}
            SimNode::If(c, t, e) => {
                c.units(out);
                t.units(out);
                if let Some(e) = e {
                    e.units(out);
                }
            }
            SimNode::AndOr(f, rest) => {
                f.units(out);
                rest.iter().for_each(|(_, n)| n.units(out));
            }
            SimNode::For { body, .. } => body.units(out),
            SimNode::While { cond, body, .. } => {
                cond.units(out);
                body.units(out);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    Dir,
}

pub type Fs = BTreeMap<Vec<u8>, Entry>;

fn parent(p: &[u8]) -> Vec<u8> {
    match p.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"/".to_vec(),
        Some(i) => p[..i].to_vec(),
    }
}

fn digest(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &c| {
        (h ^ c as u64).wrapping_mul(0x100000001b3)
    })
}

/// What one execution of a unit produced.
#[derive(Debug, Clone)]
pub struct Exec {
    pub changes: BTreeMap<Vec<u8>, Option<Entry>>,
    pub trace: Trace,
    pub output: Vec<u8>,
    pub exit: i32,
}

/// Runs `u` over `fs` with `state`, like a sandbox would: changes stay in an upper layer.
pub fn exec(u: &SimUnit, fs: &Fs, state: &State) -> Exec {
    let mut e = Exec {
        changes: BTreeMap::new(),
        trace: Trace::default(),
        output: Vec::new(),
        exit: 0,
    };
    let expand = |p: &str| -> Vec<u8> {
        let mut out = p.to_string();
        for (k, v) in &state.vars {
            let val = v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
            out = out.replace(
                &format!("${}", String::from_utf8_lossy(k)),
                val.as_deref().unwrap_or(""),
            );
        }
        out.into_bytes()
    };
    let tag = format!(
        "u{} {:?} {}",
        u.id,
        state
            .vars
            .iter()
            .map(|(k, v)| (
                String::from_utf8_lossy(k).into_owned(),
                v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
            ))
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&state.context)
    );
    let mut seen: Vec<u8> = tag.clone().into_bytes();
    let get = |changes: &BTreeMap<Vec<u8>, Option<Entry>>, p: &[u8]| -> Option<Entry> {
        match changes.get(p) {
            Some(c) => c.clone(),
            None => fs.get(p).cloned(),
        }
    };
    let read = |t: &mut Trace, p: Vec<u8>, k| t.reads.push(Access::new(p, k));
    let write = |t: &mut Trace, p: Vec<u8>, k| t.writes.push(Access::new(p, k));
    for op in &u.ops {
        match op {
            Op::Read(p) => {
                let p = expand(p);
                match get(&e.changes, &p) {
                    Some(Entry::File(c)) => {
                        read(&mut e.trace, p.clone(), AccessKind::Read);
                        seen.extend_from_slice(&c);
                        e.output.extend(
                            format!("{}={:x}\n", String::from_utf8_lossy(&p), digest(&c)).bytes(),
                        );
                    }
                    Some(Entry::Dir) => {
                        read(&mut e.trace, p.clone(), AccessKind::Stat);
                        e.output.extend(b"dir\n");
                    }
                    None => {
                        read(&mut e.trace, p.clone(), AccessKind::Missing);
                        e.output.extend(b"missing\n");
                        e.exit = 1;
                    }
                }
            }
            Op::Write(p) => {
                let p = expand(p);
                write(&mut e.trace, p.clone(), AccessKind::Write);
                let line = format!("{tag} #{:x}\n", digest(&seen)).into_bytes();
                e.changes.insert(p, Some(Entry::File(line)));
            }
            Op::Append(p) => {
                let p = expand(p);
                write(&mut e.trace, p.clone(), AccessKind::Append);
                let mut c = match get(&e.changes, &p) {
                    Some(Entry::File(c)) => c,
                    _ => Vec::new(),
                };
                seen.extend_from_slice(&c);
                c.extend(format!("{tag} #{:x}\n", digest(&seen)).bytes());
                e.changes.insert(p, Some(Entry::File(c)));
            }
            Op::List(d) => {
                let d = expand(d);
                read(&mut e.trace, d.clone(), AccessKind::List);
                let mut names: BTreeSet<Vec<u8>> = fs
                    .keys()
                    .filter(|k| parent(k) == d && k.as_slice() != d.as_slice())
                    .cloned()
                    .collect();
                for (k, c) in &e.changes {
                    if parent(k) == d {
                        if c.is_some() {
                            names.insert(k.clone());
                        } else {
                            names.remove(k);
                        }
                    }
                }
                for n in names {
                    seen.extend_from_slice(&n);
                    e.output.extend_from_slice(&n);
                    e.output.push(b' ');
                }
                e.output.push(b'\n');
            }
            Op::Delete(p) => {
                let p = expand(p);
                if get(&e.changes, &p).is_some() {
                    // rm -r: the whole subtree goes, the trace names only the top.
                    write(&mut e.trace, p.clone(), AccessKind::Delete);
                    let mut below = p.clone();
                    below.push(b'/');
                    let doomed: Vec<Vec<u8>> = fs
                        .keys()
                        .chain(e.changes.keys())
                        .filter(|k| k.starts_with(&below))
                        .cloned()
                        .collect();
                    for k in doomed {
                        e.changes.insert(k, None);
                    }
                    e.changes.insert(p, None);
                } else {
                    read(&mut e.trace, p, AccessKind::Missing);
                }
            }
            Op::Mkdir(p) => {
                let p = expand(p);
                if get(&e.changes, &p).is_some() {
                    read(&mut e.trace, p, AccessKind::Stat);
                } else {
                    write(&mut e.trace, p.clone(), AccessKind::Create);
                    e.changes.insert(p, Some(Entry::Dir));
                }
            }
            Op::FailIfMissing(p) => {
                let p = expand(p);
                if get(&e.changes, &p).is_some() {
                    read(&mut e.trace, p, AccessKind::Stat);
                } else {
                    read(&mut e.trace, p, AccessKind::Missing);
                    e.exit = 1;
                }
            }
            Op::Echo => {
                e.output.extend(tag.bytes());
                e.output.push(b'\n');
            }
            Op::Unsafe(f) => e.trace.flags = e.trace.flags | *f,
            Op::Untraced(p) => {
                let p = expand(p);
                let line = format!("{tag} #{:x}\n", digest(&seen)).into_bytes();
                e.changes.insert(p, Some(Entry::File(line)));
                e.trace.flags = e.trace.flags | Flags::UNTRACED;
            }
        }
    }
    if e.trace.flags.contains(Flags::UNTRACED) {
        e.trace.reads.clear();
        e.trace.writes.clear();
    }
    e
}

pub fn apply(fs: &mut Fs, changes: &BTreeMap<Vec<u8>, Option<Entry>>) {
    for (p, c) in changes {
        match c {
            Some(e) => {
                fs.insert(p.clone(), e.clone());
            }
            None => {
                // A whiteout over a directory takes everything below with it.
                let mut below = p.clone();
                below.push(b'/');
                fs.retain(|k, _| k != p && !k.starts_with(&below));
            }
        }
    }
}

/// Where the shell's gates go: straight to the file system, or through the scheduler.
pub trait World {
    fn gate(&mut self, u: &SimUnit, x: Instance, state: State) -> (Vec<u8>, i32);
    fn loop_started(&mut self, id: u32, iters: Vec<u32>, words: Vec<Vec<u8>>);
}

/// The result the property test compares: final files and per-unit outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub fs: Fs,
    pub outputs: Vec<(Instance, Vec<u8>, i32)>,
    pub status: i32,
}

/// The real shell: interprets the script in order, asking the world at each unit.
pub struct SimShell {
    pub vars: BTreeMap<String, String>,
    pub context: String,
    pub outputs: Vec<(Instance, Vec<u8>, i32)>,
    pub while_cap: u32,
    pub functions: HashMap<String, SimNode>,
}

impl SimShell {
    pub fn new(vars: &[(&str, &str)]) -> SimShell {
        SimShell {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            context: "cwd=/".to_string(),
            outputs: Vec::new(),
            while_cap: 4,
            functions: HashMap::new(),
        }
    }

    pub fn state(&self, names: &[String]) -> State {
        State {
            vars: names
                .iter()
                .map(|n| {
                    (
                        n.as_bytes().to_vec(),
                        self.vars.get(n).map(|v| v.as_bytes().to_vec()),
                    )
                })
                .collect(),
            context: Arc::from(self.context.as_bytes()),
        }
    }

    pub fn full_state(&self) -> State {
        let names: Vec<String> = self.vars.keys().cloned().collect();
        self.state(&names)
    }

    pub fn run(&mut self, n: &SimNode, iters: &mut Vec<u32>, w: &mut dyn World) -> i32 {
        match n {
            SimNode::Seq(v) => {
                let mut st = 0;
                for c in v {
                    st = self.run(c, iters, w);
                }
                st
            }
            SimNode::Unit(u) => {
                let x = Instance {
                    unit: UnitId(u.id),
                    iters: iters.clone(),
                };
                let (out, st) = w.gate(u, x.clone(), self.state(&u.vars));
                self.outputs.push((x, out, st));
                st
            }
            SimNode::Assign(k, v) | SimNode::AssignUnknown(k, v) | SimNode::Sneaky(k, v) => {
                self.vars.insert(k.clone(), v.clone());
                0
            }
            SimNode::AssignVar(k, from) => {
                let v = format!("<{}>", self.vars.get(from).cloned().unwrap_or_default());
                self.vars.insert(k.clone(), v);
                0
            }
            SimNode::Context(c) | SimNode::SneakyContext(c) => {
                self.context = c.clone();
                0
            }
            SimNode::Test(k, v) => (self.vars.get(k) != Some(v)) as i32,
            SimNode::Case(k, arms) => {
                let value = self.vars.get(k).cloned().unwrap_or_default();
                let arm = arms
                    .iter()
                    .position(|(v, _)| *v == value)
                    .unwrap_or(arms.len().saturating_sub(1));
                match arms.get(arm) {
                    Some((_, n)) => self.run(n, iters, w),
                    None => 0,
                }
            }
            SimNode::Not(b) => (self.run(b, iters, w) == 0) as i32,
            SimNode::Function(name, body) => {
                self.functions.insert(name.clone(), (**body).clone());
                0
            }
            SimNode::Call(name) => match self.functions.get(name).cloned() {
                Some(body) => self.run(&body, iters, w),
                None => 127,
            },
            SimNode::Subshell(b) => {
                let (vars, context) = (self.vars.clone(), self.context.clone());
                let st = self.run(b, iters, w);
                self.vars = vars;
                self.context = context;
                st
            }
            SimNode::If(c, t, e) => {
                if self.run(c, iters, w) == 0 {
                    self.run(t, iters, w)
                } else if let Some(e) = e {
                    self.run(e, iters, w)
                } else {
                    0
                }
            }
            SimNode::AndOr(first, rest) => {
                let mut st = self.run(first, iters, w);
                for (c, n) in rest {
                    let go = match c {
                        Connector::And => st == 0,
                        Connector::Or => st != 0,
                    };
                    if go {
                        st = self.run(n, iters, w);
                    }
                }
                st
            }
            SimNode::For {
                id,
                var,
                words,
                body,
                ..
            } => {
                w.loop_started(
                    *id,
                    iters.clone(),
                    words.iter().map(|x| x.as_bytes().to_vec()).collect(),
                );
                let mut st = 0;
                for (i, word) in words.iter().enumerate() {
                    self.vars.insert(var.clone(), word.clone());
                    iters.push(i as u32);
                    st = self.run(body, iters, w);
                    iters.pop();
                }
                st
            }
            SimNode::While { cond, body, .. } => {
                let mut i = 0;
                loop {
                    iters.push(i);
                    let go = self.run(cond, iters, w) == 0 && i < self.while_cap;
                    if go {
                        self.run(body, iters, w);
                    }
                    iters.pop();
                    if !go {
                        break 0;
                    }
                    i += 1;
                }
            }
        }
    }
}

/// Sequential execution: what bash would do.
pub struct Direct {
    pub fs: Fs,
}

impl World for Direct {
    fn gate(&mut self, u: &SimUnit, _x: Instance, state: State) -> (Vec<u8>, i32) {
        let e = exec(u, &self.fs, &state);
        apply(&mut self.fs, &e.changes);
        (e.output, e.exit)
    }
    fn loop_started(&mut self, _: u32, _: Vec<u32>, _: Vec<Vec<u8>>) {}
}

pub fn sequential(script: &SimNode, fs: Fs, vars: &[(&str, &str)]) -> Outcome {
    let mut shell = SimShell::new(vars);
    let mut w = Direct { fs };
    let status = shell.run(script, &mut Vec::new(), &mut w);
    Outcome {
        fs: w.fs,
        outputs: shell.outputs,
        status,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    RunDone(RunId),
    CommitDone(RunId),
}

#[derive(Debug)]
enum Answer {
    Committed(Vec<u8>, i32),
    RunYourself,
}

/// Speculative sandboxes: each run sees the live file system as it was when it started.
#[derive(Debug, Default)]
pub struct SimSandbox {
    runs: BTreeMap<RunId, (Instance, Exec, bool)>,
    pub max_running: usize,
}

impl SimSandbox {
    fn running(&self) -> usize {
        self.runs.values().filter(|r| !r.2).count()
    }
}

/// Scheduler + sandbox + clock, seen from the shell as its world.
pub struct Sim {
    pub sched: Scheduler,
    pub fs: Fs,
    pub sandbox: SimSandbox,
    pub window: usize,
    /// Virtual time in microseconds.
    pub clock: u64,
    base: Instant,
    queue: BTreeSet<(u64, u64, Due)>,
    qseq: u64,
    units: HashMap<u32, SimUnit>,
    answer: Option<Answer>,
    /// Steps taken; `bound` is the livelock limit.
    pub steps: u64,
    pub bound: u64,
    pub commit_us: u64,
    pub log: Vec<String>,
    /// Shell variables after the last gate (for `Started`).
    pub exited: bool,
    /// Every `pass_every`-th gate (0: none) the shell passes without waiting
    /// (`Event::GatePassed`), as a real shell does while nothing is speculated.
    pub pass_every: u64,
    /// The first `pass_first` gates are passed without waiting, too.
    pub pass_first: u64,
    gates: u64,
}

impl Sim {
    pub fn new(script: &SimNode, config: Config, fs: Fs) -> Sim {
        let mut units = HashMap::new();
        script.units(&mut units);
        Sim {
            window: config.window,
            sched: Scheduler::new(config, Program::new(script.to_node())),
            fs,
            sandbox: SimSandbox::default(),
            clock: 0,
            base: Instant::now(),
            queue: BTreeSet::new(),
            qseq: 0,
            units,
            answer: None,
            steps: 0,
            bound: 10_000,
            commit_us: 100,
            log: Vec::new(),
            exited: false,
            pass_every: 0,
            pass_first: 0,
            gates: 0,
        }
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_micros(self.clock)
    }

    pub fn handle(&mut self, e: Event) {
        self.log
            .push(format!("{:>8} <- {}", self.clock, short_event(&e)));
        let now = self.now();
        self.sched.handle(now, e);
        self.pump();
    }

    fn due(&mut self, at: u64, d: Due) {
        self.qseq += 1;
        self.queue.insert((at, self.qseq, d));
    }

    /// Carries out every queued action.
    fn pump(&mut self) {
        while let Some(a) = self.sched.poll_action() {
            self.log
                .push(format!("{:>8} -> {}", self.clock, short_action(&a)));
            match a {
                Action::Start {
                    run,
                    instance,
                    state,
                } => {
                    let u = &self.units[&instance.unit.0];
                    let e = exec(u, &self.fs, &state);
                    let at = self.clock + u.ms * 1000;
                    self.sandbox.runs.insert(run, (instance, e, false));
                    self.due(at, Due::RunDone(run));
                    let n = self.sandbox.running();
                    self.sandbox.max_running = self.sandbox.max_running.max(n);
                    // One more may run: the one the shell waits for.
                    assert!(
                        n <= self.window + 1,
                        "window exceeded: {n} > {}",
                        self.window
                    );
                }
                Action::Kill { run } => {
                    let r = self.sandbox.runs.remove(&run).expect("kill of unknown run");
                    assert!(!r.2, "kill of a finished run");
                }
                Action::Discard { run } => {
                    let r = self
                        .sandbox
                        .runs
                        .remove(&run)
                        .expect("discard of unknown run");
                    assert!(r.2, "discard of a running run");
                }
                Action::Commit { run } => {
                    let r = self.sandbox.runs.get(&run).expect("commit of unknown run");
                    assert!(r.2, "commit of a running run");
                    apply(&mut self.fs, &r.1.changes.clone());
                    self.due(self.clock + self.commit_us, Due::CommitDone(run));
                }
                Action::AnswerGate { .. } => {
                    assert!(self.answer.is_none());
                    self.answer = Some(Answer::RunYourself);
                }
            }
        }
    }

    /// Delivers the next due event; false if nothing is due.
    fn step(&mut self) -> bool {
        let Some(first) = self.queue.iter().next().cloned() else {
            return false;
        };
        self.queue.remove(&first);
        self.steps += 1;
        assert!(
            self.steps < self.bound,
            "livelock: {} steps\n{}",
            self.steps,
            self.log.join("\n")
        );
        self.clock = self.clock.max(first.0);
        match first.2 {
            Due::RunDone(run) => {
                if let Some(r) = self.sandbox.runs.get_mut(&run) {
                    r.2 = true;
                    let (trace, exit) = (r.1.trace.clone(), r.1.exit);
                    self.handle(Event::RunFinished { run, trace, exit });
                }
            }
            Due::CommitDone(run) => {
                let r = self
                    .sandbox
                    .runs
                    .remove(&run)
                    .expect("committed run vanished");
                self.answer = Some(Answer::Committed(r.1.output, r.1.exit));
                self.handle(Event::CommitDone { run });
            }
        }
        true
    }

    /// Runs the whole script; returns the same result as [`sequential`].
    pub fn drive_bounded(&mut self, script: &SimNode, vars: &[(&str, &str)]) -> Outcome {
        let mut shell = SimShell::new(vars);
        self.handle(Event::Started {
            state: shell.full_state(),
        });
        let status = shell.run(script, &mut Vec::new(), self);
        self.handle(Event::ShellExited);
        self.exited = true;
        assert!(
            self.sandbox.runs.is_empty(),
            "sandboxes left after exit: {:?}",
            self.sandbox.runs.keys().collect::<Vec<_>>()
        );
        Outcome {
            fs: self.fs.clone(),
            outputs: shell.outputs,
            status,
        }
    }

    /// Sum of unit run times along the shell's path would be the sequential time; this is
    /// the virtual time the simulated run took.
    pub fn elapsed_ms(&self) -> u64 {
        self.clock / 1000
    }
}

impl World for Sim {
    fn gate(&mut self, u: &SimUnit, x: Instance, state: State) -> (Vec<u8>, i32) {
        self.gates += 1;
        if self.gates <= self.pass_first
            || (self.pass_every > 0 && self.gates.is_multiple_of(self.pass_every))
        {
            // Half of them report their state, as the engine's first gates do.
            self.handle(Event::GatePassed {
                instance: x.clone(),
                state: self.gates.is_multiple_of(2).then(|| state.clone()),
            });
            assert!(self.answer.is_none(), "a passed gate was answered");
            self.answer = Some(Answer::RunYourself);
        } else {
            self.handle(Event::GateReached {
                instance: x.clone(),
                state: state.clone(),
            });
        }
        while self.answer.is_none() {
            assert!(
                self.step(),
                "stuck at the gate of {x}\n{}",
                self.log.join("\n")
            );
        }
        match self.answer.take().unwrap() {
            Answer::Committed(out, exit) => (out, exit),
            Answer::RunYourself => {
                let e = exec(u, &self.fs, &state);
                let end = self.clock + u.ms * 1000;
                while self.queue.iter().next().is_some_and(|f| f.0 <= end) {
                    self.step();
                }
                assert!(
                    self.answer.is_none(),
                    "gate answered while the shell was busy"
                );
                self.clock = end;
                apply(&mut self.fs, &e.changes);
                self.handle(Event::DirectRunFinished {
                    instance: x,
                    trace: e.trace.clone(),
                    exit: e.exit,
                });
                (e.output, e.exit)
            }
        }
    }

    fn loop_started(&mut self, id: u32, iters: Vec<u32>, words: Vec<Vec<u8>>) {
        self.handle(Event::LoopStarted {
            id: LoopId(id),
            iters,
            words,
        });
    }
}

fn short_event(e: &Event) -> String {
    match e {
        Event::Started { .. } => "started".into(),
        Event::GateReached { instance, state } => format!("gate {instance} {:?}", state.vars),
        Event::GatePassed { instance, state } => {
            format!("passed {instance} {:?}", state.as_ref().map(|s| &s.vars))
        }
        Event::LoopStarted { id, iters, words } => {
            format!("loop {} {iters:?} {} words", id.0, words.len())
        }
        Event::RunFinished { run, exit, trace } => format!(
            "finished r{} exit {exit} reads {} writes {}",
            run.0,
            trace.reads.len(),
            trace.writes.len()
        ),
        Event::CommitDone { run } => format!("commit done r{}", run.0),
        Event::DirectRunFinished { instance, exit, .. } => {
            format!("direct done {instance} exit {exit}")
        }
        Event::ShellActivity { trace } => format!("shell wrote {}", trace.writes.len()),
        Event::Abandon { run } => format!("abandon r{}", run.0),
        Event::ShellExited => "exited".into(),
    }
}

fn short_action(a: &Action) -> String {
    match a {
        Action::Start {
            run,
            instance,
            state,
        } => format!("start r{} {instance} {:?}", run.0, state.vars),
        Action::Kill { run } => format!("kill r{}", run.0),
        Action::Commit { run } => format!("commit r{}", run.0),
        Action::AnswerGate { instance } => format!("run yourself {instance}"),
        Action::Discard { run } => format!("discard r{}", run.0),
    }
}

/// A file system with `files` holding their own names.
pub fn fs_with(files: &[&str]) -> Fs {
    files
        .iter()
        .map(|f| (f.as_bytes().to_vec(), Entry::File(f.as_bytes().to_vec())))
        .collect()
}
