//! Integration tests of `hs shell`, `hs bind`, `hs unbind` and `hs --bind`: private views of
//! paths, driving the real `hs` binary over real namespaces and files.
//!
//! Every case runs as the current user and, when that is root, again as uid/gid 65534 through
//! `setpriv` (where hs needs a user namespace). Each case checks `id -u` inside the views, so
//! a run that was not really unprivileged fails.

#[path = "util/unpriv.rs"]
mod unpriv;

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// A test directory holding sources and destinations, and the identity to run `hs` as.
struct Env {
    root: PathBuf,
    unpriv: bool,
}

impl Env {
    fn new(name: &str, unpriv: bool) -> Env {
        let root = PathBuf::from(format!(
            "/var/tmp/hs-views-{name}-{}-{}",
            if unpriv { "u" } else { "r" },
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Env { root, unpriv }
    }

    /// The uid hs runs as.
    fn uid(&self) -> u32 {
        if self.unpriv { NOBODY } else { my_uid() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn hs_path(&self) -> PathBuf {
        if self.unpriv {
            unpriv::hs_for_anyone()
        } else {
            PathBuf::from(env!("CARGO_BIN_EXE_hs"))
        }
    }

    /// Create files (`"dir/"` for a directory, else `("path", "content")`), owned by the
    /// user hs runs as.
    fn files(&self, files: &[(&str, &str)]) {
        for (p, content) in files {
            let p = self.path(p);
            if p.as_os_str().to_string_lossy().ends_with('/') {
                std::fs::create_dir_all(&p).unwrap();
            } else {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, content).unwrap();
            }
        }
        if self.unpriv {
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{NOBODY}:{NOBODY}"))
                .arg(&self.root)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Names in a directory, as the test process (outside every view) sees it.
    fn list(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// `hs ARGS...` as the test user, in the test directory, with `$HS` naming hs.
    fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = if self.unpriv {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
            ]);
            c.arg(self.hs_path());
            c
        } else {
            Command::new(self.hs_path())
        };
        c.args(args)
            .env("HOME", &self.root)
            .env("HS", self.hs_path())
            .env("SHELL", "/bin/bash")
            .env_remove("HS_VIEW_SOCKET")
            .current_dir(&self.root)
            .stdin(Stdio::null());
        c
    }

    fn hs<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let out = self.cmd(args).output().unwrap();
        log(args, &out);
        out
    }

    /// `hs shell ARGS... -- sh -c SCRIPT`.
    fn shell(&self, args: &[&str], script: &str) -> Output {
        let mut a: Vec<&str> = vec!["shell"];
        a.extend(args);
        a.extend(["--", "sh", "-c", script]);
        self.hs(&a)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn log<S: AsRef<OsStr>>(args: &[S], out: &Output) {
    eprintln!(
        "$ hs {:?}\n--- status {:?}\n--- stdout\n{}--- stderr\n{}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether uid 65534 may create user namespaces here (checked with util-linux `unshare`,
/// independently of hs).
fn userns_for_nobody() -> bool {
    let ok = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "unshare",
            "--user",
            "--mount",
            "true",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED (unprivileged part): user namespaces are unavailable for uid {NOBODY}");
    }
    ok
}

/// Run `case` as the current user and, when root, also as uid 65534.
fn both(name: &str, case: fn(&Env)) {
    if unpriv::is_root() || userns_for_current_user() {
        case(&Env::new(name, false));
    }
    if unpriv::is_root() && userns_for_nobody() {
        case(&Env::new(name, true));
    }
}

fn userns_for_current_user() -> bool {
    let ok = Command::new("unshare")
        .args(["--user", "--mount", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: user namespaces are unavailable");
    }
    ok
}

/// Mounts on `path` as this process sees them (field 5 of mountinfo).
fn mounts_on(path: &Path) -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
        .count()
}

fn wait_for(paths: &[PathBuf], children: &mut [Child]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !paths.iter().all(|p| p.exists()) {
        if Instant::now() > deadline {
            for c in children.iter_mut() {
                let _ = c.kill();
            }
            panic!("timed out waiting for {paths:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_concurrent_shells_see_their_own_views_and_the_host_neither() {
    both("two", |e| {
        e.files(&[("a/f", "A\n"), ("b/f", "B\n"), ("d/", "")]);
        // Each shell reads d/f, says it is ready, waits until the test has looked at the host,
        // then reads d/f again (the other shell's view must not have changed its own).
        let script = |n: &str| {
            format!(
                "cat d/f; touch ready{n}; while [ ! -e go ]; do sleep 0.02; done; cat d/f; id -u"
            )
        };
        let spawn = |src: &str, n: &str| {
            e.cmd(&[
                "shell",
                "--bind",
                &format!("{src}:d"),
                "--",
                "sh",
                "-c",
                &script(n),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        };
        let mut children = vec![spawn("a", "1"), spawn("b", "2")];
        wait_for(&[e.path("ready1"), e.path("ready2")], &mut children);
        assert_eq!(e.list("d"), Vec::<String>::new(), "the host sees a view");
        assert_eq!(mounts_on(&e.path("d")), 0);
        std::fs::write(e.path("go"), "").unwrap();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for (out, want) in outs.iter().zip(["A", "B"]) {
            log(&["shell"], out);
            assert!(out.status.success());
            assert_eq!(text(&out.stdout), format!("{want}\n{want}\n{}\n", e.uid()));
        }
        assert_eq!(e.list("d"), Vec::<String>::new());
    });
}

#[test]
fn hs_bind_repoints_a_view_inside_a_running_shell() {
    both("rebind", |e| {
        e.files(&[
            ("a/f", "A\n"),
            ("b/f", "B\n"),
            ("d/", ""),
            ("sub/", ""),
            ("one", "1\n"),
            ("two", "2\n"),
            ("file", "host\n"),
        ]);
        let out = e.shell(
            &["--bind", "a:d"],
            r#"cat d/f
            "$HS" bind b d && cat d/f
            "$HS" bind a d && "$HS" bind b d && "$HS" bind a d && cat d/f
            awk -v p="$PWD/d" '$5 == p' /proc/self/mountinfo | wc -l
            (cd sub && "$HS" bind ../b ../d) && cat d/f
            "$HS" unbind d && ls -A d && echo unbound
            "$HS" bind one file && cat file && "$HS" bind two file && cat file
            "$HS" unbind file && cat file
            "$HS" bind --ro a d && { echo x > d/ro 2>/dev/null || echo read-only; }
            "$HS" unbind d; "$HS" unbind d; echo "status $?"
            id -u"#,
        );
        assert_eq!(
            text(&out.stdout),
            format!(
                "A\nB\nA\n1\nB\nunbound\n1\n2\nhost\nread-only\nstatus 2\n{}\n",
                e.uid()
            )
        );
        assert!(out.status.success());
        assert!(
            text(&out.stderr).contains("hs: error: cannot unbind d")
                && text(&out.stderr).contains("is not a view of this hs shell"),
            "{}",
            text(&out.stderr)
        );
        assert!(!e.path("a/ro").exists());
        assert_eq!(e.list("d"), Vec::<String>::new());
        assert_eq!(e.read("file"), "host\n");
    });
}

#[test]
fn writes_through_a_view_land_in_the_source() {
    both("writes", |e| {
        e.files(&[("a/f", "A\n"), ("a/old", "x"), ("d/", "")]);
        let out = e.shell(
            &["--bind", "a:d"],
            "echo new > d/new && mkdir d/sub && echo deep > d/sub/x && rm d/old && \
             echo more >> d/f && id -u",
        );
        assert_eq!(text(&out.stdout), format!("{}\n", e.uid()));
        assert_eq!(e.read("a/new"), "new\n");
        assert_eq!(e.read("a/sub/x"), "deep\n");
        assert_eq!(e.read("a/f"), "A\nmore\n");
        assert!(!e.path("a/old").exists());
        assert_eq!(e.list("d"), Vec::<String>::new());
        let owner = std::fs::metadata(e.path("a/new")).unwrap().uid();
        assert_eq!(owner, e.uid(), "files keep their owner's uid");
    });
}

#[test]
fn version_switch_with_two_fake_toolchains() {
    both("gos", |e| {
        e.files(&[
            (
                ".gos/go1.2.1/bin/go",
                "#!/bin/sh\necho \"go version go1.2.1 $1\"\n",
            ),
            (
                ".gos/go1.0.3/bin/go",
                "#!/bin/sh\necho \"go version go1.0.3 $1\"\n",
            ),
            ("gos/", ""),
        ]);
        for v in ["1.2.1", "1.0.3"] {
            let go = e.path(&format!(".gos/go{v}/bin/go"));
            let st = Command::new("chmod").arg("755").arg(&go).status().unwrap();
            assert!(st.success());
        }
        // `hs shell` with no command runs $SHELL (bash), here reading its commands from stdin.
        let mut child = e
            .cmd(&[
                "shell",
                "--bind",
                &format!("{0}/.gos/go1.2.1:{0}/gos", e.root.display()),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let script = r#"PATH=~/gos/bin:$PATH
            go build
            "$HS" bind ~/.gos/go1.0.3 ~/gos
            go build
            "$HS" bind ~/.gos/go1.2.1 ~/gos
            go test
            id -u
            "#;
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        log(&["shell", "--bind", "~/.gos/go1.2.1:~/gos"], &out);
        assert_eq!(
            text(&out.stdout),
            format!(
                "go version go1.2.1 build\ngo version go1.0.3 build\ngo version go1.2.1 test\n{}\n",
                e.uid()
            )
        );
        assert!(out.status.success());
        assert_eq!(e.list("gos"), Vec::<String>::new());
    });
}

#[test]
fn hs_bind_outside_a_shell_fails_clearly() {
    both("outside", |e| {
        e.files(&[("a/", ""), ("d/", "")]);
        for args in [&["bind", "a", "d"][..], &["unbind", "d"]] {
            let out = e.hs(args);
            assert_eq!(out.status.code(), Some(2));
            let err = text(&out.stderr);
            assert!(
                err.starts_with(&format!(
                    "hs: error: hs {} works only inside `hs shell`",
                    args[0]
                )),
                "{err}"
            );
        }
        // A shell that has exited leaves no socket behind, and its variable leads nowhere.
        let out = e.shell(
            &[],
            "echo $HS_VIEW_SOCKET; stat -c %a \"${HS_VIEW_SOCKET%/*}\"",
        );
        let stdout = text(&out.stdout);
        let mut lines = stdout.lines();
        let socket = PathBuf::from(lines.next().unwrap());
        assert_eq!(lines.next(), Some("700"), "the socket directory is private");
        assert!(
            !socket.parent().unwrap().exists(),
            "{socket:?} was left behind"
        );
        let out = e
            .cmd(&["bind", "a", "d"])
            .env("HS_VIEW_SOCKET", &socket)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).starts_with("hs: error: cannot bind a on d"),
            "{}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains("has it exited?"));
    });
}

#[test]
fn hs_bind_runs_a_script_with_views() {
    both("script", |e| {
        e.files(&[
            ("a/f", "A\n"),
            ("d/", ""),
            (
                "script.sh",
                "cat d/f\necho \"$0 $*\"\necho out > d/out\nid -u\nexit 3\n",
            ),
        ]);
        let out = e.hs(&["--bind", "a:d", "script.sh", "x", "y z"]);
        assert_eq!(
            text(&out.stdout),
            format!("A\nscript.sh x y z\n{}\n", e.uid())
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(e.read("a/out"), "out\n");
        assert_eq!(e.list("d"), Vec::<String>::new());

        // Read-only, with -c and bash options.
        let out = e.hs(&[
            "--ro-bind",
            "a:d",
            "-e",
            "-c",
            "cat d/f; echo \"$0 $1\"; echo w > d/w; echo not reached",
            "name",
            "arg",
        ]);
        assert_eq!(text(&out.stdout), "A\nname arg\n");
        assert_ne!(out.status.code(), Some(0));
        assert!(!e.path("a/w").exists());

        // Inside an hs shell, the script gets its own namespace: the shell's socket would
        // change the wrong one, so `hs bind` in the script is refused.
        let out = e.shell(
            &[],
            r#""$HS" --bind a:d -c 'cat d/f; echo "[$HS_VIEW_SOCKET]"; "$HS" bind a d'; echo "status $?""#,
        );
        assert_eq!(text(&out.stdout), "A\n[]\nstatus 2\n");
        assert!(text(&out.stderr).contains("hs: error: hs bind works only inside `hs shell`"));
    });
}

#[test]
fn nested_shells_start_from_the_outer_views() {
    both("nested", |e| {
        e.files(&[("a/f", "A\n"), ("b/f", "B\n"), ("c/f", "C\n"), ("d/", "")]);
        let out = e.shell(
            &["--bind", "a:d"],
            r#""$HS" shell -- sh -c 'cat d/f'
            "$HS" shell --bind b:d -- sh -c '
                cat d/f; "$HS" bind c d && cat d/f; "$HS" unbind d && cat d/f
                "$HS" unbind d 2>/dev/null || echo "outer view kept"'
            cat d/f
            id -u"#,
        );
        assert_eq!(
            text(&out.stdout),
            format!("A\nB\nC\nA\nouter view kept\nA\n{}\n", e.uid())
        );
        assert!(out.status.success());
    });
}

#[test]
fn exit_status_passes_through() {
    both("status", |e| {
        assert_eq!(e.shell(&[], "exit 42").status.code(), Some(42));
        assert_eq!(e.shell(&[], "kill -TERM $$").status.code(), Some(128 + 15));
        e.files(&[("d/", "")]);
        assert_eq!(
            e.hs(&["--bind", "d:d", "-c", "exit 7"]).status.code(),
            Some(7)
        );
    });
}

#[test]
fn bad_views_fail_clearly() {
    both("errors", |e| {
        e.files(&[("a/f", "A\n"), ("d/", ""), ("file", "x")]);
        let cases: &[(&[&str], &str)] = &[
            (
                &["shell", "--bind", "missing:d", "true"],
                "hs: error: cannot open the view source missing",
            ),
            (
                &["shell", "--bind", "a:missing", "true"],
                "hs: error: cannot open the view destination missing",
            ),
            (
                &["shell", "--bind", "a:file", "true"],
                "hs: error: cannot bind a on file",
            ),
            (
                &["shell", "--ro-bind", "file:d", "true"],
                "hs: error: cannot bind file on d",
            ),
            (
                &["--bind", "missing:d", "-c", "true"],
                "hs: error: cannot open the view source missing",
            ),
            (
                &["--bind", "a:file", "-c", "true"],
                "hs: error: cannot bind a on file",
            ),
            (
                &["shell", "--bind", "a", "true"],
                "error: invalid value 'a' for '--bind <SRC:DST>'",
            ),
        ];
        for (args, want) in cases {
            let out = e.hs(args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = text(&out.stderr);
            assert!(err.starts_with(want), "{args:?}: {err}");
            assert!(out.stdout.is_empty(), "{args:?} ran the command");
        }
        let err = text(&e.hs(&["shell", "--bind", "a:file", "true"]).stderr);
        assert!(err.contains("a is a directory but file is not"), "{err}");
        // Inside a shell, the helper names the paths absolutely.
        let out = e.shell(&["--bind", "a:d"], r#""$HS" bind file d"#);
        assert_eq!(out.status.code(), Some(2));
        let want = format!(
            "hs: error: cannot bind file on d\n  caused by: {} is not a directory but {} is a directory",
            e.path("file").display(),
            e.path("d").display()
        );
        assert!(
            text(&out.stderr).starts_with(&want),
            "{}",
            text(&out.stderr)
        );
    });
}

/// Only the shell's owner may change its views, even when the socket is reachable.
#[test]
fn other_users_cannot_change_the_views() {
    if !unpriv::is_root() {
        eprintln!("SKIPPED: needs root to run a second user");
        return;
    }
    let e = Env::new("peer", false);
    e.files(&[("a/f", "A\n"), ("b/f", "B\n"), ("d/", "")]);
    let nobody_hs = unpriv::hs_for_anyone();
    let script = format!(
        r#"chmod 755 "${{HS_VIEW_SOCKET%/*}}" && chmod 777 "$HS_VIEW_SOCKET"
            setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {} bind b d
            echo "status $?"; cat d/f"#,
        nobody_hs.display()
    );
    // The socket must be where uid 65534 can reach it once opened up (not in root's
    // $XDG_RUNTIME_DIR).
    let out = e
        .cmd(&["shell", "--bind", "a:d", "--", "sh", "-c", &script])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    log(&["shell"], &out);
    assert_eq!(text(&out.stdout), "status 2\nA\n");
    assert!(
        text(&out.stderr).contains("permission denied: only uid 0 may change this shell's views"),
        "{}",
        text(&out.stderr)
    );
}

/// Where no user namespace can be made, hs says so and how to allow them. (Root without
/// capabilities in a user namespace whose limit is 0: hs falls back to a user namespace, as
/// an unprivileged user would, and the kernel refuses.)
#[test]
fn unavailable_user_namespaces_fail_clearly() {
    if !unpriv::is_root() || !userns_for_current_user() {
        eprintln!("SKIPPED: needs root and user namespaces");
        return;
    }
    let e = Env::new("nouserns", false);
    e.files(&[("a/", ""), ("d/", "")]);
    let hs = e.hs_path();
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg(format!(
            "echo 0 > /proc/sys/user/max_user_namespaces && \
             exec setpriv --bounding-set=-all --inh-caps=-all {} shell --bind a:d -- echo ran",
            hs.display()
        ))
        .current_dir(&e.root)
        .output()
        .unwrap();
    log(&["shell", "--bind", "a:d", "--", "echo", "ran"], &out);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.starts_with("hs: error: cannot make a private mount namespace for the views\n")
            && err.contains("cannot create a user and mount namespace")
            && err.contains("hint: unprivileged user namespaces are disabled"),
        "{err}"
    );
}

/// Unmounts (lazily) on drop, also when the test fails.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// On hosts where mounts are shared (systemd makes `/` shared), a view must still not
/// propagate back to the host: here the test directory itself is made a shared mount.
#[test]
fn views_do_not_propagate_to_shared_host_mounts() {
    if !unpriv::is_root() {
        eprintln!("SKIPPED: needs root to make a shared mount");
        return;
    }
    for unpriv in [false, true] {
        if unpriv && !userns_for_nobody() {
            continue;
        }
        let e = Env::new("shared", unpriv);
        e.files(&[("a/f", "A\n"), ("d/", "")]);
        let st = Command::new("mount")
            .arg("--bind")
            .arg(&e.root)
            .arg(&e.root)
            .status()
            .unwrap();
        assert!(st.success());
        let _guard = MountGuard(e.root.clone());
        let st = Command::new("mount")
            .arg("--make-shared")
            .arg(&e.root)
            .status()
            .unwrap();
        assert!(st.success());
        let mut child = vec![
            e.cmd(&[
                "shell",
                "--bind",
                "a:d",
                "--",
                "sh",
                "-c",
                "cat d/f; touch ready; while [ ! -e go ]; do sleep 0.02; done; id -u",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
        ];
        wait_for(&[e.path("ready")], &mut child);
        let leaked = (e.list("d"), mounts_on(&e.path("d")));
        std::fs::write(e.path("go"), "").unwrap();
        let out = child.pop().unwrap().wait_with_output().unwrap();
        assert_eq!(text(&out.stdout), format!("A\n{}\n", e.uid()));
        assert_eq!(leaked, (Vec::new(), 0), "the view propagated to the host");
    }
}
