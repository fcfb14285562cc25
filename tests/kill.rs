//! Kill tests: `hs script.sh` is SIGKILLed (its whole process group) at a seeded random moment,
//! then `hs recover` runs. The tree must then equal the state after some prefix of the script,
//! and nothing may be left behind: no process of the run, no mount, no sandbox directory, no
//! unrecovered commit.
//!
//! # Scripts and reference states
//!
//! Scripts are flat: top-level statements only, so "after the first k statements" is well
//! defined; each has at most one effect on the tree, and that effect is one system call
//! (`mv`, `rm`, `mkdir`, `rmdir`, `touch`, `ln -s`, `chmod`) or bash's `echo … > f` /
//! `echo … >> f`. The latter is two: bash opens the file (creating or truncating it), then
//! echo writes once; so the state after the open is accepted too, computed as the prefix
//! followed by `: > f` (or `: >> f`). Commands that write in several steps (`cp`, `rm -r`,
//! `mkdir -p`, `ln -sf` via a temporary name, pipelines into files, here-documents into files)
//! are left out. Two sources:
//! - the fuzz generator (tests/fuzz/generator.rs): the top-level lines that pass
//!   [`classify`] of four consecutive seeds' scripts, run in the fuzz universe, with at least
//!   8 statements that may change files;
//! - hand-written scripts ([`hand`]) that write, append, rename and delete many files between
//!   small sleeps.
//!
//! The reference states: each prefix (the first k statements, for k = 0, n, and every k whose
//! last statement may change files) runs under bash in a fresh universe, at the same path as
//! the killed runs, with sleeps turned into `:` (they change no file). The partial states
//! above are computed only when a kill matches no prefix state.
//!
//! # One kill
//!
//! Fresh universe; `hs [flags] script.sh` in its own process group (stdin `/dev/null`, output
//! to files outside the tree); sleep a seeded time within the length of an unkilled hs run of
//! the same script (which must end like bash); note the group's processes and their sandbox
//! directories; `kill -KILL -PGID`; reap; `hs recover`; snapshot and compare with the
//! reference states; then look for leftovers: live processes in the group or whose cwd,
//! command line or environment names the test directory; mounts under it or of a sandbox;
//! `hs-sandbox-PID-*` directories of the run's processes (sandbox::default_base(), /tmp,
//! /var/tmp), links to them in `hs-pending-UID`, their upper dirs
//! `<mount point>/.hs-sandboxes-UID/<inode>`; files in the run's `$TMPDIR` that bash does not
//! leave there. (Sandboxes made and discarded between two looks are not seen; sandboxes of
//! other programs on the machine are never counted.)
//!
//! # Knobs
//!
//! `HS_KILL_RUNS` (default 30) kills, 5 per script; `HS_KILL_SEED` (default 1); `HS_KILL_FLAGS`
//! options for hs (default: none and `--stats`, alternately, so half the runs have the gate
//! server); `HS_BIN` another hs; `HS_KILL_KEEP=1` keeps the test directories;
//! `HS_KILL_DEBUG=1` prints every script, kill moment and matched state.
//!
//!     HS_KILL_RUNS=100 cargo test -p engine --test kill -- --nocapture
//!
//! # Figures (2-core machine shared with other builds, debug build, hs at 82c991f: no
//! speculation yet, so bash runs every unit itself)
//!
//! `HS_KILL_RUNS=100`: 100 kills (tree at the start 33, mid-script 41, at the end 26), 0
//! corrupted, 0 leftovers, 44 s; with `HS_KILL_SEED=2`: 100 kills (26, 61, 13), 0 corrupted,
//! 0 leftovers, 65 s. An earlier run found `hs recover` failing when another hs finished a
//! commit meanwhile (fixed in a215cc4). `kill_hs_try_commit` (`hs try -y`, ignored): 20 kills,
//! 0 corrupted, 26 leftovers (the killed sandboxes' directories).

#[path = "fuzz/generator.rs"]
#[allow(dead_code)]
mod generator;
#[path = "fuzz/rng.rs"]
mod rng;
#[path = "util/tree.rs"]
mod tree;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use generator::{Script, Stmt, generate, populate};
use rng::Rng;
use tree::{Tree, make_writable, show_bytes, snapshot};

/// Kills per script.
const KILLS_PER_SCRIPT: usize = 5;

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Writes to the real stderr, past the test harness's capture.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

fn hs_bin() -> OsString {
    std::env::var_os("HS_BIN").unwrap_or_else(|| OsString::from(env!("CARGO_BIN_EXE_hs")))
}

// ---------------------------------------------------------------------------------------------
// Scripts

