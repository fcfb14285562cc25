//! Speculation: the gate server's driver.
//!
//! One thread owns the [`Scheduler`] and carries out its actions; everything else reports to
//! it over one channel: the main shell's gates, loops and exit (main pipe), subshells' notes
//! (request pipe), finished speculative runs (one waiter thread each). Speculative runs are
//! `bash -c` of the unit's own text in a prestarted sandbox, traced, at `SCHED_IDLE`, with the
//! state the scheduler predicted (`state::restore_script`). The real shell is traced too
//! (the shim installs a filter that reports its writes here), so what it does between two
//! gates is either the direct run of the unit it was told to run, or shell activity.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::{Receiver, Sender};
use scheduler::{Access, AccessKind, Action, Event, Flags, Instance, RunId, Scheduler, State};
use serde::Serialize;

use crate::gate::ServeArgs;
use crate::state::{self, Context};

/// How long into a run the first sandbox is set up: short scripts end before speculation
/// could pay for itself.
const FIRST_SANDBOX: std::time::Duration = std::time::Duration::from_millis(40);

/// Variables bash changes by itself: a unit expanding one cannot be re-created elsewhere.
const DYNAMIC: &[&str] = &[
    "RANDOM",
    "SRANDOM",
    "SECONDS",
    "LINENO",
    "EPOCHSECONDS",
    "EPOCHREALTIME",
    "BASHPID",
    "BASH_SUBSHELL",
    "PPID",
    "FUNCNAME",
    "BASH_SOURCE",
    "BASH_LINENO",
    "BASH_ARGV",
    "BASH_ARGC",
    "BASH_COMMAND",
    "HISTCMD",
    "PIPESTATUS",
    "DIRSTACK",
    "COPROC",
];

/// Programs that read or write /dev/tty.
const INTERACTIVE: &[&str] = &[
    "ssh", "scp", "sftp", "sudo", "su", "doas", "passwd", "less", "more", "most", "vi", "vim",
    "nvim", "nano", "emacs", "git", "gpg", "gpg2", "pinentry", "man", "top", "htop", "tput",
    "stty", "tmux", "screen", "dialog", "whiptail", "read", "select", "mysql", "psql",
];

/// Builtins whose effect or output depends on shell state a speculative `bash -c` does not
/// have (the call stack, the directory stack, jobs, traps, every variable or function, the
/// shell's times), or that reach processes outside a sandbox (`kill`).
const SHELL_STATE: &[&str] = &[
    "caller", "dirs", "jobs", "times", "trap", "kill", "wait", "bg", "fg", "disown", "suspend",
    "history", "fc", "compgen", "complete", "compopt", "declare", "typeset", "local", "readonly",
    "export", "set", "alias", "hash", "type", "command", "enable", "bind", "getopts", "eval",
    "source", ".", "builtin", "help",
];

/// Why a script must not be speculated at all (its gates then never wait), if it must not.
pub(crate) fn blocker(script: &parser::Script, source: &[u8]) -> Option<String> {
    // Words as the shell could expand them: comments and single-quoted text (a perl or awk
    // program) do not count.
    let words = parser::expandable_words(source);
    let has = |s: &str| words.iter().any(|w| w.contains(s));
    if has("PIPESTATUS") {
        return Some("it reads PIPESTATUS, which a replayed pipeline does not set".into());
    }
    // `$_` after a replayed unit would name the replay, not the unit's last argument.
    let dollar_underscore = words.iter().any(|w| {
        w.as_bytes().windows(3).any(|x| {
            x[0] == b'$' && x[1] == b'_' && !(x[2].is_ascii_alphanumeric() || x[2] == b'_')
        }) || w.ends_with("$_")
            || w.contains("${_}")
            || w.contains("${_:")
            || w.contains("${_-")
    });
    if dollar_underscore {
        return Some("it reads `$_`".into());
    }
    if words.iter().any(|w| w == "alias") || has("expand_aliases") {
        return Some("aliases exist only in the shell that defined them".into());
    }
    if has("BASH_CMDS") || builtins(&script.body).contains("hash") {
        return Some("the command hash table shows which commands the shell ran".into());
    }
    if has("lastpipe") {
        return Some("lastpipe runs a pipeline's last command in the shell".into());
    }
    if !enough_units(script, source) {
        return Some("fewer than two units could run ahead".into());
    }
    if !nix::unistd::geteuid().is_root()
        && let Some(cmd) = setuid_command(script)
    {
        return Some(format!(
            "it runs {cmd}, which is set-user-ID: tracing the shell unprivileged \
             turns set-user-ID off"
        ));
    }
    None
}

/// Whether anything can run ahead at all: at least two units hs could speculate (a unit
/// inside a loop counts twice). Otherwise the server, the shell's tracing and the sandboxes
/// would only cost time.
fn enough_units(script: &parser::Script, source: &[u8]) -> bool {
    let info = ScriptInfo::new(script, source);
    let in_loop = units_in_loops(&script.body);
    let n: usize = script
        .units
        .iter()
        .filter(|u| u.gate == parser::Gate::Wrap && unit_blocker(u, &info).is_none())
        .map(|u| if in_loop.contains(&u.id) { 2 } else { 1 })
        .sum();
    n >= 2
}

/// Units inside `for`/`while` loops.
fn units_in_loops(n: &parser::Node) -> HashSet<parser::UnitId> {
    let mut out = HashSet::new();
    visit(n, false, &mut |n, in_loop| {
        if let parser::Node::Unit { id } = n
            && in_loop
        {
            out.insert(*id);
        }
    });
    out
}

/// A literal command of the script that is a set-user-ID or set-group-ID program.
fn setuid_command(script: &parser::Script) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let mut seen = HashSet::new();
    for u in &script.units {
        for c in &u.commands {
            if c.contains('$') || c.contains('`') || !seen.insert(c.clone()) {
                continue;
            }
            let cands: Vec<PathBuf> = if c.contains('/') {
                vec![PathBuf::from(c)]
            } else {
                dirs.iter().map(|d| d.join(c)).collect()
            };
            for p in cands {
                if let Ok(m) = std::fs::metadata(&p) {
                    if m.is_file() && m.permissions().mode() & 0o6000 != 0 {
                        return Some(c.clone());
                    }
                    if m.is_file() {
                        break;
                    }
                }
            }
        }
    }
    None
}

/// What the engine knows of a script's functions, for units that may call them.
pub(crate) struct ScriptInfo {
    /// Functions the script defines, sorted.
    functions: Vec<String>,
    /// Every variable the script's text expands (a function reads globals).
    all_vars: parser::VarRefs,
    /// Whether it exports functions (then any bash a unit starts may call them).
    exports: bool,
    /// Variables set by assignments prediction computes and expanded somewhere: every gate
    /// reports them, so that what the scheduler knows of them is never stale.
    computed: Vec<String>,
}

impl ScriptInfo {
    pub(crate) fn new(script: &parser::Script, source: &[u8]) -> ScriptInfo {
        let mut functions: Vec<String> = functions(&script.body).into_iter().collect();
        functions.sort();
        let mut all_vars = parser::VarRefs::default();
        all_vars.scan(source);
        let mut computed: Vec<String> = names(&script.body, |n| match n {
            parser::Node::Assign {
                assigns, values, ..
            } => assigns
                .iter()
                .zip(values)
                .filter(|(_, v)| v.is_some())
                .map(|(a, _)| a.clone())
                .collect(),
            _ => Vec::new(),
        })
        .into_iter()
        .filter(|v| all_vars.names.contains(v))
        .collect();
        computed.sort();
        ScriptInfo {
            functions,
            all_vars,
            exports: !script.exported.is_empty(),
            computed,
        }
    }

    /// What unit `u`'s gate reports: [`ScriptInfo::unit_state`], plus the variables that
    /// computed assignments set.
    pub(crate) fn reported(&self, u: &parser::Unit) -> (Vec<String>, Vec<String>) {
        let (mut names, functions) = self.unit_state(u);
        names.extend(self.computed.iter().cloned());
        names.sort();
        names.dedup();
        (names, functions)
    }

    /// Whether unit `u` may run a function of the script (directly, through a computed
    /// command name, or through a child bash when functions are exported).
    fn calls_functions(&self, u: &parser::Unit) -> bool {
        !self.functions.is_empty()
            && (self.exports
                || u.commands.iter().any(|c| {
                    let name: String = c
                        .chars()
                        .filter(|ch| !matches!(ch, '"' | '\'' | '\\'))
                        .collect();
                    self.functions.contains(&name) || c.contains('$') || c.contains('`')
                }))
    }

    /// What unit `u`'s gate reports: the variables it expands — every variable of the script
    /// when it may call a function — and the functions to send along.
    pub(crate) fn unit_state(&self, u: &parser::Unit) -> (Vec<String>, Vec<String>) {
        if self.calls_functions(u) {
            let mut names: Vec<String> = u
                .vars
                .names
                .iter()
                .chain(&self.all_vars.names)
                .cloned()
                .collect();
            names.sort();
            names.dedup();
            (names, self.functions.clone())
        } else {
            (u.vars.names.iter().cloned().collect(), Vec::new())
        }
    }
}

/// Why a unit cannot run in a sandbox with the same result, if it cannot.
fn unit_blocker(u: &parser::Unit, info: &ScriptInfo) -> Option<&'static str> {
    if !u.vars.specials.is_empty() {
        return Some("expands a special parameter ($$, $!, $-, $_)");
    }
    let (names, functions) = info.unit_state(u);
    if names.iter().any(|n| DYNAMIC.contains(&n.as_str())) {
        return Some("expands a variable bash changes by itself");
    }
    if !functions.is_empty() && (info.all_vars.all || !info.all_vars.specials.is_empty()) {
        return Some("calls a function that may expand special or indirect parameters");
    }
    for c in &u.commands {
        let name: String = c
            .chars()
            .filter(|ch| !matches!(ch, '"' | '\'' | '\\'))
            .collect();
        // They talk to /dev/tty (prompts, pagers), which a sandbox does not have. (Bash
        // itself opens /dev/tty at start-up and closes it again, so the trace cannot tell.)
        let base = name.rsplit('/').next().unwrap_or(&name);
        if INTERACTIVE.contains(&base) {
            return Some("may talk to the terminal (/dev/tty)");
        }
        if SHELL_STATE.contains(&name.as_str()) {
            return Some("runs a builtin that shows or changes shell state a sandbox lacks");
        }
    }
    let t = &u.text;
    if other_fd_redirect(t) {
        return Some("redirects a file descriptor above 2");
    }
    let has = |s: &[u8]| t.windows(s.len()).any(|w| w == s);
    if has(b"${") && (has(b":?") || has(b"?}")) {
        return Some("`${x?}` exits the shell");
    }
    None
}

/// `3>f`, `>&4`, `{fd}>f`, … anywhere in the text (over-approximated).
fn other_fd_redirect(t: &[u8]) -> bool {
    for i in 0..t.len() {
        let c = t[i];
        if c == b'<' || c == b'>' {
            // A digit ≥ 3 (or `}`) right before the operator, not part of a word.
            if i > 0 {
                let p = t[i - 1];
                let word_before = i > 1 && (t[i - 2].is_ascii_alphanumeric() || t[i - 2] == b'_');
                if (p.is_ascii_digit() && p >= b'3' && !word_before) || p == b'}' {
                    return true;
                }
            }
            // `>&N` / `<&N` with N ≥ 3, or `&$var`.
            if t.get(i + 1) == Some(&b'&') {
                let n = t.get(i + 2).copied().unwrap_or(b' ');
                if (n.is_ascii_digit() && n >= b'3') || n == b'$' {
                    return true;
                }
            }
        }
    }
    false
}

