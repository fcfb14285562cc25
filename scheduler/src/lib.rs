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
//! A speculative run of instance J is committed at J's gate iff (DESIGN §3): the variables J
//! expands and the context equal what the run used; no effect completed after the run
//! started changed anything it observed (read-after-write only: listings, failed lookups,
//! metadata and appends are observations); its trace has no unsafe flag; and the shell is at
//! J. Prediction walks the tree from the shell's last gate; a misprediction drops only the
//! runs off the new path.
//!
//! ```
//! use scheduler::{Action, Config, Event, Instance, Node, Program, Scheduler, State, UnitSpec, UnitId};
//! use std::time::Instant;
//!
//! let unit = |id| Node::Unit(UnitSpec { id: UnitId(id), vars: vec![] });
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
    access::{Access, AccessKind, Flags, Hazard, Trace},
    dag::{Dag, Edge, InstanceRecord, Outcome, Report, RunId, RunRecord, Why},
    machine::{Action, Config, Event, Scheduler, Stats},
    program::{Connector, LoopId, Node, Piece, Program, UnitId, UnitSpec},
    state::{Instance, State},
};