/// One top-level statement.
#[derive(Clone, Debug)]
struct Step {
    text: Vec<u8>,
    /// A line that, after the previous statements, gives the state where bash has opened this
    /// statement's output file but not written it yet.
    partial: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct Case {
    name: String,
    steps: Vec<Step>,
}

impl Case {
    /// The first `k` statements (all if `k` is past the end), then `extra`.
    fn script(&self, k: usize, extra: Option<&[u8]>, no_sleep: bool) -> Vec<u8> {
        let mut out = vec![];
        for s in &self.steps[..k.min(self.steps.len())] {
            out.extend_from_slice(&s.text);
        }
        if let Some(e) = extra {
            out.extend_from_slice(e);
        }
        if no_sleep {
            out = replace(&out, b"sleep 0.", b": 0.");
        }
        out
    }
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

/// A generator line as script bytes (with its newline).
fn render(text: &str) -> Vec<u8> {
    Script {
        stmts: vec![Stmt::Line {
            text: text.into(),
            keep: false,
        }],
    }
    .render()
}

/// Whether a top-level line may be in a kill script: `None` if some effect of it on the tree
/// is not atomic; `Some(partial)` otherwise, `partial` being the `: > f` line giving the
/// state between its open and its write, for `echo … > f`.
fn classify(text: &str) -> Option<Option<String>> {
    let mut t = text.to_string();
    for harmless in ["2>&1", "2>/dev/null", ">/dev/null", "> \"$TMPDIR/"] {
        t = t.replace(harmless, " ");
    }
    let first = t.split_whitespace().next().unwrap_or("");
    if matches!(first, "cp" | "tee")
        || ["rm -r", "mkdir -p", "ln -sf", "| tee", "cp "]
            .iter()
            .any(|w| t.contains(w))
    {
        return None;
    }
    if !t.contains('>') {
        return Some(None);
    }
    let body = t.strip_suffix("; echo \"rc=$?\"").unwrap_or(&t);
    if !body.starts_with("echo ") || body.contains(['|', ';', '\n', '&', '`']) {
        return None;
    }
    let (op, at) = match (body.find(" >> "), body.find(" > ")) {
        (Some(i), _) => (">>", i),
        (None, Some(i)) => (">", i),
        _ => return None,
    };
    let target = body[at + op.len() + 2..].trim();
    if body[..at].contains(['>', '<']) || target.contains(['>', '<']) || target.is_empty() {
        return None;
    }
    Some(Some(format!(": {op} {target}")))
}

/// Seeds of the fuzz generator per kill script (one seed has 0 to 5 statements that may
/// change files).
const SEEDS_PER_SCRIPT: u64 = 4;

/// The kill script from the fuzz generator's seeds `seed..seed + SEEDS_PER_SCRIPT`: their
/// top-level lines that [`classify`] keeps, one after the other (only the last seed's `exit`).
fn from_generator(seed: u64) -> Case {
    let mut steps = vec![];
    for s in seed..seed + SEEDS_PER_SCRIPT {
        for st in generate(s).stmts {
            let Stmt::Line { text, keep } = st else {
                continue;
            };
            let last = s + 1 == seed + SEEDS_PER_SCRIPT;
            if (keep && s != seed) || (text.starts_with("exit ") && !last) {
                continue;
            }
            if let Some(partial) = classify(&text) {
                steps.push(Step {
                    text: render(&text),
                    partial: partial.map(|p| render(&p)),
                });
            }
        }
    }
    Case {
        name: format!("seed{seed}"),
        steps,
    }
}

/// Whether a statement may change the tree: it writes a file or is a command that changes
/// files. The others leave the tree as it was, so no reference state is computed after them
/// (were that wrong, a kill test would fail, not pass wrongly).
fn changes_files(s: &Step) -> bool {
    const WRITERS: &[&[u8]] = &[
        b"mv ", b"rm ", b"mkdir ", b"rmdir ", b"touch ", b"ln ", b"chmod ",
    ];
    s.partial.is_some() || WRITERS.iter().any(|w| s.text.starts_with(w))
}

/// How many statements of `case` may change the tree.
fn effects(case: &Case) -> usize {
    case.steps.iter().filter(|s| changes_files(s)).count()
}

/// Hand-written scripts: many writes, appends, renames and deletions between small sleeps.
fn hand(which: usize) -> Case {
    let mut lines: Vec<String> = vec![];
    let name;
    match which % 3 {
        0 => {
            // Files written, appended, renamed and deleted, over and over.
            name = "churn";
            lines.push("mkdir w".into());
            for i in 0..30 {
                lines.push(format!("echo \"v{i}\" > w/f{i}"));
                if i % 3 == 2 {
                    lines.push(format!("echo more >> w/f{}", i - 1));
                }
                if i % 4 == 3 {
                    lines.push(format!("mv w/f{} w/g{i}", i - 2));
                }
                if i % 5 == 4 {
                    lines.push(format!("rm w/f{}", i - 4));
                }
                if i % 6 == 5 {
                    lines.push("sleep 0.01".into());
                }
            }
        }
        1 => {
            // One file replaced through a temporary, as editors and build tools do.
            name = "replace";
            for i in 0..15 {
                lines.push(format!("echo \"version {i}\" > tmp.{i}"));
                lines.push(format!("chmod 600 tmp.{i}"));
                lines.push(format!("mv -f tmp.{i} current"));
                lines.push(format!("echo \"{i}\" >> history"));
                if i % 5 == 0 {
                    lines.push("sleep 0.01".into());
                }
            }
        }
        _ => {
            // Directories, symlinks and moves between directories.
            name = "dirs";
            for i in 0..12 {
                lines.push(format!("mkdir t{i}"));
                lines.push(format!("ln -s ../a t{i}/l"));
                lines.push(format!("echo {i} > t{i}/n"));
                if i > 0 {
                    lines.push(format!("mv t{}/n t{i}/prev", i - 1));
                    lines.push(format!("rm t{}/l", i - 1));
                    lines.push(format!("mv t{} t{i}/old", i - 1));
                }
                if i % 4 == 0 {
                    lines.push("sleep 0.01".into());
                }
            }
            lines.push("rmdir t11/old/old/old/old 2>/dev/null; echo \"rc=$?\"".into());
        }
    }
    case_of(name, &lines)
}

fn case_of(name: &str, lines: &[String]) -> Case {
    let steps = lines
        .iter()
        .map(|l| {
            let partial = classify(l).unwrap_or_else(|| panic!("not atomic: {l}"));
            Step {
                text: render(l),
                partial: partial.map(|p| render(&p)),
            }
        })
        .collect();
    Case {
        name: name.into(),
        steps,
    }
}

// ---------------------------------------------------------------------------------------------
// Processes, mounts and directories

/// A process as /proc shows it.
struct Proc {
    pid: i32,
    pgrp: i32,
    state: char,
    cwd: Vec<u8>,
    cmdline: Vec<u8>,
    environ: Vec<u8>,
}

fn processes() -> Vec<Proc> {
    let mut out = vec![];
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let p = e.path();
        let Ok(stat) = fs::read_to_string(p.join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        out.push(Proc {
            pid,
            pgrp: f[2].parse().unwrap_or(0),
            state: f[0].chars().next().unwrap_or('?'),
            cwd: fs::read_link(p.join("cwd"))
                .map(|c| c.as_os_str().as_bytes().to_vec())
                .unwrap_or_default(),
            cmdline: fs::read(p.join("cmdline")).unwrap_or_default(),
            environ: fs::read(p.join("environ")).unwrap_or_default(),
        });
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The processes in group `pgid` (reads only their `stat`, to be quick before a kill).
fn group(pgid: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let pgrp = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(2))
            .and_then(|f| f.parse::<i32>().ok());
        if pgrp == Some(pgid) {
            out.insert(pid);
        }
    }
    out
}

/// Live processes that belong to a run in `root` (process group `pgid`).
fn run_processes(root: &Path, pgid: i32) -> Vec<Proc> {
    let mut mark = root.as_os_str().as_bytes().to_vec();
    mark.push(b'/');
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|p| p.pid != me && p.state != 'Z' && p.state != 'X')
        .filter(|p| {
            p.pgrp == pgid
                || p.cwd.starts_with(&mark)
                || p.cwd == root.as_os_str().as_bytes()
                || contains(&p.cmdline, &mark)
                || contains(&p.environ, &mark)
        })
        .collect()
}

fn describe_proc(p: &Proc) -> String {
    let cmd: Vec<String> = p
        .cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(show_bytes)
        .collect();
    format!(
        "pid {} (pgrp {}, state {}, cwd {}): {}",
        p.pid,
        p.pgrp,
        p.state,
        show_bytes(&p.cwd),
        cmd.join(" ")
    )
}

/// Mount points of this mount namespace (octal escapes decoded).
fn mount_points() -> Vec<PathBuf> {
    let info = fs::read("/proc/self/mountinfo").unwrap_or_default();
    let mut out = vec![];
    for line in info.split(|&b| b == b'\n') {
        let Some(field) = line.split(|&b| b == b' ').nth(4) else {
            continue;
        };
        let mut p = vec![];
        let mut i = 0;
        while i < field.len() {
            if field[i] == b'\\'
                && i + 4 <= field.len()
                && field[i + 1..i + 4].iter().all(u8::is_ascii_digit)
            {
                let s = std::str::from_utf8(&field[i + 1..i + 4]).unwrap();
                p.push(u8::from_str_radix(s, 8).unwrap_or(b'?'));
                i += 4;
            } else {
                p.push(field[i]);
                i += 1;
            }
        }
        out.push(PathBuf::from(OsStr::from_bytes(&p)));
    }
    out.sort();
    out.dedup();
    out
}

fn uid() -> u32 {
    // SAFETY: getuid(2) cannot fail.
    unsafe { libc::getuid() }
}

/// Where hs may put sandbox directories: sandbox::default_base(), /tmp, /var/tmp.
fn bases() -> Vec<PathBuf> {
    let mut v = vec![sandbox::default_base(), "/tmp".into(), "/var/tmp".into()];
    v.sort();
    v.dedup();
    v
}

/// The sandbox directories of the processes `pids`, with their inode numbers (which name
/// their upper dirs on other filesystems, `<mount point>/.hs-sandboxes-UID/<inode in hex>`).
fn sandbox_dirs(pids: &BTreeSet<i32>) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = vec![];
    for base in bases() {
        let Ok(rd) = fs::read_dir(&base) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if pids.iter().any(|p| {
                name.as_bytes()
                    .starts_with(format!("hs-sandbox-{p}-").as_bytes())
            }) && let Ok(md) = e.metadata()
            {
                out.push((e.path(), md.ino()));
            }
        }
    }
    out
}