/// A message for the driver thread.
enum Msg {
    /// The shell's context as the script starts.
    Start { body: Vec<u8> },
    /// The main shell at a gate.
    Gate {
        unit: u32,
        iters: Vec<u32>,
        status: i32,
        body: Vec<u8>,
    },
    /// A loop started (main shell).
    Loop {
        id: u32,
        iters: Vec<u32>,
        words: Vec<Vec<u8>>,
    },
    /// A subshell passed a gate (report only).
    Note,
    /// The main shell is exiting (or the main pipe closed).
    Exit { reply: bool },
    /// A speculative run ended.
    Done(RunId, Box<Finished>),
    /// A run the driver did not start (the unit or state cannot be re-created).
    Refused(RunId),
    /// A main-shell gate that did not wait (`a ID PID STATUS`): nothing was speculated, so
    /// the shell runs the unit and only says so.
    AsyncGate {
        unit: u32,
        iters: Vec<u32>,
        status: i32,
        /// The state report, when the server asked for it (`A` messages).
        body: Option<Vec<u8>>,
    },
    /// A run whose sandbox failed to start it.
    Failed(RunId, sandbox::Sandbox),
}

/// Kills a run from the driver, whether or not its waiter has started it yet.
#[derive(Default)]
struct Handle {
    pid: std::sync::atomic::AtomicI32,
    cancel: std::sync::atomic::AtomicBool,
    /// The run's tracer thread.
    tracer: std::sync::atomic::AtomicI32,
}

impl Handle {
    /// Called by the waiter once the sandbox's helper runs.
    fn started(&self, pid: i32, tracer: Option<i32>) {
        use std::sync::atomic::Ordering::SeqCst;
        self.tracer.store(tracer.unwrap_or(0), SeqCst);
        self.pid.store(pid, SeqCst);
        if self.cancel.load(SeqCst) {
            kill(pid);
        }
    }

    /// Whether the driver killed the run.
    fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the run's sandbox has started it.
    fn running(&self) -> bool {
        self.pid.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// The shell now waits for this run: it gets normal CPU priority, like the shell's own
    /// commands (where the caller may raise it).
    fn promote(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let pid = self.pid.load(SeqCst);
        if pid > 0 {
            let tracer = self.tracer.load(SeqCst);
            let tids: &[i32] = if tracer > 0 { &[tracer] } else { &[] };
            let n = sandbox::unidle_tree(pid, tids);
            tracing::debug!(pid, threads = n, "waited-for run promoted");
        }
    }

    /// Called by the driver.
    fn kill(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.cancel.store(true, SeqCst);
        let pid = self.pid.load(SeqCst);
        if pid > 0 {
            kill(pid);
        }
    }
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// What a waiter thread hands back.
struct Finished {
    /// From `exec` to exit.
    took: f64,
    exit: i32,
    trace: Result<trace::Trace, trace::Error>,
    changes: Result<sandbox::ChangeSet, sandbox::Error>,
    sandbox: sandbox::Sandbox,
}

/// A speculative run the driver knows about.
struct Run {
    instance: Instance,
    lane: usize,
    handle: Arc<Handle>,
    /// Stdout and stderr went to one pty (captured in `out`).
    merged: bool,
    /// Whether stdout / stderr went to a pty.
    ttys: (bool, bool),
    /// The PATH lookups the engine did for it (`hash_commands`).
    lookups: Vec<Access>,
    /// When it finished (seconds since the start).
    finished_at: Option<f64>,
    /// Its working directory.
    cwd: PathBuf,
    out: PathBuf,
    err: PathBuf,
    pre: PathBuf,
    /// Once finished: the sandbox to commit or discard.
    sandbox: Option<sandbox::Sandbox>,
    exit: i32,
    start: f64,
}

/// One bar of the timeline / one line of `runs` in the report.
#[derive(Serialize, Clone)]
struct Bar {
    instance: String,
    unit: u32,
    /// `shell`, or the speculation slot.
    lane: Option<usize>,
    start: f64,
    end: f64,
    /// `committed`, `discarded` or `direct`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

/// What the speculating server starts from, prepared by `hs` before it splits into the
/// server and the shell (`run::start_server`).
pub(crate) struct Start<'a> {
    /// The script, as given and as parsed.
    pub(crate) source: &'a [u8],
    pub(crate) script: &'a parser::Script,
    pub(crate) setup: Setup,
}

/// The pieces of a speculating run made before the fork, whose fds the shell names by number.
pub(crate) struct Setup {
    /// The shell's tracer: its supervisor, to start in the server, and the hook and filter
    /// memfd that the shim takes from the server; `None`: the shell runs untraced,
    /// speculation off.
    pub(crate) shell: Option<(trace::Pending, trace::ChildHook, OwnedFd)>,
    /// The sync mark: main-shell gates wait for an answer while this memfd is not empty
    /// (`[[ -s /proc/SERVER/fd/N ]]`; see `Driver::update_sync`).
    pub(crate) sync: OwnedFd,
    /// The state mark: gates that do not wait report the shell's state while this one is
    /// not empty.
    pub(crate) want: OwnedFd,
}

impl Setup {
    pub(crate) fn new() -> anyhow::Result<Setup> {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        let tracer = trace::Tracer::with_filter(shell_filter()).grace(Duration::ZERO);
        let shell = match tracer.prepare() {
            Ok((pending, hook)) => {
                let memfd = memfd_create("hs-filter", MFdFlags::MFD_CLOEXEC)?;
                File::from(memfd.try_clone()?).write_all(&hook.program_bytes())?;
                Some((pending, hook, memfd))
            }
            Err(e) => {
                tracing::debug!("cannot trace the shell ({e}); speculation off");
                None
            }
        };
        let sync = memfd_create("hs-sync", MFdFlags::MFD_CLOEXEC)?;
        let want = memfd_create("hs-want", MFdFlags::MFD_CLOEXEC)?;
        Ok(Setup { shell, sync, want })
    }
}

/// Serves a speculating run until the main shell exits.
pub(crate) fn serve(args: &ServeArgs, pipes: Pipes, start: Start<'_>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // Sandbox helpers forked from a small process of their own cost a fraction of those
    // forked from the server once it has grown (see sandbox's zygote). It is exec'd by the
    // pool when speculation first needs a sandbox: a script that never speculates pays nothing.
    let zygote = start.setup.shell.is_some()
        && args.run.jobs != Some(0)
        && std::env::var_os("HS_NO_ZYGOTE").is_none();
    // The shell's death (SIGTERM, our parent-death signal) or a kill must still tear the
    // sandboxes down: block it in every thread and turn it into an exit message.
    let mut term = nix::sys::signal::SigSet::empty();
    term.add(nix::sys::signal::Signal::SIGTERM);
    term.add(nix::sys::signal::Signal::SIGHUP);
    term.add(nix::sys::signal::Signal::SIGINT);
    let _ = term.thread_block();
    let Start {
        source,
        script,
        setup: Setup { shell, sync, want },
    } = start;
    let (sync, want) = (File::from(sync), File::from(want));
    let shell_trace = match shell {
        Some((pending, hook, memfd)) => match pending.start() {
            Ok(session) => Some((session, hook, memfd)),
            Err(e) => {
                // The shim finds no supervisor: the shell's traced calls fail from here on.
                tracing::warn!("cannot start the shell's tracer: {e}");
                None
            }
        },
        None => None,
    };
    let min_unit = min_unit();
    // Until a unit is seen to take `min_unit`, speculation is paused (`note_unit_run`): most
    // scripts are short, and a sandbox costs more than their units do. Gates do not wait
    // meanwhile but report the shell's state (`update_sync`), so that a first unit that runs
    // long is overlapped from its start.
    let start_paused = min_unit > 0.0;
    let sync_on = shell_trace.is_some() && !start_paused;
    let want_on = shell_trace.is_some() && start_paused;
    if sync_on {
        sync.set_len(1).context("cannot set the sync mark")?;
    }
    if want_on {
        want.set_len(1).context("cannot set the state mark")?;
    }
    let source = source.to_vec();
    let window = match args.run.jobs {
        Some(j) => j,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let info = ScriptInfo::new(script, &source);
    let program = crate::program::program_with(script, &|u| {
        let (names, functions) = info.unit_state(u);
        let mut vars: Vec<Vec<u8>> = names.into_iter().map(String::into_bytes).collect();
        if !functions.is_empty() {
            vars.push(state::FUNCTIONS.to_vec());
        }
        vars
    });
    let config = scheduler::Config {
        window: if sync_on && !start_paused { window } else { 0 },
        ..scheduler::Config::default()
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("hs-signals".into())
            .spawn(move || {
                if term.wait().is_ok() {
                    let _ = tx.send(Msg::Exit { reply: false });
                }
            })
            .context("cannot start a thread")?;
    }
    read_main(pipes.main, args.token.clone(), tx.clone());
    read_notes(pipes.requests, tx.clone());
    let mut d = Driver {
        sched: Scheduler::new(config, program),
        t0: started,
        shell: args
            .run
            .shell
            .clone()
            .unwrap_or_else(|| PathBuf::from("bash")),
        dollar0: args.dollar0.clone(),
        main_pid: args.main_pid,
        replies: pipes.replies,
        tx,
        tmp: run_dir_name(),
        tmp_made: false,
        units: script.units.clone(),
        blocked: script
            .units
            .iter()
            .map(|u| unit_blocker(u, &info))
            .collect(),
        names: script
            .units
            .iter()
            .map(|u| (u.id.0, info.reported(u)))
            .collect(),
        source,
        runs: HashMap::new(),
        lanes: vec![None; window.max(1) * 2],
        pool: None,
        janitor: Janitor::new(),
        zygote,
        shell_trace: shell_trace.as_ref().map(|s| &s.0),
        traced: None,
        direct: None,
        direct_start: 0.0,
        bars: Vec::new(),
        gates: 0,
        notes: 0,

        ttys: (false, false),
        winsize: nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
        killed: HashSet::new(),
        window,
        asked_window: window,
        open_writes: Vec::new(),
        open_writes_known: false,
        started_in_segment: false,
        reported: args.run.report.is_some()
            || args.run.dag.is_some()
            || args.run.timeline.is_some(),
        last_took: HashMap::new(),
        direct_took: HashMap::new(),
        spec_took: HashMap::new(),
        recent_units: Vec::new(),
        memory_paused: false,
        short_paused: start_paused,
        answered: false,
        gate_at: started,
        gain: 0.0,
        answers: 0,
        min_unit,
        last_memory_check: started,
        sync,
        sync_on,
        want,
        want_on,
        async_gates: 0,
    };
    d.ttys = d.shell_ttys();
    if d.ttys.0 || d.ttys.1 {
        d.winsize = terminal_size(args.main_pid, if d.ttys.0 { 1 } else { 2 }).unwrap_or(d.winsize);
    }
    let reply_exit = d.run(&rx)?;
    d.stop_runs();
    let reported = d.report(args, started);
    if reply_exit {
        let _ = d.replies.write_all(b"d\n");
    }
    d.cleanup(&rx);
    drop(shell_trace);
    reported?;
    Ok(ExitCode::SUCCESS)
}

/// The pipes a server reads and writes.
pub(crate) struct Pipes {
    /// Subshells' notes.
    pub(crate) requests: File,
    /// The main shell's messages.
    pub(crate) main: File,
    /// Answers to the main shell.
    pub(crate) replies: File,
}

/// `HS_MIN_UNIT_MS` in seconds (default 30 ms): units whose last run took less are left to
/// the shell; speculation starts paused unless it is 0.
pub(crate) fn min_unit() -> f64 {
    std::env::var("HS_MIN_UNIT_MS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(30.0)
        / 1000.0
}

/// A private directory for preambles and captured output: `BASE/hs-PID-RANDOM` (no `:` or
/// space, which the replay path and the gate reply could not carry), made by the first run.
/// BASE is `/dev/shm` where it is a writable tmpfs, else `/tmp`: three files per run are
/// created and deleted there, and on ext4 every inode deleted in the last 30 s slows the next
/// allocations (`recently_deleted` reads inode tables; 1–2 ms per run in a `fully_seq` profile).
fn run_dir_name() -> PathBuf {
    static BASE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| {
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        let shm = Path::new("/dev/shm");
        let tmpfs =
            nix::sys::statfs::statfs(shm).is_ok_and(|s| s.filesystem_type().0 == TMPFS_MAGIC);
        if tmpfs
            && nix::unistd::access(
                shm,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            )
            .is_ok()
        {
            "/dev/shm"
        } else {
            "/tmp"
        }
    });
    let n = crate::run::random_u64() as u32;
    PathBuf::from(format!("{base}/hs-{}-{n:08x}", std::process::id()))
}

use std::os::unix::fs::DirBuilderExt;

/// The median of `xs` (`None` if empty).
fn median(xs: &[f64]) -> Option<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Names of the functions a script defines.
fn functions(n: &parser::Node) -> HashSet<String> {
    names(n, |n| match n {
        parser::Node::Function { name, .. } => Some(name.clone()),
        _ => None,
    })
}

/// Names of the builtins a script runs.
fn builtins(n: &parser::Node) -> HashSet<String> {
    names(n, |n| match n {
        parser::Node::Builtin { name, .. } => Some(name.clone()),
        _ => None,
    })
}

/// What `pick` finds in any node of the tree.
fn names<I: IntoIterator<Item = String>>(
    n: &parser::Node,
    pick: fn(&parser::Node) -> I,
) -> HashSet<String> {
    let mut out = HashSet::new();
    visit(n, false, &mut |n, _| out.extend(pick(n)));
    out
}

/// Calls `f` on every node of the tree, with whether it is inside a loop.
fn visit(n: &parser::Node, in_loop: bool, f: &mut dyn FnMut(&parser::Node, bool)) {
    use parser::Node as P;
    f(n, in_loop);
    match n {
        P::For { body, .. } => visit(body, true, f),
        P::While { cond, body, .. } => {
            visit(cond, true, f);
            visit(body, true, f);
        }
        P::Seq { items } => items.iter().for_each(|i| visit(i, in_loop, f)),
        P::Pipeline { commands } => commands.iter().for_each(|i| visit(i, in_loop, f)),
        P::AndOr { first, rest } => {
            visit(first, in_loop, f);
            rest.iter().for_each(|(_, i)| visit(i, in_loop, f));
        }
        P::Not { body }
        | P::Group { body }
        | P::Subshell { body }
        | P::Background { body }
        | P::Function { body, .. } => visit(body, in_loop, f),
        P::If {
            branches,
            otherwise,
        } => {
            for (c, b) in branches {
                visit(c, in_loop, f);
                visit(b, in_loop, f);
            }
            if let Some(o) = otherwise {
                visit(o, in_loop, f);
            }
        }
        P::Case { arms } => arms.iter().for_each(|a| visit(&a.body, in_loop, f)),
        _ => {}
    }
}

/// The real shell's filter: only calls that change files (`bind` included: a named unix
/// socket is a new file; and `chdir`, which the supervisor's cwd cache needs) stop; reads
/// pass, since only the shell's changes matter.
fn shell_filter() -> trace::Filter {
    use libc::*;
    const READS: &[i64] = &[
        SYS_stat,
        SYS_lstat,
        SYS_statfs,
        SYS_access,
        SYS_faccessat,
        SYS_faccessat2,
        SYS_readlink,
        SYS_readlinkat,
        SYS_getdents,
        SYS_getdents64,
        SYS_execve,
        SYS_execveat,
        SYS_getxattr,
        SYS_lgetxattr,
        SYS_listxattr,
        SYS_llistxattr,
        SYS_newfstatat,
        SYS_statx,
        SYS_name_to_handle_at,
        SYS_connect,
        SYS_sendmsg,
        SYS_sendmmsg,
        SYS_sendto,
        SYS_ptrace,
        SYS_io_uring_setup,
        // getxattrat / listxattrat (Linux 6.13): not in every libc crate.
        464,
        466,
    ];
    // `open` only stops when it may write (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC; O_TMPFILE
    // includes O_DIRECTORY|O_RDWR): a plain read open is no change.
    let writes = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;
    let rules: Vec<trace::Rule> = trace::default_rules(true)
        .into_iter()
        .filter(|r| !READS.contains(&r.nr))
        .map(|r| match r.nr {
            n if n == libc::SYS_open => trace::Rule {
                action: trace::Action::NotifyIfFlag {
                    arg: 1,
                    mask: writes,
                },
                ..r
            },
            n if n == libc::SYS_openat => trace::Rule {
                action: trace::Action::NotifyIfFlag {
                    arg: 2,
                    mask: writes,
                },
                ..r
            },
            _ => r,
        })
        .collect();
    trace::Filter::from_rules(rules).unwrap_or_else(|_| trace::Filter::tracing())
}

/// Reads the main pipe: `g` messages (a line, the state, the end mark), `l` lines, `x`.
fn read_main(main: File, token: String, tx: Sender<Msg>) {
    std::thread::Builder::new()
        .name("hs-main-pipe".into())
        .spawn(move || {
            let end: Vec<u8> = format!("\x1e{token}\n").into_bytes();
            let mut r = BufReader::new(main);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Msg::Exit { reply: false });
                        return;
                    }
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line).into_owned();
                let mut parts = text.trim_end_matches('\n').splitn(4, ' ');
                let kind = parts.next().unwrap_or("");
                let (id, iters) = parse_id(parts.next().unwrap_or(""));
                let _pid = parts.next();
                match kind {
                    "g" | "s" | "A" => {
                        let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                        let mut body = Vec::new();
                        loop {
                            match r.read_until(b'\n', &mut body) {
                                Ok(0) | Err(_) => break,
                                Ok(_) if body.ends_with(&end) => {
                                    body.truncate(body.len() - end.len());
                                    break;
                                }
                                Ok(_) => {}
                            }
                        }
                        let _ = tx.send(if kind == "s" {
                            Msg::Start { body }
                        } else if kind == "A" {
                            Msg::AsyncGate {
                                unit: id,
                                iters,
                                status,
                                body: Some(body),
                            }
                        } else {
                            Msg::Gate {
                                unit: id,
                                iters,
                                status,
                                body,
                            }
                        });
                    }
                    "l" => {
                        // `l ID PID WORDS…`: the words start after the third space.
                        let raw = line.strip_suffix(b"\n").unwrap_or(&line);
                        let words = raw
                            .splitn(4, |&b| b == b' ')
                            .nth(3)
                            .map(crate::gate::unquote_words)
                            .unwrap_or_default();
                        let _ = tx.send(Msg::Loop { id, iters, words });
                    }
                    "a" => {
                        let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                        let _ = tx.send(Msg::AsyncGate {
                            unit: id,
                            iters,
                            status,
                            body: None,
                        });
                    }
                    "x" => {
                        let _ = tx.send(Msg::Exit { reply: true });
                        return;
                    }
                    _ => tracing::debug!("unknown message {text:?}"),
                }
            }
        })
        .expect("can start a thread");
}

