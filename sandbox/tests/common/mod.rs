//! Shared by the sandbox crate's integration tests: run a test case in a fresh copy of the
//! test binary, as the current user and, when root, again as uid/gid 65534 via `setpriv`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as Proc;

pub const INNER: &str = "HS_SANDBOX_TEST_INNER";
pub const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// This test binary, copied into `dir` so that anyone can run it (the checkout may sit where
/// an unprivileged user cannot enter).
fn binary_for_anyone(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe().unwrap();
    let bin = dir.join(exe.file_name().unwrap());
    std::fs::copy(&exe, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs test `name` in a child copy of this binary with `stdin` as its standard input, as the
/// current user and, when root, also as uid 65534. Returns false when called in that child
/// (the caller then runs the case itself).
pub fn in_children(name: &str, stdin: &[u8]) -> bool {
    in_children_env(name, stdin, &[])
}

/// [`in_children`] with extra environment variables for the children.
pub fn in_children_env(name: &str, stdin: &[u8], env: &[(&str, &str)]) -> bool {
    if std::env::var_os(INNER).is_some() {
        return false;
    }
    let mut users = vec![false];
    if is_root() {
        users.push(true);
    }
    for unpriv in users {
        let work = std::env::temp_dir().join(format!(
            "hs-sbx-test-{name}-{}-{}",
            if unpriv { "u" } else { "r" },
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let input = work.join("stdin");
        std::fs::write(&input, stdin).unwrap();
        let bin = unpriv.then(|| binary_for_anyone(&work));
        if unpriv {
            let st = Proc::new("chown")
                .arg("-R")
                .arg(format!("{NOBODY}:{NOBODY}"))
                .arg(&work)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let mut c = if unpriv {
            let mut c = Proc::new("setpriv");
            c.args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
            ]);
            c.arg(bin.as_ref().unwrap());
            c
        } else {
            Proc::new(std::env::current_exe().unwrap())
        };
        let out = c
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied())
            .env(INNER, &work)
            .env("HOME", &work)
            .current_dir(&work)
            .stdin(std::fs::File::open(&input).unwrap())
            .output()
            .unwrap();
        let text = format!(
            "{name} ({}):\n--- stdout\n{}--- stderr\n{}",
            if unpriv { "uid 65534" } else { "current user" },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{text}");
        assert!(out.status.success(), "{text}");
        // The child must really have run the case (a filter that matches nothing passes).
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{text}"
        );
        let _ = Proc::new("rm").arg("-rf").arg(&work).status();
    }
    true
}

/// The child's work directory (writable by the user it runs as).
pub fn work() -> PathBuf {
    PathBuf::from(std::env::var_os(INNER).expect("run through in_children"))
        .canonicalize()
        .unwrap()
}
