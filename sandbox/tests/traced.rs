//! Sandboxed commands traced from inside the sandbox (`Command::trace`) and run at idle
//! priority (`Command::idle`), through `Sandbox::spawn` and prestarted sandboxes, as root and
//! as an unprivileged user.
//!
//! Every case runs in a fresh copy of this test binary (so that its stdin is a known file):
//! as the current user and, when that is root, again as uid/gid 65534 through `setpriv`.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

mod common;

use common::{in_children, work};
use sandbox::{Command, Options, Sandbox};
use trace::{Flags, Kinds, Trace, Tracer};

fn dump(t: &Trace) -> String {
    let mut s = String::new();
    for (p, k) in t.iter() {
        s.push_str(&format!("  {k:<30} {}\n", String::from_utf8_lossy(p)));
    }
    s.push_str(&format!("  flags: {:?} {:?}\n", t.flags, t.notes));
    s
}

#[track_caller]
fn has(t: &Trace, path: &Path, kinds: Kinds) {
    let got = t.get(path.as_os_str().as_bytes()).unwrap_or_default();
    assert!(
        got.contains(kinds),
        "expected {kinds} on {}, got {got}\n{}",
        path.display(),
        dump(t)
    );
}

/// How a traced command is started.
#[derive(Clone, Copy, Debug)]
enum Via {
    Spawn,
    Prestart,
}

/// Runs `cmd` in `sb` traced by `tracer`; its exit code, stdout and trace.
fn run_traced(sb: &Sandbox, tracer: &Tracer, cmd: Command, via: Via) -> (i32, Vec<u8>, Trace) {
    let (session, hook) = tracer.start().unwrap();
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let cmd = cmd.fd(1, out_w.into()).trace(hook);
    let child = match via {
        Via::Spawn => sb.spawn(&cmd),
        Via::Prestart => sb.prestart().and_then(|ready| ready.exec(&cmd)),
    };
    // The command holds the hook's report fd and our pipe's write end.
    drop(cmd);
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            session.abort();
            panic!("{via:?}: {e}");
        }
    };
    let mut out = Vec::new();
    out_r.read_to_end(&mut out).unwrap();
    let code = child.wait().unwrap();
    let trace = session.finish().unwrap();
    (code, out, trace)
}

