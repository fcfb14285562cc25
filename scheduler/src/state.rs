//! Unit instances and the shell state a unit observes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::program::{LoopId, UnitId};

/// One execution of a unit: the unit and the iteration index of each enclosing loop,
/// outermost first (0-based; a `while` condition and body share their iteration's index).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Instance {
    /// The unit.
    pub unit: UnitId,
    /// Iteration indices of the enclosing loops.
    pub iters: Vec<u32>,
}

impl Instance {
    /// Shorthand constructor.
    pub fn new(unit: u32, iters: &[u32]) -> Instance {
        Instance {
            unit: UnitId(unit),
            iters: iters.to_vec(),
        }
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unit.0 == u32::MAX {
            // The shell's own activity before its first gate (Event::ShellActivity).
            return write!(f, "shell");
        }
        write!(f, "u{}", self.unit.0)?;
        if !self.iters.is_empty() {
            write!(f, "{:?}", self.iters)?;
        }
        Ok(())
    }
}

/// A loop execution: the loop and the iteration indices of the loops around it.
pub(crate) type LoopKey = (LoopId, Vec<u32>);

/// What a unit's expansion observes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct State {
    /// Shell variables by name: `Some(value)` when set, `None` when unset. At a gate, at least
    /// the variables the unit references, unset ones included as `None` (a missing name
    /// counts as a mismatch); in a prediction, exactly those.
    pub vars: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Exported environment, cwd, umask and the shell options that change expansion, encoded
    /// by the engine; compared bytewise, and handed back in predictions so a sandbox can be
    /// set up from it. It starts with the working directory, ended by a NUL byte (relative
    /// [`crate::PathGuess`] words are joined to it).
    pub context: Arc<[u8]>,
}

impl State {
    /// Why `self` (what a speculation used) differs from `actual`, if it does: the name of the
    /// first differing variable, or `None` inside `Some` when the context differs.
    pub(crate) fn mismatch(&self, actual: &State) -> Option<Option<Vec<u8>>> {
        if self.context != actual.context {
            return Some(None);
        }
        for (name, value) in &self.vars {
            if actual.vars.get(name) != Some(value) {
                return Some(Some(name.clone()));
            }
        }
        None
    }
}
