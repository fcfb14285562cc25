//! Running a script: decide how to invoke bash, start the gate server, become bash.
//!
//! `hs script.sh args…` ends by exec'ing `bash script.sh args…` in its own process, so the
//! script gets hs's pid, parent, signals and exit status exactly as under bash. Before that it
//! forks the gate server, a child that outlives the exec, and preloads a
//! small shim into bash that makes bash read the instrumented copy of the script when it opens
//! the user's path. Anything hs cannot handle runs as plain bash.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context;
use nix::fcntl::OFlag;
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::cli::RunArgs;

/// The shim preloaded into bash (built from shim/hs_shim.c by build.rs).
static SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hs_shim.so"));

/// Bash's limit on one argument (MAX_ARG_STRLEN is 32 pages); `-c` strings must fit.
const MAX_ARG: usize = 128 * 1024 - 1;

/// What bash will be given.
enum Input {
    /// `bash [flags] script args…`, reading the instrumented text in place of the script.
    Script { path: OsString, text: Vec<u8> },
    /// `bash [flags] -c text args…`.
    String { text: Vec<u8> },
}

/// How much of hs runs beside bash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// No server: every gate is a no-op function.
    Alone,
    /// A server records gates (`--report`, `--stats`) but never answers.
    Listen,
    /// A server speculates and answers the main shell's gates.
    Speculate,
}

/// A parsed and instrumented script.
struct Prepared {
    text: Vec<u8>,
    script: parser::Script,
    source: Vec<u8>,
    mode: Mode,
}

/// Runs the script described by `args`. Returns only if bash could not be started.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let shell = find_shell(args.shell.as_deref())?;
    let mut flags: Vec<OsString> = Vec::new();
    if args.errexit {
        flags.push("-e".into());
    }
    if args.nounset {
        flags.push("-u".into());
    }
    if args.xtrace {
        flags.push("-x".into());
    }
    if args.verbose_input {
        flags.push("-v".into());
    }
    for o in &args.options {
        flags.push("-o".into());
        flags.push(o.clone());
    }
    let plain = |why: &str| -> anyhow::Result<ExitCode> {
        tracing::debug!("running unchanged under bash: {why}");
        let mut cmd = bash(&shell);
        cmd.args(&flags);
        if args.stdin {
            cmd.arg("-s");
        }
        if args.command {
            cmd.arg("-c");
        }
        cmd.args(&args.args);
        Err(cmd.exec()).with_context(|| format!("cannot run {}", shell.display()))
    };
    let shows_lines = args.options.iter().any(|o| o == "xtrace" || o == "verbose");
    if args.xtrace || args.verbose_input || shows_lines {
        return plain("-x and -v show the script's text as bash runs it");
    }
    if !Path::new("/proc/self/fd").is_dir() {
        return plain("/proc is not mounted");
    }
    let (input, prepared, rest) = if args.command {
        let Some(s) = args.args.first() else {
            return plain("-c without a command string");
        };
        match prepare(s.as_bytes(), &args) {
            Ok(p) if p.text.len() <= MAX_ARG => {
                (Input::String { text: Vec::new() }, p, &args.args[1..])
            }
            Ok(_) => return plain("instrumented -c string too long for one argument"),
            Err(why) => return plain(&why),
        }
    } else if args.stdin || args.args.is_empty() {
        return plain("script on standard input");
    } else {
        let path = args.args[0].clone();
        let as_path = Path::new(&path);
        if !path.as_bytes().contains(&b'/') && !as_path.exists() {
            return plain("script is looked up in PATH");
        }
        let bytes = match std::fs::read(as_path) {
            Ok(b) => b,
            Err(e) => return plain(&format!("cannot read script: {e}")),
        };
        match prepare(&bytes, &args) {
            Ok(p) => (
                Input::Script {
                    path,
                    text: Vec::new(),
                },
                p,
                &args.args[1..],
            ),
            Err(why) => return plain(&why),
        }
    };
    let dollar0: OsString = match &input {
        Input::Script { path, .. } => path.clone(),
        Input::String { .. } => args.args.get(1).cloned().unwrap_or_else(|| {
            shell
                .file_name()
                .unwrap_or(OsStr::new("bash"))
                .to_os_string()
        }),
    };
    match start(&shell, &flags, input, prepared, &dollar0, rest, &args) {
        Ok(never) => match never {},
        Err(e) => {
            tracing::debug!("cannot start hs machinery ({e:#}); running plain bash");
            plain("hs could not start its gate server")
        }
    }
}

