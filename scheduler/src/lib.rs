//! The speculation scheduler of hs: which unit instances to run ahead of the shell, and
//! whether their results may be committed when the shell gets there.
//!
//! [`Scheduler`] is a pure state machine, shaped like quinn-proto's `Connection`: it is fully
//! deterministic, does no I/O, reads no clock (time comes in as a parameter), starts no
//! threads and uses no randomness. The engine owns everything real and drives it in one loop:
//! receive something → [`Scheduler::handle`] an [`Event`] → drain
//! [`Scheduler::poll_action`] → carry out each [`Action`].
//!
//! Inputs: the control-flow tree of the script ([`Node`], flattened into a [`Program`]), the
//! shell's position and [`State`] at each gate, loop word lists, and the [`Trace`]
//! (read/write sets and unsafe [`Flags`]) of every execution, speculative or direct. Outputs:
//! start, kill, commit or discard a speculative run, or tell the shell to run a unit itself.
//!
//! Why sans-IO: every decision (what to start, what to commit, what to throw away) is a
//! function of the events seen so far, so it can be tested exhaustively on a simulated shell
//! and sandbox with a virtual clock (`tests/sim`), including a property test that the
//! committed results always equal a sequential run.
//!
//! # Validity (DESIGN §3)
//!
//! A speculative run of instance J is committed at J's gate iff:
//!
//! - **state**: the variables J expands and the context equal what the run used;
//! - **files**: no effect (commit or direct run) completed after the run started changed
//!   anything it observed. Read-after-write only: listings, failed lookups, metadata, appends,
//!   creations and deletions are observations; a truncating write is not. Writing, appending,
//!   creating or deleting in a directory changes its listing; deleting a directory observes
//!   that it was empty; creating or deleting a path replaces everything below it;
//! - **safety**: its trace has no unsafe [`Flags`];
//! - **control**: the shell is at J.
//!
//! # Prediction
//!
//! The path is walked from the shell's last gate: `for` words as reported (or literal),
//! branches from the condition's speculative or last exit status (else the arm taken last
//! time, else taken), plain assignments computed, function bodies entered at [`Node::Call`]
//! (and left to the call site when there is only one). It stops at [`Node::Unknown`], `&` and
//! context changes. A misprediction drops only the runs off the new path; an effect drops only
//! the finished runs that observed what it changed, and those are restarted.
//!
//! Rattle's idea, extended: a unit's last trace predicts its next one (same state: as is;
//! new state: paths holding an old variable value get the new one, plus what its last two
//! traces shared). Speculations expected to read what an earlier pending instance is expected
//! to write are held back, and running ones expected to have read what an effect just
//! changed are restarted at once ([`Why::Doomed`]).
//!
//! # Driving it
//!
//! The engine's obligations, in the order things happen:
//!
//! 1. Build a [`Program`] from the parser's tree and a [`Scheduler`] with a [`Config`]
//!    (`window` = `-j`, 0 for `--no-speculate`). Send [`Event::Started`] with the shell's
//!    initial variables and context.
//! 2. Carry out every [`Action`] in order as soon as it is polled. [`Action::Start`]: set a
//!    sandbox up over the live file system *as it is at that moment* (every earlier commit
//!    complete), run the unit with the given state, report [`Event::RunFinished`].
//!    [`Action::Kill`] and [`Action::Discard`]: throw the sandbox away; no event follows.
//! 3. At a gate, send [`Event::GateReached`]. The scheduler answers with exactly one of
//!    [`Action::Commit`] (commit the upper layer, then answer the gate with the run's
//!    exit status and replay its output, then send [`Event::CommitDone`]) or
//!    [`Action::AnswerGate`] (the shell runs the unit itself, traced; send
//!    [`Event::DirectRunFinished`] when it exits, before the next gate). The answer may come
//!    only after a later [`Event::RunFinished`], when the run is still executing.
//! 4. Send [`Event::LoopStarted`] when a `for` loop has expanded its words, before the first
//!    gate inside it. [`Instance::iters`] holds one 0-based index per enclosing loop.
//! 5. Send [`Event::ShellExited`] at the end; everything still live is killed or discarded.
//!    [`Scheduler::report`] and [`Dag::to_dot`] give `--report` and `--dag`.
//!
//! Traces: `reads` from the tracer, `writes` from the overlay's upper layer (or the tracer
//! for direct runs), paths absolute and normalized. A run whose trace may miss accesses must
//! carry [`Flags::UNTRACED`]: a direct run with it invalidates every speculation that
//! overlapped it.
//!
//! ```
//! use scheduler::{Action, Config, Event, Instance, Node, Program, Scheduler, State, UnitSpec, UnitId};
//! use std::time::Instant;
//!
//! let unit = |id| Node::Unit(UnitSpec { id: UnitId(id), vars: vec![], paths: vec![] });
//! let program = Program::new(Node::Seq(vec![unit(0), unit(1)]));
//! let mut s = Scheduler::new(Config::default(), program);
//! s.handle(Instant::now(), Event::Started { state: State::default() });
//! // Both units are started speculatively.
//! let mut started = 0;
//! while let Some(a) = s.poll_action() {
//!     if let Action::Start { .. } = a { started += 1 }
//! }
//! assert_eq!(started, 2);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod access;
mod dag;
mod machine;
mod predict;
mod program;
mod state;

pub use crate::{
    access::{Access, AccessKind, Flags, Trace},
    dag::{Dag, Edge, InstanceRecord, Outcome, Report, RunId, RunRecord, Why},
    machine::{Action, Config, Event, Scheduler, Stats},
    program::{Connector, LoopId, Node, PathGuess, PathUse, Piece, Program, UnitId, UnitSpec},
    state::{Instance, State},
};