fn read_notes(requests: File, tx: Sender<Msg>) {
    std::thread::Builder::new()
        .name("hs-notes".into())
        .spawn(move || {
            let mut r = BufReader::new(requests);
            let mut line = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut line) {
                if n == 0 || tx.send(Msg::Note).is_err() {
                    return;
                }
                line.clear();
            }
        })
        .expect("can start a thread");
}

/// Whether the write `a` failed in an unprivileged sandbox (ids `mapped`, see
/// [`sandbox::mapped_ids`]) where it would not have live:
/// overlayfs copies up the directories above a changed entry (below its layer's root)
/// and a modified file itself, keeping their owners, which fails (`EOVERFLOW`) for an
/// owner the sandbox does not map (e.g. a world-writable directory of another user).
fn copy_up_fails(mapped: Option<(u32, u32)>, a: &Access, layers: &[PathBuf]) -> bool {
    let Some((uid, gid)) = mapped else {
        return false;
    };
    let p = Path::new(OsStr::from_bytes(&a.path));
    let Some(layer) = layers
        .iter()
        .filter(|l| p.starts_with(l))
        .max_by_key(|l| l.as_os_str().len())
    else {
        return false;
    };
    let foreign =
        |q: &Path| std::fs::symlink_metadata(q).is_ok_and(|m| m.uid() != uid || m.gid() != gid);
    let modifies = matches!(
        a.kind,
        AccessKind::Write | AccessKind::Append | AccessKind::Meta
    );
    (modifies && p != layer.as_path() && foreign(p))
        || p.ancestors()
            .skip(1)
            .take_while(|d| *d != layer.as_path() && d.starts_with(layer))
            .any(foreign)
}

/// `N` or `N:I,J` → (N, [I, J]).
pub(crate) fn parse_id(s: &str) -> (u32, Vec<u32>) {
    let (id, iters) = s.split_once(':').unwrap_or((s, ""));
    let iters = iters
        .split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (id.parse().unwrap_or(u32::MAX), iters)
}

