//! The scheduler state machine.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use petgraph::stable_graph::NodeIndex;
use serde::Serialize;

use crate::access::{Observed, Trace, WriteIndex};
use crate::dag::{Dag, Edge, Outcome, Report, RunId, RunRecord, Why};
use crate::predict::{Pred, Vars, Walker, in_background, innermost_subshell, taken_arms};
use crate::program::{LoopId, Program, UnitId};
use crate::state::{Instance, LoopKey, State};

/// Tuning knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Most speculative runs executing at once, not counting the one the shell is waiting
    /// for at its gate (that one does the shell's own work). 0 turns speculation off: every
    /// gate is answered with [`Action::AnswerGate`].
    pub window: usize,
    /// How many instances ahead of the shell prediction looks.
    pub lookahead: usize,
    /// Speculative attempts per instance before it is left to the shell.
    pub max_attempts: u32,
    /// Hold back a speculation when an earlier trace of the same unit with the same state
    /// observed something that an instance before it is expected to write.
    pub hold_back: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            window: 4,
            lookahead: 32,
            max_attempts: 3,
            hold_back: true,
        }
    }
}

/// An input to [`Scheduler::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The shell started; `state` holds every variable the engine knows (environment,
    /// positional parameters) and the context. Optional, but without it nothing is
    /// speculated before the first gate.
    Started {
        /// Initial state.
        state: State,
    },
    /// The shell is at `instance`'s gate, waiting for an answer, with `state`.
    GateReached {
        /// Where the shell is.
        instance: Instance,
        /// At least the variables the unit expands, and the context.
        state: State,
    },
    /// The shell passed `instance`'s gate without waiting and runs the unit itself (nothing
    /// was speculated). Prediction goes on from there, with `state` if the gate reported it,
    /// else with the state known so far (any run's state is still checked at its own gate).
    /// Nothing is answered; a [`Event::DirectRunFinished`] for `instance` must follow.
    GatePassed {
        /// Where the shell is.
        instance: Instance,
        /// What a [`Event::GateReached`] would carry, if the gate reported it.
        state: Option<State>,
    },
    /// A `for` loop (or a `while` loop, with no words) started.
    LoopStarted {
        /// The loop.
        id: LoopId,
        /// Iteration indices of the loops around it.
        iters: Vec<u32>,
        /// The expanded word list.
        words: Vec<Vec<u8>>,
    },
    /// A speculative run ended. Its output stays with the engine until commit or discard.
    RunFinished {
        /// The run.
        run: RunId,
        /// What it touched and did.
        trace: Trace,
        /// Its exit status.
        exit: i32,
    },
    /// The run named in [`Action::Commit`] is in the live file system, and the gate has been
    /// answered with its output and exit status.
    CommitDone {
        /// The run.
        run: RunId,
    },
    /// The shell finished running `instance` itself.
    DirectRunFinished {
        /// The instance.
        instance: Instance,
        /// What it touched (traced like a speculative run).
        trace: Trace,
        /// Its exit status.
        exit: i32,
    },
    /// The engine gives a run up (e.g. the shell waits for it at its gate and its sandbox is
    /// not even set up yet): it is killed; if the shell waits for it, the shell runs the
    /// unit itself.
    Abandon {
        /// The run.
        run: RunId,
    },
    /// The shell itself changed files between gates (builtins with redirections, a
    /// committed unit's neighbours, background jobs), outside any unit it ran directly.
    ShellActivity {
        /// What it touched (only its changes matter).
        trace: Trace,
    },
    /// The shell exited: no more gates.
    ShellExited,
}

/// An output of [`Scheduler::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run `instance` speculatively in a fresh sandbox over the live file system as it is
    /// now, with `state`'s variables and context; then report [`Event::RunFinished`].
    Start {
        /// Names the run in later events and actions.
        run: RunId,
        /// The instance.
        instance: Instance,
        /// The predicted state.
        state: State,
    },
    /// Kill a running speculation and throw its sandbox away. No event is expected.
    Kill {
        /// The run.
        run: RunId,
    },
    /// Commit a finished run into the live file system, then answer its gate: replay its
    /// output and return its exit status. Report [`Event::CommitDone`].
    Commit {
        /// The run.
        run: RunId,
    },
    /// Tell the shell waiting at `instance`'s gate to run the unit itself, traced; report
    /// [`Event::DirectRunFinished`].
    AnswerGate {
        /// The instance.
        instance: Instance,
    },
    /// Throw away a finished run's sandbox and output.
    Discard {
        /// The run.
        run: RunId,
    },
}

/// Counters for `--stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Stats {
    /// Speculative runs started.
    pub started: u64,
    /// Speculative runs committed.
    pub committed: u64,
    /// Speculative runs killed or discarded.
    pub discarded: u64,
    /// Units the shell ran itself.
    pub direct: u64,
    /// Instances held back at least once because an earlier trace predicted a conflict.
    pub held: u64,
    /// Run time of speculative runs that were killed or discarded.
    pub wasted: Duration,
}