/// Parses and instruments a script; `Err(reason)` means: run it unchanged. Loops report
/// their words only when a server listens.
fn prepare(bytes: &[u8], args: &RunArgs) -> Result<Prepared, String> {
    let script = parser::parse(bytes).map_err(|e| format!("parse failed: {e}"))?;
    if let Some(why) = &script.unsupported {
        return Err(why.clone());
    }
    let mode = if gates_wait(args) {
        match crate::spec::blocker(&script, bytes) {
            None => Mode::Speculate,
            Some(why) => {
                tracing::debug!("no speculation: {why}");
                if listens(args) {
                    Mode::Listen
                } else {
                    Mode::Alone
                }
            }
        }
    } else if needs_server(args) {
        Mode::Listen
    } else {
        Mode::Alone
    };
    let text = if mode == Mode::Alone {
        parser::instrument_gates(bytes, &script)
    } else {
        parser::instrument(bytes, &script)
    };
    Ok(Prepared {
        text,
        script,
        source: bytes.to_vec(),
        mode,
    })
}

/// The uninhabited type: `start` only returns on failure.
enum Never {}

/// Starts the gate server and execs bash on the instrumented input.
#[allow(clippy::too_many_arguments)]
fn start(
    shell: &Path,
    flags: &[OsString],
    input: Input,
    prepared: Prepared,
    dollar0: &OsStr,
    rest: &[OsString],
    args: &RunArgs,
) -> anyhow::Result<Never> {
    let mut cmd = bash(shell);
    cmd.args(flags);
    let mut prelude = match prepared.mode {
        Mode::Alone => {
            // Nobody listens: every gate answers "run it yourself" in the shell itself.
            "__hs_gate() { return 0; }; __hs_note() { return 0; }; __hs_loop() { return 0; }; \
             __hs_replay() { return 0; }; __hs_it() { return \"$2\"; }; "
                .to_string()
        }
        mode => {
            let server = start_server(args, &mut cmd, &prepared, dollar0, mode)?;
            prelude(&server, &prepared.script, &prepared.source, mode)
        }
    };
    // The prelude's assignments reset `$_`; the script starts with the one bash had.
    prelude = format!("__hs_u0=$_; {prelude}builtin : \"$__hs_u0\"; ");
    let input = match input {
        Input::Script { path, .. } => Input::Script {
            path,
            text: prepared.text,
        },
        Input::String { .. } => Input::String {
            text: prepared.text,
        },
    };
    // Inherited by bash (no close-on-exec); the shim closes them once used, so nothing bash
    // runs inherits them.
    let mut keep: Vec<OwnedFd> = Vec::new();
    let needs_shim = prepared.mode != Mode::Alone || matches!(input, Input::Script { .. });
    if needs_shim {
        let shim = memfd_create("hs-shim.so", MFdFlags::empty()).context("cannot create memfd")?;
        File::from(shim.try_clone()?)
            .write_all(SHIM)
            .context("cannot write the preload shim")?;
        let path = format!("/proc/self/fd/{}", shim.as_raw_fd());
        let preload = match std::env::var_os("LD_PRELOAD") {
            Some(orig) => {
                cmd.env("__HS_LD_PRELOAD", &orig);
                let mut v = OsString::from(&path);
                v.push(":");
                v.push(orig);
                v
            }
            None => OsString::from(&path),
        };
        cmd.env("LD_PRELOAD", preload)
            .env("__HS_SHIM_FD", shim.as_raw_fd().to_string());
        keep.push(shim);
    }
    match input {
        Input::Script { path, text } => {
            let script =
                memfd_create("hs-script", MFdFlags::empty()).context("cannot create memfd")?;
            let mut f = File::from(script.try_clone()?);
            f.write_all(prelude.as_bytes())?;
            f.write_all(&text)?;
            cmd.env("__HS_SCRIPT", &path)
                .env("__HS_SOURCE_FD", script.as_raw_fd().to_string())
                .arg(path);
            keep.push(script);
        }
        Input::String { text } => {
            let mut s = prelude.into_bytes();
            s.extend_from_slice(&text);
            cmd.arg("-c").arg(OsString::from_vec(s));
        }
    }
    cmd.args(rest);
    let err = cmd.exec();
    drop(keep);
    Err(err).with_context(|| format!("cannot run {}", shell.display()))
}