/// Prestarted sandboxes, set up in the background.
struct Pool {
    rx: Option<Receiver<(sandbox::Sandbox, sandbox::Ready)>>,
    /// Dropped to stop the filler (also while it waits to start).
    stop: Option<Sender<()>>,
    /// Cleared while speculation is paused: the filler sets up no more sandboxes then (on
    /// two cores, one costs the shell about as much CPU time as a short unit).
    active: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// Starts filling the pool at `not_before`: a script that is over by then never pays
    /// for a sandbox (runs waiting for one meanwhile are abandoned at their gates).
    fn start(size: usize, not_before: Instant, recycled: Recycled, zygote: bool) -> Pool {
        let (tx, rx) = crossbeam_channel::bounded(size.max(1));
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let active = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let on = active.clone();
        let thread = std::thread::Builder::new()
            .name("hs-pool".into())
            .spawn(move || {
                // Nice 19, not SCHED_IDLE like the runs: a run waiting for its sandbox
                // must not compete on equal terms with the runs already going.
                let _ = sandbox::nice_this_thread();
                let wait = not_before.saturating_duration_since(Instant::now());
                if stopped.recv_timeout(wait) != Err(crossbeam_channel::RecvTimeoutError::Timeout) {
                    return;
                }
                if zygote && let Err(e) = sandbox::spawn_zygote(c"/proc/self/exe", true) {
                    tracing::debug!("no sandbox zygote ({e}); the server forks helpers itself");
                }
                // As root, one network namespace for all (unprivileged: one each).
                let opts = sandbox::Options {
                    shared_net: sandbox::shared_network().ok(),
                    ..Default::default()
                };
                loop {
                    if stopped.try_recv() != Err(crossbeam_channel::TryRecvError::Empty) {
                        return;
                    }
                    if !on.load(std::sync::atomic::Ordering::Relaxed) {
                        let pause = std::time::Duration::from_millis(10);
                        if stopped.recv_timeout(pause)
                            != Err(crossbeam_channel::RecvTimeoutError::Timeout)
                        {
                            return;
                        }
                        continue;
                    }
                    // A recycled sandbox directory if there is one (see `Janitor`).
                    let reused = recycled.lock().ok().and_then(|mut v| v.pop());
                    let reused = reused.and_then(|dir| {
                        sandbox::Sandbox::create(&dir, &opts)
                            .inspect_err(|e| {
                                tracing::debug!("cannot reuse {}: {e}", dir.display());
                                let _ = sandbox::Sandbox::open(&dir).and_then(|sb| sb.discard());
                            })
                            .ok()
                    });
                    let sb = match reused.map_or_else(|| sandbox::Sandbox::create_temp(&opts), Ok) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!("cannot create a sandbox: {e}");
                            return;
                        }
                    };
                    let ready = match sb.prestart() {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::debug!("cannot prestart a sandbox: {e}");
                            let _ = sb.discard();
                            return;
                        }
                    };
                    if let Err(crossbeam_channel::SendError((sb, ready))) = tx.send((sb, ready)) {
                        drop(ready);
                        let _ = sb.discard();
                        return;
                    }
                }
            })
            .expect("can start a thread");
        Pool {
            rx: Some(rx),
            stop: Some(stop),
            active,
            thread: Some(thread),
        }
    }

    /// Lets the filler set up sandboxes, or not.
    fn set_active(&self, on: bool) {
        self.active.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Tears everything down: the sandboxes left in the pool are returned for discarding,
    /// and the filler has stopped (and discarded the one it was preparing) on return.
    fn close(&mut self) -> Vec<sandbox::Sandbox> {
        let mut left = Vec::new();
        self.stop.take();
        if let Some(rx) = self.rx.take() {
            while let Ok((sb, ready)) = rx.try_recv() {
                drop(ready);
                left.push(sb);
            }
            // The filler's next send fails once the receiver is gone.
            drop(rx);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        left
    }
}

/// Sandbox directories emptied for reuse (`Sandbox::recycle`), which the pool takes before
/// making new ones.
type Recycled = Arc<std::sync::Mutex<Vec<PathBuf>>>;

/// At most this many recycled sandbox directories wait for reuse; more are removed.
const MAX_RECYCLED: usize = 8;

/// Throws sandboxes away in the background, or empties them for the pool to reuse: a new
/// sandbox directory costs a dozen inodes, and on ext4 each one deleted in the last 30 s
/// slows later allocations (`recently_deleted`; half the CPU time of a pooled sandbox's
/// setup in a profile of 100 speculated `sleep`s). `HS_NO_RECYCLE` turns reuse off.
struct Janitor {
    tx: Option<Sender<sandbox::Sandbox>>,
    thread: Option<std::thread::JoinHandle<()>>,
    recycled: Recycled,
}

impl Janitor {
    /// A janitor whose thread starts with its first sandbox: runs that never speculate
    /// pay nothing for it.
    fn new() -> Janitor {
        Janitor {
            tx: None,
            thread: None,
            recycled: Default::default(),
        }
    }

    fn start(&mut self) {
        let (tx, rx) = crossbeam_channel::unbounded::<sandbox::Sandbox>();
        let recycled = self.recycled.clone();
        let reuse = std::env::var_os("HS_NO_RECYCLE").is_none();
        let thread = std::thread::Builder::new()
            .name("hs-janitor".into())
            .spawn(move || {
                let _ = sandbox::idle_this_thread();
                // Sandboxes of runs that were killed before they could clean up.
                let _ = sandbox::remove_stale();
                for sb in rx {
                    let room = recycled.lock().is_ok_and(|v| v.len() < MAX_RECYCLED);
                    if reuse && room {
                        match sb.recycle() {
                            Ok(()) => {
                                if let Ok(mut v) = recycled.lock() {
                                    v.push(sb.dir().to_path_buf());
                                    continue;
                                }
                            }
                            Err(e) => tracing::debug!("cannot recycle a sandbox: {e}"),
                        }
                    }
                    if let Err(e) = sb.discard() {
                        tracing::debug!("cannot discard a sandbox: {e}");
                    }
                }
            })
            .expect("can start a thread");
        self.tx = Some(tx);
        self.thread = Some(thread);
    }

    fn discard(&mut self, sb: sandbox::Sandbox) {
        if self.thread.is_none() {
            self.start();
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(sb);
        }
    }

    /// Waits until everything sent has been discarded, then removes the recycled sandbox
    /// directories (the pool, which takes them, has stopped by then).
    fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let dirs = self
            .recycled
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for dir in dirs {
            if let Err(e) = sandbox::Sandbox::open(&dir).and_then(|sb| sb.discard()) {
                tracing::debug!("cannot remove {}: {e}", dir.display());
            }
        }
    }
}

struct Driver<'a> {
    sched: Scheduler,
    t0: Instant,
    shell: PathBuf,
    dollar0: OsString,
    main_pid: i32,
    replies: File,
    tx: Sender<Msg>,
    /// The run directory (`run_dir_name`), and whether it exists yet.
    tmp: PathBuf,
    tmp_made: bool,
    units: Vec<parser::Unit>,
    blocked: Vec<Option<&'static str>>,
    source: Vec<u8>,
    runs: HashMap<RunId, Run>,
    /// Which run holds each speculation slot (for the timeline).
    lanes: Vec<Option<RunId>>,
    /// Prestarted sandboxes, from the first speculation on.
    pool: Option<Pool>,
    janitor: Janitor,
    /// Whether the pool starts a sandbox zygote.
    zygote: bool,
    shell_trace: Option<&'a trace::Session>,
    /// Whether the shell turned out to be traced (checked at the first gate).
    traced: Option<bool>,
    /// The instance the shell is running itself, until its next gate.
    direct: Option<Instance>,
    direct_start: f64,
    bars: Vec<Bar>,
    gates: usize,
    notes: usize,
    /// Variable names and functions each unit's gate reports.
    names: HashMap<u32, (Vec<String>, Vec<String>)>,
    /// Whether the shell's stdout / stderr are terminals.
    ttys: (bool, bool),
    /// The terminal's size, for speculation ptys.
    winsize: nix::pty::Winsize,
    /// Runs killed while running, whose sandboxes have not come back yet.
    killed: HashSet<RunId>,
    /// The speculation width in force (0 once turned off).
    window: usize,
    /// The speculation width asked for.
    asked_window: usize,
    /// Regular files the shell and its jobs had open for writing at the last gate (or when
    /// the first run since then started).
    open_writes: Vec<Vec<u8>>,
    /// Whether `open_writes` was read at the last gate or since; while no run is alive the
    /// scan waits until one starts (see `segment`).
    open_writes_known: bool,
    /// Whether a run started since the last gate.
    started_in_segment: bool,
    /// Whether a report, DAG or timeline is written (they show every segment's writes).
    reported: bool,
    /// Whether the current gate has been answered.
    answered: bool,
    /// When the shell reached the current gate.
    gate_at: Instant,
    /// Shell time speculation saved so far (negative: lost), and gates answered.
    gain: f64,
    answers: u32,
    /// How long each unit's latest run took (seconds).
    last_took: HashMap<u32, f64>,
    /// How long each unit's latest direct run, and latest speculative run (from its start,
    /// sandbox setup included), took.
    direct_took: HashMap<u32, f64>,
    spec_took: HashMap<u32, f64>,
    /// Units that took less are not speculated again (`HS_MIN_UNIT_MS`, default 30).
    min_unit: f64,
    /// The sync mark (`$__hs_sync`): main-shell gates wait for an answer while it is not
    /// empty, only while speculation may answer anything but "run it yourself".
    sync: File,
    sync_on: bool,
    /// The state mark (`$__hs_want`): gates that do not wait report the state while it is not
    /// empty.
    want: File,
    want_on: bool,
    async_gates: u64,
    /// How long the last three units took (seconds).
    recent_units: Vec<f64>,
    /// Speculation paused: memory is short; the shell's recent units are all short.
    memory_paused: bool,
    short_paused: bool,
    last_memory_check: Instant,
}

