//! Differential tests: every script under `tests/scripts/` runs under `bash` and under `hs`, and
//! the two runs must agree on stdout, stderr, exit status and the final directory tree (entry
//! types, permission bits, file contents, symlink targets).
//!
//! # How a case runs
//!
//! Each case gets a fresh temporary root `$TMPDIR/hs-diff-<pid>-<script>/`. The script's setup
//! (see below) runs once with plain bash in `root/setup`. Then, one after the other, bash and hs
//! each run in `root/work`, a fresh `cp -a` copy of `root/setup` — the *same* path for both, so
//! scripts that print `$PWD` or paths under `TMPDIR` agree. After each run the tree is
//! snapshotted, and so is `$HOME` (a fresh empty `root/home` for each run), and the directory
//! is moved aside (`work.bash`, `work.hs`). Both runs get the same environment (cleared, then `PATH`, `HOME`, `LC_ALL=C`, `TMPDIR=root/tmp`, ... see [`env`]),
//! and the same stdin. The root is removed when the case passes and kept (path printed) when it
//! fails, or always with `HS_DIFF_KEEP=1`.
//!
//! # Script headers
//!
//! Comment lines at the top of a script (before its first non-comment line) may hold
//! `# key: value` directives:
//!
//! | key        | meaning |
//! |------------|---------|
//! | `covers:`  | what the script covers (required) |
//! | `args:`    | arguments after the script, split like shell words (`'...'`, `"..."`, `\`) |
//! | `flags:`   | options before the script, given to both bash and hs (e.g. `-e -o pipefail`) |
//! | `hs-flags:`| options given to hs only (e.g. `--no-speculate`) |
//! | `setup:`   | a bash command run in the setup dir; repeat the key for more lines |
//! | `stdin:`   | stdin contents (`\n`, `\t`, `\\`, `\xHH` escapes); repeat for more lines, joined by newlines |
//! | `stdin-pipe: yes` | feed stdin through a pipe instead of a regular file |
//! | `env:`     | `NAME=VALUE` added to the environment of both runs |
//! | `invoke:`  | how the script is handed over (below) |
//! | `timeout:` | seconds per run (default 60) |
//!
//! `invoke:` is one of `abs` (default: `bash /abs/path/name.sh args`), `rel` (the script is
//! copied to `script.sh` in the setup dir and run as `bash script.sh args`), `c`
//! (`bash -c "<file contents>" args`, the first arg being `$0`), `stdin-s` (`bash -s args <
//! script`), `stdin` (`bash < script`), `missing` (`bash no-such-script.sh args`) and
//! `shebang` (the script is written to `root/exec/script.sh` behind a `#!/usr/bin/env bash` or
//! `#!/usr/bin/env hs` line and executed directly, with a directory holding `hs` first in
//! `PATH`; `hs-flags:` cannot apply there).
//!
//! # Environment knobs
//!
//! - `HS_BIN=/path/to/runner`: run that instead of the `hs` binary cargo built. Meant for
//!   checking the harness itself, e.g. with a wrapper that runs `exec bash "$@"`.
//! - `HS_DIFF_KEEP=1`: keep every case's temporary root.
//! - `HS_DIFF_ARGS="--no-speculate -j 1"`: options put before every script's own `hs-flags:`
//!   (split on blanks), to run the whole suite in another mode.
//! - `HS_LOG`: passed through to hs.
//! - `HS_MIN_UNIT_MS`: passed through (default here 0, so that every unit is speculated).

#[path = "util/tree.rs"]
mod tree;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tree::{Tree, make_writable, show_bytes, snapshot};

/// Directory holding the scripts.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/scripts")
        .canonicalize()
        .unwrap()
}

/// The runner under test: `$HS_BIN`, or the `hs` binary cargo built for this test.
fn hs_bin() -> OsString {
    std::env::var_os("HS_BIN").unwrap_or_else(|| OsString::from(env!("CARGO_BIN_EXE_hs")))
}

// ---------------------------------------------------------------------------------------------
// Script headers

/// How the script is handed to the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Invoke {
    Abs,
    Rel,
    C,
    StdinS,
    Stdin,
    Missing,
    Shebang,
}