/// Whether the run needs the gate server: for speculation, or to record what the gates saw.
fn needs_server(args: &RunArgs) -> bool {
    gates_wait(args) || listens(args)
}

/// Whether something asks for what the gates saw.
fn listens(args: &RunArgs) -> bool {
    args.report.is_some() || args.dag.is_some() || args.timeline.is_some() || args.stats
}

/// Where bash talks to the server.
struct Server {
    /// Pipe for subshells' notes.
    request: String,
    /// Pipe for the main shell's gates, loops and exit.
    main: String,
    /// Pipe the main shell reads answers from.
    reply: String,
    /// The sync mark: main-shell gates wait for an answer while this file is not empty
    /// (speculating servers only).
    sync: String,
    /// The state mark: gates that do not wait report the state while this file is not empty.
    want: String,
    /// End-of-message mark of gate messages.
    token: String,
}

/// Starts the gate server: `hs` forks, the child serves, and the parent (which goes on to
/// exec bash) gets the paths bash writes requests to and reads replies from. Forking instead
/// of exec'ing a second `hs` saves an exec and a second parse, and bash need not wait for the
/// server: everything it needs from it is made before the fork.
fn start_server(
    args: &RunArgs,
    bash: &mut Command,
    prepared: &Prepared,
    dollar0: &OsStr,
    mode: Mode,
) -> anyhow::Result<Server> {
    // Pipes the server keeps open and bash opens through /proc/SERVER/fd/N.
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create gate pipe");
    let (req_r, req_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let (main_r, main_w) = pipe()?;
    let quiet = !args.verbose && !args.stats && std::env::var_os("HS_LOG").is_none();
    let token = format!("{:016x}", random_u64());
    let speculate = mode == Mode::Speculate && gates_wait(args);
    let setup = if speculate {
        Some(crate::spec::Setup::new()?)
    } else {
        None
    };
    let trace_fds = setup
        .as_ref()
        .and_then(|s| s.shell.as_ref())
        .map(|(_, hook, memfd)| format!("{}:{}", hook.report_fd(), memfd.as_raw_fd()));
    let sync_fd = setup
        .as_ref()
        .map(|s| (s.sync.as_raw_fd(), s.want.as_raw_fd()));
    let spid = match sandbox::fork_alone() {
        Ok(sandbox::Forked::Parent(pid)) => pid,
        Ok(sandbox::Forked::Child) => {
            let serve_args = crate::gate::ServeArgs {
                main_pid: nix::unistd::getppid().as_raw(),
                token: token.clone(),
                dollar0: dollar0.to_os_string(),
                // Sandboxes run the main shell's own binary, not a PATH search (traced, and
                // in the script's PATH, which may name another bash).
                run: RunArgs {
                    shell: Some(PathBuf::from(bash.get_program())),
                    ..args.clone()
                },
            };
            let pipes = crate::spec::Pipes {
                requests: File::from(req_r),
                main: File::from(main_r),
                replies: File::from(rep_w),
            };
            let start = setup.map(|setup| crate::spec::Start {
                source: &prepared.source,
                script: &prepared.script,
                setup,
            });
            // Our copies of the ends bash writes and reads stay open: bash opens them
            // through /proc/SERVER/fd/N.
            let keep = (req_w, rep_r, main_w);
            server_child(serve_args, pipes, start, quiet, keep)
        }
        Err(e) => return Err(e).context("cannot start the gate server"),
    };
    let proc_fd = |fd: &OwnedFd| format!("/proc/{spid}/fd/{}", fd.as_raw_fd());
    // Only a speculating server's gates test the mark (see `prelude`).
    let (sync, want) = sync_fd.map_or_else(Default::default, |(n, m)| {
        (
            format!("/proc/{spid}/fd/{n}"),
            format!("/proc/{spid}/fd/{m}"),
        )
    });
    if let Some(fds) = trace_fds {
        bash.env("__HS_TRACE", format!("{spid}:{fds}"));
    }
    let server_paths = Server {
        request: proc_fd(&req_w),
        main: proc_fd(&main_w),
        reply: proc_fd(&rep_r),
        sync,
        want,
        token,
    };
    bash.env("__HS_REQUEST", &server_paths.main)
        .env("__HS_REPLY", &server_paths.reply);
    // The server holds its own copies; ours are close-on-exec and gone with the exec.
    Ok(server_paths)
}

/// The gate server's side of the fork: out of the terminal's process group (Ctrl-C is for
/// the script), ended by the shell's death, stdio away from the script's; never returns.
fn server_child(
    args: crate::gate::ServeArgs,
    pipes: crate::spec::Pipes,
    start: Option<crate::spec::Start<'_>>,
    quiet: bool,
    keep: (OwnedFd, OwnedFd, OwnedFd),
) -> ! {
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    // The shell died before the death signal was armed.
    if nix::unistd::getppid().as_raw() != args.main_pid {
        std::process::exit(0);
    }
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        if quiet {
            let _ = nix::unistd::dup2_stderr(&null);
        }
    }
    let code = match crate::gate::serve(&args, pipes, start) {
        Ok(_) => 0,
        Err(e) => {
            tracing::debug!("gate server: {e:#}");
            2
        }
    };
    drop(keep);
    std::process::exit(code)
}

