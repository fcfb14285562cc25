//! `hs trace` end to end: the real binary, its report on stderr, its exit status.

#[path = "util/unpriv.rs"]
mod unpriv;

use std::path::PathBuf;
use std::process::{Command, Output};

fn hs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hs"))
}

fn tmpfile(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hs-trace-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.canonicalize().unwrap().join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn text_summary_lists_reads_and_keeps_stdout() {
    let f = tmpfile("text-input", "payload\n");
    let o = hs().args(["trace", "--", "cat"]).arg(&f).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"payload\n");
    let err = stderr(&o);
    assert!(err.contains("read:"), "{err}");
    assert!(err.contains(f.to_str().unwrap()), "{err}");
    assert!(err.contains("executed:"), "{err}");
}

#[test]
fn json_report_has_every_access() {
    let f = tmpfile("json-input", "x");
    let o = hs()
        .args(["trace", "--json", "--", "cat"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v["status"], 0);
    let accesses = v["trace"]["accesses"].as_array().unwrap();
    let entry = accesses
        .iter()
        .find(|a| a["path"] == f.to_str().unwrap())
        .expect("input traced");
    assert!(
        entry["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "read"),
        "{entry}"
    );
}

#[test]
fn exit_status_is_the_commands() {
    let o = hs()
        .args(["trace", "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = hs()
        .args(["trace", "--", "sh", "-c", "kill -9 $$"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
}

#[test]
fn missing_command_is_an_error() {
    let o = hs()
        .args(["trace", "--", "/nonexistent/hs-cmd"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("failed to start"), "{}", stderr(&o));
}

#[test]
fn works_unprivileged() {
    let f = tmpfile("unpriv-input", "u");
    std::fs::set_permissions(
        f.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(unpriv::hs_for_anyone())
        .args(["trace", "--", "cat"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"u");
    assert!(stderr(&o).contains(f.to_str().unwrap()), "{}", stderr(&o));
}

/// `--sandbox`: the command's writes are traced and thrown away, its status kept.
#[test]
fn sandbox_traces_writes_without_making_them() {
    let target = tmpfile("sandboxed-write", "before\n");
    let t = target.to_str().unwrap();
    let o = hs()
        .args(["trace", "--sandbox", "--json", "--", "sh", "-c"])
        .arg(format!(
            "echo after > {t}; cat /etc/hostname >/dev/null; exit 4"
        ))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "before\n");
    let report: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let text = report.to_string();
    assert!(text.contains(t), "{text}");
    assert!(text.contains("/etc/hostname"), "{text}");
    let _ = std::fs::remove_file(&target);
}

/// Binding a named unix socket creates a file; an abstract one does not.
#[test]
fn binding_a_unix_socket_creates_it() {
    let dir = tmpfile("sock-dir-marker", "")
        .parent()
        .unwrap()
        .to_path_buf();
    let sock = dir.join("bound.sock");
    let _ = std::fs::remove_file(&sock);
    let o = hs()
        .args(["trace", "--json", "--", "perl", "-MSocket", "-e"])
        .arg(format!(
            "socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die; bind($s, sockaddr_un('{}')) or die; \
             socket(my $t, PF_UNIX, SOCK_STREAM, 0) or die; bind($t, sockaddr_un(\"\\0hs-abstract\")) or die",
            sock.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let entry = report["trace"]["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == sock.to_str().unwrap())
        .unwrap_or_else(|| panic!("no access to the socket: {report}"));
    assert!(entry["kinds"].to_string().contains("create"), "{entry}");
    assert!(!report.to_string().contains("hs-abstract"), "{report}");
    let _ = std::fs::remove_file(&sock);
}

/// `--fast`: the same accesses as without it, most lookups recorded by the preload shim; as
/// root and as an unprivileged user (whose shim lives in its own private directory).
#[test]
fn fast_gives_the_same_report() {
    let marker = tmpfile("fast-marker", "");
    let dir = marker.parent().unwrap().join("fast");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("input");
    std::fs::write(&f, "f\n").unwrap();
    for d in [&dir, marker.parent().unwrap()] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let script = format!(
        "cat {f}; test -e {f}.missing; ls -l {d} >/dev/null; stat {d} >/dev/null; \
         sh -c 'realpath {f}/../x 2>/dev/null || true'",
        f = f.display(),
        d = f.parent().unwrap().display()
    );
    let report = |fast: bool, nobody: bool| {
        let mut c = if nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(unpriv::hs_for_anyone());
            c
        } else {
            hs()
        };
        c.args(["trace", "--json"]);
        if fast {
            c.arg("--fast");
        }
        let o = c.args(["--", "sh", "-c", &script]).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(o.stdout.starts_with(b"f\n"), "{:?}", o.stdout);
        let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
        let accesses: Vec<String> = v["trace"]["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| !a["path"].as_str().unwrap_or("/proc/").starts_with("/proc/"))
            .map(|a| a.to_string())
            .collect();
        (accesses, v["trace"]["stats"]["fast"].as_u64().unwrap())
    };
    for nobody in [false, true] {
        if nobody && !unpriv::is_root() {
            continue;
        }
        let (slow, none) = report(false, nobody);
        let (fast, recorded) = report(true, nobody);
        assert_eq!(none, 0);
        assert!(
            recorded > 5,
            "nobody={nobody}: {recorded} lookups recorded by the shim"
        );
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|x| !b.contains(x)).cloned().collect()
        };
        assert!(
            slow == fast,
            "nobody={nobody}: only without --fast: {:?}; only with it: {:?}",
            only(&slow, &fast),
            only(&fast, &slow)
        );
        assert!(slow.iter().any(|a| a.contains(f.to_str().unwrap())));
    }
}