impl Driver<'_> {
    fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Handles messages until the main shell exits; whether to answer its exit.
    fn run(&mut self, rx: &Receiver<Msg>) -> anyhow::Result<bool> {
        loop {
            let msg = match self.long_unit_deadline() {
                Some(at) => match rx.recv_deadline(at) {
                    Ok(msg) => msg,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        self.long_unit_running();
                        self.act_all()?;
                        self.update_sync();
                        continue;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(false),
                },
                None => match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => return Ok(false),
                },
            };
            match msg {
                Msg::Gate {
                    unit,
                    iters,
                    status,
                    body,
                } => {
                    self.gates += 1;
                    let t = Instant::now();
                    self.gate(unit, iters, status, &body)?;
                    tracing::trace!(unit, took = ?t.elapsed(), "gate handled");
                }
                Msg::Loop { id, iters, words } => {
                    self.handle(Event::LoopStarted {
                        id: scheduler::LoopId(id),
                        iters,
                        words,
                    })?;
                }
                Msg::Note => self.notes += 1,
                Msg::Start { body } => {
                    let st = self.state_of(&[], false, &body);
                    self.handle(Event::Started { state: st })?;
                }
                Msg::Exit { reply } => {
                    self.segment(0)?;
                    self.handle(Event::ShellExited)?;
                    return Ok(reply);
                }
                Msg::Done(run, fin) => self.done(run, *fin)?,
                Msg::Failed(run, sb) => {
                    self.janitor.discard(sb);
                    self.refused(run)?
                }
                Msg::Refused(run) => self.refused(run)?,
                Msg::AsyncGate {
                    unit,
                    iters,
                    status,
                    body,
                } => self.async_gate(unit, iters, status, body.as_deref())?,
            }
            self.update_sync();
        }
    }

    /// Makes main-shell gates wait (the sync mark is not empty) while speculation may answer
    /// anything but "run it yourself": a window above 0 or runs alive. Otherwise they only
    /// say which unit the shell runs, which saves a round trip and the state report — except
    /// until the first unit is timed (the state mark is not empty): they then report the
    /// state without waiting, so that it is known if that unit runs long.
    fn update_sync(&mut self) {
        let traced = self.shell_trace.is_some() && self.traced != Some(false);
        let sync = traced && (self.effective_window() > 0 || !self.runs.is_empty());
        let first = traced && self.short_paused && self.recent_units.is_empty();
        if sync != self.sync_on {
            match self.sync.set_len(u64::from(sync)) {
                Ok(()) => {
                    tracing::debug!(sync, "gates wait for answers: {sync}");
                    self.sync_on = sync;
                }
                Err(e) => tracing::debug!("cannot change the sync mark: {e}"),
            }
        }
        if first != self.want_on {
            match self.want.set_len(u64::from(first)) {
                Ok(()) => self.want_on = first,
                Err(e) => tracing::debug!("cannot change the state mark: {e}"),
            }
        }
    }

    /// Makes the run directory, the first time a run needs it.
    fn make_run_dir(&mut self) -> anyhow::Result<()> {
        for _ in 0..8 {
            if self.tmp_made {
                return Ok(());
            }
            match std::fs::DirBuilder::new().mode(0o700).create(&self.tmp) {
                Ok(()) => self.tmp_made = true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    self.tmp = run_dir_name();
                }
                Err(e) => return Err(e).context("cannot create a run directory"),
            }
        }
        anyhow::ensure!(self.tmp_made, "cannot create a run directory");
        Ok(())
    }

    /// A main-shell gate that did not wait: the shell runs the unit itself. What the shell
    /// did since the last gate is booked, and the scheduler learns where the shell is
    /// (without its state: predictions go on from the state known so far, and any run's
    /// state is still compared at its own gate); the unit is timed until the next gate, like
    /// one the shell was told to run.
    fn async_gate(
        &mut self,
        unit: u32,
        iters: Vec<u32>,
        status: i32,
        body: Option<&[u8]>,
    ) -> anyhow::Result<()> {
        self.gates += 1;
        self.async_gates += 1;
        self.check_traced();
        self.segment(status)?;
        let x = Instance {
            unit: scheduler::UnitId(unit),
            iters,
        };
        let state = body.and_then(|body| self.gate_state(unit, body));
        self.direct = Some(x.clone());
        self.direct_start = self.now();
        self.handle(Event::GatePassed { instance: x, state })
    }

    /// A run of `unit` took `took` seconds: a unit that took less than a sandbox costs
    /// (`HS_MIN_UNIT_MS`) is cheaper to leave to the shell, until one of its runs takes longer.
    fn took(&mut self, unit: u32, took: f64) {
        self.last_took.insert(unit, took);
        // What this starts is carried out with the next event's actions (every caller
        // hands the scheduler one right after), or by the timer's `act_all`.
        self.sched
            .set_too_short(scheduler::UnitId(unit), took < self.min_unit);
    }

    /// Books a unit the shell ran itself from `start` until now: its duration (for cost
    /// control and waiting decisions) and its bar in the timeline.
    fn book_direct(&mut self, x: &Instance, start: f64) {
        let now = self.now();
        self.took(x.unit.0, now - start);
        self.direct_took.insert(x.unit.0, now - start);
        self.note_unit_run(now - start);
        self.bars.push(Bar {
            instance: x.to_string(),
            unit: x.unit.0,
            lane: None,
            start,
            end: now,
            outcome: "direct",
            why: None,
        });
    }

    /// A run that did not start: it counts as finished, unsafe (the scheduler ignores runs
    /// it already dropped).
    fn refused(&mut self, run: RunId) -> anyhow::Result<()> {
        if self.runs.remove(&run).is_some() {
            self.free_lane(run);
        }
        self.killed.remove(&run);
        self.handle(Event::RunFinished {
            run,
            trace: scheduler::Trace {
                flags: Flags::UNSUPPORTED,
                ..Default::default()
            },
            exit: 0,
        })
    }

    fn handle(&mut self, e: Event) -> anyhow::Result<()> {
        self.sched.handle(Instant::now(), e);
        self.act_all()
    }

    /// Carries out the scheduler's pending actions.
    fn act_all(&mut self) -> anyhow::Result<()> {
        while let Some(a) = self.sched.poll_action() {
            self.act(a)?;
        }
        Ok(())
    }

    /// What the shell did since its last gate: the direct run it was told to do, or activity.
    fn segment(&mut self, status: i32) -> anyhow::Result<()> {
        let Some(session) = self.shell_trace else {
            return Ok(());
        };
        let raw = session.take();
        let tmp = self.tmp.as_os_str().as_bytes().to_vec();
        let mut t = convert(&raw, |p| {
            p.starts_with(b"/proc/") || p.starts_with(b"/dev/") || p.starts_with(&tmp)
        });
        // Only the shell's changes count; its other flags (terminal, network) are real.
        t.flags = if raw.flags.contains(trace::Flags::UNTRACEABLE) {
            Flags::UNTRACED
        } else {
            Flags::NONE
        };
        if self.traced == Some(false) {
            t.flags = Flags::UNTRACED;
        }
        // Writes through fds the shell (or a job of it) holds open are no path syscalls:
        // files open for writing at the last gate or now may have changed in between. They
        // matter only to runs that overlap the segment: with none alive and none started
        // since the last gate, the /proc scan (most of a short gate's cost in the server)
        // waits until a run starts (`note_open_writes`), unless a report shows every segment.
        let quiet = self.runs.is_empty() && !self.started_in_segment && !self.reported;
        self.started_in_segment = false;
        let open = if quiet {
            Vec::new()
        } else {
            open_for_writing(self.main_pid, &tmp)
        };
        self.open_writes_known = !quiet;
        // As plain writes: the shell's own validity is never in question, and an append
        // (which observes) would chain every segment to the one before in the DAG.
        for p in self.open_writes.iter().chain(&open) {
            if !t.writes.iter().any(|a| &a.path == p) {
                t.writes.push(Access::new(p.clone(), AccessKind::Write));
            }
        }
        self.open_writes = open;
        match self.direct.take() {
            Some(x) => {
                self.book_direct(&x, self.direct_start);
                self.handle(Event::DirectRunFinished {
                    instance: x,
                    trace: t,
                    exit: status,
                })
            }
            None => self.handle(Event::ShellActivity { trace: t }),
        }
    }

    /// The state a gate of `unit` reported in `body` (`None` for a unit the script does not
    /// have).
    fn gate_state(&self, unit: u32, body: &[u8]) -> Option<State> {
        let u = self.units.get(unit as usize)?;
        let names = self
            .names
            .get(&unit)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        Some(self.state_of(&names, u.vars.positional, body))
    }

    /// Finds out, at the first gate, whether the shell runs under its tracer.
    fn check_traced(&mut self) {
        if self.traced.is_none() {
            let traced = shell_is_traced(self.main_pid);
            self.traced = Some(traced);
            if !traced {
                tracing::debug!("the shell is not traced: speculation off");
                self.sched.set_window(0);
            }
        }
    }

    fn gate(&mut self, unit: u32, iters: Vec<u32>, status: i32, body: &[u8]) -> anyhow::Result<()> {
        self.check_traced();
        self.segment(status)?;
        self.check_memory();
        let Some(st) = self.gate_state(unit, body) else {
            self.reply(b"r\n")?;
            return Ok(());
        };
        let x = Instance {
            unit: scheduler::UnitId(unit),
            iters,
        };
        self.answered = false;
        self.gate_at = Instant::now();
        self.handle(Event::GateReached {
            instance: x.clone(),
            state: st,
        })?;
        // The shell waits for a run still running. If its sandbox is not running yet, or
        // earlier instances say it will take longer than the unit run directly, the shell
        // runs the unit itself; else the run gets the shell's CPU priority.
        if !self.answered
            && let Some((&id, r)) = self
                .runs
                .iter()
                .find(|(_, r)| r.instance == x && r.sandbox.is_none())
        {
            let elapsed = self.now() - r.start;
            if !r.handle.running() || self.slower_than_direct(&x, elapsed) {
                tracing::debug!(instance = %x, elapsed, "not worth waiting for: run directly");
                self.handle(Event::Abandon { run: id })?;
            } else {
                r.handle.promote();
            }
        }
        Ok(())
    }

    /// Whether a speculative run of instance `x`, running for `elapsed` seconds, is expected
    /// to need longer to finish than the shell needs to run the unit itself. Estimates come
    /// from the unit's latest direct and speculative runs (a speculation costs about twice the
    /// direct time where only one kind is known); no estimate means wait. A loop's iterations
    /// are never given up once running: one iteration's time says little about another's
    /// (compress_files gave up a run 650 ms in because the last direct iteration, a small
    /// file, took 50 ms), and a promoted run has at most a direct run's work left.
    fn slower_than_direct(&self, x: &Instance, elapsed: f64) -> bool {
        if !x.iters.is_empty() {
            return false;
        }
        let unit = x.unit.0;
        // (Guessing a unit never seen from the script's other units abandoned long runs of
        // scripts whose units differ: bus_analytics 1.16x -> 0.96x.)
        let direct = self.direct_took.get(&unit).copied();
        let spec = self.spec_took.get(&unit).copied();
        let (direct, spec) = match (direct, spec) {
            (Some(d), Some(s)) => (d, s),
            (Some(d), None) => (d, 2.0 * d + 0.01),
            (None, Some(s)) => (s / 2.0, s),
            (None, None) => return false,
        };
        spec - elapsed > direct + 0.005
    }

    /// Pauses speculation while memory is short (less than a tenth available), and resumes
    /// it once a fifth is free again. Checked at gates, at most every 200 ms.
    fn check_memory(&mut self) {
        if self.traced != Some(true) || self.last_memory_check.elapsed().as_millis() < 200 {
            return;
        }
        self.last_memory_check = Instant::now();
        let Some((avail, total)) = meminfo() else {
            return;
        };
        if !self.memory_paused && avail * 10 < total {
            tracing::info!("memory is short: speculation paused");
            self.memory_paused = true;
        } else if self.memory_paused && avail * 5 > total {
            tracing::info!("memory available again: speculation resumed");
            self.memory_paused = false;
        }
        self.apply_window();
    }

    /// A unit took `took` seconds (run by the shell, or a committed speculation's command).
    /// While the median of the last three is under `HS_MIN_UNIT_MS` (and at the start, before
    /// any unit ran), units hs knows nothing about are most likely short too, and a sandbox
    /// costs more than they do: speculation pauses until the median grows, or a unit the
    /// shell runs takes that long (`long_unit_running`).
    fn note_unit_run(&mut self, took: f64) {
        if self.recent_units.len() == 3 {
            self.recent_units.remove(0);
        }
        self.recent_units.push(took);
        let short = median(&self.recent_units).is_some_and(|m| m < self.min_unit);
        self.set_short_paused(short);
    }

    /// While the short-unit pause is on and the shell runs a unit itself: when that unit's
    /// run will have reached `HS_MIN_UNIT_MS`.
    fn long_unit_deadline(&self) -> Option<Instant> {
        if !self.short_paused || self.memory_paused {
            return None;
        }
        self.direct.as_ref()?;
        Some(self.t0 + Duration::from_secs_f64(self.direct_start + self.min_unit))
    }

    /// The unit the shell runs has taken `HS_MIN_UNIT_MS` already: speculation resumes, from
    /// where the shell is, while that unit still runs.
    fn long_unit_running(&mut self) {
        tracing::debug!("the shell's unit runs long: speculation resumes");
        // Its unit is no longer too short (its next instances in a loop may be long too).
        if let Some(x) = &self.direct {
            let (unit, elapsed) = (x.unit.0, self.now() - self.direct_start);
            self.took(unit, elapsed);
        }
        self.set_short_paused(false);
    }

    fn set_short_paused(&mut self, short: bool) {
        if short != self.short_paused {
            tracing::debug!(
                short,
                "short-unit pause (on while the recent units are short)"
            );
            self.short_paused = short;
            self.apply_window();
        }
    }

    /// The window asked for (0 once turned off), unless paused.
    fn effective_window(&self) -> usize {
        if self.memory_paused || self.short_paused {
            0
        } else {
            self.window
        }
    }

    /// Puts the effective window in force (the scheduler's, and whether the pool sets up
    /// sandboxes).
    fn apply_window(&mut self) {
        if self.traced != Some(true) {
            return;
        }
        let w = self.effective_window();
        if self.sched.config().window != w {
            self.sched.set_window(w);
        }
        if let Some(pool) = &self.pool {
            pool.set_active(w > 0);
        }
    }

    /// Books what answering this gate gained: the run time of a committed unit the shell
    /// did not spend, minus the time it waited at the gate. Speculation that keeps costing
    /// more than it saves (50 ms lost after the first 8 main-shell gates) is turned off for
    /// the rest of the run: the shell then runs every unit at its turn.
    fn account(&mut self, saved: f64) {
        let waited = self.gate_at.elapsed().as_secs_f64();
        // An immediate answer is the gate's own cost, not speculation's.
        if saved == 0.0 && waited < 0.002 {
            return;
        }
        self.gain += saved - waited;
        self.answers += 1;
        if self.answers >= 8 && self.gain < -0.05 && self.sched.config().window > 0 {
            tracing::info!(
                gain = self.gain,
                "speculation does not pay off here: turned off"
            );
            self.window = 0;
            self.sched.set_window(0);
            if let Some(pool) = &self.pool {
                pool.set_active(false);
            }
        }
    }

    /// The state a gate (or the start message) reported.
    fn state_of(&self, names: &[String], positional: bool, body: &[u8]) -> State {
        let mut g = state::parse(body, names, positional);
        // The positional parameters one by one (`1`, `2`, …), for assignments prediction
        // computes (`out=$2/x`).
        if let Some(words) = g
            .vars
            .get(b"@".as_slice())
            .and_then(|w| state::unquote_words(w.as_deref().unwrap_or_default()))
        {
            for (i, w) in words.into_iter().enumerate() {
                g.vars.insert((i + 1).to_string().into_bytes(), Some(w));
            }
        }
        let ctx = Context {
            cwd: std::fs::read_link(format!("/proc/{}/cwd", self.main_pid)).unwrap_or_default(),
            umask: umask_of(self.main_pid),
            options: g.options,
            env: g.env,
        };
        State {
            vars: g.vars,
            context: Arc::from(ctx.encode()),
        }
    }

    fn reply(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.replies
            .write_all(line)
            .context("cannot answer the shell")
    }

    fn act(&mut self, a: Action) -> anyhow::Result<()> {
        match a {
            Action::Start {
                run,
                instance,
                state,
            } => self.start(run, instance, &state),
            Action::Kill { run } | Action::Discard { run } => {
                self.drop_run(run, "discarded");
                Ok(())
            }
            Action::AnswerGate { instance } => {
                self.answered = true;
                self.account(0.0);
                self.direct = Some(instance);
                self.direct_start = self.now();
                self.reply(b"r\n")
            }
            Action::Commit { run } => self.commit(run),
        }
    }

    fn lane(&mut self, run: RunId) -> usize {
        match self.lanes.iter().position(|l| l.is_none()) {
            Some(i) => {
                self.lanes[i] = Some(run);
                i
            }
            None => {
                self.lanes.push(Some(run));
                self.lanes.len() - 1
            }
        }
    }

    /// Before the first run since the last gate starts: the files the shell holds open for
    /// writing now, if the last gate skipped its scan (they count as written in the segment
    /// the run overlaps, as if that gate had found them).
    fn note_open_writes(&mut self) {
        self.started_in_segment = true;
        if !self.open_writes_known {
            self.open_writes = open_for_writing(self.main_pid, self.tmp.as_os_str().as_bytes());
            self.open_writes_known = true;
        }
    }

    fn start(&mut self, run: RunId, x: Instance, st: &State) -> anyhow::Result<()> {
        self.note_open_writes();
        let unit = x.unit.0 as usize;
        let refuse = |d: &mut Self| {
            let _ = d.tx.send(Msg::Refused(run));
        };
        let Some(u) = self.units.get(unit).cloned() else {
            refuse(self);
            return Ok(());
        };
        if let Some(why) = self.blocked.get(unit).copied().flatten() {
            tracing::debug!(unit, why, "not speculated");
            refuse(self);
            return Ok(());
        }
        let Some(ctx) = Context::decode(&st.context) else {
            refuse(self);
            return Ok(());
        };
        // Under `set -u` an unset variable stops the whole shell, which a sandbox cannot.
        if ctx.flags().contains(&b'u') && st.vars.values().any(|v| v.is_none()) {
            refuse(self);
            return Ok(());
        }
        if let Err(e) = self.make_run_dir() {
            tracing::debug!("{e:#}");
            refuse(self);
            return Ok(());
        }
        let n = run.0;
        let pre = self.tmp.join(format!("{n}.pre"));
        let out = self.tmp.join(format!("{n}.out"));
        let err = self.tmp.join(format!("{n}.err"));
        let env = env_pairs(&ctx.env);
        let (hashes, lookups) = hash_commands(&u, &env, &ctx.cwd);
        let mut preamble = state::restore_script(&st.vars, &ctx);
        preamble.extend_from_slice(&hashes);
        let text = self.unit_script(&u, &pre);
        let mut argv: Vec<OsString> = vec![self.shell.clone().into(), "-c".into()];
        argv.push(OsString::from_vec(text));
        argv.push(self.dollar0.clone());
        // Files and ptys are made by the run's thread once it has a sandbox: most runs the
        // shell overtakes are killed before that and never cost a file.
        let setup = RunSetup {
            argv,
            env,
            cwd: ctx.cwd.clone(),
            umask: ctx.umask,
            preamble,
            pre: pre.clone(),
            out: out.clone(),
            err: err.clone(),
            ttys: self.ttys,
            merged: self.ttys == (true, true) && same_file(self.main_pid),
            winsize: self.winsize,
        };
        let merged = setup.merged;
        let lane = self.lane(run);
        let start = self.now();
        let handle = Arc::new(Handle::default());
        self.runs.insert(
            run,
            Run {
                instance: x,
                lane,
                handle: handle.clone(),
                merged,
                ttys: self.ttys,
                lookups,
                finished_at: None,
                cwd: ctx.cwd.clone(),
                out,
                err,
                pre,
                sandbox: None,
                exit: 0,
                start,
            },
        );
        let tx = self.tx.clone();
        let window = self.window;
        let t0 = self.t0;
        let recycled = self.janitor.recycled.clone();
        let zygote = self.zygote;
        let pool = self
            .pool
            .get_or_insert_with(|| Pool::start(window, t0 + FIRST_SANDBOX, recycled, zygote))
            .rx
            .clone();
        // Taking a sandbox may wait for the pool, and `exec` for its setup: not here.
        std::thread::Builder::new()
            .name("hs-run".into())
            .spawn(move || {
                // Speculation takes only CPU time the shell does not want: this thread, the
                // tracer's thread it starts, and the run itself.
                let _ = sandbox::idle_this_thread();
                let t = Instant::now();
                // Wait for a sandbox, unless the run is killed meanwhile (the shell got to
                // its gate first): a killed run must not take one.
                let got = pool.and_then(|p| {
                    loop {
                        if handle.cancelled() || t.elapsed() > std::time::Duration::from_secs(5) {
                            break None;
                        }
                        match p.recv_timeout(std::time::Duration::from_millis(10)) {
                            Ok(x) => break Some(x),
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                            Err(_) => break None,
                        }
                    }
                });
                let Some((sb, ready)) = got else {
                    let _ = tx.send(Msg::Refused(run));
                    return;
                };
                if handle.cancelled() {
                    drop(ready);
                    let _ = tx.send(Msg::Failed(run, sb));
                    return;
                }
                // Files, ptys and the tracer: a run that cannot have them hands its sandbox back.
                let prepared = setup.command().and_then(|(cmd, copiers, stdin)| {
                    let (session, hook) = trace::Tracer::new()
                        .root_from_tracee()
                        .start()
                        .context("cannot start a tracer")?;
                    Ok((cmd.trace(hook), copiers, stdin, session))
                });
                let (cmd, copiers, stdin, session) = match prepared {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!("cannot set a speculation up: {e:#}");
                        drop(ready);
                        let _ = tx.send(Msg::Failed(run, sb));
                        return;
                    }
                };
                let mut child = match ready.exec(&cmd) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!("cannot start a speculation: {e}");
                        session.abort();
                        let _ = tx.send(Msg::Failed(run, sb));
                        return;
                    }
                };
                drop(cmd);
                let started = t.elapsed();
                handle.started(child.id() as i32, session.thread_id());
                let exit = child.wait().unwrap_or(-1);
                for c in copiers {
                    let _ = c.join();
                }
                let waited = t.elapsed();
                let mut trace = session.finish();
                if stdin.was_read()
                    && let Ok(t) = &mut trace
                {
                    t.flag(trace::Flags::STDIN, || "read of the inherited stdin".into());
                }
                let changes = sb.changes();
                tracing::debug!(run = run.0, ?started, ?waited, ended = ?t.elapsed(), "run");
                let _ = tx.send(Msg::Done(
                    run,
                    Box::new(Finished {
                        took: (waited - started).as_secs_f64(),
                        exit,
                        trace,
                        changes,
                        sandbox: sb,
                    }),
                ));
            })
            .context("cannot start a thread")?;
        Ok(())
    }

    /// `bash -c` text for a unit: the preamble sourced on line 1, the unit on its own line
    /// (so bash's messages name the same line), its here-documents, then a trailer that
    /// appends `\0HS<status>` to stdout, which tells a finished unit from a shell that died
    /// of an expansion error.
    fn unit_script(&self, u: &parser::Unit, pre: &Path) -> Vec<u8> {
        let mut s = b". ".to_vec();
        s.extend_from_slice(&state::quote(pre.as_os_str().as_bytes()));
        if u.line <= 1 {
            s.extend_from_slice(b"; ");
        } else {
            s.extend(std::iter::repeat_n(b'\n', u.line - 1));
        }
        s.extend_from_slice(&u.text);
        s.push(b'\n');
        for h in &u.heredocs {
            s.extend_from_slice(&self.source[h.start..h.end.min(self.source.len())]);
        }
        s.extend_from_slice(
            b"__hs_s=$?; builtin printf '\\0HS%d' \"$__hs_s\"; builtin exit \"$__hs_s\"\n",
        );
        s
    }

    fn free_lane(&mut self, run: RunId) {
        for l in &mut self.lanes {
            if *l == Some(run) {
                *l = None;
            }
        }
    }

    /// Kills or throws away a run.
    fn drop_run(&mut self, id: RunId, outcome: &'static str) {
        let Some(r) = self.runs.remove(&id) else {
            return;
        };
        self.free_lane(id);
        let why = self
            .sched
            .dag()
            .record(&r.instance)
            .and_then(|rec| rec.runs.iter().find(|x| x.run == id))
            .and_then(|x| x.discarded.as_ref())
            .map(|w| w.to_string());
        let end = self.now();
        self.bars.push(Bar {
            instance: r.instance.to_string(),
            unit: r.instance.unit.0,
            lane: Some(r.lane),
            start: r.start,
            end,
            outcome,
            why,
        });
        match r.sandbox {
            Some(sb) => self.janitor.discard(sb),
            None => {
                // Still running: kill its helper; the waiter hands the sandbox back.
                self.killed.insert(id);
                r.handle.kill();
            }
        }
        for p in [&r.out, &r.err, &r.pre] {
            let _ = std::fs::remove_file(p);
        }
    }

    fn done(&mut self, id: RunId, fin: Finished) -> anyhow::Result<()> {
        let Some(r) = self.runs.get_mut(&id) else {
            // Killed meanwhile.
            self.killed.remove(&id);
            self.janitor.discard(fin.sandbox);
            return Ok(());
        };
        let lookups = std::mem::take(&mut r.lookups);
        let cwd = r.cwd.as_os_str().as_bytes().to_vec();
        let mut flags = Flags::NONE;
        let layers: Vec<PathBuf> = fin
            .sandbox
            .layers()
            .iter()
            .map(|l| l.target.clone())
            .collect();
        let mut t = match &fin.trace {
            Ok(raw) => {
                let pre = r.pre.as_os_str().as_bytes().to_vec();
                // Device writes are flagged by the tracer; /dev and /proc are the sandbox's own.
                let mut t = convert(raw, |p| {
                    p == pre.as_slice() || p.starts_with(b"/proc/") || p.starts_with(b"/dev/")
                });
                if raw.flags.contains(trace::Flags::OUTLIVED) {
                    t.flags = t.flags | Flags::ESCAPE;
                }
                if let Some((p, _)) = raw.iter().find(|(p, _)| per_process(p)) {
                    tracing::debug!(path = %String::from_utf8_lossy(p), "reads its own process");
                    t.flags = t.flags | Flags::UNSUPPORTED;
                }
                t
            }
            Err(e) => {
                tracing::debug!("trace failed: {e}");
                scheduler::Trace {
                    flags: Flags::UNTRACED,
                    ..Default::default()
                }
            }
        };
        t.reads.extend(lookups);
        // Every bash a unit starts stats $PWD, "." and each directory above them at start-up
        // (and so do getcwd fallbacks): as observations of their entries they would make any
        // earlier file created in or above the working directory a conflict. Taken as
        // lookups: the one precision given up is a unit reading the modification time of its
        // working directory or an ancestor without listing it.
        for a in t.reads.iter_mut() {
            let above = a.path == cwd
                || a.path == b"/"
                || (cwd.starts_with(&a.path) && cwd.get(a.path.len()) == Some(&b'/'));
            if a.kind == AccessKind::Stat && above {
                a.kind = AccessKind::Exists;
            }
        }
        // Writes no overlay captured (unprivileged: outside the writable trees) failed in
        // the sandbox but would not have for real.
        let harmless = |p: &[u8]| {
            matches!(
                p,
                b"/dev/null" | b"/dev/zero" | b"/dev/full" | b"/dev/stdout" | b"/dev/stderr"
            ) || p.starts_with(b"/proc/")
                || p.starts_with(b"/dev/fd/")
        };
        let outside = t.changes().any(|a| {
            !harmless(&a.path)
                && !layers
                    .iter()
                    .any(|l| Path::new(OsStr::from_bytes(&a.path)).starts_with(l))
        });
        if outside {
            flags = flags | Flags::ESCAPE;
        }
        let mapped = sandbox::mapped_ids();
        if let Some(a) = t.changes().find(|a| copy_up_fails(mapped, a, &layers)) {
            tracing::debug!(
                path = %String::from_utf8_lossy(&a.path),
                "a write needs a copy-up of a file the sandbox cannot own"
            );
            flags = flags | Flags::UNSUPPORTED;
        }
        match &fin.changes {
            Ok(cs) => {
                for c in cs.changes.iter() {
                    let kind = match c.kind {
                        sandbox::ChangeKind::Created => AccessKind::Create,
                        sandbox::ChangeKind::Deleted => AccessKind::Delete,
                        sandbox::ChangeKind::MetadataOnly => AccessKind::Meta,
                        sandbox::ChangeKind::Replaced
                        | sandbox::ChangeKind::TypeChanged
                        | sandbox::ChangeKind::Renamed => AccessKind::Create,
                        sandbox::ChangeKind::Modified => AccessKind::Append,
                    };
                    if let Some(from) = &c.from {
                        let from = from.as_os_str().as_bytes().to_vec();
                        if !t.writes.iter().any(|a| a.path == from) {
                            t.writes.push(Access::new(from, AccessKind::Delete));
                        }
                    }
                    let path = c.path.as_os_str().as_bytes().to_vec();
                    if !t.writes.iter().any(|a| a.path == path) {
                        t.writes.push(Access::new(path, kind));
                    }
                }
            }
            Err(e) => {
                tracing::debug!("cannot read the sandbox's changes: {e}");
                flags = flags | Flags::UNTRACED;
            }
        }
        // Bash naming the preamble in a message (an error inside a function defined there)
        // would name the script for real.
        let pre = r.pre.as_os_str().as_bytes().to_vec();
        let mentions = |p: &Path| {
            std::fs::read(p).is_ok_and(|b| b.windows(pre.len()).any(|w| w == pre.as_slice()))
        };
        if mentions(&r.out) || mentions(&r.err) {
            flags = flags | Flags::UNSUPPORTED;
        }
        // The trailer: `\0HS<status>` at the end of stdout, else bash itself gave up.
        let exit = match take_trailer(&r.out) {
            Some(s) => s,
            None => {
                flags = flags | Flags::UNSUPPORTED;
                fin.exit
            }
        };
        t.flags = t.flags | flags;
        let now = self.now();
        let r = self.runs.get_mut(&id).expect("checked above");
        r.finished_at = Some(r.start + fin.took);
        self.spec_took.insert(r.instance.unit.0, now - r.start);
        r.exit = exit;
        r.sandbox = Some(fin.sandbox);
        self.handle(Event::RunFinished {
            run: id,
            trace: t,
            exit,
        })
    }

    fn commit(&mut self, id: RunId) -> anyhow::Result<()> {
        self.answered = true;
        let Some(mut r) = self.runs.remove(&id) else {
            self.reply(b"r\n")?;
            return self.handle(Event::CommitDone { run: id });
        };
        self.free_lane(id);
        let sb = r.sandbox.take();
        let fits = self.output_fits(&r);
        let ok = fits
            && match &sb {
                Some(sb) => match sb.commit_before_discard() {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!("commit failed, running the unit for real: {e}");
                        false
                    }
                },
                None => false,
            };
        if !fits {
            tracing::debug!(instance = %r.instance, "output captured for other fds: run for real");
        }
        if let Some(sb) = sb {
            self.janitor.discard(sb);
        }
        let end = self.now();
        if let Some(f) = r.finished_at {
            self.took(r.instance.unit.0, f - r.start);
            if ok {
                self.note_unit_run(f - r.start);
            }
        }
        self.bars.push(Bar {
            instance: r.instance.to_string(),
            unit: r.instance.unit.0,
            lane: Some(r.lane),
            start: r.start,
            end,
            outcome: if ok { "committed" } else { "discarded" },
            why: (!ok)
                .then(|| "its output was captured for other fds, or the commit failed".into()),
        });
        self.account(if ok {
            r.finished_at.map_or(0.0, |f| f - r.start)
        } else {
            0.0
        });
        if ok {
            let mut line = format!("c {} ", r.exit).into_bytes();
            line.extend_from_slice(r.out.as_os_str().as_bytes());
            line.push(b' ');
            line.extend_from_slice(r.err.as_os_str().as_bytes());
            line.push(b'\n');
            self.reply(&line)?;
        } else {
            self.direct = Some(r.instance.clone());
            self.direct_start = end;
            self.reply(b"r\n")?;
        }
        let _ = std::fs::remove_file(&r.pre);
        self.handle(Event::CommitDone { run: id })
    }

    /// The run as an SVG Gantt chart.
    fn timeline(&self, started: Instant) -> String {
        use crate::timeline::{Bar as B, Lane, Outcome};
        let text = |unit: u32| {
            self.units
                .get(unit as usize)
                .map(|u| String::from_utf8_lossy(&u.text).into_owned())
                .unwrap_or_else(|| "(the shell's own work)".into())
        };
        let bars: Vec<B> = self
            .bars
            .iter()
            .map(|b| B {
                lane: b.lane.map_or(Lane::Shell, Lane::Slot),
                start: b.start,
                end: b.end,
                outcome: match b.outcome {
                    "committed" => Outcome::Committed,
                    "direct" => Outcome::Direct,
                    _ => Outcome::Discarded,
                },
                label: b.instance.clone(),
                text: text(b.unit),
                why: b.why.clone(),
            })
            .collect();
        let slots = self
            .bars
            .iter()
            .filter_map(|b| b.lane)
            .max()
            .map_or(0, |m| m + 1);
        let off = if self.window == 0 && self.asked_window > 0 {
            ", speculation turned off on the way"
        } else {
            ""
        };
        let title = format!(
            "{} (-j {}{off})",
            self.dollar0.to_string_lossy(),
            self.asked_window
        );
        crate::timeline::svg(&bars, slots, started.elapsed().as_secs_f64(), &title)
    }

    /// Whether what a run captured replays right on the shell's fds as they are now (the
    /// shell waits at the gate, so they are its own): output from a pty only to a terminal
    /// and from a file only to a non-terminal (`exec >log` or a group's redirection may
    /// have changed them since the run started); merged output only where stdout and
    /// stderr are one file; separate output not where they are (the interleaving is lost).
    fn output_fits(&self, r: &Run) -> bool {
        let out_len = std::fs::metadata(&r.out).map_or(0, |m| m.len());
        let err_len = std::fs::metadata(&r.err).map_or(0, |m| m.len());
        let now = self.shell_ttys();
        let same = same_file(self.main_pid);
        if (out_len > 0 && now.0 != r.ttys.0) || (err_len > 0 && now.1 != r.ttys.1) {
            return false;
        }
        !((r.merged && out_len > 0 && !same) || (!r.merged && out_len > 0 && err_len > 0 && same))
    }

    /// Whether the main shell's stdout and stderr are terminals.
    fn shell_ttys(&self) -> (bool, bool) {
        let is_tty = |fd: i32| {
            std::fs::read_link(format!("/proc/{}/fd/{fd}", self.main_pid)).is_ok_and(|p| {
                let b = p.as_os_str().as_bytes();
                b.starts_with(b"/dev/pts/") || b.starts_with(b"/dev/tty") || b == b"/dev/console"
            })
        };
        (is_tty(1), is_tty(2))
    }

    /// Kills what still runs (their sandboxes come back to [`Driver::cleanup`]).
    fn stop_runs(&mut self) {
        let ids: Vec<RunId> = self.runs.keys().copied().collect();
        for id in ids {
            self.drop_run(id, "discarded");
        }
    }

    /// Waits for killed runs' sandboxes and removes every sandbox and the run directory. Done
    /// after the shell was let go: nothing it would wait for.
    fn cleanup(&mut self, rx: &Receiver<Msg>) {
        // No more sandboxes.
        if let Some(pool) = &mut self.pool {
            pool.stop.take();
        }
        // Killed runs hand their sandboxes back through the channel.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while !self.killed.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Msg::Done(id, fin)) => {
                    self.killed.remove(&id);
                    self.janitor.discard(fin.sandbox);
                }
                Ok(Msg::Failed(id, sb)) => {
                    self.killed.remove(&id);
                    self.janitor.discard(sb);
                }
                Ok(Msg::Refused(id)) => {
                    self.killed.remove(&id);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if let Some(mut pool) = self.pool.take() {
            for sb in pool.close() {
                self.janitor.discard(sb);
            }
        }
        self.janitor.finish();
        sandbox::stop_zygote();
        if self.tmp_made {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }

    /// `--stats`, `--report`, `--timeline`, `--dag`.
    fn report(&mut self, args: &ServeArgs, started: Instant) -> anyhow::Result<()> {
        let stats = self.sched.stats();
        if args.run.stats {
            eprintln!(
                "hs: {} gates, {} speculated, {} committed, {} discarded, {} run directly, {:.3}s",
                self.gates,
                stats.started,
                stats.committed,
                stats.discarded,
                stats.direct,
                started.elapsed().as_secs_f64()
            );
        }
        if let Some(path) = &args.run.timeline {
            std::fs::write(path, self.timeline(started))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(path) = &args.run.dag {
            std::fs::write(path, self.sched.dag().to_dot())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(path) = &args.run.report {
            let report = self.sched.report();
            let json = serde_json::json!({
                "speculation": true,
                "window": self.sched.config().window,
                "gates": self.gates,
                "subshell_gates": self.notes,
                "async_gates": self.async_gates,
                "seconds": started.elapsed().as_secs_f64(),
                "stats": report.stats,
                "critical_path": report.critical_path.as_secs_f64(),
                "total": report.total.as_secs_f64(),
                "instances": report.instances,
                "runs": self.bars,
            });
            std::fs::write(path, serde_json::to_vec_pretty(&json)?)
                .with_context(|| format!("cannot write report {}", path.display()))?;
        }
        Ok(())
    }
}

/// Looks the unit's literal command names up in PATH as bash would, so that the preamble can
/// `hash -p` them: bash's own search stats "." (to spot PATH entries that are the current
/// directory), which would read as an observation of the working directory. Returns the
/// `hash` lines and the lookups they stand for (misses in the directories before the hit,
/// the hit).
fn hash_commands(
    u: &parser::Unit,
    env: &[(OsString, OsString)],
    cwd: &Path,
) -> (Vec<u8>, Vec<Access>) {
    let mut lines = Vec::new();
    let mut lookups = Vec::new();
    let Some((_, path)) = env.iter().find(|(k, _)| k == "PATH") else {
        return (lines, lookups);
    };
    let dirs: Vec<&[u8]> = path.as_bytes().split(|&b| b == b':').collect();
    // Relative entries depend on the cwd the way bash's "." check is about: leave it to bash.
    if dirs.iter().any(|d| !d.starts_with(b"/")) {
        return (lines, lookups);
    }
    let _ = cwd;
    let mut seen = HashSet::new();
    for c in &u.commands {
        if c.is_empty()
            || c.contains(['/', '$', '`', '"', '\\', '\'', '=', '*', '?', '['])
            || !seen.insert(c.clone())
        {
            continue;
        }
        let mut misses = Vec::new();
        for d in &dirs {
            let mut p = d.to_vec();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(c.as_bytes());
            let meta = std::fs::metadata(OsStr::from_bytes(&p));
            let exec = meta
                .as_ref()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if exec {
                lookups.append(&mut misses);
                lookups.push(Access::new(p.clone(), AccessKind::Stat));
                lines.extend_from_slice(b"builtin hash -p ");
                lines.extend_from_slice(&state::quote(&p));
                lines.push(b' ');
                lines.extend_from_slice(c.as_bytes());
                lines.extend_from_slice(b" 2>/dev/null\n");
                break;
            }
            misses.push(Access::new(
                p,
                if meta.is_ok() {
                    AccessKind::Stat
                } else {
                    AccessKind::Missing
                },
            ));
        }
    }
    (lines, lookups)
}

/// `declare -px` output → the environment a program gets.
fn env_pairs(env: &[u8]) -> Vec<(OsString, OsString)> {
    let mut out = Vec::new();
    for d in state::split_declarations(env, |_| true) {
        let Some(rest) = d.strip_prefix(b"declare -") else {
            continue;
        };
        let Some(sp) = rest.iter().position(|&b| b == b' ') else {
            continue;
        };
        let rest = &rest[sp + 1..];
        let Some(eq) = rest.iter().position(|&b| b == b'=') else {
            continue; // exported but unset: not in the environment
        };
        let name = &rest[..eq];
        // BASH_ENV would be sourced; with PWD and OLDPWD bash stats them and "." at start-up,
        // which would look like observations of the working directory (the preamble sets
        // all three as variables).
        if matches!(name, b"BASH_ENV" | b"ENV" | b"PWD" | b"OLDPWD") {
            continue;
        }
        let mut fake = b"declare -- x=".to_vec();
        fake.extend_from_slice(&rest[eq + 1..]);
        let v = state::value_of(&fake);
        if v.first() == Some(&0) {
            continue;
        }
        out.push((OsString::from_vec(name.to_vec()), OsString::from_vec(v)));
    }
    out
}

/// trace's kinds → the scheduler's accesses, leaving out paths `skip` says.
fn convert(t: &trace::Trace, skip: impl Fn(&[u8]) -> bool) -> scheduler::Trace {
    use trace::Kinds as K;
    let mut out = scheduler::Trace::default();
    for (path, kinds) in t.iter() {
        if skip(path) {
            continue;
        }
        let mut push = |k: AccessKind| {
            let a = Access::new(path.to_vec(), k);
            if k.writes() {
                out.writes.push(a);
            } else {
                out.reads.push(a);
            }
        };
        if kinds.intersects(K::READ.union(K::EXEC)) {
            push(AccessKind::Read);
        }
        if kinds.contains(K::STAT) {
            push(AccessKind::Stat);
        } else if kinds.contains(K::EXISTS) {
            push(AccessKind::Exists);
        }
        if kinds.contains(K::MISSING) {
            push(AccessKind::Missing);
        }
        if kinds.contains(K::LIST) {
            push(AccessKind::List);
        }
        if kinds.contains(K::WRITE_TRUNC) {
            push(AccessKind::Write);
        }
        if kinds.contains(K::WRITE) {
            push(AccessKind::Append);
        }
        if kinds.intersects(K::CREATE.union(K::RENAME_TO)) {
            push(AccessKind::Create);
        }
        if kinds.intersects(K::DELETE.union(K::RENAME_FROM)) {
            push(AccessKind::Delete);
        }
        if kinds.contains(K::SET_META) {
            push(AccessKind::Meta);
        }
    }
    let f = t.flags;
    let mut flags = Flags::NONE;
    for (tf, sf) in [
        (trace::Flags::NETWORK, Flags::NETWORK),
        (trace::Flags::ESCAPE, Flags::ESCAPE),
        (trace::Flags::UNTRACEABLE, Flags::UNTRACED),
        (trace::Flags::DEVICE, Flags::DEVICE),
        (trace::Flags::STDIN, Flags::STDIN),
        (trace::Flags::REFUSED, Flags::UNSUPPORTED),
    ] {
        if f.contains(tf) {
            flags = flags | sf;
        }
    }
    out.flags = flags;
    out
}

/// A /proc path about a process (its fds, status, mounts…), which differs in a sandbox;
/// what is the same there (its executable, maps, limits, the stdio links) passes.
fn per_process(p: &[u8]) -> bool {
    let Some(rest) = p.strip_prefix(b"/proc/") else {
        return false;
    };
    let mut parts = rest.splitn(2, |&b| b == b'/');
    let first = parts.next().unwrap_or_default();
    let own = first == b"self"
        || first == b"thread-self"
        || (!first.is_empty() && first.iter().all(u8::is_ascii_digit));
    if !own {
        return false;
    }
    let what = parts.next().unwrap_or_default();
    !matches!(
        what,
        b"exe" | b"maps" | b"auxv" | b"limits" | b"cmdline" | b"fd/0" | b"fd/1" | b"fd/2"
    )
}

/// Strips the `\0HS<status>` trailer from a captured stdout; the status, if it was there.
fn take_trailer(out: &Path) -> Option<i32> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(out)
        .ok()?;
    let len = f.metadata().ok()?.len();
    let tail_len = len.min(16);
    let mut tail = vec![0u8; tail_len as usize];
    use std::os::unix::fs::FileExt;
    f.read_exact_at(&mut tail, len - tail_len).ok()?;
    let at = tail.windows(3).rposition(|w| w == b"\0HS")?;
    let status: i32 = std::str::from_utf8(&tail[at + 3..]).ok()?.parse().ok()?;
    f.set_len(len - tail_len + at as u64).ok()?;
    Some(status)
}

/// Whether the shell's stdout and stderr are the same file (so their interleaving shows).
fn same_file(pid: i32) -> bool {
    let id =
        |fd: i32| std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).map(|m| (m.dev(), m.ino()));
    matches!((id(1), id(2)), (Ok(a), Ok(b)) if a == b)
}