/// A random number (gate messages' end mark, run directory names).
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_ne_bytes(b)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
}

/// The gate functions, all on the script's first line so that line numbers do not move.
/// Every call's last argument is the caller's `"$_"` (`__hs_gate N [POSITIONAL…] "$_"`,
/// `__hs_loop N WORDS… "$_"`): bash sets `$_` to a call's last argument, so it stays as it was.
/// `N` may carry the iterations of the counted loops around it (`N:I,J`).
///
/// A gate never skips its unit unless the server explicitly answered `c` (committed): if the
/// server is gone, the unit runs. `__hs_note` (background units, and every gate when nothing
/// is speculated) only reports and never waits, so it costs one pipe write. With speculation,
/// a main-shell gate sends its state (`state` module) on the main pipe and waits for the
/// answer; `__hs_it` counts loop iterations, keeping `$?` (it returns its second argument,
/// and `&& builtin : "$_"` in the caller neither trips `set -e` nor moves `$_`).
fn prelude(server: &Server, script: &parser::Script, source: &[u8], mode: Mode) -> String {
    let Server {
        request,
        main,
        reply,
        sync,
        want,
        token,
    } = server;
    // `|| builtin :`: a failed write (server gone) must not reach an ERR trap or `set -e`;
    // `2>&-` silences its message without opening /dev/null (an open the shell's tracer traps).
    let note = "builtin printf 'g %s %s\\n' \"$1\" \"$BASHPID\" 2>&- >\"$__hs_q\" || builtin :";
    let loop_fn = "__hs_loop() { builtin unset \"__hs_i[${1%%:*}]\"; \
         if (($# > 2)); then builtin printf -v __hs_m ' %q' \"${@:2:$#-2}\"; else __hs_m=; fi; \
         if [[ $BASHPID == \"$$\" ]]; then __hs_w=$__hs_p; else __hs_w=$__hs_q; fi; \
         builtin printf 'l %s %s%s\\n' \"$1\" \"$BASHPID\" \"$__hs_m\" 2>&- >\"$__hs_w\" || builtin :; \
         return 0; }; ";
    // Reads "p" after a broken pipe (see the shim); `|| builtin :` keeps `set -e` away.
    let replay = "__hs_replay() { __hs_z=; \
         builtin read -r __hs_z <\"/dev/null/hs-replay:$__hs_o:$__hs_e\" || builtin :; \
         [[ $__hs_z != p ]] || return 141; return \"$__hs_st\"; }; ";
    let mut out = format!("__hs_q={request}; __hs_p={main}; __hs_a={reply}; ");
    out.push_str(&format!("__hs_note() {{ {note}; return 0; }}; "));
    out.push_str(loop_fn);
    out.push_str(replay);
    if mode != Mode::Speculate {
        out.push_str(&format!("__hs_gate() {{ {note}; return 0; }}; "));
        out.push_str("__hs_it() { return \"$2\"; }; ");
        return out;
    }
    // State reports go to a buffer of the shim, sent to the server in one write (see the shim);
    // without the shim (`hs-probe` fails), straight to the pipe, a write per line.
    out.push_str(
        "if builtin : 2>&- <\"/dev/null/hs-probe\"; then __hs_b=/dev/null/hs-buffer; \
         __hs_f=/dev/null/hs-flush; else __hs_b=$__hs_p; __hs_f=/dev/null; fi; ",
    );
    // A main-shell gate waits for the answer only while the server's sync mark is not empty (it
    // speculates); otherwise it says which unit the shell runs and goes on (`a`).
    out.push_str(&format!(
        "__hs_sync={}; __hs_want={}; ",
        String::from_utf8_lossy(&crate::state::quote(sync.as_bytes())),
        String::from_utf8_lossy(&crate::state::quote(want.as_bytes()))
    ));
    out.push_str("__hs_gate() { __hs_x=$?; if [[ $BASHPID != \"$$\" ]]; then ");
    out.push_str(note);
    out.push_str(
        "; return 0; fi; if [[ ! -s $__hs_sync ]]; then \
         if [[ -s $__hs_want ]]; then { builtin printf 'A %s %s %s\\n' \"$1\" \"$$\" \"$__hs_x\"; \
         \"__hs_s${1%%:*}\" \"$@\"; __hs_ctx; } 2>&- >\"$__hs_b\" && builtin : 2>&- <\"$__hs_f\" \
         || builtin :; else \
         builtin printf 'a %s %s %s\\n' \"$1\" \"$$\" \"$__hs_x\" 2>&- >\"$__hs_p\" \
         || builtin :; fi; return 0; fi; \
         { builtin printf 'g %s %s %s\\n' \"$1\" \"$$\" \"$__hs_x\"; \
         \"__hs_s${1%%:*}\" \"$@\"; __hs_ctx; } 2>&- >\"$__hs_b\" && builtin : 2>&- <\"$__hs_f\" \
         || return 0; \
         __hs_r=; [[ -e $__hs_a ]] && IFS=' ' builtin read -r __hs_r __hs_st __hs_o __hs_e <\"$__hs_a\"; \
         [[ $__hs_r != c ]]; }; ",
    );
    out.push_str(
        "__hs_it() { __hs_i[${1%%:*}]=$(( ${__hs_i[${1%%:*}]--1} + 1 )); \
         if [[ $1 == *:* ]]; then __hs_k=${1#*:}; while [[ -n $__hs_k ]]; do \
         builtin unset \"__hs_i[${__hs_k%%,*}]\"; \
         if [[ $__hs_k == *,* ]]; then __hs_k=${__hs_k#*,}; else __hs_k=; fi; done; fi; \
         return \"$2\"; }; ",
    );
    out.push_str(&crate::state::context_function(token));
    // The shell's context at the start, so speculation begins before the first gate, unless
    // it starts paused (see `spec::serve`). Errors go nowhere (`2>&-`, which opens no file).
    if crate::spec::min_unit() <= 0.0 {
        out.push_str(
            "{ builtin printf 's 0 %s 0\\n' \"$$\"; __hs_ctx; } 2>&- >\"$__hs_b\" \
             && builtin : 2>&- <\"$__hs_f\" || builtin :; ",
        );
    }
    let info = crate::spec::ScriptInfo::new(script, source);
    for u in &script.units {
        if u.gate == parser::Gate::Wrap {
            let (names, functions) = info.reported(u);
            out.push_str(&crate::state::unit_function(
                u.id.0,
                &names,
                u.vars.positional,
                &functions,
            ));
        }
    }
    out
}