/// A parsed script: its header directives and text.
#[derive(Clone, Debug)]
struct Script {
    name: String,
    path: PathBuf,
    text: Vec<u8>,
    covers: String,
    args: Vec<OsString>,
    flags: Vec<OsString>,
    hs_flags: Vec<OsString>,
    setup: Vec<String>,
    stdin: Option<Vec<u8>>,
    stdin_pipe: bool,
    env: Vec<(OsString, OsString)>,
    invoke: Invoke,
    timeout: Duration,
}

impl Script {
    fn load(name: &str) -> Result<Script, String> {
        let path = scripts_dir().join(name);
        let text = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Script::parse(name, path, text)
    }

    fn parse(name: &str, path: PathBuf, text: Vec<u8>) -> Result<Script, String> {
        let mut s = Script {
            name: name.to_string(),
            path,
            text: text.clone(),
            covers: String::new(),
            args: vec![],
            flags: vec![],
            hs_flags: vec![],
            setup: vec![],
            stdin: None,
            stdin_pipe: false,
            env: vec![],
            invoke: Invoke::Abs,
            timeout: Duration::from_secs(60),
        };
        let head = String::from_utf8_lossy(&text).into_owned();
        for line in head.lines() {
            let Some(rest) = line.strip_prefix('#') else {
                break;
            };
            let rest = rest.trim_start();
            let Some((key, value)) = rest.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "covers" => s.covers = value.to_string(),
                "args" => s.args.extend(split_words(value)?),
                "flags" => s.flags.extend(split_words(value)?),
                "hs-flags" => s.hs_flags.extend(split_words(value)?),
                "setup" => s.setup.push(value.to_string()),
                "stdin" => {
                    let buf = s.stdin.get_or_insert_with(Vec::new);
                    if !buf.is_empty() {
                        buf.push(b'\n');
                    }
                    buf.extend(unescape(value)?);
                }
                "stdin-pipe" => s.stdin_pipe = value == "yes",
                "env" => {
                    let (k, v) = value
                        .split_once('=')
                        .ok_or(format!("{name}: bad env: {value}"))?;
                    s.env.push((k.into(), v.into()));
                }
                "invoke" => {
                    s.invoke = match value {
                        "abs" => Invoke::Abs,
                        "rel" => Invoke::Rel,
                        "c" => Invoke::C,
                        "stdin-s" => Invoke::StdinS,
                        "stdin" => Invoke::Stdin,
                        "missing" => Invoke::Missing,
                        "shebang" => Invoke::Shebang,
                        _ => return Err(format!("{name}: unknown invoke: {value}")),
                    }
                }
                "timeout" => {
                    let secs = value.parse().map_err(|_| format!("{name}: bad timeout"))?;
                    s.timeout = Duration::from_secs(secs);
                }
                _ => {}
            }
        }
        if s.covers.is_empty() {
            return Err(format!("{name}: missing '# covers:' header line"));
        }
        Ok(s)
    }
}

/// Splits a header value into words like a (very small) shell: blanks separate words,
/// `'...'` is literal, `"..."` and `\` quote, `\xHH` outside quotes is a raw byte.
fn split_words(s: &str) -> Result<Vec<OsString>, String> {
    let mut words = vec![];
    let mut cur: Vec<u8> = vec![];
    let mut in_word = false;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => {
                if in_word {
                    words.push(OsString::from_vec(std::mem::take(&mut cur)));
                    in_word = false;
                }
            }
            b'\'' => {
                in_word = true;
                let end = s[i + 1..].find('\'').ok_or("unterminated '")? + i + 1;
                cur.extend(&b[i + 1..end]);
                i = end;
            }
            b'"' => {
                in_word = true;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    cur.push(b[i]);
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated \"".into());
                }
            }
            b'\\' if b.get(i + 1) == Some(&b'x') && i + 3 < b.len() => {
                in_word = true;
                let hex = std::str::from_utf8(&b[i + 2..i + 4]).map_err(|e| e.to_string())?;
                cur.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                i += 3;
            }
            b'\\' if i + 1 < b.len() => {
                in_word = true;
                cur.push(b[i + 1]);
                i += 1;
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
        i += 1;
    }
    if in_word {
        words.push(OsString::from_vec(cur));
    }
    Ok(words)
}