/// A pty in raw mode (bytes pass unchanged) of the terminal's size: the slave for the unit,
/// and a thread copying what arrives on the master into `capture` until the slave is closed.
/// What a speculative run needs to be set up once it has a sandbox (see [`Driver::start`]).
struct RunSetup {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
    umask: u32,
    preamble: Vec<u8>,
    pre: PathBuf,
    out: PathBuf,
    err: PathBuf,
    /// Whether the shell's stdout / stderr are terminals, and the same one.
    ttys: (bool, bool),
    merged: bool,
    winsize: nix::pty::Winsize,
}

impl RunSetup {
    /// Writes the preamble, creates the capture files, and returns the command with its
    /// stdout and stderr (ptys where the shell's are terminals: one for both when they are
    /// the same terminal, so their interleaving is kept, and isatty() answers as it would
    /// have; a thread copies what the unit prints into the capture file), and its stdin: a
    /// probe that tells whether the unit read the stdin it would have shared with the shell.
    #[allow(clippy::type_complexity)]
    fn command(
        self,
    ) -> anyhow::Result<(
        sandbox::Command,
        Vec<std::thread::JoinHandle<()>>,
        sandbox::StdinProbe,
    )> {
        std::fs::write(&self.pre, &self.preamble)?;
        let out_f = File::create(&self.out)?;
        let err_f = File::create(&self.err)?;
        let mut copiers = Vec::new();
        let winsize = self.winsize;
        // The capture file itself, or a pty whose copier writes into it.
        let mut capture = |tty: bool, f: File| -> anyhow::Result<OwnedFd> {
            if !tty {
                return Ok(f.into());
            }
            let (slave, c) = pty_into(f, winsize)?;
            copiers.push(c);
            Ok(slave)
        };
        let (fd1, fd2): (OwnedFd, OwnedFd) = match self.ttys {
            (true, true) if self.merged => {
                let slave = capture(true, out_f)?;
                (slave.try_clone()?, slave)
            }
            (t1, t2) => (capture(t1, out_f)?, capture(t2, err_f)?),
        };
        let (fd0, stdin) = sandbox::stdin_probe().context("cannot make a stdin pipe")?;
        let cmd = sandbox::Command::new(self.argv)
            .env(self.env)
            .cwd(&self.cwd)
            .umask(self.umask)
            .fd(0, fd0)
            .fd(1, fd1)
            .fd(2, fd2)
            .idle(std::env::var_os("HS_SPEC_NOT_IDLE").is_none());
        Ok((cmd, copiers, stdin))
    }
}

