//! Errors of the tracer.

use std::ffi::OsString;
use std::io;

/// An error setting up or running a trace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A row of the seccomp rule table is invalid.
    #[error("invalid seccomp rule for syscall {nr}: {reason}")]
    InvalidRule {
        /// The syscall number (-1 for the table as a whole).
        nr: i64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A setup step of the supervisor failed.
    #[error("failed to {action}")]
    Setup {
        /// What was being done, e.g. "create the listener pipe".
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The traced command could not be started.
    #[error("failed to start {program:?}")]
    Spawn {
        /// The program.
        program: OsString,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Waiting for the traced command failed.
    #[error("failed to wait for the traced command")]
    Wait(#[source] io::Error),
    /// The supervisor stopped with an error; the trace is incomplete.
    #[error("the trace supervisor failed")]
    Supervisor(#[source] io::Error),
    /// The supervisor thread panicked.
    #[error("the trace supervisor panicked")]
    SupervisorPanicked,
}