/// Processes `\n`, `\t`, `\\` and `\xHH` escapes.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' if i + 3 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).map_err(|e| e.to_string())?;
                    out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                    i += 2;
                }
                c => {
                    out.push(b'\\');
                    out.push(c);
                }
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Temporary directories and tree snapshots

/// A case's private temporary root, removed on drop unless kept.
struct TempRoot {
    path: PathBuf,
    keep: bool,
}

impl TempRoot {
    fn new(tag: &str) -> TempRoot {
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = std::env::temp_dir().join(format!("hs-diff-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        let keep = std::env::var_os("HS_DIFF_KEEP").is_some_and(|v| v == "1");
        TempRoot {
            path: path.canonicalize().unwrap(),
            keep,
        }
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if !self.keep {
            make_writable(&self.path);
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running

/// What one run produced.
#[derive(Debug)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: String,
    tree: Tree,
    /// What the run left in `$HOME` (a fresh empty directory before each run).
    home: Tree,
    elapsed: Duration,
}

fn status_string(st: ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("{st:?}"),
    }
}

thread_local! {
    /// `HS_MIN_UNIT_MS` for this test's hs runs, overriding the default.
    static MIN_UNIT: std::cell::RefCell<Option<OsString>> = const { std::cell::RefCell::new(None) };
}

/// The environment both runs get.
fn env(root: &Path) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        (
            "PATH".into(),
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        ),
        ("HOME".into(), root.join("home").into()),
        ("LC_ALL".into(), "C".into()),
        ("TMPDIR".into(), root.join("tmp").into()),
        ("TERM".into(), "dumb".into()),
        (
            "USER".into(),
            std::env::var_os("USER").unwrap_or_else(|| "user".into()),
        ),
        ("HS_TEST_MARKER".into(), "exported-from-harness".into()),
        // Speculate every unit, however short (cost control would leave most of these tiny
        // units to the shell), unless the case runs paused (below); bash ignores it.
        (
            "HS_MIN_UNIT_MS".into(),
            MIN_UNIT
                .with(|m| m.borrow().clone())
                .or_else(|| std::env::var_os("HS_MIN_UNIT_MS"))
                .unwrap_or_else(|| "0".into()),
        ),
    ];
    for k in ["HS_LOG", "RUST_BACKTRACE"] {
        if let Some(v) = std::env::var_os(k) {
            env.push((k.into(), v));
        }
    }
    env
}

/// Copies `src` to `dst` with `cp -a` (keeps modes, symlinks and non-UTF-8 names).
fn copy_tree(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "cp -a {} {} failed",
        src.display(),
        dst.display()
    );
}