#[derive(Debug)]
struct Run {
    instance: Instance,
    state: State,
    /// Effects completed when it started; later ones it did not see.
    seen: u64,
    node: NodeIndex,
    finished: Option<(Arc<Trace>, i32)>,
    observed: Option<Arc<Observed>>,
}

/// A unit's latest trace, and what its last two traces with different states shared.
#[derive(Debug)]
struct Past {
    state: State,
    trace: Arc<Trace>,
    observed: Arc<Observed>,
    /// Accesses that did not depend on the state (Rattle's "same command, same files").
    stable: Option<(Arc<Trace>, Arc<Observed>)>,
}

/// Whether a trace says what its unit touches: not when the tracer missed accesses, nor
/// when the run never started (empty).
fn learnable(trace: &Trace) -> bool {
    !trace.flags.contains(crate::Flags::UNTRACED)
        && (!trace.reads.is_empty() || !trace.writes.is_empty())
}

/// A trace a run is expected to leave, indexed.
type Expected = (Arc<Trace>, Arc<Observed>);

impl Past {
    /// What a run of the unit with `state` is expected to touch: the last trace if the state
    /// is the same; otherwise its paths that held an old variable value, with the new value
    /// put in, plus the accesses that did not depend on the state.
    fn expect(&self, state: &State) -> Option<Expected> {
        if self.state == *state {
            return Some((self.trace.clone(), self.observed.clone()));
        }
        // Values shorter than 2 bytes would match by accident.
        let swaps: Vec<(&[u8], &[u8])> = self
            .state
            .vars
            .iter()
            .filter_map(|(k, old)| {
                let old = old.as_deref()?;
                let new = state.vars.get(k)?.as_deref()?;
                (old != new && old.len() >= 2).then_some((old, new))
            })
            .collect();
        let stable: std::collections::HashSet<&crate::Access> = self
            .stable
            .iter()
            .flat_map(|(t, _)| t.reads.iter().chain(&t.writes))
            .collect();
        let pick = |list: &[crate::Access]| -> Vec<crate::Access> {
            list.iter()
                .filter_map(|a| {
                    let mut path = a.path.clone();
                    let mut hit = false;
                    for (old, new) in &swaps {
                        if let Some(p) = replace(&path, old, new) {
                            path = p;
                            hit = true;
                        }
                    }
                    (hit || stable.contains(a)).then_some(crate::Access { path, kind: a.kind })
                })
                .collect()
        };
        let trace = Trace {
            reads: pick(&self.trace.reads),
            writes: pick(&self.trace.writes),
            flags: crate::Flags::NONE,
        };
        if trace.reads.is_empty() && trace.writes.is_empty() {
            return None;
        }
        let observed = Observed::new(&trace);
        Some((Arc::new(trace), Arc::new(observed)))
    }
}

