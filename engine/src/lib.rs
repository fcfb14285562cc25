//! The `hs` binary: CLI, runs real bash on the instrumented script, serves gates.
#![forbid(unsafe_code)]

pub mod cli;
mod gate;
mod program;
mod run;
mod spec;
mod state;
pub mod timeline;
mod trace_cmd;
mod try_cmd;
mod views;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Entry point of the `hs` binary.
pub fn main() -> ExitCode {
    // hs exec'd as a sandbox zygote by its own gate server (see sandbox's zygote) never returns.
    sandbox::zygote_main_if_asked();
    let cli = Cli::parse_from(cli::attached_jobs(std::env::args_os()));
    init_logging(cli.run.verbose);
    let result = match cli.command {
        Some(Command::Try(args)) => try_cmd::try_main(args),
        Some(Command::Summary { dir, json }) => try_cmd::summary_main(&dir, json),
        Some(Command::Commit { dir }) => try_cmd::commit_main(&dir),
        Some(Command::Explore { dir }) => try_cmd::explore_main(dir.as_deref()),
        Some(Command::Recover) => try_cmd::recover_main(),
        Some(Command::Trace(args)) => trace_cmd::trace_main(args),
        Some(Command::Parse { script }) => parse_main(&script, false),
        Some(Command::Instrument { script }) => parse_main(&script, true),
        Some(Command::Shell(args)) => views::shell_main(args),
        Some(Command::Bind { ro, src, dst }) => views::bind_main(&src, &dst, ro),
        Some(Command::Unbind { dst }) => views::unbind_main(&dst),
        None if !cli.run.bind.is_empty() || !cli.run.ro_bind.is_empty() => views::run_main(cli.run),
        None => run::run(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hs: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, filtered by `HS_LOG` (e.g. `HS_LOG=debug`); `-v` means `info`.
fn init_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("HS_LOG") {
        Ok(v) => EnvFilter::new(v),
        Err(_) if verbose => EnvFilter::new("info"),
        Err(_) => return,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `hs parse` / `hs instrument`.
fn parse_main(path: &std::path::Path, instrument: bool) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use std::io::Write;
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read script {}", path.display()))?;
    let script =
        parser::parse(&bytes).with_context(|| format!("cannot parse {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    if instrument {
        out.write_all(&parser::instrument(&bytes, &script))?;
    } else {
        serde_json::to_writer_pretty(&mut out, &script)?;
        out.write_all(b"\n")?;
    }
    Ok(ExitCode::SUCCESS)
}
