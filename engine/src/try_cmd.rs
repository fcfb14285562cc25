//! `hs try`, `hs summary`, `hs commit`, `hs explore`, `hs recover`.
//!
//! Output contract: stdout and stderr of the sandboxed command pass through untouched, and
//! `hs try` exits with the command's own status (128 + N if it was killed by signal N). The
//! change set and every message of hs itself go to **stderr**, so `hs try cmd > out` captures
//! exactly what `cmd > out` would. `hs summary` is the exception: the change set is what was
//! asked for, so it goes to stdout (text, or JSON with `--json`). `hs try --plan` prints the
//! setup plan on stdout.
//!
//! Committing: `-y` commits, `-n` never does (the sandbox is kept and its directory printed);
//! otherwise hs asks when stdin is a terminal, and keeps the sandbox when it is not. Errors of
//! hs itself exit with 2 (see `engine::main`).

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sandbox::{Command, Options, Sandbox};

use crate::cli::TryArgs;

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn recover_pending() {
    match sandbox::recover_all() {
        Ok(dirs) => {
            for d in dirs {
                eprintln!("hs: recovered an interrupted commit of {}", d.display());
            }
        }
        Err(e) => eprintln!("hs: warning: recovery of interrupted commits failed: {e}"),
    }
}

fn open_or_create(dir: Option<&Path>, net: bool) -> anyhow::Result<(Sandbox, bool)> {
    let opts = Options {
        net,
        ..Options::default()
    };
    Ok(match dir {
        Some(d) => (
            Sandbox::create(d, &opts)
                .with_context(|| format!("failed to set up sandbox {}", d.display()))?,
            true,
        ),
        None => (
            Sandbox::create_temp(&opts).context("failed to set up a sandbox")?,
            false,
        ),
    })
}

/// Show the change set, then commit, keep or discard per `-y`/`-n`/the user's answer.
fn conclude(sb: Sandbox, keep: bool, yes: bool, no: bool) -> anyhow::Result<()> {
    let changes = sb
        .changes()
        .context("failed to read the sandbox's changes")?;
    let mut err = std::io::stderr().lock();
    if changes.is_empty() {
        writeln!(err, "hs try: no changes")?;
        if !keep {
            sb.discard()?;
        }
        return Ok(());
    }
    writeln!(err, "hs try: changes:")?;
    err.write_all(changes.to_text().as_bytes())?;
    let commit = if yes {
        true
    } else if no || !std::io::stdin().is_terminal() {
        false
    } else {
        write!(err, "hs try: commit these changes? [y/N] ")?;
        err.flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        matches!(line.trim(), "y" | "Y" | "yes")
    };
    if commit {
        let r = sb
            .commit()
            .with_context(|| format!("failed to commit sandbox {}", sb.dir().display()))?;
        tracing::debug!(?r, "committed");
        if !keep {
            sb.discard()?;
        }
    } else {
        writeln!(
            err,
            "hs try: not committed; the sandbox is kept in {} (hs commit {0}, hs summary {0})",
            sb.dir().display()
        )?;
    }
    Ok(())
}

/// `hs try`.
pub fn try_main(args: TryArgs) -> anyhow::Result<ExitCode> {
    recover_pending();
    let cmd = match &args.command_string {
        Some(s) => {
            let mut argv: Vec<OsString> = vec!["bash".into(), "-c".into(), s.clone()];
            argv.extend(args.argv.iter().cloned());
            Command::new(argv)
        }
        None if args.argv.is_empty() && !args.plan => {
            anyhow::bail!("no command given (usage: hs try [OPTIONS] [--] CMD [ARGS...])")
        }
        None => Command::new(args.argv.clone()),
    };
    let (sb, keep) = open_or_create(args.dir.as_deref(), args.net)?;
    if args.plan {
        if let Some(plan) = sb.plan() {
            print!("{plan}");
        }
        if !keep {
            sb.discard()?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut child = match sb.spawn(&cmd) {
        Ok(c) => c,
        Err(e) => {
            if !keep {
                let _ = sb.discard();
            }
            return Err(e).context("failed to start the command in a sandbox");
        }
    };
    drop(cmd);
    let code = child.wait_interactive()?;
    conclude(sb, keep, args.yes, args.no)?;
    Ok(exit_code(code))
}

/// `hs summary DIR`.
pub fn summary_main(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let sb = Sandbox::open(dir)?;
    let changes = sb.changes()?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &changes.to_json())?;
        writeln!(out)?;
    } else {
        out.write_all(changes.to_text().as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `hs commit DIR`.
pub fn commit_main(dir: &Path) -> anyhow::Result<ExitCode> {
    recover_pending();
    let sb = Sandbox::open(dir)?;
    let r = sb
        .commit()
        .with_context(|| format!("failed to commit sandbox {}", dir.display()))?;
    eprintln!(
        "hs commit: {} renamed, {} copied, {} deleted, {} directories updated",
        r.renamed, r.copied, r.deleted, r.metadata
    );
    Ok(ExitCode::SUCCESS)
}

/// `hs explore [DIR]`.
pub fn explore_main(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    recover_pending();
    let (sb, keep) = open_or_create(dir, false)?;
    let shell = std::env::var_os("SHELL").unwrap_or_else(|| "bash".into());
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    env.push(("HS_SANDBOX".into(), sb.dir().as_os_str().to_owned()));
    let mut child = sb.spawn(&Command::new([shell, "-i".into()]).env(env))?;
    let code = child.wait_interactive()?;
    conclude(sb, keep, false, false)?;
    Ok(exit_code(code))
}

/// `hs recover`.
pub fn recover_main() -> anyhow::Result<ExitCode> {
    let dirs = sandbox::recover_all()?;
    let stale = sandbox::remove_stale()?;
    if dirs.is_empty() && stale.is_empty() {
        eprintln!("hs recover: nothing to recover");
    }
    for d in dirs {
        eprintln!(
            "hs recover: finished the interrupted commit of {}",
            d.display()
        );
    }
    for d in stale {
        eprintln!(
            "hs recover: removed {}, left by a run that died",
            d.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
