//! `hs trace`.

use std::process::ExitCode;

use crate::cli::TraceArgs;

/// `hs trace`.
pub fn trace_main(_args: TraceArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("hs trace is not implemented yet")
}
