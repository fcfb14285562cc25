//! The dependency DAG of instances and what became of each.

use std::collections::HashMap;
use std::time::Duration;

use petgraph::dot::{Config as DotConfig, Dot};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::access::{AccessKind, Flags};
use crate::state::Instance;

/// Identifies one speculative run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RunId(pub u64);

/// Why a speculative run was thrown away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Why {
    /// The shell did not take the path it was on.
    WrongPath,
    /// A variable it expands (named) or the context (`None`) differs from what it used.
    State(Option<Vec<u8>>),
    /// An instance it could not see changed what it observed.
    Conflict {
        /// The observed path.
        #[serde(serialize_with = "crate::access::lossy")]
        path: Vec<u8>,
        /// How it was observed.
        observed: AccessKind,
        /// How the writer changed it.
        wrote: AccessKind,
        /// The writer.
        by: Instance,
    },
    /// An effect completed after it started has an incomplete trace.
    Untraced,
    /// Still running when the shell reached it, and an earlier trace of the same unit with
    /// the same state observed `path`, which changed after the run started: the shell runs
    /// it rather than wait for a result that would most likely be thrown away.
    Doomed {
        /// The path.
        #[serde(serialize_with = "crate::access::lossy")]
        path: Vec<u8>,
    },
    /// It did something that cannot be undone or observed.
    Unsafe(Flags),
    /// A background job the shell started was still running at its gate.
    Background,
    /// The engine gave it up (the shell got there before its sandbox was ready).
    Abandoned,
    /// The shell ran the unit itself without asking ([`crate::Event::GatePassed`]).
    Passed,
    /// The shell exited first.
    ShellExited,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            Why::WrongPath => write!(f, "off the path the shell took"),
            Why::State(Some(v)) => write!(f, "${} changed", p(v)),
            Why::State(None) => write!(f, "cwd, umask, options or environment changed"),
            Why::Conflict {
                path,
                observed,
                wrote,
                by,
            } => write!(
                f,
                "{} ({observed:?}) was changed by {by} ({wrote:?})",
                p(path)
            ),
            Why::Untraced => write!(f, "an untraced run may have changed what it read"),
            Why::Doomed { path } => write!(f, "its last run read {}, which changed", p(path)),
            Why::Unsafe(flags) => write!(f, "unsafe: {}", flags.names().join(", ")),
            Why::Background => write!(f, "a background job was running"),
            Why::Abandoned => write!(f, "the shell got there before its sandbox was ready"),
            Why::Passed => write!(f, "the shell ran it without waiting at its gate"),
            Why::ShellExited => write!(f, "the shell exited first"),
        }
    }
}

/// What finally became of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Not decided yet.
    Pending,
    /// A speculative run was committed.
    Committed(RunId),
    /// The shell ran it itself.
    Direct,
    /// Speculated but never reached (wrong path, or the shell exited).
    Dropped,
}

/// One attempt to run an instance speculatively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// The run.
    pub run: RunId,
    /// When it was started, since the first event.
    pub start: Duration,
    /// When it finished, if it did.
    pub end: Option<Duration>,
    /// `None` while live or if committed; otherwise why it was discarded or killed.
    pub discarded: Option<Why>,
}

/// What the report says about one instance (one node of the DAG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceRecord {
    /// The instance.
    pub instance: Instance,
    /// Final outcome.
    pub outcome: Outcome,
    /// Speculative attempts, in order.
    pub runs: Vec<RunRecord>,
    /// When the shell ran it itself: start and end.
    pub direct: Option<(Duration, Option<Duration>)>,
    /// When the shell reached its gate.
    pub gate: Option<Duration>,
    /// Exit status of the effective execution.
    pub exit: Option<i32>,
    /// Sizes of the effective execution's read and write sets.
    pub reads: usize,
    /// See `reads`.
    pub writes: usize,
}

/// Why one instance depends on another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Edge {
    /// The target observed (`observed`) a path the source changed (`wrote`).
    ReadAfterWrite {
        /// The path.
        #[serde(serialize_with = "crate::access::lossy")]
        path: Vec<u8>,
        /// How the target observed it.
        observed: AccessKind,
        /// How the source changed it.
        wrote: AccessKind,
    },
    /// The source's exit status decided whether the target runs.
    Control,
    /// The shell changed a variable (or the context, `None`) the target expands after the
    /// source ran.
    State(Option<Vec<u8>>),
}

/// Everything `--report` needs, serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Counters.
    pub stats: crate::Stats,
    /// One record per instance occurrence, in creation order.
    pub instances: Vec<InstanceRecord>,
    /// Longest dependency chain through the DAG, by effective run time.
    pub critical_path: Duration,
    /// Sum of effective run times (what a sequential run spends in units).
    pub total: Duration,
}

