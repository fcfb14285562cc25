//! The gate server: answers the instrumented script's gates.
//!
//! Protocol, one line per message on the request pipe (bash writes each line with a single
//! `write`, so lines from concurrent subshells do not mix):
//!
//! - `g UNIT PID` — process PID reached unit UNIT. When PID is the main shell and the run
//!   speculates, it then reads one reply line: `r` (run it yourself) or `c STATUS` (already
//!   committed; its output has been replayed, return STATUS). Subshells never wait.
//! - `l LOOP PID WORDS…` — a `for` loop starts over these words (each `%q`-quoted).
//! - `x PID` — the main shell is exiting; the server finishes and replies `d`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::cli::ServeArgs;

/// One gate or loop event, for `--report`.
#[derive(Serialize)]
struct Event {
    /// `gate` or `loop`.
    kind: &'static str,
    /// Unit or loop id.
    id: u32,
    /// The reporting process.
    pid: i32,
    /// Seconds since the server started.
    at: f64,
    /// For gates: `run` (the shell ran it itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<&'static str>,
    /// For loops: the number of words.
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<usize>,
}

/// Serves gates until the main shell exits.
pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Out of the terminal's process group: Ctrl-C is for the script, not for us.
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    if nix::unistd::getppid().as_raw() != args.main_pid {
        return Ok(ExitCode::SUCCESS);
    }
    let [req_r, _req_w, _rep_r, rep_w, ..] = args.fds[..] else {
        anyhow::bail!("__serve needs at least four fds");
    };
    let requests = File::open(format!("/proc/self/fd/{req_r}")).context("cannot open gate pipe")?;
    let mut replies = OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{rep_w}"))
        .context("cannot open gate reply pipe")?;
    let wait = crate::run::gates_wait(&args.run);
    let started = Instant::now();
    let mut events = Vec::new();
    let mut line = Vec::new();
    let mut requests = BufReader::new(requests);
    loop {
        line.clear();
        if requests.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let mut parts = text.trim_end_matches('\n').split(' ');
        let kind = parts.next().unwrap_or("");
        let id: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let pid: i32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let at = started.elapsed().as_secs_f64();
        match kind {
            "g" => {
                if wait && pid == args.main_pid {
                    replies.write_all(b"r\n")?;
                }
                tracing::trace!(unit = id, pid, "gate");
                events.push(Event {
                    kind: "gate",
                    id,
                    pid,
                    at,
                    answer: Some("run"),
                    words: None,
                });
            }
            "l" => {
                let words = parts.count();
                tracing::trace!(r#loop = id, pid, words, "loop");
                events.push(Event {
                    kind: "loop",
                    id,
                    pid,
                    at,
                    answer: None,
                    words: Some(words),
                });
            }
            "x" => {
                // `x PID`: the pid is the second field.
                finish(&args, &events, started)?;
                replies.write_all(b"d\n")?;
                return Ok(ExitCode::SUCCESS);
            }
            _ => tracing::debug!("unknown gate message {text:?}"),
        }
    }
    finish(&args, &events, started)?;
    Ok(ExitCode::SUCCESS)
}

fn finish(args: &ServeArgs, events: &[Event], started: Instant) -> anyhow::Result<()> {
    let gates = events.iter().filter(|e| e.kind == "gate").count();
    if args.run.stats {
        eprintln!(
            "hs: {gates} gates, 0 speculated, {:.3}s",
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(path) = &args.run.report {
        let report = serde_json::json!({
            "speculation": !args.run.no_speculate && args.run.jobs != Some(0),
            "gates": gates,
            "events": events,
        });
        let text = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, text)
            .with_context(|| format!("cannot write report {}", path.display()))?;
    }
    Ok(())
}
