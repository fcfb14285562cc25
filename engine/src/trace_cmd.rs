//! `hs trace`: run a command under the tracer and report what it read and wrote.
//!
//! The command keeps its stdin, stdout and stderr; the report goes to stderr (or `-o FILE`)
//! after it exits (like strace), as a summary with directories collapsed, or as the full trace
//! in JSON with `--json`. The exit status is the command's (128 + N when killed by signal N).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus};

use anyhow::Context;
use trace::{Kinds, Trace};

use crate::cli::TraceArgs;

/// `hs trace`.
pub fn trace_main(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let (program, rest) = args.argv.split_first().context("no command given")?;
    let (status, trace) = if args.sandbox {
        in_sandbox(&args.argv)?
    } else {
        let mut cmd = Command::new(program);
        cmd.args(rest);
        let child = trace::Tracer::new()
            .fast_path(args.fast)
            .spawn(&mut cmd)
            .with_context(|| format!("failed to start {:?} under the tracer", program))?;
        child.wait().context("failed to trace the command")?
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write the report to {}", path.display()))?,
        )),
        None => Box::new(std::io::stderr().lock()),
    };
    if args.json {
        let report = serde_json::json!({
            "status": status_code(status),
            "trace": trace,
        });
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_summary(&mut out, &trace, status)?;
    }
    out.flush()?;
    Ok(ExitCode::from(status_code(status) as u8))
}

/// Runs `argv` traced in a temporary sandbox, whose changes are then thrown away: what the
/// command would read and write, without it changing anything.
fn in_sandbox(argv: &[std::ffi::OsString]) -> anyhow::Result<(ExitStatus, Trace)> {
    let sb = sandbox::Sandbox::create_temp(&sandbox::Options::default())
        .context("cannot create a sandbox")?;
    let result = (|| {
        let (session, hook) = trace::Tracer::new()
            .root_from_tracee()
            .start()
            .context("cannot start the tracer")?;
        let cmd = sandbox::Command::new(argv.iter().cloned()).trace(hook);
        let mut child = match sb.spawn(&cmd) {
            Ok(c) => c,
            Err(e) => {
                session.abort();
                return Err(e).context("cannot start the command in the sandbox");
            }
        };
        drop(cmd);
        let code = child.wait().context("cannot wait for the command")?;
        let trace = session.finish().context("failed to trace the command")?;
        // Exit codes as a shell reports them: 128 + N for signal N.
        let status = if code > 128 && code < 128 + 65 {
            ExitStatus::from_raw(code - 128)
        } else {
            ExitStatus::from_raw((code & 0xff) << 8)
        };
        Ok((status, trace))
    })();
    let discarded = sb.discard();
    let out = result?;
    discarded.context("cannot remove the sandbox")?;
    Ok(out)
}

fn status_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Report sections: a path appears in each section it qualifies for; `looked up` only lists
/// paths that appear nowhere else.
const SECTIONS: &[(&str, Kinds)] = &[
    ("executed", Kinds::EXEC),
    ("read", Kinds::READ.union(Kinds::WRITE)),
    ("listed", Kinds::LIST),
    (
        "written",
        Kinds::WRITE_TRUNC
            .union(Kinds::WRITE)
            .union(Kinds::CREATE)
            .union(Kinds::SET_META)
            .union(Kinds::RENAME_TO),
    ),
    ("deleted", Kinds::DELETE.union(Kinds::RENAME_FROM)),
    ("missing", Kinds::MISSING),
];

/// Directories with at least this many entries in one section are shown as one line.
const COLLAPSE_AT: usize = 4;

fn write_summary(out: &mut impl Write, trace: &Trace, status: ExitStatus) -> std::io::Result<()> {
    writeln!(
        out,
        "hs trace: exit status {}, {} paths, {} syscalls trapped{}",
        status_code(status),
        trace.len(),
        trace.stats.notifications,
        if trace.stats.fast > 0 {
            format!(", {} recorded by the preload shim", trace.stats.fast)
        } else {
            String::new()
        }
    )?;
    let all_sections = SECTIONS.iter().fold(Kinds::empty(), |acc, (_, k)| acc | *k);
    let mut sections: Vec<(&str, Kinds)> = SECTIONS.to_vec();
    sections.push(("looked up", Kinds::STAT | Kinds::EXISTS));
    for (name, kinds) in sections {
        let lookup_only = name == "looked up";
        let paths: Vec<&[u8]> = trace
            .iter()
            .filter(|(_, k)| {
                if lookup_only {
                    k.intersects(kinds) && !k.intersects(all_sections)
                } else {
                    k.intersects(kinds)
                }
            })
            .map(|(p, _)| p)
            .collect();
        if paths.is_empty() {
            continue;
        }
        writeln!(out, "{name}:")?;
        for line in collapse(&paths) {
            writeln!(out, "  {line}")?;
        }
    }
    if !trace.flags.is_empty() {
        writeln!(out, "flags: {}", trace.flags)?;
        for note in &trace.notes {
            writeln!(out, "  {note}")?;
        }
    }
    Ok(())
}

/// Groups paths by parent directory; a directory with many entries becomes `dir/* (N)`.
fn collapse(paths: &[&[u8]]) -> Vec<String> {
    let mut by_dir: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
    for p in paths {
        let dir = match p.iter().rposition(|&b| b == b'/') {
            Some(0) | None => &b"/"[..],
            Some(i) => &p[..i],
        };
        by_dir.entry(dir).or_default().push(p);
    }
    let mut lines = Vec::new();
    for (dir, entries) in by_dir {
        if entries.len() >= COLLAPSE_AT {
            let dir = String::from_utf8_lossy(dir);
            let sep = if dir.ends_with('/') { "" } else { "/" };
            lines.push(format!("{dir}{sep}* ({} entries)", entries.len()));
        } else {
            lines.extend(
                entries
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            );
        }
    }
    lines
}