/// Instances as nodes, dependencies as edges. Edges always point forward in time, so the
/// graph is acyclic.
#[derive(Debug, Default)]
pub struct Dag {
    graph: StableDiGraph<InstanceRecord, Edge>,
    current: HashMap<Instance, NodeIndex>,
}

impl Dag {
    /// The graph.
    pub fn graph(&self) -> &StableDiGraph<InstanceRecord, Edge> {
        &self.graph
    }

    /// Every instance record, in creation order.
    pub fn records(&self) -> impl Iterator<Item = &InstanceRecord> {
        self.graph.node_weights()
    }

    /// The record of the latest occurrence of `instance`.
    pub fn record(&self, instance: &Instance) -> Option<&InstanceRecord> {
        self.current.get(instance).map(|&n| &self.graph[n])
    }

    /// Graphviz text: one node per instance labelled with its outcome, edges by kind.
    pub fn to_dot(&self) -> String {
        let g = self.graph.map(
            |_, r| {
                let o = match &r.outcome {
                    Outcome::Pending => "pending".to_string(),
                    Outcome::Committed(run) => format!("committed r{}", run.0),
                    Outcome::Direct => "direct".to_string(),
                    Outcome::Dropped => "dropped".to_string(),
                };
                format!("{} {} ({} runs)", r.instance, o, r.runs.len())
            },
            |_, e| match e {
                Edge::ReadAfterWrite {
                    path,
                    observed,
                    wrote,
                } => format!(
                    "raw {} {:?}/{:?}",
                    String::from_utf8_lossy(path),
                    wrote,
                    observed
                ),
                Edge::Control => "control".to_string(),
                Edge::State(Some(v)) => format!("state ${}", String::from_utf8_lossy(v)),
                Edge::State(None) => "state context".to_string(),
            },
        );
        format!(
            "{}",
            Dot::with_attr_getters(
                &g,
                &[DotConfig::EdgeNoLabel, DotConfig::NodeNoLabel],
                &|_, e| format!("label={:?}", e.weight()),
                &|_, (_, w)| format!("label={w:?}"),
            )
        )
    }

    /// Length of the longest dependency chain, weighting each node with the duration of its
    /// effective execution; with the sum of all durations it bounds the achievable speedup.
    pub fn critical_path(&self) -> (Duration, Duration) {
        let dur = |r: &InstanceRecord| -> Duration {
            match (&r.outcome, &r.direct) {
                (Outcome::Direct, Some((s, Some(e)))) => e.saturating_sub(*s),
                (Outcome::Committed(run), _) => r
                    .runs
                    .iter()
                    .find(|x| x.run == *run)
                    .and_then(|x| x.end.map(|e| e.saturating_sub(x.start)))
                    .unwrap_or_default(),
                _ => Duration::ZERO,
            }
        };
        let mut best: HashMap<NodeIndex, Duration> = HashMap::new();
        let mut total = Duration::ZERO;
        let mut longest = Duration::ZERO;
        // Edges point forward in time, so the graph is acyclic.
        let order = petgraph::algo::toposort(&self.graph, None).unwrap_or_default();
        for n in order {
            let d = dur(&self.graph[n]);
            total += d;
            let before = self
                .graph
                .edges_directed(n, petgraph::Direction::Incoming)
                .map(|e| best.get(&e.source()).copied().unwrap_or_default())
                .max()
                .unwrap_or_default();
            best.insert(n, before + d);
            longest = longest.max(before + d);
        }
        (longest, total)
    }

    /// The node of the current occurrence of `instance`, creating one if there is none or the
    /// last one is decided.
    pub(crate) fn node(&mut self, instance: &Instance) -> NodeIndex {
        if let Some(&n) = self.current.get(instance)
            && self.graph[n].outcome == Outcome::Pending
        {
            return n;
        }
        let n = self.graph.add_node(InstanceRecord {
            instance: instance.clone(),
            outcome: Outcome::Pending,
            runs: Vec::new(),
            direct: None,
            gate: None,
            exit: None,
            reads: 0,
            writes: 0,
        });
        self.current.insert(instance.clone(), n);
        n
    }

    pub(crate) fn node_of(&self, instance: &Instance) -> Option<NodeIndex> {
        self.current.get(instance).copied()
    }

    pub(crate) fn get_mut(&mut self, n: NodeIndex) -> &mut InstanceRecord {
        &mut self.graph[n]
    }

    pub(crate) fn run_mut(&mut self, n: NodeIndex, run: RunId) -> Option<&mut RunRecord> {
        self.graph[n].runs.iter_mut().find(|r| r.run == run)
    }

    pub(crate) fn edge(&mut self, from: NodeIndex, to: NodeIndex, edge: Edge) {
        if from == to || self.graph.find_edge(from, to).is_some() {
            return;
        }
        self.graph.add_edge(from, to, edge);
    }
}