/// Runs `program args` in `cwd` with the case's environment and stdin, capturing output, and
/// killing the whole process group after `timeout`.
fn run_one(
    script: &Script,
    root: &Path,
    program: &OsStr,
    args: &[OsString],
    stdin: &[u8],
    cwd: &Path,
) -> Outcome {
    let tmp = root.join("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    let home = root.join("home");
    make_writable(&home);
    let _ = fs::remove_dir_all(&home);
    fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env(root))
        .envs(script.env.clone());
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if script.stdin_pipe {
        cmd.stdin(Stdio::piped());
    } else {
        let f = root.join("stdin");
        fs::write(&f, stdin).unwrap();
        cmd.stdin(fs::File::open(&f).unwrap());
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    let pgid = child.id() as i32;
    let feeder = child.stdin.take().map(|mut w| {
        let data = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        })
    });
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = vec![];
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err_t = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > script.timeout {
            timed_out = true;
            // SAFETY: plain kill(2) on the process group we created.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    // Leftover background processes may hold the pipes open: give them the timeout too.
    let deadline = start + script.timeout;
    while !(out_t.is_finished() && err_t.is_finished()) {
        if Instant::now() > deadline {
            timed_out = true;
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let mut status = status_string(status);
    if timed_out {
        status.push_str(" (TIMED OUT, killed)");
    }
    Outcome {
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        status,
        tree: snapshot(cwd),
        home: snapshot(&home),
        elapsed,
    }
}

/// Builds the argument list for one runner (`prefix` = hs-only flags, empty for bash) and the
/// stdin to feed.
fn invocation(script: &Script, prefix: &[OsString]) -> (Vec<OsString>, Vec<u8>) {
    let mut args: Vec<OsString> = prefix.to_vec();
    args.extend(script.flags.iter().cloned());
    let mut stdin = script.stdin.clone().unwrap_or_default();
    match script.invoke {
        Invoke::Abs => args.push(script.path.clone().into()),
        Invoke::Rel => args.push("script.sh".into()),
        Invoke::Missing => args.push("no-such-script.sh".into()),
        // The program is the script itself; see `compare`.
        Invoke::Shebang => args.clear(),
        Invoke::C => {
            args.push("-c".into());
            args.push(OsString::from_vec(script.text.clone()));
        }
        Invoke::StdinS => {
            args.push("-s".into());
            stdin = script.text.clone();
        }
        Invoke::Stdin => stdin = script.text.clone(),
    }
    if script.invoke != Invoke::Stdin {
        args.extend(script.args.iter().cloned());
    }
    (args, stdin)
}

/// `$HS_DIFF_ARGS`, split on blanks: options for hs before every script's own `hs-flags:`.
fn hs_diff_args() -> Vec<OsString> {
    std::env::var("HS_DIFF_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(OsString::from)
        .collect()
}

/// Runs `script` under bash and under `hs_prog extra_args [hs-flags]`; returns a readable
/// report of every difference.
fn compare(script: &Script, hs_prog: &OsStr, extra_args: &[OsString]) -> Result<(), String> {
    // The paused variant of a case runs beside the case itself: a root of its own.
    let paused = MIN_UNIT.with(|m| m.borrow().is_some());
    let root = TempRoot::new(&format!(
        "{}{}",
        if paused { "paused-" } else { "" },
        script.name
    ));
    let setup = root.path.join("setup");
    fs::create_dir_all(&setup).unwrap();
    if !script.setup.is_empty() {
        let text = script.setup.join("\n");
        let out = Command::new("bash")
            .arg("-c")
            .arg(&text)
            .current_dir(&setup)
            .env_clear()
            .envs(env(&root.path))
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "{}: setup failed ({}):\n{}",
                script.name,
                status_string(out.status),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    if script.invoke == Invoke::Rel {
        fs::write(setup.join("script.sh"), &script.text).unwrap();
    }
    let work = root.path.join("work");
    let mut hs_flags = extra_args.to_vec();
    hs_flags.extend(script.hs_flags.iter().cloned());
    let mut outcomes = vec![];
    // For `invoke: shebang`, the script runs as an executable at one fixed path, its first line
    // `#!/usr/bin/env bash` or `#!/usr/bin/env hs`, with a directory holding `hs` first in PATH.
    let exec_script = root.path.join("exec/script.sh");
    let mut script = script.clone();
    if script.invoke == Invoke::Shebang {
        let bin = root.path.join("pathbin");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(exec_script.parent().unwrap()).unwrap();
        let target = fs::canonicalize(hs_prog).unwrap_or_else(|_| PathBuf::from(hs_prog));
        std::os::unix::fs::symlink(target, bin.join("hs")).unwrap();
        let mut path = bin.into_os_string();
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        script.env.push(("PATH".into(), path));
    }
    let script = &script;
    for (label, program, prefix) in [
        ("bash", OsStr::new("bash"), &[][..]),
        ("hs", hs_prog, &hs_flags[..]),
    ] {
        let _ = fs::remove_dir_all(&work);
        copy_tree(&setup, &work);
        let (args, stdin) = invocation(script, prefix);
        let program = if script.invoke == Invoke::Shebang {
            let mut text = format!("#!/usr/bin/env {label}\n").into_bytes();
            text.extend_from_slice(&script.text);
            fs::write(&exec_script, text).unwrap();
            fs::set_permissions(&exec_script, fs::Permissions::from_mode(0o755)).unwrap();
            exec_script.as_os_str()
        } else {
            program
        };
        let outcome = run_one(script, &root.path, program, &args, &stdin, &work);
        // A script may have removed its own directory: nothing to move then.
        let _ = fs::rename(&work, root.path.join(format!("work.{label}")));
        outcomes.push(outcome);
    }
    let (bash, hs) = (&outcomes[0], &outcomes[1]);
    let mut report = String::new();
    if bash.status != hs.status {
        let _ = writeln!(
            report,
            "\n==================== exit status differs ====================\n\
             expected (bash): {}\ngot (hs):        {}",
            bash.status, hs.status
        );
    }
    if bash.stdout != hs.stdout {
        fenced(&mut report, "stdout", &bash.stdout, &hs.stdout);
    }
    if bash.stderr != hs.stderr {
        fenced(&mut report, "stderr", &bash.stderr, &hs.stderr);
    }
    if bash.tree != hs.tree {
        tree_diff(&mut report, "final files", &bash.tree, &hs.tree);
    }
    if bash.home != hs.home {
        tree_diff(&mut report, "files left in $HOME", &bash.home, &hs.home);
    }
    if report.is_empty() {
        return Ok(());
    }
    let mut head = format!(
        "\n#################### {} differs from bash ####################\n\
         script:  {}\ncovers:  {}\nrunner:  {}\nbash took {:?}, hs took {:?}\n",
        script.name,
        script.path.display(),
        script.covers,
        Path::new(hs_prog).display(),
        bash.elapsed,
        hs.elapsed,
    );
    let (args, _) = invocation(script, &hs_flags);
    let shown: Vec<String> = args.iter().map(|a| show_bytes(a.as_bytes())).collect();
    let _ = writeln!(head, "hs args: {}", shown.join(" "));
    let mut root = root;
    root.keep = true;
    let _ = writeln!(
        head,
        "kept:    {} (setup/, work.bash/, work.hs/)",
        root.path.display()
    );
    Err(head + &report)
}

// ---------------------------------------------------------------------------------------------
// Reporting

/// Appends an eqnice-style report: expected (bash) and got (hs) in fenced blocks. Large
/// outputs are cut to the region around the first differing line.
fn fenced(report: &mut String, what: &str, bash: &[u8], hs: &[u8]) {
    const LIMIT: usize = 4000;
    let _ = writeln!(
        report,
        "\n==================== {what} differs ===================="
    );
    let (b, h, note) = if bash.len() <= LIMIT && hs.len() <= LIMIT {
        (show_bytes(bash), show_bytes(hs), String::new())
    } else {
        let bl: Vec<&[u8]> = bash.split_inclusive(|&c| c == b'\n').collect();
        let hl: Vec<&[u8]> = hs.split_inclusive(|&c| c == b'\n').collect();
        let first = bl
            .iter()
            .zip(&hl)
            .position(|(x, y)| x != y)
            .unwrap_or(bl.len().min(hl.len()));
        let from = first.saturating_sub(5);
        let window = |lines: &[&[u8]]| {
            let end = lines.len().min(first + 6);
            let mut v = vec![];
            for l in &lines[from.min(lines.len())..end] {
                v.extend_from_slice(&l[..l.len().min(300)]);
                if l.len() > 300 {
                    v.extend_from_slice(b"...[line cut]\n");
                }
            }
            show_bytes(&v)
        };
        let note = format!(
            "(bash: {} bytes / {} lines, hs: {} bytes / {} lines; first difference at line {}; \
             showing lines {}..)\n",
            bash.len(),
            bl.len(),
            hs.len(),
            hl.len(),
            first + 1,
            from + 1
        );
        (window(&bl), window(&hl), note)
    };
    report.push_str(&note);
    for (label, text) in [("expected (bash)", b), ("got (hs)", h)] {
        let _ = writeln!(report, "{label}:\n```");
        report.push_str(&text);
        if !text.is_empty() && !text.ends_with('\n') {
            report.push_str("\u{23ce} (no newline at end)\n");
        }
        report.push_str("```\n");
    }
}

fn tree_diff(report: &mut String, what: &str, bash: &Tree, hs: &Tree) {
    let _ = writeln!(
        report,
        "\n==================== {what} differ ===================="
    );
    report.push_str("```\n");
    report.push_str(&tree::diff(bash, hs, "bash", "hs"));
    report.push_str("```\n");
}

/// Like [`check`], with hs's cost control pausing speculation for good after the first three
/// units: the shell's gates then stop waiting for answers (`a` messages) while nothing is
/// speculated, the path most real scripts with short units take.
fn check_paused(name: &str) {
    MIN_UNIT.with(|m| *m.borrow_mut() = Some("1000000".into()));
    check(name);
}

/// Runs one script under bash and hs and panics with the report if they differ.
fn check(name: &str) {
    let script = Script::load(name).unwrap_or_else(|e| panic!("{e}"));
    if let Err(report) = compare(&script, &hs_bin(), &hs_diff_args()) {
        panic!("{report}");
    }
}

// ---------------------------------------------------------------------------------------------
// The cases: one #[test] per script.

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        /// Every script the macro below turns into a test, by file name.
        const ALL_SCRIPTS: &[&str] = &[$(concat!(stringify!($name), ".sh")),*];
        $(
            #[test]
            fn $name() {
                check(concat!(stringify!($name), ".sh"));
            }
        )*
        /// The same scripts with speculation paused by cost control.
        mod paused {
            $(
                #[test]
                fn $name() {
                    super::check_paused(concat!(stringify!($name), ".sh"));
                }
            )*
        }
    };
}

include!("scripts/list.rs");

// ---------------------------------------------------------------------------------------------
// Tests of the harness itself.

/// Every `tests/scripts/*.sh` has a test (so none is silently skipped), and there are enough.
#[test]
fn harness_lists_every_script() {
    let mut on_disk: Vec<String> = fs::read_dir(scripts_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sh"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = ALL_SCRIPTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "tests/scripts/list.rs must name every tests/scripts/*.sh"
    );
    assert!(listed.len() >= 60, "only {} scripts", listed.len());
    for n in &listed {
        Script::load(n).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A runner that is bash passes; runners that change stdout, stderr, the exit status or the
/// files left behind are each caught.
#[test]
fn harness_detects_differences() {
    let root = TempRoot::new("harness_self_test");
    let fake = |name: &str, body: &str| {
        let p = root.path.join(name);
        fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let text =
        b"# covers: harness self-test\necho out; echo err >&2; touch made; exit 3\n".to_vec();
    let script = Script::parse("self.sh", root.path.join("self.sh"), text.clone()).unwrap();
    fs::write(&script.path, &text).unwrap();
    let same = fake("same", r#"exec bash "$@""#);
    compare(&script, same.as_os_str(), &[]).expect("bash vs bash must agree");
    for (name, body, what) in [
        (
            "out",
            r#"bash "$@"; rc=$?; echo extra; exit $rc"#,
            "stdout differs",
        ),
        (
            "err",
            r#"bash "$@"; rc=$?; echo extra >&2; exit $rc"#,
            "stderr differs",
        ),
        ("rc", r#"bash "$@"; exit 4"#, "exit status differs"),
        (
            "files",
            r#"bash "$@"; rc=$?; mkdir extra; exit $rc"#,
            "final files differ",
        ),
        (
            "mode",
            r#"bash "$@"; rc=$?; chmod 600 made; exit $rc"#,
            "final files differ",
        ),
        (
            "home",
            r#"bash "$@"; rc=$?; touch ~/x; exit $rc"#,
            "files left in $HOME differ",
        ),
    ] {
        let p = fake(name, body);
        let err = compare(&script, p.as_os_str(), &[]).expect_err(name);
        // compare() keeps a failing case's directory for inspection: not wanted here (a new
        // TempRoot of the same name wipes it, and removes it when dropped).
        drop(TempRoot::new(&script.name));
        assert!(err.contains(what), "{name}: report lacks {what:?}:\n{err}");
    }
}

#[test]
fn harness_splits_words() {
    let w = split_words(r#"a 'b c' "d \" e" f\ g \xff"#).unwrap();
    let want: Vec<OsString> = vec![
        "a".into(),
        "b c".into(),
        "d \" e".into(),
        "f g".into(),
        OsString::from_vec(vec![0xff]),
    ];
    assert_eq!(w, want);
}
