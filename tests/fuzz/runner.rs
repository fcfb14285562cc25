//! Runs one script under bash and under hs in two identical fresh directories, and compares
//! stdout, stderr, exit status and the final tree.
//!
//! Layout of one comparison: `$TMPDIR/hs-fuzz-<pid>-<n>/` holds `script.sh` and, per runner
//! (`bash`, `hs`), `work/` (the universe, the runner's cwd), `tmp/` (its `$TMPDIR`) and
//! `home/`. Both runs start at the same time, with the same environment and stdin
//! `/dev/null`; the run directory (`…/bash` or `…/hs`) is replaced by `$RUN` in stdout and
//! stderr before comparing, so `$PWD` or `$TMPDIR` in the output agree.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::generator::populate;
use crate::tree::{self, Entry, Tree, make_writable, show_bytes, snapshot};

/// What one run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: String,
    pub tree: Tree,
    pub elapsed: Duration,
}

/// The aspects in which two outcomes can differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aspect {
    Status,
    Stdout,
    Stderr,
    Tree,
}

pub fn differences(bash: &Outcome, hs: &Outcome) -> Vec<Aspect> {
    let mut v = vec![];
    if bash.status != hs.status {
        v.push(Aspect::Status);
    }
    if bash.stdout != hs.stdout {
        v.push(Aspect::Stdout);
    }
    if bash.stderr != hs.stderr {
        v.push(Aspect::Stderr);
    }
    if bash.tree != hs.tree {
        v.push(Aspect::Tree);
    }
    v
}

/// How to run the runner under test.
#[derive(Clone, Debug)]
pub struct Runner {
    pub program: OsString,
    pub flags: Vec<OsString>,
    pub timeout: Duration,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs `script` under bash and under `runner`, at the same time, in identical fresh trees.
pub fn run_pair(script: &[u8], runner: &Runner) -> (Outcome, Outcome) {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("hs-fuzz-{}-{n}", std::process::id()));
    if root.exists() {
        make_writable(&root);
        let _ = fs::remove_dir_all(&root);
    }
    fs::create_dir_all(&root).unwrap();
    let root = root.canonicalize().unwrap();
    let script_path = root.join("script.sh");
    fs::write(&script_path, script).unwrap();
    let mut jobs = vec![];
    for (label, program, flags) in [
        ("bash", OsString::from("bash"), vec![]),
        ("hs", runner.program.clone(), runner.flags.clone()),
    ] {
        let run = root.join(label);
        for sub in ["work", "tmp", "home"] {
            fs::create_dir_all(run.join(sub)).unwrap();
        }
        populate(&run.join("work"));
        let mut args = flags;
        args.push(script_path.clone().into());
        let timeout = runner.timeout;
        jobs.push(std::thread::spawn(move || {
            run_one(&program, &args, &run, timeout)
        }));
    }
    let mut outs: Vec<Outcome> = jobs.into_iter().map(|j| j.join().unwrap()).collect();
    make_writable(&root);
    let _ = fs::remove_dir_all(&root);
    let hs = outs.pop().unwrap();
    let bash = outs.pop().unwrap();
    (bash, hs)
}

fn env(run: &Path) -> Vec<(OsString, OsString)> {
    vec![
        (
            "PATH".into(),
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        ),
        ("HOME".into(), run.join("home").into()),
        ("LC_ALL".into(), "C".into()),
        ("TMPDIR".into(), run.join("tmp").into()),
        ("TERM".into(), "dumb".into()),
        ("USER".into(), "fuzz".into()),
        // Speculate every unit, however short (hs's cost control would leave most of these
        // tiny units to the shell): the point is to check speculation. bash ignores it.
        (
            "HS_MIN_UNIT_MS".into(),
            std::env::var_os("HS_MIN_UNIT_MS").unwrap_or_else(|| "0".into()),
        ),
    ]
}