/// Whether main-shell gates wait for an answer: only a speculating run answers anything but
/// "run it yourself".
pub(crate) fn gates_wait(args: &RunArgs) -> bool {
    !args.no_speculate && args.jobs != Some(0)
}

fn bash(shell: &Path) -> Command {
    let mut cmd = Command::new(shell);
    cmd.arg0(shell.file_name().unwrap_or(OsStr::new("bash")));
    // A shell that runs a program sets `_` to its path, and bash starts with `$_` from it: had
    // the caller run bash, `_` would name bash, not hs.
    // Same file (device and inode): two stats, where canonicalizing `_` took a readlink per
    // path component.
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let names_hs = std::env::var_os("_")
        .and_then(|u| id(Path::new(&u)))
        .is_some_and(|u| id(Path::new("/proc/self/exe")) == Some(u));
    if names_hs {
        cmd.env("_", shell);
    }
    cmd
}

/// `--shell`, or `bash` looked up in PATH.
fn find_shell(shell: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(s) = shell {
        return Ok(s.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("bash"))
        .find(|p| p.is_file())
        .or_else(|| Some(PathBuf::from("/bin/bash")).filter(|p| p.is_file()))
        .context("bash not found in PATH (hint: pass --shell PATH)")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` under bash with the shim preloaded.
    fn with_shim(script: &str) -> std::process::Output {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hs-shim-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let so = dir.join("hs_shim.so");
        std::fs::write(&so, SHIM).unwrap();
        std::fs::write(dir.join("out"), b"o\0ut\n").unwrap();
        std::fs::write(dir.join("err"), b"err\n").unwrap();
        std::fs::write(dir.join("big"), vec![b'x'; 1 << 20]).unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&dir)
            .env("LD_PRELOAD", &so)
            .env("D", &dir)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    #[test]
    fn shim_replays_output_into_the_shells_fds() {
        let out = with_shim(
            r#": <"/dev/null/hs-replay:$D/out:$D/err"; echo " rc=$?"; env | grep -c LD_PRELOAD"#,
        );
        assert_eq!(out.stdout, b"o\0ut\n rc=0\n0\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn shim_replay_follows_redirections() {
        let out = with_shim(r#"{ : <"/dev/null/hs-replay:$D/out:"; } > f; od -c f | head -1"#);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "0000000   o  \\0   u   t  \\n\n"
        );
    }

    #[test]
    fn shim_replay_survives_a_closed_pipe() {
        let out = with_shim(
            r#"exec 3>&1; { read -r z <"/dev/null/hs-replay:$D/big:"; echo "rc=$? z=$z" >&3; } | head -c 1 >/dev/null; echo alive"#,
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "rc=0 z=p\nalive\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    /// The shim traces the real shell itself: bash's own redirections and what it runs reach a
    /// supervisor started by another process (here, the test), as `__HS_TRACE` describes.
    #[test]
    fn shim_traces_the_real_shell() {
        let dir = std::env::temp_dir().join(format!("hs-shim-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let so = dir.join("hs_shim.so");
        std::fs::write(&so, SHIM).unwrap();
        std::fs::write(dir.join("in"), b"data\n").unwrap();
        let program: Vec<u8> = trace::Filter::tracing()
            .program()
            .iter()
            .flat_map(|f| {
                let mut b = f.code.to_ne_bytes().to_vec();
                b.extend([f.jt, f.jf]);
                b.extend(f.k.to_ne_bytes());
                b
            })
            .collect();
        let filter = memfd_create("hs-filter", MFdFlags::MFD_CLOEXEC).unwrap();
        File::from(filter.try_clone().unwrap())
            .write_all(&program)
            .unwrap();
        let (session, hook) = trace::Tracer::new().start().unwrap();
        let spec = format!(
            "{}:{}:{}",
            std::process::id(),
            hook.report_fd(),
            filter.as_raw_fd()
        );
        let d = dir.to_str().unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "cat {d}/in > {d}/copy; echo x > {d}/own; ls {d}/missing 2>/dev/null; \
                 grep -c Seccomp:.2 /proc/self/status"
            ))
            .env("LD_PRELOAD", &so)
            .env("__HS_TRACE", &spec)
            .output()
            .unwrap();
        drop(hook);
        let trace = session.finish().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{out:?}");
        let kinds = |name: &str| {
            trace
                .get(format!("{d}/{name}").as_bytes())
                .map(|k| k.names().collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        };
        assert!(kinds("in").contains("read"), "in: {}", kinds("in"));
        assert!(kinds("copy").contains("create"), "copy: {}", kinds("copy"));
        assert!(
            kinds("own").contains("create"),
            "own (bash's own redirection): {}",
            kinds("own")
        );
        assert!(
            kinds("missing").contains("missing"),
            "missing: {}",
            kinds("missing")
        );
    }
}