/// The brief's command, traced in a sandbox: every path as the command names it, with the
/// right kinds; nothing of the sandbox setup (its mounts would raise `escape`).
#[test]
fn traced_paths_are_exact() {
    if in_children("traced_paths_are_exact", b"") {
        return;
    }
    let work = work();
    for via in [Via::Spawn, Via::Prestart] {
        let dir = work.join(format!("dir-{via:?}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("old"), "old\n").unwrap();
        let d = dir.to_str().unwrap();
        let sb = Sandbox::create_temp(&Options::default()).unwrap();
        let tracer = Tracer::new().root_from_tracee();
        let script =
            format!("cat /etc/hostname >/dev/null; ls {d}; echo x > {d}/new; test -e {d}/missing");
        let (code, out, t) = run_traced(&sb, &tracer, Command::shell(&script), via);
        let what = format!("{via:?}\n{}", dump(&t));
        assert_eq!(code, 1, "test -e of a missing file fails: {what}");
        assert_eq!(String::from_utf8_lossy(&out), "old\n", "{what}");
        has(&t, Path::new("/etc/hostname"), Kinds::READ);
        has(&t, &dir, Kinds::LIST);
        has(&t, &dir.join("new"), Kinds::CREATE);
        has(&t, &dir.join("missing"), Kinds::MISSING);
        has(&t, Path::new("/usr/bin/bash"), Kinds::EXEC);
        has(&t, Path::new("/usr/bin/cat"), Kinds::EXEC);
        has(&t, Path::new("/usr/bin/ls"), Kinds::EXEC);
        // The setup (unshare, mounts, pivot_root) ran before the filter: no escape flag, and
        // none of the sandbox's own paths.
        assert!(t.flags.is_empty(), "{what}");
        let sbdir = sb.dir().as_os_str().as_bytes();
        assert!(
            t.iter().all(|(p, _)| !p.starts_with(sbdir)
                && !p.ends_with(b"uid_map")
                && !p.ends_with(b"setgroups")),
            "{what}"
        );
        // The write went to the upper layer, not to the live directory.
        assert!(!dir.join("new").exists());
        let changes = sb.changes().unwrap().to_text();
        assert!(changes.contains(&format!("{d}/new")), "{changes}");
        sb.discard().unwrap();
    }
}

/// With `watch_stdin`, reading the stdin the caller received is flagged; reading a here-doc
/// or a pipe made inside the command is not.
#[test]
fn stdin_reads_are_flagged_only_for_the_inherited_stdin() {
    if in_children(
        "stdin_reads_are_flagged_only_for_the_inherited_stdin",
        b"first\nsecond\n",
    ) {
        return;
    }
    // Both runs read one line of the same open file (bash's `read` seeks back what it read
    // beyond the line).
    for (via, line) in [(Via::Spawn, "first"), (Via::Prestart, "second")] {
        let sb = Sandbox::create_temp(&Options::default()).unwrap();
        let tracer = Tracer::new().root_from_tracee().watch_stdin();

        let inner = "cat <<'EOF'\nheredoc\nEOF\necho piped | (read l; echo \"$l\"); \
                     printf 'x\\n' | cat";
        let (code, out, t) = run_traced(&sb, &tracer, Command::shell(inner), via);
        let what = format!("{via:?} inner\n{}", dump(&t));
        assert_eq!(code, 0, "{what}");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "heredoc\npiped\nx\n",
            "{what}"
        );
        assert!(!t.flags.contains(Flags::STDIN), "{what}");
        assert!(t.flags.is_empty(), "{what}");

        // Without a redirection the sandboxed command reads the stdin we were given.
        let (code, out, t) =
            run_traced(&sb, &tracer, Command::shell("read l; echo \"got:$l\""), via);
        let what = format!("{via:?} inherited\n{}", dump(&t));
        assert_eq!(code, 0, "{what}");
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("got:{line}\n"),
            "{what}"
        );
        assert!(t.flags.contains(Flags::STDIN), "{what}");

        // Opening it anew counts too; a pipe opened as /dev/stdin does not. /proc/self is the
        // sandbox's own /proc (the command's pid in its namespace).
        let (code, out, t) = run_traced(
            &sb,
            &tracer,
            Command::shell("echo p | cat /dev/stdin; cat /proc/self/stat >/dev/null"),
            via,
        );
        let what = format!("{via:?} /dev/stdin of a pipe\n{}", dump(&t));
        assert_eq!((code, &out[..]), (0, &b"p\n"[..]), "{what}");
        assert!(!t.flags.contains(Flags::STDIN), "{what}");
        let stat: Vec<_> = t
            .iter()
            .filter(|(p, _)| p.starts_with(b"/proc/") && p.ends_with(b"/stat"))
            .collect();
        assert!(
            !stat.is_empty() && stat.iter().all(|(_, k)| k.contains(Kinds::READ)),
            "{what}"
        );
        let (_, _, t) = run_traced(&sb, &tracer, Command::new(["cat", "/dev/stdin"]), via);
        let what = format!("{via:?} cat /dev/stdin\n{}", dump(&t));
        assert!(t.flags.contains(Flags::STDIN), "{what}");
        sb.discard().unwrap();
    }
}

/// The scheduling policy of the command as `/proc/self/stat` reports it (field 41).
fn policy_of(stat: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(stat);
    let after = &text[text.rfind(')').unwrap() + 1..];
    after.split_whitespace().nth(38).unwrap().parse().unwrap()
}