fn run_one(program: &OsStr, args: &[OsString], run: &Path, timeout: Duration) -> Outcome {
    let work = run.join("work");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&work)
        .env_clear()
        .envs(env(run))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(v) = std::env::var_os("HS_LOG") {
        cmd.env("HS_LOG", v);
    }
    let start = Instant::now();
    // Another cargo run in the same target dir may be relinking the binary: retry a while.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            Err(e) if tries < 100 => {
                let _ = e;
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot run {program:?}: {e}"),
        }
    };
    let pgid = child.id() as i32;
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = vec![];
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out_t = reader(Box::new(child.stdout.take().unwrap()));
    let err_t = reader(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            // SAFETY: kill(2) on the process group this function created.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    // Leftover background processes may hold the pipes open: they get the timeout too.
    while !(out_t.is_finished() && err_t.is_finished()) {
        if start.elapsed() > timeout {
            timed_out = true;
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("{status:?}"),
    };
    if timed_out {
        status.push_str(" (TIMED OUT, killed)");
    }
    make_writable(&work);
    let runs = run.as_os_str().as_bytes();
    Outcome {
        stdout: replace(&out_t.join().unwrap(), runs, b"$RUN"),
        stderr: mask_pids(&replace(&err_t.join().unwrap(), runs, b"$RUN")),
        status,
        tree: normalise(snapshot(&work), runs),
        elapsed,
    }
}

/// Replaces the run directory by `$RUN` in file contents and symlink targets too (a script
/// may write `$PWD` into a file).
fn normalise(tree: Tree, runs: &[u8]) -> Tree {
    tree.into_iter()
        .map(|(k, e)| {
            let e = match e {
                Entry::File { mode, content } => Entry::File {
                    mode,
                    content: replace(&content, runs, b"$RUN"),
                },
                Entry::Symlink { target } => Entry::Symlink {
                    target: replace(&target, runs, b"$RUN"),
                },
                e => e,
            };
            (k, e)
        })
        .collect()
}

/// Masks the process ids bash prints in some messages of its own (`wait: pid 123 is not a
/// child of this shell`, `wait_for: No record of process 123`, a bash 5.2 quirk with `set -u`
/// and an EXIT trap): the same under bash and hs, but a different number every run.
fn mask_pids(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        out.push(b[i]);
        i += 1;
        if out.ends_with(b"wait: pid ") || out.ends_with(b"No record of process ") {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i > start {
                out.extend_from_slice(b"<pid>");
            }
        }
    }
    out
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reporting

fn fenced(out: &mut String, label: &str, b: &[u8]) {
    const LIMIT: usize = 3000;
    let cut = &b[..b.len().min(LIMIT)];
    let mut text = show_bytes(cut);
    if b.len() > LIMIT {
        text.push_str(&format!("\n...[{} more bytes]", b.len() - LIMIT));
    }
    let _ = writeln!(out, "{label}:\n```");
    out.push_str(&text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push_str("\u{23ce} (no newline at end)\n");
    }
    out.push_str("```\n");
}

/// Both results side by side, for every aspect that differs (and the exit status always).
pub fn describe(bash: &Outcome, hs: &Outcome) -> String {
    let diffs = differences(bash, hs);
    let mut r = String::new();
    let _ = writeln!(
        r,
        "exit status: bash {} / hs {}{}   (bash took {:?}, hs took {:?})",
        bash.status,
        hs.status,
        if diffs.contains(&Aspect::Status) {
            "  <-- DIFFERS"
        } else {
            ""
        },
        bash.elapsed,
        hs.elapsed
    );
    for (aspect, name, a, b) in [
        (Aspect::Stdout, "stdout", &bash.stdout, &hs.stdout),
        (Aspect::Stderr, "stderr", &bash.stderr, &hs.stderr),
    ] {
        if diffs.contains(&aspect) {
            let _ = writeln!(r, "--- {name} differs ---");
            fenced(&mut r, "bash", a);
            fenced(&mut r, "hs", b);
        }
    }
    if diffs.contains(&Aspect::Tree) {
        let _ = writeln!(r, "--- final files differ ---");
        r.push_str(&tree::diff(&bash.tree, &hs.tree, "bash", "hs"));
    }
    r
}

/// Path of a fresh private directory for the fuzzer's own files (wrappers in self-tests).
pub fn scratch_dir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("hs-fuzz-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(&p).unwrap();
    p
}
