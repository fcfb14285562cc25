//! The `hs` binary: CLI, runs real bash on the instrumented script, serves gates.
#![forbid(unsafe_code)]

pub mod cli;
mod trace_cmd;
mod try_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Entry point of the `hs` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Try(args)) => try_cmd::try_main(args),
        Some(Command::Summary { dir, json }) => try_cmd::summary_main(&dir, json),
        Some(Command::Commit { dir }) => try_cmd::commit_main(&dir),
        Some(Command::Explore { dir }) => try_cmd::explore_main(dir.as_deref()),
        Some(Command::Recover) => try_cmd::recover_main(),
        Some(Command::Trace(args)) => trace_cmd::trace_main(args),
        Some(Command::Parse { .. }) | Some(Command::Instrument { .. }) | None => {
            Ok(ExitCode::SUCCESS)
        }
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