/// `hay` with every `old` replaced by `new`, if it contains `old`.
fn replace(hay: &[u8], old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    let mut hit = false;
    while i < hay.len() {
        if hay[i..].starts_with(old) {
            out.extend_from_slice(new);
            i += old.len();
            hit = true;
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    hit.then_some(out)
}

/// The accesses of `b` that `a` has too.
fn common(a: &Trace, b: &Trace) -> Trace {
    let seen: HashSet<&crate::Access> = a.reads.iter().chain(&a.writes).collect();
    Trace {
        reads: b
            .reads
            .iter()
            .filter(|x| seen.contains(x))
            .cloned()
            .collect(),
        writes: b
            .writes
            .iter()
            .filter(|x| seen.contains(x))
            .cloned()
            .collect(),
        flags: crate::Flags::NONE,
    }
}

#[derive(Debug, Clone)]
enum Pos {
    Start,
    After(Instance),
    Lost,
}

/// The scheduler: a deterministic state machine with no I/O, no clock and no threads.
///
/// Methods come in four classes:
///
/// - (A) getters on `&self`: [`config`](Self::config), [`dag`](Self::dag),
///   [`stats`](Self::stats), [`report`](Self::report), [`running`](Self::running),
///   [`is_idle`](Self::is_idle);
/// - (B) input: [`handle`](Self::handle), one [`Event`] at a time, with the time it
///   happened (instants never decrease);
/// - (C) commands: [`set_window`](Self::set_window);
/// - (D) output: [`poll_action`](Self::poll_action), a queue.
///
/// After every (B) or (C) call, drain (D) until it returns `None` and carry out each action
/// in the order given; results come back as later events. No timers are needed, so there is
/// no `poll_timeout`.
#[derive(Debug)]
pub struct Scheduler {
    config: Config,
    program: Program,
    t0: Option<Instant>,
    now: Duration,
    known: Vars,
    context: Option<Arc<[u8]>>,
    /// Variable (or context, `None`) → the effective instance after which it last changed.
    changed_after: HashMap<Option<Vec<u8>>, NodeIndex>,
    loops: HashMap<LoopKey, Arc<Vec<Vec<u8>>>>,
    latest: HashMap<LoopId, Arc<Vec<Vec<u8>>>>,
    pos: Pos,
    runs: BTreeMap<RunId, Run>,
    by_instance: BTreeMap<Instance, RunId>,
    next_run: u64,
    actions: VecDeque<Action>,
    /// Number of completed effects (commits and direct runs).
    seq: u64,
    index: WriteIndex<NodeIndex>,
    /// Sequence number of the latest effect with an incomplete trace.
    untraced: u64,
    committing: Option<RunId>,
    /// A running run whose gate the shell is waiting at.
    waiting: Option<RunId>,
    /// Units the shell is running itself.
    direct: BTreeMap<Instance, NodeIndex>,
    last_effective: Option<NodeIndex>,
    last_exit: HashMap<UnitId, i32>,
    /// What the last executions of each unit did.
    history: HashMap<UnitId, Past>,
    /// Bumped when a unit's history changes.
    versions: HashMap<UnitId, u64>,
    /// Expected traces by unit and state, valid for one history version.
    expect_cache: HashMap<(UnitId, State), (u64, Option<Expected>)>,
    memory: HashMap<usize, usize>,
    /// The innermost subshell of the last gate, with the state reported there.
    inner: Option<(usize, State)>,
    /// The last gate's instance and state.
    last_gate: Option<(Instance, State)>,
    attempts: HashMap<Instance, u32>,
    unsafe_units: HashSet<UnitId>,
    /// Units the engine leaves to the shell for now ([`Scheduler::set_too_short`]).
    too_short: HashSet<UnitId>,
    /// Instances held back so far (for the counter).
    held: HashSet<Instance>,
    dag: Dag,
    stats: Stats,
    exited: bool,
}

impl Scheduler {
    /// A scheduler for `program`.
    pub fn new(config: Config, program: Program) -> Scheduler {
        Scheduler {
            config,
            program,
            t0: None,
            now: Duration::ZERO,
            known: Vars::new(),
            context: None,
            changed_after: HashMap::new(),
            loops: HashMap::new(),
            latest: HashMap::new(),
            pos: Pos::Start,
            runs: BTreeMap::new(),
            by_instance: BTreeMap::new(),
            next_run: 0,
            actions: VecDeque::new(),
            seq: 0,
            index: WriteIndex::default(),
            untraced: 0,
            committing: None,
            waiting: None,
            direct: BTreeMap::new(),
            last_effective: None,
            last_exit: HashMap::new(),
            history: HashMap::new(),
            versions: HashMap::new(),
            expect_cache: HashMap::new(),
            memory: HashMap::new(),
            inner: None,
            last_gate: None,
            attempts: HashMap::new(),
            unsafe_units: HashSet::new(),
            too_short: HashSet::new(),
            held: HashSet::new(),
            dag: Dag::default(),
            stats: Stats::default(),
            exited: false,
        }
    }

    // (A) getters

    /// The dependency DAG with a record per instance.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Per-instance records, counters and the DAG's critical path, for `--report`.
    pub fn report(&self) -> Report {
        let (critical_path, total) = self.dag.critical_path();
        Report {
            stats: self.stats,
            instances: self.dag.records().cloned().collect(),
            critical_path,
            total,
        }
    }

    /// Speculative runs executing now.
    pub fn running(&self) -> usize {
        self.runs.values().filter(|r| r.finished.is_none()).count()
    }

    /// Whether nothing is in flight: no run, commit or direct run, and no queued action.
    pub fn is_idle(&self) -> bool {
        self.runs.is_empty() && self.direct.is_empty() && self.actions.is_empty()
    }

    // (B) input

    /// Feeds one event in. `now` must not go backwards.
    pub fn handle(&mut self, now: Instant, event: Event) {
        let t0 = *self.t0.get_or_insert(now);
        self.now = now.saturating_duration_since(t0);
        if self.exited {
            return;
        }
        match event {
            Event::Started { state } => {
                self.merge(&state);
                self.refresh();
            }
            Event::GateReached { instance, state } => self.gate(instance, state),
            Event::GatePassed { instance, state } => self.gate_passed(instance, state),
            Event::LoopStarted { id, iters, words } => {
                let words = Arc::new(words);
                self.latest.insert(id, words.clone());
                self.loops.insert((id, iters), words);
                self.refresh();
            }
            Event::RunFinished { run, trace, exit } => self.run_finished(run, trace, exit),
            Event::CommitDone { run } => self.commit_done(run),
            Event::DirectRunFinished {
                instance,
                trace,
                exit,
            } => self.direct_finished(instance, trace, exit),
            Event::ShellActivity { trace } => self.shell_activity(trace),
            Event::Abandon { run } => self.abandon(run),
            Event::ShellExited => self.shell_exited(),
        }
    }

    // (C) commands

    /// Whether `unit` is left to the shell for now: its last run was shorter than a sandbox
    /// costs. Unlike a flagged run, which keeps a unit from speculation for good, this can
    /// be undone (the next instance of a loop's unit may take longer).
    pub fn set_too_short(&mut self, unit: UnitId, short: bool) {
        let changed = if short {
            self.too_short.insert(unit)
        } else {
            self.too_short.remove(&unit)
        };
        if changed && !short {
            self.refresh();
        }
    }

    /// Changes the window, e.g. to 0 under memory pressure and back later. Runs already
    /// started go on; fewer or more are started from now on.
    pub fn set_window(&mut self, window: usize) {
        self.config.window = window;
        self.refresh();
    }

    // (D) output

    /// The next action to carry out, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    // internals

    fn merge(&mut self, state: &State) {
        for (name, value) in &state.vars {
            if self.known.get(name) != Some(value) {
                if let Some(n) = self.last_effective {
                    self.changed_after.insert(Some(name.clone()), n);
                }
                self.known.insert(name.clone(), value.clone());
            }
        }
        if self.context.as_ref() != Some(&state.context) {
            if let Some(n) = self.last_effective {
                self.changed_after.insert(None, n);
            }
            self.context = Some(state.context.clone());
        }
    }

    fn gate(&mut self, x: Instance, state: State) {
        let node = self.dag.node(&x);
        self.dag.get_mut(node).gate = Some(self.now);
        let (unit_node, background) = self.reached(&x, node, &state);
        if !background {
            self.move_to(&x, unit_node);
        }
        match self.by_instance.get(&x).copied() {
            Some(id) if !self.direct.is_empty() => {
                self.drop_run(id, Why::Background);
                self.answer_direct(x, node);
            }
            Some(id) => {
                let run = &self.runs[&id];
                if let Some(name) = run.state.mismatch(&state) {
                    self.drop_run(id, Why::State(name));
                    self.answer_direct(x, node);
                } else if run.finished.is_some() {
                    self.try_commit(id);
                } else if let Some(path) = self.doomed(id) {
                    self.drop_run(id, Why::Doomed { path });
                    self.answer_direct(x, node);
                } else {
                    self.waiting = Some(id);
                }
            }
            None => self.answer_direct(x, node),
        }
        self.refresh();
    }

    /// The state the shell reported at `x`'s gate: merged into what is known (or kept aside
    /// inside a subshell), with the DAG's state edges. Returns `x`'s program node and whether
    /// it runs in the background.
    fn reached(&mut self, x: &Instance, node: NodeIndex, state: &State) -> (Option<usize>, bool) {
        self.last_gate = Some((x.clone(), state.clone()));
        let unit_node = self.program.units.get(&x.unit).copied();
        let background = unit_node.is_some_and(|n| in_background(&self.program, n));
        // A subshell's variables and context do not outlive it: keep them aside.
        match unit_node.and_then(|n| innermost_subshell(&self.program, n)) {
            _ if background => {}
            Some(sub) => self.inner = Some((sub, state.clone())),
            None => {
                self.merge(state);
                self.inner = None;
            }
        }
        // A `for` loop's variable is set by the loop, not by the unit that ran before it, and
        // prediction computes what computable assignments set: no state edge for them (it
        // would chain every iteration to the one before).
        let loop_vars: Vec<&[u8]> = unit_node
            .map(|n| {
                self.program
                    .ancestry(n)
                    .into_iter()
                    .filter_map(|a| match &self.program.nodes[a] {
                        crate::program::Flat::For { var, .. } => Some(var.as_slice()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(spec) = self.program.unit(x.unit) {
            for v in &spec.vars {
                if loop_vars.contains(&v.as_slice()) || self.program.computed(v) {
                    continue;
                }
                if let Some(&src) = self.changed_after.get(&Some(v.clone())) {
                    self.dag.edge(src, node, Edge::State(Some(v.clone())));
                }
            }
        }
        if let Some(&src) = self.changed_after.get(&None) {
            self.dag.edge(src, node, Edge::State(None));
        }
        (unit_node, background)
    }

    /// The shell is past `x` (program node `unit_node`): prediction starts after it.
    fn move_to(&mut self, x: &Instance, unit_node: Option<usize>) {
        match unit_node {
            Some(n) => {
                for (d, arm) in taken_arms(&self.program, n) {
                    self.memory.insert(d, arm);
                }
                self.pos = Pos::After(x.clone());
            }
            None => self.pos = Pos::Lost,
        }
    }

    /// Whether an earlier trace of the run's unit, with the same state, observed something
    /// that changed after the run started.
    fn doomed(&mut self, id: RunId) -> Option<Vec<u8>> {
        let run = &self.runs[&id];
        if run.seen == self.seq {
            return None;
        }
        let (unit, state, seen) = (run.instance.unit, run.state.clone(), run.seen);
        let (trace, _) = self.expected_surely(unit, &state)?;
        self.index.first_hazard(&trace, seen).map(|h| h.path)
    }

    /// What a run of `unit` with `state` will surely touch, to kill it early: its last trace
    /// when the state is the same, else only what its last two traces shared (a guess with
    /// the new values put in is good enough to hold a run back, not to kill one: the paths
    /// of a `mktemp` directory, say, differ every time).
    fn expected_surely(&mut self, unit: UnitId, state: &State) -> Option<Expected> {
        let past = self.history.get(&unit)?;
        if past.state == *state {
            return Some((past.trace.clone(), past.observed.clone()));
        }
        past.stable.clone()
    }

    /// `state` as far as `unit` expands it (a gate may report more: inputs of assignments
    /// prediction computes).
    fn own_state(&self, unit: UnitId, state: &State) -> State {
        let Some(spec) = self.program.unit(unit) else {
            return state.clone();
        };
        State {
            vars: state
                .vars
                .iter()
                .filter(|(k, _)| spec.vars.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            context: state.context.clone(),
        }
    }

    fn gate_passed(&mut self, x: Instance, state: Option<State>) {
        let node = self.dag.node(&x);
        self.dag.get_mut(node).gate = Some(self.now);
        let (unit_node, background) = match &state {
            Some(state) => self.reached(&x, node, state),
            None => {
                let unit_node = self.program.units.get(&x.unit).copied();
                let background = unit_node.is_some_and(|n| in_background(&self.program, n));
                (unit_node, background)
            }
        };
        if !background {
            self.move_to(&x, unit_node);
        }
        if let Some(id) = self.by_instance.get(&x).copied() {
            self.drop_run(id, Why::Passed);
        }
        self.stats.direct += 1;
        self.dag.get_mut(node).direct = Some((self.now, None));
        self.direct.insert(x, node);
        self.refresh();
    }

    fn answer_direct(&mut self, x: Instance, node: NodeIndex) {
        self.stats.direct += 1;
        self.dag.get_mut(node).direct = Some((self.now, None));
        self.direct.insert(x.clone(), node);
        self.actions.push_back(Action::AnswerGate { instance: x });
    }

    /// Checks the file and flag conditions of DESIGN §3 for a finished run.
    fn validate(&self, run: &Run) -> Result<(), Why> {
        let Some((trace, _)) = &run.finished else {
            return Ok(());
        };
        if trace.flags.any() {
            return Err(Why::Unsafe(trace.flags));
        }
        if self.untraced > run.seen {
            return Err(Why::Untraced);
        }
        if let Some(h) = self.index.first_hazard(trace, run.seen) {
            return Err(Why::Conflict {
                path: h.path,
                observed: h.observed,
                wrote: h.wrote,
                by: self.dag.graph()[h.by].instance.clone(),
            });
        }
        Ok(())
    }

    fn try_commit(&mut self, id: RunId) {
        let run = &self.runs[&id];
        match self.validate(run) {
            Ok(()) => {
                self.committing = Some(id);
                self.actions.push_back(Action::Commit { run: id });
            }
            Err(why) => {
                let (x, node) = (run.instance.clone(), run.node);
                self.drop_run(id, why);
                self.answer_direct(x, node);
            }
        }
    }

    fn drop_run(&mut self, id: RunId, why: Why) {
        let Some(run) = self.runs.remove(&id) else {
            return;
        };
        if self.by_instance.get(&run.instance) == Some(&id) {
            self.by_instance.remove(&run.instance);
        }
        if self.waiting == Some(id) {
            self.waiting = None;
        }
        self.stats.discarded += 1;
        let now = self.now;
        if let Some(r) = self.dag.run_mut(run.node, id) {
            r.discarded = Some(why);
            self.stats.wasted += r.end.unwrap_or(now).saturating_sub(r.start);
        }
        self.actions.push_back(if run.finished.is_some() {
            Action::Discard { run: id }
        } else {
            Action::Kill { run: id }
        });
    }

    fn run_finished(&mut self, id: RunId, trace: Trace, exit: i32) {
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        let trace = Arc::new(trace);
        run.finished = Some((trace.clone(), exit));
        let observed = Arc::new(Observed::new(&trace));
        run.observed = Some(observed.clone());
        let (x, node, state) = (run.instance.clone(), run.node, run.state.clone());
        if let Some(r) = self.dag.run_mut(node, id) {
            r.end = Some(self.now);
        }
        if trace.flags.any() {
            self.unsafe_units.insert(x.unit);
        }
        // A flagged run's accesses still tell what the unit touches (to hold readers back).
        if learnable(&trace) {
            self.learn(x.unit, state, trace, observed);
        }
        if self.waiting == Some(id) {
            self.waiting = None;
            self.try_commit(id);
        } else if let Err(why) = self.validate(&self.runs[&id]) {
            self.drop_run(id, why);
        }
        self.refresh();
    }

    fn commit_done(&mut self, id: RunId) {
        if self.committing != Some(id) {
            return;
        }
        self.committing = None;
        let Some(run) = self.runs.remove(&id) else {
            return;
        };
        self.by_instance.remove(&run.instance);
        self.stats.committed += 1;
        let (trace, exit) = run.finished.expect("committed runs are finished");
        self.dag.get_mut(run.node).outcome = Outcome::Committed(id);
        self.effect(&run.instance, run.node, &trace, exit);
        self.refresh();
    }

    fn direct_finished(&mut self, x: Instance, trace: Trace, exit: i32) {
        let node = match self.direct.remove(&x) {
            Some(n) => n,
            None => self.dag.node(&x),
        };
        let r = self.dag.get_mut(node);
        r.outcome = Outcome::Direct;
        let start = r.direct.map_or(self.now, |d| d.0);
        r.direct = Some((start, Some(self.now)));
        if trace.flags.any() {
            self.unsafe_units.insert(x.unit);
        }
        let trace = Arc::new(trace);
        // Learned even when flagged: what the shell's own run changed is what later
        // instances of the unit will likely change, which holds their readers back.
        if learnable(&trace)
            && let Some(spec) = self.program.unit(x.unit)
        {
            // The state it ran with: what its gate reported, for the variables it expands.
            let at_gate = self
                .last_gate
                .as_ref()
                .filter(|(g, _)| *g == x)
                .map(|g| &g.1);
            let vars = spec
                .vars
                .iter()
                .map(|v| {
                    let value = match at_gate {
                        Some(st) => st.vars.get(v).cloned().flatten(),
                        None => self.known.get(v).cloned().flatten(),
                    };
                    (v.clone(), value)
                })
                .collect();
            let context = match at_gate {
                Some(st) => st.context.clone(),
                None => self.context.clone().unwrap_or_else(|| Arc::from(&[][..])),
            };
            let state = State { vars, context };
            // The engine traces the shell's own runs for changes only: the reads a past
            // run showed are kept (with this state's values put in).
            let learned = match self.expected(x.unit, &state) {
                Some((past, _)) if trace.reads.is_empty() && !past.reads.is_empty() => {
                    Arc::new(Trace {
                        reads: past.reads.clone(),
                        writes: trace.writes.clone(),
                        flags: trace.flags,
                    })
                }
                _ => trace.clone(),
            };
            let observed = Arc::new(Observed::new(&learned));
            self.learn(x.unit, state, learned, observed);
        }
        self.effect(&x, node, &trace, exit);
        self.refresh();
    }

    fn abandon(&mut self, id: RunId) {
        let Some(run) = self.runs.get(&id) else {
            return;
        };
        if run.finished.is_some() || Some(id) == self.committing {
            return;
        }
        let (x, node) = (run.instance.clone(), run.node);
        let waited = self.waiting == Some(id);
        // Not the run's fault: the attempt is given back.
        if let Some(a) = self.attempts.get_mut(&x) {
            *a = a.saturating_sub(1);
        }
        self.drop_run(id, Why::Abandoned);
        if waited {
            self.answer_direct(x, node);
        }
        self.refresh();
    }

    /// Records changes the shell made outside units, as an effect of the last instance that
    /// had one (or of a pseudo-instance before the first).
    fn shell_activity(&mut self, trace: Trace) {
        if trace.changes().next().is_none() && !trace.flags.contains(crate::Flags::UNTRACED) {
            return;
        }
        let (x, node) = match self.last_effective {
            Some(n) => (self.dag.graph()[n].instance.clone(), n),
            None => {
                let x = Instance::new(u32::MAX, &[]);
                let n = self.dag.node(&x);
                (x, n)
            }
        };
        self.changes(&x, node, &trace);
        self.refresh();
    }

    /// Records a completed effect and drops the finished runs it invalidates.
    fn effect(&mut self, x: &Instance, node: NodeIndex, trace: &Trace, exit: i32) {
        self.last_exit.insert(x.unit, exit);
        self.last_effective = Some(node);
        let r = self.dag.get_mut(node);
        r.exit = Some(exit);
        r.reads = trace.reads.len();
        r.writes = trace.writes.len();
        self.changes(x, node, trace);
    }

    /// The part of an effect shared with shell activity: index its changes and drop the runs
    /// that observed them.
    fn changes(&mut self, x: &Instance, node: NodeIndex, trace: &Trace) {
        self.seq += 1;
        for h in self.index.all_hazards(trace, 0) {
            self.dag.edge(
                h.by,
                node,
                Edge::ReadAfterWrite {
                    path: h.path,
                    observed: h.observed,
                    wrote: h.wrote,
                },
            );
        }
        self.index.add(trace, self.seq, node);
        if trace.flags.contains(crate::Flags::UNTRACED) {
            self.untraced = self.seq;
        }
        // Only this effect is new to the finished runs: test its writes against each.
        let untraced = trace.flags.contains(crate::Flags::UNTRACED);
        let mut doomed: Vec<(RunId, Why)> = Vec::new();
        // Still running: if the unit's history says it observes something this effect
        // changed, restart it now rather than later.
        let live: Vec<(RunId, UnitId, State)> = self
            .runs
            .iter()
            .filter(|(id, r)| r.finished.is_none() && Some(**id) != self.waiting)
            .map(|(id, r)| (*id, r.instance.unit, r.state.clone()))
            .collect();
        for (id, unit, state) in live {
            if let Some((_, observed)) = self.expected_surely(unit, &state)
                && let Some(path) = trace
                    .changes()
                    .find_map(|w| observed.hit_by(w).map(|h| h.0))
            {
                doomed.push((id, Why::Doomed { path }));
            }
        }
        for (&id, r) in &self.runs {
            if Some(id) == self.committing {
                continue;
            }
            let Some(observed) = &r.observed else {
                continue;
            };
            if untraced {
                doomed.push((id, Why::Untraced));
                continue;
            }
            if let Some((w, (path, kind))) = trace
                .changes()
                .find_map(|w| observed.hit_by(w).map(|h| (w, h)))
            {
                doomed.push((
                    id,
                    Why::Conflict {
                        path,
                        observed: kind,
                        wrote: w.kind,
                        by: x.clone(),
                    },
                ));
            }
        }
        for (id, why) in doomed {
            self.drop_run(id, why);
        }
    }

    /// Remembers a trace of `unit` run with `state` (see [`learnable`]).
    fn learn(&mut self, unit: UnitId, state: State, trace: Arc<Trace>, observed: Arc<Observed>) {
        let stable = match self.history.remove(&unit) {
            Some(old) if old.state != state => {
                let t = common(&old.trace, &trace);
                let o = Observed::new(&t);
                Some((Arc::new(t), Arc::new(o)))
            }
            Some(old) => old.stable,
            None => None,
        };
        self.history.insert(
            unit,
            Past {
                state,
                trace,
                observed,
                stable,
            },
        );
        *self.versions.entry(unit).or_default() += 1;
    }

    /// What a run of `unit` with `state` is expected to touch, from its history; for a unit
    /// that never ran, the paths its words name ([`crate::PathGuess`]).
    fn expected(&mut self, unit: UnitId, state: &State) -> Option<Expected> {
        let version = self.versions.get(&unit).copied().unwrap_or(0);
        let key = (unit, state.clone());
        if let Some((v, e)) = self.expect_cache.get(&key)
            && *v == version
        {
            return e.clone();
        }
        let e = match self.history.get(&unit) {
            Some(past) => past.expect(state),
            None => self.guessed(unit, state),
        };
        if self.expect_cache.len() > 4096 {
            self.expect_cache.clear();
        }
        self.expect_cache.insert(key, (version, e.clone()));
        e
    }

    /// What the words of `unit` say it touches with `state` (see [`crate::PathGuess`]).
    fn guessed(&self, unit: UnitId, state: &State) -> Option<Expected> {
        let spec = self.program.unit(unit)?;
        if spec.paths.is_empty() {
            return None;
        }
        let cwd = state.context.split(|&b| b == 0).next().unwrap_or_default();
        let trace = crate::program::guessed_trace(&spec.paths, &state.vars, cwd);
        if trace.reads.is_empty() && trace.writes.is_empty() {
            return None;
        }
        let observed = Observed::new(&trace);
        Some((Arc::new(trace), Arc::new(observed)))
    }

    fn shell_exited(&mut self) {
        let ids: Vec<RunId> = self.runs.keys().copied().collect();
        for id in ids {
            if Some(id) != self.committing {
                self.drop_run(id, Why::ShellExited);
            }
        }
        let pending: Vec<NodeIndex> = self
            .dag
            .graph()
            .node_indices()
            .filter(|&n| self.dag.graph()[n].outcome == Outcome::Pending)
            .collect();
        for n in pending {
            if self.dag.graph()[n].direct.is_none() {
                self.dag.get_mut(n).outcome = Outcome::Dropped;
            }
        }
        self.exited = true;
    }

    fn predict(&self) -> Vec<Pred> {
        let status = |i: &Instance| -> Option<bool> {
            if let Some(id) = self.by_instance.get(i)
                && let Some((_, exit)) = &self.runs[id].finished
            {
                return Some(*exit == 0);
            }
            self.last_exit.get(&i.unit).map(|&e| e == 0)
        };
        let walker = Walker {
            program: &self.program,
            loops: &self.loops,
            latest: &self.latest,
            known: &self.known,
            memory: &self.memory,
            inner: self.inner.as_ref(),
            status: &status,
        };
        let cursor = match &self.pos {
            Pos::Start => Some(walker.start()),
            Pos::After(x) => walker.after(x),
            Pos::Lost => None,
        };
        cursor
            .map(|c| walker.walk(c, self.config.lookahead))
            .unwrap_or_default()
    }

    /// Re-predicts the path, drops runs off it or with stale state, and fills the window.
    fn refresh(&mut self) {
        if self.exited || self.committing.is_some() {
            return;
        }
        let path = self.predict();
        // First occurrence wins (a function called twice repeats its instances).
        let mut ahead: HashMap<&Instance, &Pred> = HashMap::new();
        for p in &path {
            ahead.entry(&p.instance).or_insert(p);
        }
        let mut stale = Vec::new();
        for (&id, run) in &self.runs {
            if Some(id) == self.waiting {
                continue;
            }
            match ahead.get(&run.instance) {
                None => stale.push((id, Why::WrongPath)),
                Some(p) => {
                    if let Some(vars) = &p.vars {
                        let predicted = State {
                            vars: vars.clone(),
                            context: p
                                .context
                                .clone()
                                .or_else(|| self.context.clone())
                                .unwrap_or_else(|| Arc::from(&[][..])),
                        };
                        if let Some(name) = run.state.mismatch(&predicted) {
                            stale.push((id, Why::State(name)));
                        }
                    }
                }
            }
        }
        for (id, why) in stale {
            // Not the run's fault: the attempt is given back.
            if let Some(a) = self
                .runs
                .get(&id)
                .and_then(|r| self.attempts.get_mut(&r.instance))
            {
                *a = a.saturating_sub(1);
            }
            self.drop_run(id, why);
        }
        if self.config.window == 0 {
            return;
        }
        let Some(context) = self.context.clone() else {
            return;
        };
        // The run the shell waits for does the shell's own work: it takes no window slot.
        let mut running = self.running() - usize::from(self.waiting.is_some());
        if running >= self.config.window {
            return;
        }
        // Expected writes of everything between the shell and each candidate.
        let mut pending: WriteIndex<()> = WriteIndex::default();
        let busy: Vec<(UnitId, Option<State>)> = self
            .direct
            .keys()
            .map(|x| {
                let at_gate = self.last_gate.as_ref().filter(|(g, _)| g == x);
                (x.unit, at_gate.map(|g| self.own_state(x.unit, &g.1)))
            })
            .chain(self.waiting.map(|id| {
                let r = &self.runs[&id];
                (r.instance.unit, Some(r.state.clone()))
            }))
            .collect();
        for (unit, state) in busy {
            let t = match state {
                Some(st) => self.expected(unit, &st).map(|e| e.0),
                None => self
                    .history
                    .get(&unit)
                    .and_then(|p| p.stable.clone())
                    .map(|e| e.0),
            };
            if let Some(t) = t {
                pending.add(&t, 1, ());
            }
        }
        for pred in &path {
            if running >= self.config.window {
                break;
            }
            let expected = match self.by_instance.get(&pred.instance) {
                Some(id) if self.runs[id].finished.is_some() => {
                    self.runs[id].finished.as_ref().map(|f| f.0.clone())
                }
                _ => match &pred.vars {
                    Some(vars) => {
                        let state = State {
                            vars: vars.clone(),
                            context: pred.context.clone().unwrap_or_else(|| context.clone()),
                        };
                        self.expected(pred.instance.unit, &state).map(|e| e.0)
                    }
                    None => self
                        .history
                        .get(&pred.instance.unit)
                        .and_then(|p| p.stable.clone())
                        .map(|e| e.0),
                },
            };
            let eligible = !self.by_instance.contains_key(&pred.instance)
                && pred.vars.is_some()
                && !self.unsafe_units.contains(&pred.instance.unit)
                && !self.too_short.contains(&pred.instance.unit)
                && self.attempts.get(&pred.instance).copied().unwrap_or(0)
                    < self.config.max_attempts;
            if eligible {
                let held = self.config.hold_back
                    && !pending.is_empty()
                    && expected
                        .as_ref()
                        .is_some_and(|t| pending.first_hazard(t, 0).is_some());
                if held {
                    if self.held.insert(pred.instance.clone()) {
                        self.stats.held += 1;
                    }
                } else {
                    self.start(
                        pred,
                        pred.context.clone().unwrap_or_else(|| context.clone()),
                    );
                    running += 1;
                }
            }
            if let Some(t) = expected {
                pending.add(&t, 1, ());
            }
        }
    }

    fn start(&mut self, pred: &Pred, context: Arc<[u8]>) {
        let id = RunId(self.next_run);
        self.next_run += 1;
        let x = pred.instance.clone();
        let state = State {
            vars: pred.vars.clone().unwrap_or_default(),
            context,
        };
        let node = self.dag.node(&x);
        if let Some(from) = pred.control.as_ref().and_then(|d| self.dag.node_of(d)) {
            self.dag.edge(from, node, Edge::Control);
        }
        self.dag.get_mut(node).runs.push(RunRecord {
            run: id,
            start: self.now,
            end: None,
            discarded: None,
        });
        *self.attempts.entry(x.clone()).or_default() += 1;
        self.stats.started += 1;
        self.runs.insert(
            id,
            Run {
                instance: x.clone(),
                state: state.clone(),
                seen: self.seq,
                node,
                finished: None,
                observed: None,
            },
        );
        self.by_instance.insert(x.clone(), id);
        self.actions.push_back(Action::Start {
            run: id,
            instance: x,
            state,
        });
    }
}