/// `idle(true)` runs the command (and its children) as `SCHED_IDLE`; `idle(false)` does not.
#[test]
fn idle_commands_run_as_sched_idle() {
    if in_children("idle_commands_run_as_sched_idle", b"") {
        return;
    }
    for via in [Via::Spawn, Via::Prestart] {
        let sb = Sandbox::create_temp(&Options::default()).unwrap();
        let tracer = Tracer::new().root_from_tracee();
        for idle in [true, false] {
            // `cat` is a child of the shell: the policy is inherited.
            let cmd = Command::shell("cat /proc/self/stat").idle(idle);
            let (code, out, t) = run_traced(&sb, &tracer, cmd, via);
            assert_eq!(code, 0, "{via:?} {idle}");
            let want = if idle {
                libc::SCHED_IDLE
            } else {
                libc::SCHED_OTHER
            } as u32;
            assert_eq!(policy_of(&out), want, "{via:?} idle={idle}");
            // The tracer hook still went in after the policy change.
            has(&t, Path::new("/usr/bin/cat"), Kinds::EXEC);
        }
        // Untraced too.
        let (mut r, w) = std::io::pipe().unwrap();
        let cmd = Command::new(["cat", "/proc/self/stat"])
            .idle(true)
            .fd(1, w.into());
        let code = match via {
            Via::Spawn => sb.run(&cmd).unwrap(),
            Via::Prestart => {
                let mut c = sb.prestart().unwrap().exec(&cmd).unwrap();
                c.wait().unwrap()
            }
        };
        drop(cmd);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(code, 0);
        assert_eq!(policy_of(&out), libc::SCHED_IDLE as u32, "{via:?} untraced");
        sb.discard().unwrap();
    }
}

/// A command that fails before `exec` (not found) is still traced (its PATH search), and one
/// whose tracer cannot start is a setup error, not a silently untraced run.
#[test]
fn command_not_found_is_traced() {
    if in_children("command_not_found_is_traced", b"") {
        return;
    }
    let sb = Sandbox::create_temp(&Options::default()).unwrap();
    let tracer = Tracer::new().root_from_tracee();
    let cmd = Command::new([OsString::from("hs-no-such-command")])
        .env(vec![("PATH".into(), "/usr/local/bin:/usr/bin".into())]);
    let (code, _, t) = run_traced(&sb, &tracer, cmd, Via::Spawn);
    assert_eq!(code, 127, "{}", dump(&t));
    has(
        &t,
        Path::new("/usr/local/bin/hs-no-such-command"),
        Kinds::MISSING,
    );
    has(&t, Path::new("/usr/bin/hs-no-such-command"), Kinds::MISSING);
    sb.discard().unwrap();
}

/// A directory rename the sandbox refuses (unprivileged overlayfs: `EXDEV`) and the program
/// does not work around is flagged `refused`; `mv`'s copy fallback is not; as root (overlayfs
/// `redirect_dir`) the rename works as it does live.
#[test]
fn refused_directory_renames_are_flagged() {
    if in_children("refused_directory_renames_are_flagged", b"") {
        return;
    }
    let work = work();
    let root = common::is_root();
    for via in [Via::Spawn, Via::Prestart] {
        let dir = work.join(format!("ren-{via:?}"));
        for d in ["a", "c"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
            std::fs::write(dir.join(d).join("f"), d).unwrap();
        }
        let sb = Sandbox::create_temp(&Options::default()).unwrap();
        let tracer = Tracer::new().root_from_tracee();
        let py = Command::new(["python3", "-c", "import os; os.rename('a', 'b')"]).cwd(&dir);
        let (code, _, t) = run_traced(&sb, &tracer, py, via);
        let what = format!("{via:?} python\n{}", dump(&t));
        has(&t, &dir.join("a"), Kinds::RENAME_FROM);
        if root {
            assert_eq!(code, 0, "{what}");
            assert!(!t.flags.contains(Flags::REFUSED), "{what}");
        } else {
            assert_ne!(code, 0, "{what}");
            assert!(t.flags.contains(Flags::REFUSED), "{what}");
        }
        let mv = Command::new(["mv", "c", "d"]).cwd(&dir);
        let (code, _, t) = run_traced(&sb, &tracer, mv, via);
        let what = format!("{via:?} mv\n{}", dump(&t));
        assert_eq!(code, 0, "{what}");
        has(&t, &dir.join("c"), Kinds::RENAME_FROM);
        assert!(!t.flags.contains(Flags::REFUSED), "{what}");
        let changes = sb.changes().unwrap().to_text();
        assert!(
            changes.contains(&format!("{}/d", dir.display())),
            "{changes}"
        );
        sb.discard().unwrap();
    }
}
