//! `hs try`, `hs summary`, `hs commit`, `hs explore`, `hs recover`.

use std::process::ExitCode;

use crate::cli::TryArgs;

/// `hs try`.
pub fn try_main(_args: TryArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("hs try is not implemented yet")
}

/// `hs summary DIR`.
pub fn summary_main(_dir: &std::path::Path, _json: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!("hs summary is not implemented yet")
}

/// `hs commit DIR`.
pub fn commit_main(_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("hs commit is not implemented yet")
}

/// `hs explore [DIR]`.
pub fn explore_main(_dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("hs explore is not implemented yet")
}

/// `hs recover`.
pub fn recover_main() -> anyhow::Result<ExitCode> {
    anyhow::bail!("hs recover is not implemented yet")
}
