//! The gate server: answers the instrumented script's gates.
//!
//! Protocol, one line per message on the request pipe (bash writes each line with a single
//! `write`, so lines from concurrent subshells do not mix):
//!
//! - `g UNIT PID` — process PID reached unit UNIT. When PID is the main shell and the run
//!   speculates, it then reads one reply line: `r` (run it yourself) or `c STATUS` (already
//!   committed; its output has been replayed, return STATUS). Subshells never wait.
//! - `a UNIT PID STATUS` — the main shell reached UNIT while the sync mark was empty (nothing
//!   speculated): it runs the unit itself without waiting (speculating servers only); `A`
//!   instead, followed by a state report, while the state mark is not empty.
//! - `s 0 PID 0` and a state report — the main shell's state at its start (speculating servers
//!   that do not start paused).
//! - `l LOOP PID WORDS…` — a `for` loop starts over these words (each `%q`-quoted).
//! - `x PID` — the main shell is exiting; the server finishes and replies `d`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::cli::RunArgs;

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

/// What the gate server knows of its run (it is a fork of `hs`, see `run::start_server`).
pub(crate) struct ServeArgs {
    /// The pid of the bash process the gates come from (our parent).
    pub(crate) main_pid: i32,
    /// End mark of gate messages.
    pub(crate) token: String,
    /// The script's `$0`.
    pub(crate) dollar0: OsString,
    /// Options of the run.
    pub(crate) run: RunArgs,
}

/// Serves gates until the main shell exits: speculating with `start`, else only listening.
pub(crate) fn serve(
    args: &ServeArgs,
    pipes: crate::spec::Pipes,
    start: Option<crate::spec::Start<'_>>,
) -> anyhow::Result<ExitCode> {
    match start {
        Some(start) => crate::spec::serve(args, pipes, start),
        None => listen(args, pipes.requests, pipes.main, pipes.replies),
    }
}

/// Records gates and loops for `--report`/`--stats`; every gate runs its unit.
fn listen(
    args: &ServeArgs,
    requests: File,
    main: File,
    mut replies: File,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::unbounded::<Option<Vec<u8>>>();
    for f in [requests, main] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(f);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(_) => {
                        if tx.send(Some(line)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    let mut events = Vec::new();
    let mut closed = 0;
    while let Ok(msg) = rx.recv() {
        let Some(line) = msg else {
            closed += 1;
            if closed == 2 {
                break;
            }
            continue;
        };
        let text = String::from_utf8_lossy(&line);
        let mut parts = text.trim_end_matches('\n').split(' ');
        let kind = parts.next().unwrap_or("");
        let (id, _) = crate::spec::parse_id(parts.next().unwrap_or(""));
        let pid: i32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let at = started.elapsed().as_secs_f64();
        match kind {
            "g" => {
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
                let rest: Vec<&str> = parts.collect();
                let words = unquote_words(rest.join(" ").as_bytes()).len();
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
                finish(args, &events, started)?;
                replies.write_all(b"d\n")?;
                return Ok(ExitCode::SUCCESS);
            }
            _ => tracing::debug!("unknown gate message {text:?}"),
        }
    }
    finish(args, &events, started)?;
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
    if let Some(path) = &args.run.timeline {
        // Nothing is speculated: the shell ran everything, one lane.
        let title = "no speculation";
        let svg = crate::timeline::svg(&[], 0, started.elapsed().as_secs_f64(), title);
        std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.run.dag {
        // Nothing is speculated: the graph has no instances.
        std::fs::write(path, "digraph hs {\n}\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.run.report {
        let report = serde_json::json!({
            "speculation": false,
            "gates": gates,
            "events": events,
        });
        let text = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, text)
            .with_context(|| format!("cannot write report {}", path.display()))?;
    }
    Ok(())
}

/// Splits bash `printf %q` output back into words: backslash escapes, `''`, and `$'…'` with
/// C escapes.
pub(crate) fn unquote_words(text: &[u8]) -> Vec<Vec<u8>> {
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b' ' => {
                words.extend(word.take());
                i += 1;
            }
            b'\\' => {
                let w = word.get_or_insert_with(Vec::new);
                if let Some(&n) = text.get(i + 1) {
                    w.push(n);
                }
                i += 2;
            }
            b'\'' => {
                let w = word.get_or_insert_with(Vec::new);
                let end = text[i + 1..]
                    .iter()
                    .position(|&b| b == b'\'')
                    .map_or(text.len(), |p| i + 1 + p);
                w.extend_from_slice(&text[i + 1..end]);
                i = end + 1;
            }
            b'$' if text.get(i + 1) == Some(&b'\'') => {
                let w = word.get_or_insert_with(Vec::new);
                i += 2;
                while i < text.len() && text[i] != b'\'' {
                    if text[i] == b'\\' && i + 1 < text.len() {
                        i += 1;
                        let (byte, used) = c_escape(&text[i..]);
                        w.push(byte);
                        i += used;
                    } else {
                        w.push(text[i]);
                        i += 1;
                    }
                }
                i += 1;
            }
            _ => {
                word.get_or_insert_with(Vec::new).push(c);
                i += 1;
            }
        }
    }
    words.extend(word);
    words
}

/// One C escape after a backslash in `$'…'`: the byte and how many input bytes it used.
fn c_escape(t: &[u8]) -> (u8, usize) {
    let simple = |b: u8| match b {
        b'n' => Some(b'\n'),
        b't' => Some(b'\t'),
        b'r' => Some(b'\r'),
        b'a' => Some(7),
        b'b' => Some(8),
        b'e' | b'E' => Some(27),
        b'f' => Some(12),
        b'v' => Some(11),
        b'\\' | b'\'' | b'"' | b'?' => Some(b),
        _ => None,
    };
    if let Some(b) = simple(t[0]) {
        return (b, 1);
    }
    if t[0] == b'x' {
        let hex: Vec<u8> = t[1..]
            .iter()
            .take(2)
            .take_while(|b| b.is_ascii_hexdigit())
            .copied()
            .collect();
        if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&hex).unwrap_or(""), 16) {
            return (v, 1 + hex.len());
        }
    }
    let oct: Vec<u8> = t
        .iter()
        .take(3)
        .take_while(|b| (b'0'..=b'7').contains(b))
        .copied()
        .collect();
    if let Ok(v) = u32::from_str_radix(std::str::from_utf8(&oct).unwrap_or(""), 8) {
        return ((v & 0xff) as u8, oct.len());
    }
    (t[0], 1)
}

#[cfg(test)]
mod tests {
    use super::unquote_words;

    /// Whatever bash's `printf %q` makes of a word list comes back unchanged.
    #[test]
    fn printf_q_round_trip() {
        let words: Vec<&[u8]> = vec![
            b"a",
            b"b c",
            b"",
            b"it's",
            b"tab\there",
            b"nl\nx",
            b"\xff\x01",
            b"$x*?[",
            b"~",
        ];
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c").arg("printf ' %q' \"$@\"").arg("bash");
        for w in &words {
            cmd.arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(w));
        }
        let out = cmd.output().unwrap().stdout;
        let got = unquote_words(&out);
        assert_eq!(got, words.iter().map(|w| w.to_vec()).collect::<Vec<_>>());
    }
}