fn pty_into(
    capture: File,
    size: nix::pty::Winsize,
) -> anyhow::Result<(OwnedFd, std::thread::JoinHandle<()>)> {
    use nix::sys::termios;
    let pty = nix::pty::openpty(Some(&size), None).context("cannot open a pty")?;
    let mut t = termios::tcgetattr(&pty.slave).context("cannot read the pty's mode")?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(&pty.slave, termios::SetArg::TCSANOW, &t)
        .context("cannot set the pty's mode")?;
    let master = File::from(pty.master);
    let copier = std::thread::Builder::new()
        .name("hs-pty".into())
        .spawn(move || {
            let (mut master, mut capture) = (master, capture);
            let mut buf = [0u8; 65536];
            loop {
                match master.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if capture.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO: every slave fd is closed.
                    Err(_) => return,
                }
            }
        })
        .context("cannot start a thread")?;
    Ok((pty.slave, copier))
}

/// The size of the terminal on the shell's fd (`stty size` on it).
fn terminal_size(pid: i32, fd: i32) -> Option<nix::pty::Winsize> {
    let tty = File::open(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(tty)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|x| x.parse::<u16>().ok());
    Some(nix::pty::Winsize {
        ws_row: it.next()??,
        ws_col: it.next()??,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

/// Regular files that `pid` and its descendants have open for writing (not under /dev, /proc
/// or `skip`).
fn open_for_writing(pid: i32, skip: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut pids = vec![pid];
    // This server is a child of the shell (hs started it, then became bash): neither its
    // fds nor its sandboxes are the shell's, and walking them cost most of a gate.
    let me = std::process::id() as i32;
    let mut i = 0;
    while i < pids.len() && pids.len() < 4096 {
        let p = pids[i];
        i += 1;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                pids.extend(
                    c.split_whitespace()
                        .filter_map(|x| x.parse::<i32>().ok())
                        .filter(|&c| c != me),
                );
            }
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // The link's mode is the fd's open mode (owner write bit: open for writing): one
            // lstat instead of reading the link and its fdinfo.
            if fd.metadata().map_or(true, |m| m.mode() & 0o200 == 0) {
                continue;
            }
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let b = target.as_os_str().as_bytes();
            if !b.starts_with(b"/")
                || b.starts_with(b"/dev/")
                || b.starts_with(b"/proc/")
                || b.starts_with(skip)
                || out.iter().any(|o| o == b)
            {
                continue;
            }
            if std::fs::metadata(&target).is_ok_and(|m| m.is_file()) {
                out.push(b.to_vec());
            }
        }
    }
    out
}

/// (MemAvailable, MemTotal) in kB.
fn meminfo() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("MemAvailable:")?, field("MemTotal:")?))
}