/// Upper dirs on other filesystems of the sandboxes `dirs` that are still there.
fn leftover_uppers(dirs: &[(PathBuf, u64)]) -> Vec<String> {
    let mut out = vec![];
    for mp in mount_points() {
        for (dir, ino) in dirs {
            let p = mp.join(format!(".hs-sandboxes-{}/{ino:x}", uid()));
            if fs::symlink_metadata(&p).is_ok() {
                out.push(format!(
                    "sandbox upper directory {} (of {})",
                    p.display(),
                    dir.display()
                ));
            }
        }
    }
    out
}

/// Removes the sandbox directories `dirs` and their upper dirs on other filesystems.
fn remove_sandboxes(dirs: &[(PathBuf, u64)]) {
    for mp in mount_points() {
        for (_, ino) in dirs {
            let p = mp.join(format!(".hs-sandboxes-{}/{ino:x}", uid()));
            make_writable(&p);
            let _ = fs::remove_dir_all(&p);
        }
    }
    for (dir, _) in dirs {
        make_writable(dir);
        let _ = fs::remove_dir_all(dir);
    }
}

/// What a run whose processes were `pids` left: sandbox directories, pending commits, mounts.
fn leftover_dirs(root: &Path, pids: &BTreeSet<i32>) -> Vec<String> {
    let mut out = vec![];
    let ours = |name: &[u8]| {
        pids.iter()
            .any(|p| name.starts_with(format!("hs-sandbox-{p}-").as_bytes()))
    };
    for base in bases() {
        let Ok(rd) = fs::read_dir(&base) else {
            continue;
        };
        for e in rd.flatten() {
            if ours(e.file_name().as_bytes()) {
                out.push(format!("sandbox directory {}", e.path().display()));
            }
        }
        if let Ok(rd) = fs::read_dir(base.join(format!("hs-pending-{}", uid()))) {
            for e in rd.flatten() {
                let target = fs::read_link(e.path()).unwrap_or_default();
                if target.file_name().is_some_and(|n| ours(n.as_bytes())) {
                    out.push(format!(
                        "unrecovered commit {} -> {}",
                        e.path().display(),
                        target.display()
                    ));
                }
            }
        }
    }
    for mp in mount_points() {
        let under_root = mp.starts_with(root);
        let sandbox = mp.iter().any(|c| ours(c.as_bytes()));
        if under_root || sandbox {
            out.push(format!("mount {}", mp.display()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running

struct Config {
    /// The runner under test.
    program: OsString,
    /// The hs that runs `hs recover`.
    recover: OsString,
    /// hs options per run, cycled.
    flags: Vec<Vec<OsString>>,
    seed: u64,
    keep: bool,
    /// No script printed, no directory kept on corruption (the harness's self-tests).
    quiet: bool,
    /// Run `hs try -y -- bash script.sh` instead: one sandbox, one journaled commit, so only
    /// the start and the end states are right.
    try_commit: bool,
}

impl Config {
    /// The command line of a run of `script`, with options `flags`.
    fn args(&self, flags: &[OsString], script: &Path) -> Vec<OsString> {
        if self.try_commit {
            let a = ["try", "-y", "--", "bash"].map(OsString::from);
            a.into_iter().chain([script.into()]).collect()
        } else {
            flags.iter().cloned().chain([script.into()]).collect()
        }
    }
}

impl Config {
    fn from_env() -> Config {
        let flags = match std::env::var("HS_KILL_FLAGS") {
            Ok(f) => vec![f.split_whitespace().map(OsString::from).collect()],
            Err(_) => vec![vec![], vec!["--stats".into()]],
        };
        Config {
            program: hs_bin(),
            recover: hs_bin(),
            flags,
            seed: env_num("HS_KILL_SEED").unwrap_or(1),
            keep: std::env::var_os("HS_KILL_KEEP").is_some_and(|v| v == "1"),
            quiet: false,
            try_commit: std::env::var_os("HS_KILL_TRY").is_some_and(|v| v == "1"),
        }
    }
}

/// A test directory: `work/` (where every run happens), `tmp/`, `home/`, the scripts and the
/// runs' output.
struct Dir {
    root: PathBuf,
    keep: bool,
}

impl Dir {
    fn new(tag: &str, keep: bool) -> Dir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("hs-kill-{}-{n}-{tag}", std::process::id()));
        if root.exists() {
            make_writable(&root);
            let _ = fs::remove_dir_all(&root);
        }
        fs::create_dir_all(&root).unwrap();
        let root = root.canonicalize().unwrap();
        Dir { root, keep }
    }

    fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    /// A fresh `work/` (the fuzz universe), `tmp/` and `home/`.
    fn reset(&self) {
        for sub in ["work", "tmp", "home"] {
            let p = self.root.join(sub);
            if fs::symlink_metadata(&p).is_ok() {
                make_writable(&p);
                fs::remove_dir_all(&p).unwrap();
            }
        }
        fs::create_dir(self.work()).unwrap();
        populate(&self.work());
        fs::create_dir(self.root.join("tmp")).unwrap();
        fs::create_dir(self.root.join("home")).unwrap();
    }

    fn env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = vec![
            (
                "PATH".into(),
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            ),
            ("HOME".into(), self.root.join("home").into()),
            ("LC_ALL".into(), "C".into()),
            ("TMPDIR".into(), self.root.join("tmp").into()),
            ("TERM".into(), "dumb".into()),
            ("USER".into(), "kill".into()),
        ];
        if let Some(v) = std::env::var_os("HS_LOG") {
            env.push(("HS_LOG".into(), v));
        }
        env
    }

    fn command(&self, program: &OsStr) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.work())
            .env_clear()
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.root.join("out")).unwrap())
            .stderr(fs::File::create(self.root.join("err")).unwrap())
            .process_group(0);
        cmd
    }

    /// The tree of `work/` now.
    fn tree(&self) -> Tree {
        make_writable(&self.work());
        snapshot(&self.work())
    }

    /// Names in `tmp/` now.
    fn tmp_names(&self) -> BTreeSet<Vec<u8>> {
        fs::read_dir(self.root.join("tmp"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().as_bytes().to_vec())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !self.keep {
            make_writable(&self.root);
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// Spawns, retrying while another cargo run relinks the binary.
fn spawn(cmd: &mut Command) -> std::process::Child {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Ok(c) => return c,
            Err(_) if tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot run {cmd:?}: {e}"),
        }
    }
}

/// Runs `script` under bash in a fresh `work/`; returns its tree.
fn bash_state(dir: &Dir, script: &[u8]) -> Tree {
    dir.reset();
    let path = dir.root.join("ref.sh");
    fs::write(&path, script).unwrap();
    let mut cmd = dir.command(OsStr::new("bash"));
    cmd.arg(&path);
    let mut child = spawn(&mut cmd);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "reference run hangs"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    dir.tree()
}

/// One reference state.
struct State {
    /// `k` (after k statements) or `k+` (after k, with statement k+1's file opened).
    name: String,
    tree: Tree,
}

/// The states after each prefix of `case`.
fn prefix_states(dir: &Dir, case: &Case) -> Vec<State> {
    let mut out: Vec<State> = vec![];
    let n = case.steps.len();
    for k in 0..=n {
        // After a statement that changes no file, the tree is the one before it.
        if k == 0 || k == n || changes_files(&case.steps[k - 1]) {
            let tree = bash_state(dir, &case.script(k, None, true));
            out.push(State {
                name: k.to_string(),
                tree,
            });
        }
    }
    out
}

/// The states between a statement's open of its output file and its write (computed only
/// when a kill matches no prefix state: they are rare).
fn partial_states(dir: &Dir, case: &Case) -> Vec<State> {
    let mut out: Vec<State> = vec![];
    for (k, s) in case.steps.iter().enumerate() {
        if let Some(p) = s.partial.as_deref() {
            let tree = bash_state(dir, &case.script(k, Some(p), true));
            out.push(State {
                name: format!("{k}+"),
                tree,
            });
        }
    }
    out
}

/// What the kills of one script found.
#[derive(Default)]
struct Tally {
    kills: usize,
    /// The run had finished before the kill.
    finished: usize,
    /// The tree matched the start state, a state strictly between the start and the end, the
    /// end state.
    start: usize,
    mid: usize,
    end: usize,
    corrupted: Vec<String>,
    leftovers: Vec<String>,
}

/// Runs `hs` on the script to its end; returns its length and adds to `t` what went wrong:
/// a final tree other than bash's, processes left.
fn full_run(cfg: &Config, dir: &Dir, case: &Case, states: &[State], t: &mut Tally) -> Duration {
    dir.reset();
    let mut cmd = dir.command(&cfg.program);
    cmd.args(cfg.args(&cfg.flags[0], &dir.root.join("script.sh")));
    let start = Instant::now();
    let mut child = spawn(&mut cmd);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            // SAFETY: kill(2) on the group this test created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            panic!("{}: hs does not finish", case.name);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    let pgid = child.id() as i32;
    for p in settle(&dir.root, pgid) {
        t.leftovers.push(format!(
            "{} unkilled: process left: {}",
            case.name,
            describe_proc(&p)
        ));
    }
    let got = dir.tree();
    let want = &states.last().unwrap().tree;
    if &got != want {
        t.corrupted.push(format!(
            "{} unkilled: hs does not end like bash:\n{}",
            case.name,
            tree::diff(want, &got, "bash", "hs")
        ));
    }
    took
}

/// The processes of a run in `root` (group `pgid`) still alive after a grace period; they
/// are killed.
fn settle(root: &Path, pgid: i32) -> Vec<Proc> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = run_processes(root, pgid);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        left = run_processes(root, pgid);
    }
    for p in &left {
        // SAFETY: kill(2) of a process of this test's run.
        unsafe { libc::kill(p.pid, libc::SIGKILL) };
    }
    left
}

