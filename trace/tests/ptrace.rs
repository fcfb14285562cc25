//! The ptrace fallback (`Tracer::ptrace(true)`, or `HS_TRACE_FORCE_PTRACE=1`) gives the same
//! trace as seccomp user notification.

use std::collections::BTreeMap;
use std::process::Command;

use trace::{Kinds, Trace, Tracer};

mod common;

fn tmpdir(name: &str) -> common::TempDir {
    common::TempDir::new(name)
}

/// Accesses outside `/proc` (whose pid directories differ between runs), as text lines.
fn comparable(t: &Trace) -> BTreeMap<String, String> {
    t.iter()
        .filter(|(p, _)| !p.starts_with(b"/proc/"))
        .map(|(p, k)| (String::from_utf8_lossy(p).into_owned(), k.to_string()))
        .collect()
}

#[test]
fn ptrace_fallback_gives_the_same_trace() {
    let dir = tmpdir("ptrace-same");
    std::fs::write(dir.join("in"), "data\n").unwrap();
    std::fs::create_dir(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/x"), "x").unwrap();
    let script = "cat in > out; ls d > listing; mkdir -p new/sub; mv out new/sub/moved; \
                  rm -f listing; test -e missing; ln -s in link; cat link >/dev/null; \
                  (cd d && cat x) >/dev/null; sh -c 'echo child > fromchild'; \
                  touch -d 2020-01-01 in; chmod 600 in; \
                  grep TracerPid /proc/self/status";
    let mut runs = Vec::new();
    for ptrace in [false, true] {
        for f in ["out", "listing", "link", "fromchild"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_dir_all(dir.join("new"));
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).current_dir(&dir);
        let tracer = Tracer::new().ptrace(ptrace);
        assert_eq!(tracer.uses_ptrace(), ptrace);
        let (status, out, t) = common::run_capturing(&tracer, &mut cmd);
        assert!(status.success(), "ptrace={ptrace}: {status}");
        // Really traced by ptrace, or really not.
        let tracer_pid: i32 = out
            .trim()
            .strip_prefix("TracerPid:")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(tracer_pid != 0, ptrace, "{out}");
        assert!(t.is_clean(), "ptrace={ptrace}: {:?} {:?}", t.flags, t.notes);
        runs.push(t);
    }
    let (a, b) = (comparable(&runs[0]), comparable(&runs[1]));
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    for (path, kind) in [
        ("in", Kinds::READ),
        ("out", Kinds::CREATE),
        ("d", Kinds::LIST),
        ("new/sub", Kinds::CREATE),
        ("new/sub/moved", Kinds::RENAME_TO),
        ("missing", Kinds::MISSING),
        ("fromchild", Kinds::CREATE),
        ("d/x", Kinds::READ),
    ] {
        let got = runs[1].get(p(path).as_bytes()).unwrap_or_default();
        assert!(got.contains(kind), "ptrace: {path}: {got}");
    }
    assert_eq!(a, b, "notify (left) and ptrace (right) traces differ");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under the fallback, an exec failure is reported as with user notification (the command
/// runs behind a middle process, so `std::process::Command` never waits for a tracee).
#[test]
fn ptrace_fallback_reports_spawn_errors_and_signals() {
    let mut cmd = Command::new("/nonexistent/hs-program");
    let err = Tracer::new().ptrace(true).spawn(&mut cmd).unwrap_err();
    assert!(err.to_string().contains("failed to start"), "{err}");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "kill -TERM $$"]);
    let (status, _) = Tracer::new()
        .ptrace(true)
        .spawn(&mut cmd)
        .unwrap()
        .wait()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exit 7"]);
    let (status, _) = Tracer::new()
        .ptrace(true)
        .spawn(&mut cmd)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(status.code(), Some(7));
}