fn umask_of(pid: i32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Whether the shell has a seccomp filter (ours: the shim installs it before anything runs).
fn shell_is_traced(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Seccomp:") && l.trim_end().ends_with('2'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn open_for_writing_sees_write_fds_of_the_shell_and_its_children_only() {
        let dir = tempfile_dir();
        let w = dir.join("written");
        let r = dir.join("read");
        let c = dir.join("child-writes");
        std::fs::write(&r, b"x").unwrap();
        // The shell holds `written` for writing and `read` for reading; its child holds
        // `child-writes` open read-write (`<>`).
        let script = format!(
            "exec 3>'{}' 4<'{}'; sleep 5 5<>'{}' & echo ready; wait",
            w.display(),
            r.display(),
            c.display()
        );
        let mut child = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        // The background `sleep` has its redirection once it runs; give it a moment.
        let want = |v: &[Vec<u8>], p: &Path| v.iter().any(|x| x == p.as_os_str().as_bytes());
        let mut got = Vec::new();
        for _ in 0..100 {
            got = open_for_writing(child.id() as i32, b"/nonexistent");
            if want(&got, &c) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.kill();
        let _ = child.wait();
        assert!(want(&got, &w), "{got:?}");
        assert!(want(&got, &c), "{got:?}");
        assert!(!want(&got, &r), "{got:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("hs-spec-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