/// Kills `hs` running `case` `kills` times at random moments; `delay` gives each kill's delay
/// from the length of an unkilled run.
fn kill_case(
    cfg: &Config,
    case: &Case,
    kills: usize,
    rng: &mut Rng,
    delay: &dyn Fn(&mut Rng, Duration) -> Duration,
) -> Tally {
    let dir = Dir::new(&case.name, cfg.keep);
    let script = case.script(usize::MAX, None, false);
    fs::write(dir.root.join("script.sh"), &script).unwrap();
    let t0 = Instant::now();
    let states = prefix_states(&dir, case);
    let mut partials: Option<Vec<State>> = None;
    if std::env::var_os("HS_KILL_DEBUG").is_some() {
        say(&format!(
            "kill: {}: {} reference states in {:?}",
            case.name,
            states.len(),
            t0.elapsed()
        ));
    }
    let bash_tmp = dir.tmp_names();
    let mut t = Tally::default();
    // The shorter of two runs, so that few kills come after the end.
    let took =
        full_run(cfg, &dir, case, &states, &mut t).min(full_run(cfg, &dir, case, &states, &mut t));
    for i in 0..kills {
        dir.reset();
        let flags = &cfg.flags[i % cfg.flags.len()];
        let mut cmd = dir.command(&cfg.program);
        cmd.args(cfg.args(flags, &dir.root.join("script.sh")));
        let wait = delay(rng, took);
        let mut child = spawn(&mut cmd);
        let pgid = child.id() as i32;
        std::thread::sleep(wait);
        let finished = child.try_wait().unwrap().is_some();
        let mut pids = group(pgid);
        pids.insert(pgid);
        let sandboxes = sandbox_dirs(&pids);
        if std::env::var_os("HS_KILL_DEBUG").is_some() {
            say(&format!(
                "kill: {} took {took:?}, kill after {wait:?}, finished {finished}",
                case.name
            ));
        }
        let what = format!(
            "{} kill {i} after {:.1} ms (hs {})",
            case.name,
            wait.as_secs_f64() * 1000.0,
            cfg.args(flags, Path::new("script.sh"))
                .iter()
                .map(|f| f.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );

        if finished {
            // Nothing to kill: whatever is still there outlived a finished run.
            for p in settle(&dir.root, pgid) {
                t.leftovers.push(format!(
                    "{what}: process left after hs finished: {}",
                    describe_proc(&p)
                ));
            }
        }
        // SAFETY: kill(2) on the group this test created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        child.wait().unwrap();
        t.kills += 1;
        t.finished += usize::from(finished);
        for p in settle(&dir.root, pgid) {
            t.leftovers
                .push(format!("{what}: process left: {}", describe_proc(&p)));
        }

        let out = Command::new(&cfg.recover)
            .arg("recover")
            .current_dir(&dir.root)
            .env_clear()
            .envs(dir.env())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            t.leftovers.push(format!(
                "{what}: hs recover failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }

        let got = dir.tree();
        let n = states.len() - 1;
        let mut found = states
            .iter()
            .enumerate()
            .find(|&(k, s)| (!cfg.try_commit || k == 0 || k == n) && s.tree == got)
            .map(|(_, s)| s);
        let aside = dir.root.join(format!("killed-{i}"));
        if found.is_none() && !cfg.try_commit {
            // Keep the tree aside while the partial states are computed in `work/`.
            fs::rename(dir.work(), &aside).unwrap();
            if partials.is_none() {
                partials = Some(partial_states(&dir, case));
            }
            found = partials.iter().flatten().find(|s| s.tree == got);
        }
        match found {
            Some(s) => {
                if std::env::var_os("HS_KILL_DEBUG").is_some() {
                    say(&format!("kill:   matched state {}", s.name));
                }
                if s.tree == states[0].tree {
                    t.start += 1;
                } else if s.tree == states[n].tree {
                    t.end += 1;
                } else {
                    t.mid += 1;
                }
            }
            None => {
                let near = states
                    .iter()
                    .chain(partials.iter().flatten())
                    .min_by_key(|s| tree::diff(&s.tree, &got, "x", "y").lines().count())
                    .unwrap();
                let kept = dir.root.join(format!("corrupt-{i}"));
                let from = if aside.exists() {
                    aside.clone()
                } else {
                    dir.work()
                };
                let _ = fs::rename(from, &kept);
                t.corrupted.push(format!(
                    "{what}: the tree is no prefix state; nearest is after {} of {} statements \
                     (kept in {}):\n{}",
                    near.name,
                    case.steps.len(),
                    kept.display(),
                    tree::diff(&near.tree, &got, "prefix", "killed")
                ));
            }
        }

        if found.is_some() && aside.exists() {
            make_writable(&aside);
            let _ = fs::remove_dir_all(&aside);
        }
        for l in leftover_dirs(&dir.root, &pids) {
            t.leftovers.push(format!("{what}: {l}"));
        }
        for name in dir.tmp_names() {
            if !bash_tmp.contains(&name) && !name.starts_with(b"sh-thd") {
                t.leftovers.push(format!(
                    "{what}: file left in $TMPDIR: {}",
                    show_bytes(&name)
                ));
            }
        }
        for l in leftover_uppers(&sandboxes) {
            t.leftovers.push(format!("{what}: {l}"));
        }
        // Counted: now remove them, so that failing runs do not fill the disk.
        let mut left = sandboxes;
        left.extend(sandbox_dirs(&pids));
        remove_sandboxes(&left);
    }
    if !t.corrupted.is_empty() && !cfg.quiet {
        let mut d = dir;
        d.keep = true;
        say(&format!(
            "kill: {} kept in {}\n--- script ---\n{}",
            case.name,
            d.root.display(),
            show_bytes(&script)
        ));
    }
    t
}

/// Kills spread over generator seeds and hand-written scripts.
fn campaign(cfg: &Config, runs: usize) -> Tally {
    let mut rng = Rng::new(cfg.seed);
    let mut total = Tally::default();
    let scripts = runs.div_ceil(KILLS_PER_SCRIPT);
    for i in 0..scripts {
        let case = if i % 4 == 3 {
            hand(i / 4)
        } else {
            // Scripts that change few files make poor kill targets.
            let mut s = cfg.seed * 100_000 + i as u64 * SEEDS_PER_SCRIPT;
            loop {
                let c = from_generator(s);
                if effects(&c) >= 8 {
                    break c;
                }
                s += 10_000;
            }
        };
        let kills = KILLS_PER_SCRIPT.min(runs - i * KILLS_PER_SCRIPT);
        if std::env::var_os("HS_KILL_DEBUG").is_some() {
            say(&format!(
                "kill: {} ({} statements)",
                case.name,
                case.steps.len()
            ));
        }
        let t = kill_case(cfg, &case, kills, &mut rng, &|r, took| {
            took.mul_f64(r.below(1000) as f64 / 1000.0)
        });
        total.add(t);
    }
    total
}

impl Tally {
    fn add(&mut self, t: Tally) {
        self.kills += t.kills;
        self.finished += t.finished;
        self.start += t.start;
        self.mid += t.mid;
        self.end += t.end;
        self.corrupted.extend(t.corrupted);
        self.leftovers.extend(t.leftovers);
    }

    /// The summary line, and the first few problems.
    fn report(&self, took: Duration) -> (String, String) {
        let line = format!(
            "kill: {} kills (tree at the start {}, mid-script {}, at the end {}; {} after hs had \
             finished), {} corrupted, {} leftovers, {:.1} s",
            self.kills,
            self.start,
            self.mid,
            self.end,
            self.finished,
            self.corrupted.len(),
            self.leftovers.len(),
            took.as_secs_f64()
        );
        let mut report = String::new();
        for c in self.corrupted.iter().take(5) {
            let _ = writeln!(report, "\n{c}");
        }
        for l in self.leftovers.iter().take(20) {
            let _ = writeln!(report, "{l}");
        }
        (line, report)
    }
}

/// The test proper.
#[test]
fn kill_hs_at_random_moments() {
    let cfg = Config::from_env();
    let runs = env_num("HS_KILL_RUNS").unwrap_or(30) as usize;
    let start = Instant::now();
    let t = campaign(&cfg, runs);
    let (line, report) = t.report(start.elapsed());
    say(&line);
    assert!(
        t.corrupted.is_empty() && t.leftovers.is_empty(),
        "{line}\n{report}"
    );
    assert_eq!(t.kills, runs);
    // Kills that all land before or after the script would test nothing.
    if runs >= 10 {
        assert!(t.mid * 10 >= runs, "too few kills mid-script: {line}");
    }
}

/// For `hs try`: many files written in a loop into existing directories (one commit operation
/// each), then a few changes, so that the commit takes long enough for kills to land in it. Only its start and end states count, so the loop is
/// fine.
fn bulk() -> Case {
    let lines = [
        "for i in $(seq 800); do echo \"$i\" > d/f$i; echo \"$i\" > e/g$i; done",
        "echo x >> a",
        "mv b e/b",
        "rm 'sp ace'",
        "ln -s d dl",
    ];
    let steps = lines
        .iter()
        .map(|l| Step {
            text: render(l),
            partial: None,
        })
        .collect();
    Case {
        name: "bulk".into(),
        steps,
    }
}

/// `hs try -y -- bash script.sh` (one sandbox, one journaled commit) killed at random
/// moments, then `hs recover`: the tree must be the start or the end state, with nothing left.
/// This checks the journaled commit until the engine commits speculations (then the main test
/// does). Ignored while open: a killed `hs try` leaves its sandbox directory
/// (`/var/tmp/hs-sandbox-PID-*`) and its upper dirs on other filesystems
/// (`/dev/shm/.hs-sandboxes-0/<inode>`), which `hs recover` does not remove (it only finishes
/// interrupted commits). `HS_KILL_RUNS` (default 20) kills.
#[test]
#[ignore]
fn kill_hs_try_commit() {
    let mut cfg = Config::from_env();
    cfg.try_commit = true;
    let runs = env_num("HS_KILL_RUNS").unwrap_or(20) as usize;
    let start = Instant::now();
    let mut rng = Rng::new(cfg.seed);
    let mut t = Tally::default();
    for chunk in (0..runs).step_by(10) {
        let case = if chunk % 20 == 0 { bulk() } else { hand(0) };
        let kills = 10.min(runs - chunk);
        t.add(kill_case(&cfg, &case, kills, &mut rng, &|r, took| {
            took.mul_f64(0.2 + r.below(800) as f64 / 1000.0)
        }));
    }
    let (line, report) = t.report(start.elapsed());
    say(&line);
    assert!(
        t.corrupted.is_empty() && t.leftovers.is_empty(),
        "{line}\n{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests of the harness itself.

/// A runner script (`#!/bin/bash`, options dropped, then `body`, where `"$@"` is the script).
fn fake_runner(dir: &Path, name: &str, body: &str) -> OsString {
    let p = dir.join(name);
    let strip = r#"while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done"#;
    fs::write(&p, format!("#!/bin/bash\n{strip}\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p.into_os_string()
}

fn self_test_config(program: OsString) -> Config {
    Config {
        program,
        recover: hs_bin(),
        flags: vec![vec![]],
        seed: 7,
        keep: false,
        quiet: true,
        try_commit: false,
    }
}

/// For the self-tests: a few changes, then a long sleep for the kills to land in.
fn tiny() -> Case {
    let lines = [
        "mkdir w",
        "echo a > w/1",
        "echo b >> w/1",
        "echo c > w/2",
        "mv w/2 w/3",
        "sleep 0.3",
    ];
    case_of("tiny", &lines.map(String::from))
}

/// Kills in the middle of the run (in `tiny`'s sleep).
fn middle(r: &mut Rng, took: Duration) -> Duration {
    took.mul_f64(0.4 + r.below(400) as f64 / 1000.0)
}

/// A runner that leaves a state no prefix has, or that writes a file in two steps, is caught.
#[test]
fn kill_harness_catches_corruption() {
    let scratch = Dir::new("self-corrupt", false);
    let case = tiny();
    for (name, body) in [
        // An extra file.
        ("extra", r#"echo junk > zz; exec bash "$@""#),
        // The statements run out of order: appends before writes.
        (
            "reorder",
            r#"for s; do :; done; grep '>>' "$s" > "$TMPDIR/x.sh"; grep -v '>>' "$s" >> "$TMPDIR/x.sh"; exec bash "$TMPDIR/x.sh""#,
        ),
    ] {
        let cfg = self_test_config(fake_runner(&scratch.root, name, body));
        let mut rng = Rng::new(3);
        let t = kill_case(&cfg, &case, 3, &mut rng, &middle);
        assert_eq!(t.kills, 3);
        let caught = t.corrupted.iter().filter(|c| c.contains(" kill ")).count();
        assert_eq!(caught, 3, "{name}: {caught} of 3 kills caught");
        assert!(t.corrupted.iter().any(|c| c.contains("unkilled")), "{name}");
    }
}

/// Processes, sandbox directories and temporary files left behind are caught.
#[test]
fn kill_harness_catches_leftovers() {
    let scratch = Dir::new("self-left", false);
    let case = tiny();
    let base = sandbox::default_base();
    for (name, body, what) in [
        (
            "process",
            r#"setsid sleep 30 </dev/null >/dev/null 2>&1 & exec bash "$@""#,
            "process left",
        ),
        (
            "sandbox",
            &*format!(
                // A file, not a directory: `hs recover` removes the sandbox directories of
                // dead runs itself, and this one must stay for the harness to find.
                r#": > "{}/hs-sandbox-$$-x"; exec bash "$@""#,
                base.display()
            ),
            "sandbox directory",
        ),
        ("tmp", r#": > "$TMPDIR/hs-out"; exec bash "$@""#, "$TMPDIR"),
    ] {
        let cfg = self_test_config(fake_runner(&scratch.root, name, body));
        let mut rng = Rng::new(5);
        let t = kill_case(&cfg, &case, 2, &mut rng, &middle);
        assert!(t.corrupted.is_empty(), "{name}: {:?}", t.corrupted);
        assert!(
            t.leftovers.len() >= 2 && t.leftovers.iter().all(|l| l.contains(what)),
            "{name}: {:?}",
            t.leftovers
        );
        // Clean up what the runner left.
        if let Ok(rd) = fs::read_dir(&base) {
            for e in rd.flatten() {
                let n = e.file_name();
                if n.as_bytes().starts_with(b"hs-sandbox-") && n.as_bytes().ends_with(b"-x") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Kill scripts are valid bash, long enough, and keep only atomic statements.
#[test]
fn kill_scripts_are_flat_and_atomic() {
    assert_eq!(classify("mv a b"), Some(None));
    assert_eq!(classify("cat a b 2>&1"), Some(None));
    assert_eq!(
        classify("echo \"[$v1]\" > 'sp ace'; echo \"rc=$?\""),
        Some(Some(": > 'sp ace'".into()))
    );
    assert_eq!(
        classify("echo -n tail >> d/c"),
        Some(Some(": >> d/c".into()))
    );
    assert_eq!(
        classify("printf '%s\\n' bgline > \"$TMPDIR/bgs.log\" &\nwait $!"),
        Some(None)
    );
    for bad in [
        "cp a b",
        "cp -r d cp1",
        "rm -rf d",
        "mkdir -p e/f",
        "ln -sf a l",
        "printf 'x' > a",
        "printf '%s\\n' 3 1 2 | sort -n | tee a",
        "echo hi | tr a-z A-Z >> a",
        "cat > a <<EOF\nx\nEOF",
        "echo \"$(cat b 2>/dev/null | wc -l) lines\" > a",
    ] {
        assert_eq!(classify(bad), None, "{bad}");
    }
    let dir = Dir::new("self-scripts", false);
    let mut lens = vec![];
    for seed in 0..40 {
        let c = from_generator(seed);
        lens.push(c.steps.len());
        let p = dir.root.join("s.sh");
        fs::write(&p, c.script(usize::MAX, None, false)).unwrap();
        let ok = Command::new("bash").arg("-n").arg(&p).status().unwrap();
        assert!(ok.success(), "seed {seed}");
    }
    for which in 0..3 {
        assert!(hand(which).steps.len() >= 50);
    }
    if std::env::var_os("HS_KILL_DEBUG").is_some() {
        for seed in (100_000..100_200).step_by(4) {
            let c = from_generator(seed);
            say(&format!(
                "seed {seed}: {} steps, {} effects",
                c.steps.len(),
                effects(&c)
            ));
        }
    }
    let avg = lens.iter().sum::<usize>() / lens.len();
    assert!(avg >= 5, "flat scripts too short: {lens:?}");
}
