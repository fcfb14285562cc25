//! Integration tests of `hs try`, `hs summary`, `hs commit`, `hs explore` and `hs recover`,
//! driving the real `hs` binary over real namespaces, overlays and files.
//!
//! Every case runs as the current user and, when that is root, again as an unprivileged user
//! (uid/gid 65534 through `setpriv`), since the two build different mount plans.

#[path = "util/unpriv.rs"]
mod unpriv;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const NOBODY: u32 = 65534;

/// One test environment: a live directory `live` to change, a place for sandbox dirs, and the
/// identity to run `hs` as.
struct Env {
    root: PathBuf,
    unpriv: bool,
}

impl Env {
    fn new(name: &str, unpriv: bool) -> Env {
        let root = PathBuf::from(format!(
            "/var/tmp/hs-test-{name}-{}-{}",
            if unpriv { "u" } else { "r" },
            std::process::id()
        ));
        let _ = Command::new("rm").arg("-rf").arg(&root).status();
        std::fs::create_dir_all(root.join("live")).unwrap();
        let env = Env { root, unpriv };
        env.chown_all();
        env
    }

    fn live(&self) -> PathBuf {
        self.root.join("live")
    }

    fn sbx(&self, n: &str) -> PathBuf {
        self.root.join(format!("sbx-{n}"))
    }

    /// Make everything under the test root belong to the user hs runs as.
    fn chown_all(&self) {
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

    fn cmd(&self) -> Command {
        let hs = env!("CARGO_BIN_EXE_hs");
        let mut c = if self.unpriv {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
            ]);
            c.arg(unpriv::hs_for_anyone());
            c
        } else {
            Command::new(hs)
        };
        c.env("HOME", &self.root)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        c
    }

    fn hs<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let out = self.cmd().args(args).output().unwrap();
        eprintln!(
            "$ hs {:?}\n--- status {:?}\n--- stdout\n{}--- stderr\n{}",
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `hs try ARGS... -- sh -c SCRIPT` with `$L` set to the live dir.
    fn try_sh(&self, flags: &[&str], script: &str) -> Output {
        let mut args: Vec<std::ffi::OsString> = vec!["try".into()];
        args.extend(flags.iter().map(Into::into));
        args.extend([
            "--".into(),
            "sh".into(),
            "-c".into(),
            format!("L='{}'; {script}", self.live().display()).into(),
        ]);
        self.hs(&args)
    }

    /// Run a shell script directly (as the test user) to set up or inspect live state.
    fn sh(&self, script: &str) -> Output {
        let mut c = if self.unpriv {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
                "sh".into(),
            ]);
            c
        } else {
            Command::new("sh")
        };
        let out = c
            .arg("-c")
            .arg(format!("L='{}'; {script}", self.live().display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setup script failed: {script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = Command::new("rm").arg("-rf").arg(&self.root).status();
        }
    }
}

/// Run `case` as the current user and, when root, also unprivileged.
fn both(name: &str, case: fn(&Env)) {
    case(&Env::new(name, false));
    if unpriv::is_root() {
        case(&Env::new(name, true));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn no_overlay_xattrs(root: &Path) {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import os,sys\n\
             bad=[]\n\
             for d,ds,fs in os.walk(sys.argv[1]):\n\
             \tfor n in ds+fs+['.']:\n\
             \t\tp=os.path.join(d,n)\n\
             \t\ttry: xs=os.listxattr(p, follow_symlinks=False)\n\
             \t\texcept OSError: continue\n\
             \t\tbad+=[(p,x) for x in xs if 'overlay' in x]\n\
             print(bad)",
        )
        .arg(root)
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), "[]", "overlay xattrs leaked");
}

#[test]
fn exit_status_and_output_pass_through() {
    both("status", |e| {
        let out = e.try_sh(&["-n"], "echo out; echo err >&2; exit 3");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(text(&out.stdout), "out\n");
        // (Another test's interrupted commit may be recovered first, with a message.)
        let err = text(&out.stderr);
        assert!(err.starts_with("err\n") || err.contains("\nerr\n"), "{err}");
        let out = e.try_sh(&["-n"], "kill -TERM $$");
        assert_eq!(out.status.code(), Some(128 + 15));
    });
}

#[test]
fn exact_argv_and_shell_strings() {
    both("argv", |e| {
        let out = e.hs(&["try", "-n", "--", "printf", "%s|", "a b", "", "c*", "$HOME"]);
        assert_eq!(text(&out.stdout), "a b||c*|$HOME|");
        assert_eq!(out.status.code(), Some(0));
        let out = e.hs(&["try", "-n", "-c", "seq 1 5 | tail -n 2; exit 4"]);
        assert_eq!(text(&out.stdout), "4\n5\n");
        assert_eq!(out.status.code(), Some(4));
        let out = e.hs(&["try", "-n", "--", "no-such-command-hs"]);
        assert_eq!(out.status.code(), Some(127));
        assert!(text(&out.stderr).contains("command not found"));
    });
}

#[test]
fn summary_of_touch_rm_unzip_and_live_untouched() {
    both("summary", |e| {
        e.sh(
            "echo old > $L/old; mkdir $L/tree; echo 1 > $L/tree/a; echo 22 > $L/tree/b; \
              cd $L && zip -qr z.zip tree && rm -r tree",
        );
        let s = e.sbx("s");
        let out = e.try_sh(
            &["-n", "-D", s.to_str().unwrap()],
            "touch $L/new; rm $L/old; cd $L && unzip -q z.zip",
        );
        assert_eq!(out.status.code(), Some(0));
        assert!(
            e.live().join("old").exists()
                && !e.live().join("new").exists()
                && !e.live().join("tree").exists()
        );
        let sum = e.hs(&["summary".as_ref(), s.as_os_str()]);
        let t = text(&sum.stdout);
        let l = e.live().display().to_string();
        assert!(t.contains(&format!("created      {l}/new\n")), "{t}");
        assert!(t.contains(&format!("deleted      {l}/old\n")), "{t}");
        assert!(
            t.contains(&format!("created      {l}/tree/ (2 entries, 5 B)\n")),
            "{t}"
        );
        let json = e.hs(&["summary".as_ref(), s.as_os_str(), "--json".as_ref()]);
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let kinds: Vec<(String, String)> = v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["path"].as_str().unwrap().to_string(),
                    c["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (format!("{l}/new"), "created".to_string()),
                (format!("{l}/old"), "deleted".to_string()),
                (format!("{l}/tree"), "created".to_string()),
            ]
        );
    });
}

fn make(kind: &str, p: &Path) -> String {
    let q = format!("'{}'", p.display());
    match kind {
        "none" => String::new(),
        "file" => format!("echo content > {q}"),
        "dir" => format!("mkdir {q} && echo inner > {q}/inner"),
        "symlink" => format!("ln -s target-of-link {q}"),
        "fifo" => format!("mkfifo {q}"),
        "socket" => format!(
            "/usr/bin/python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' {q}"
        ),
        _ => unreachable!(),
    }
}

fn kind_of(p: &Path) -> &'static str {
    match std::fs::symlink_metadata(p) {
        Err(_) => "none",
        Ok(m) => {
            let t = m.file_type();
            if t.is_dir() {
                "dir"
            } else if t.is_symlink() {
                "symlink"
            } else if t.is_fifo() {
                "fifo"
            } else if t.is_socket() {
                "socket"
            } else {
                "file"
            }
        }
    }
}

#[test]
fn commit_every_type_pair() {
    both("types", |e| {
        let kinds = ["none", "file", "dir", "symlink", "fifo", "socket"];
        let mut setup = Vec::new();
        let mut change = Vec::new();
        for from in kinds {
            for to in kinds {
                if from == "none" && to == "none" {
                    continue;
                }
                let p = e.live().join(format!("{from}-{to}"));
                if from != "none" {
                    setup.push(make(from, &p));
                }
                if from != "none" {
                    change.push(format!("rm -rf '{}'", p.display()));
                }
                if to != "none" {
                    change.push(make(to, &p));
                }
            }
        }
        e.sh(&setup.join(" && "));
        let out = e.try_sh(&["-y"], &change.join(" && "));
        assert_eq!(out.status.code(), Some(0));
        for from in kinds {
            for to in kinds {
                if from == "none" && to == "none" {
                    continue;
                }
                let p = e.live().join(format!("{from}-{to}"));
                assert_eq!(kind_of(&p), to, "{from} -> {to}");
                if to == "dir" {
                    let names: Vec<_> = std::fs::read_dir(&p)
                        .unwrap()
                        .map(|d| d.unwrap().file_name())
                        .collect();
                    assert_eq!(
                        names,
                        vec![std::ffi::OsString::from("inner")],
                        "{from} -> {to}"
                    );
                }
                if to == "symlink" {
                    assert_eq!(std::fs::read_link(&p).unwrap(), Path::new("target-of-link"));
                }
            }
        }
        no_overlay_xattrs(&e.live());
    });
}

#[test]
fn opaque_directories_and_whiteouts() {
    both("opaque", |e| {
        e.sh("mkdir -p $L/d/sub && touch $L/d/a $L/d/sub/b $L/keep $L/gone && mkdir -p $L/n/m && touch $L/n/m/x");
        let out = e.try_sh(&["-y"], "rm -r $L/d && mkdir $L/d && touch $L/d/c && rm $L/gone && rm -r $L/n/m && touch $L/n/y");
        assert_eq!(out.status.code(), Some(0));
        let names = |p: PathBuf| {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|d| d.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(e.live().join("d")), vec!["c"]);
        assert_eq!(names(e.live()), vec!["d", "keep", "n"]);
        assert_eq!(names(e.live().join("n")), vec!["y"]);
        no_overlay_xattrs(&e.live());
        // No whiteouts or leftovers anywhere.
        let out = Command::new("find")
            .arg(e.live())
            .args(["-type", "c", "-o", "-name", ".hs-*"])
            .output()
            .unwrap();
        assert_eq!(text(&out.stdout), "");
    });
}

#[test]
fn metadata_is_committed() {
    both("meta", |e| {
        e.sh("mkdir $L/d && touch $L/d/f && chmod 600 $L/d/f");
        let out = e.try_sh(
            &["-y"],
            "chmod 751 $L/d && chmod 640 $L/d/f && touch -d 2001-02-03T04:05:06Z $L/d/f $L/d",
        );
        assert_eq!(out.status.code(), Some(0));
        let d = std::fs::metadata(e.live().join("d")).unwrap();
        let f = std::fs::metadata(e.live().join("d/f")).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o751);
        assert_eq!(f.mode() & 0o7777, 0o640);
        assert_eq!(f.mtime(), 981173106);
        assert_eq!(d.mtime(), 981173106);
        let uid = if e.unpriv { NOBODY } else { 0 };
        assert_eq!(f.uid(), uid);
    });
}

#[test]
fn odd_file_names() {
    both("names", |e| {
        let s = e.sbx("n");
        let out = e.try_sh(
            &["-n", "-D", s.to_str().unwrap()],
            "touch \"$L/$(printf 'a\\nb')\" \"$L/$(printf '\\377x')\" \"$L/sp ace\"",
        );
        assert_eq!(out.status.code(), Some(0));
        let sum = e.hs(&["summary".as_ref(), s.as_os_str()]);
        let t = text(&sum.stdout);
        assert!(t.contains("/a\\nb\n"), "{t}");
        assert!(t.contains("/\\xffx\n"), "{t}");
        let json = e.hs(&["summary".as_ref(), s.as_os_str(), "--json".as_ref()]);
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert!(
            v["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["path_bytes"].is_array())
        );
        let out = e.hs(&["commit".as_ref(), s.as_os_str()]);
        assert_eq!(out.status.code(), Some(0));
        assert!(e.live().join("a\nb").exists());
        assert!(e.live().join(OsStr::from_bytes(b"\xffx")).exists());
        assert!(e.live().join("sp ace").exists());
        // Never twice.
        let out = e.hs(&["commit".as_ref(), s.as_os_str()]);
        assert_ne!(out.status.code(), Some(0));
        assert!(text(&out.stderr).contains("already committed"));
    });
}

#[test]
fn network_is_isolated() {
    both("net", |e| {
        let out = e.hs(&["try", "-n", "--", "cat", "/proc/net/dev"]);
        let ifaces: Vec<String> = text(&out.stdout)
            .lines()
            .skip(2)
            .map(|l| l.split(':').next().unwrap().trim().to_string())
            .collect();
        assert_eq!(ifaces, vec!["lo"]);
        let out = e.hs(&["try", "-n", "--net", "--", "cat", "/proc/net/dev"]);
        assert!(
            text(&out.stdout).lines().count() > 3 || !Path::new("/sys/class/net/eth0").exists()
        );
    });
}

#[test]
fn writes_outside_the_overlays_fail() {
    both("ro", |e| {
        let out = e.try_sh(&["-n"], "echo x > /sys/kernel/hs-test 2>/dev/null && echo wrote; echo x > /dev/hs-test 2>/dev/null && echo wrote; echo ok");
        assert_eq!(text(&out.stdout), "ok\n");
        // The sandbox's pid namespace and /proc.
        let out = e.hs(&["try", "-n", "--", "sh", "-c", "echo $$"]);
        assert!(text(&out.stdout).trim().parse::<u32>().unwrap() < 10);
    });
}

#[test]
fn reusing_a_sandbox_dir() {
    both("reuse", |e| {
        let s = e.sbx("r");
        let s = s.to_str().unwrap();
        e.try_sh(&["-n", "-D", s], "echo 1 > $L/a");
        let out = e.try_sh(&["-n", "-D", s], "cat $L/a; echo 2 >> $L/a; rm -f $L/b");
        assert_eq!(text(&out.stdout), "1\n");
        assert!(!e.live().join("a").exists());
        let out = e.hs(&["commit", s]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            std::fs::read_to_string(e.live().join("a")).unwrap(),
            "1\n2\n"
        );
    });
}

#[test]
fn explore_runs_a_shell_in_the_sandbox() {
    both("explore", |e| {
        let s = e.sbx("e");
        let mut c = e.cmd();
        c.args(["explore".as_ref(), s.as_os_str()])
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        let script = format!(
            "echo hello > '{}/e'\necho in-sandbox\nexit 0\n",
            e.live().display()
        );
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            text(&out.stdout).contains("in-sandbox"),
            "{}",
            text(&out.stderr)
        );
        assert!(!e.live().join("e").exists());
        let sum = e.hs(&["summary".as_ref(), s.as_os_str()]);
        assert!(text(&sum.stdout).contains("/e\n"));
    });
}

#[test]
fn plan_is_printable() {
    both("plan", |e| {
        let out = e.hs(&["try", "--plan", "true"]);
        let t = text(&out.stdout);
        assert!(
            t.contains("mount-overlay") && t.contains("pivot-root") && t.contains("mount-proc"),
            "{t}"
        );
    });
}

/// Kill a commit after each of its operations, then recover: every path is before or after,
/// and after recovery all are after.
#[test]
fn crash_at_every_commit_step_then_recover() {
    both("crash", |e| {
        let setup = "mkdir -p $L/d/s && echo a > $L/d/a && echo b > $L/f && echo g > $L/g && mkdir $L/od && touch $L/od/old";
        let change = "echo B > $L/f && rm $L/g && echo n > $L/new && mkdir $L/nd && echo x > $L/nd/x \
                      && rm -r $L/od && mkdir $L/od && touch $L/od/fresh && chmod 700 $L/d && rm -r $L/d/s";
        // Expected states: path → (before, after) as "kind:content".
        let probe = |e: &Env| -> Vec<String> {
            ["d/s", "d/a", "f", "g", "new", "nd/x", "od/old", "od/fresh"]
                .iter()
                .map(|p| {
                    let p = e.live().join(p);
                    match std::fs::symlink_metadata(&p) {
                        Err(_) => "none".to_string(),
                        Ok(m) if m.is_dir() => "dir".to_string(),
                        Ok(_) => format!("file:{}", std::fs::read_to_string(&p).unwrap()),
                    }
                })
                .collect()
        };
        e.sh(setup);
        let before = probe(e);
        let mut after: Option<Vec<String>> = None;
        let mut crashes = 0;
        for k in 0..20 {
            e.sh("rm -rf $L/* && true");
            e.sh(setup);
            let s = e.sbx(&format!("c{k}"));
            let out = e.try_sh(&["-n", "-D", s.to_str().unwrap()], change);
            assert_eq!(out.status.code(), Some(0));
            let out = e
                .cmd()
                .args(["commit".as_ref(), s.as_os_str()])
                .env("HS_COMMIT_CRASH_AFTER", k.to_string())
                .output()
                .unwrap();
            let crashed = out.status.code().is_none();
            let mid = probe(e);
            if let Some(a) = &after {
                for (i, m) in mid.iter().enumerate() {
                    assert!(
                        m == &before[i] || m == &a[i],
                        "k={k} path {i}: {m} is neither {} nor {}",
                        before[i],
                        a[i]
                    );
                }
            }
            let out = e.hs(&["recover"]);
            assert_eq!(out.status.code(), Some(0));
            let fin = probe(e);
            if after.is_none() {
                after = Some(fin.clone());
            }
            assert_eq!(Some(&fin), after.as_ref(), "k={k}");
            assert!(s.join("committed").exists());
            if !crashed {
                break;
            }
            crashes += 1;
        }
        assert!(crashes >= 8, "only {crashes} crash points exercised");
        let after = after.unwrap();
        assert_eq!(
            after,
            vec![
                "none", "file:a\n", "file:B\n", "none", "file:n\n", "file:x\n", "none", "file:"
            ]
        );
        no_overlay_xattrs(&e.live());
    });
}

/// The stdout of `sh -c script` run in `sb`, which must exit 0.
fn sandbox_output(sb: &sandbox::Sandbox, script: String) -> String {
    use std::io::Read;
    let (mut r, w) = std::io::pipe().unwrap();
    let c = sandbox::Command::new(["sh".to_string(), "-c".to_string(), script]).fd(1, w.into());
    let mut child = sb.spawn(&c).unwrap();
    drop(c);
    let mut out = String::new();
    r.read_to_string(&mut out).unwrap();
    assert_eq!(child.wait().unwrap(), 0);
    out
}

/// One `Sandbox`, several runs: each sees the previous runs' changes.
#[test]
fn library_runs_twice_in_one_sandbox() {
    let dir = PathBuf::from(format!("/var/tmp/hs-test-lib-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sb = sandbox::Sandbox::create(&dir, &sandbox::Options::default()).unwrap();
    let f = PathBuf::from(format!("/var/tmp/hs-test-lib-{}-f", std::process::id()));
    // The sandbox's own directory is hidden (an empty read-only tmpfs) inside it.
    let hidden = format!(
        "ls -A {d}; touch {d}/x 2>/dev/null || echo ro",
        d = dir.display()
    );
    assert_eq!(sandbox_output(&sb, hidden), "ro\n");
    let cmd = |s: String| sandbox::Command::new(["sh".to_string(), "-c".to_string(), s]);
    assert_eq!(
        sb.run(&cmd(format!("echo 1 > {}", f.display()))).unwrap(),
        0
    );
    assert_eq!(
        sb.run(&cmd(format!("echo 2 >> {}", f.display()))).unwrap(),
        0
    );
    assert_eq!(
        sandbox_output(&sb, format!("cat {}", f.display())),
        "1\n2\n"
    );
    assert!(!f.exists());
    sb.discard().unwrap();
    assert!(!dir.exists());
}

/// A recycled sandbox (`Sandbox::recycle`, then `Sandbox::create` on the same directory)
/// starts afresh: it sees the live tree as committed by its last run, not that run's upper
/// dir; it reports no changes before it runs; it commits again; and its upper roots carry no
/// overlay xattrs and the live directories' modes. The directories themselves are kept.
#[test]
fn recycled_sandbox_starts_afresh() {
    let pid = std::process::id();
    let live = PathBuf::from(format!("/var/tmp/hs-test-rec-{pid}-live"));
    let dir = PathBuf::from(format!("/var/tmp/hs-test-rec-{pid}"));
    let _ = std::fs::remove_dir_all(&live);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(live.join("d")).unwrap();
    std::fs::write(live.join("keep"), "k\n").unwrap();
    std::fs::write(live.join("d/x"), "x\n").unwrap();
    let l = live.display();
    let sh = |s: String| sandbox::Command::new(["sh".to_string(), "-c".to_string(), s]);
    let output = sandbox_output;
    let sb = sandbox::Sandbox::create(&dir, &sandbox::Options::default()).unwrap();
    let run =
        format!("echo new > {l}/keep; rm -r {l}/d; mkdir {l}/d; echo y > {l}/d/y; echo n > {l}/n");
    assert_eq!(sb.run(&sh(run)).unwrap(), 0);
    // As the engine commits: what the commit displaced stays for the discard (or recycle).
    sb.commit_before_discard().unwrap();
    let uppers: Vec<_> = sb.layers().iter().map(|l| l.upper.clone()).collect();
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let before: Vec<u64> = uppers.iter().map(|u| inode(u)).collect();
    sb.recycle().unwrap();
    drop(sb);

    let sb = sandbox::Sandbox::create(&dir, &sandbox::Options::default()).unwrap();
    assert!(sb.changes().unwrap().changes.is_empty());
    assert_eq!(
        uppers.iter().map(|u| inode(u)).collect::<Vec<_>>(),
        before,
        "the upper dirs are kept"
    );
    for layer in sb.layers() {
        assert_eq!(
            std::fs::read_dir(&layer.upper).unwrap().count(),
            0,
            "{}",
            layer.upper.display()
        );
        let (u, t) = (
            std::fs::metadata(&layer.upper).unwrap(),
            std::fs::metadata(&layer.target).unwrap(),
        );
        assert_eq!(u.mode(), t.mode(), "{}", layer.upper.display());
        no_overlay_xattrs(&layer.upper);
    }
    assert_eq!(
        output(&sb, format!("cat {l}/keep; ls {l}/d; cat {l}/n")),
        "new\ny\nn\n"
    );
    assert_eq!(sb.run(&sh(format!("echo again > {l}/n"))).unwrap(), 0);
    let changes = sb.changes().unwrap().changes;
    assert_eq!(
        changes.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
        vec![live.join("n")]
    );
    // A tidy commit removes the upper dirs; recycling makes them again.
    sb.commit_unchecked().unwrap();
    assert_eq!(std::fs::read_to_string(live.join("n")).unwrap(), "again\n");
    sb.recycle().unwrap();
    drop(sb);
    let sb = sandbox::Sandbox::create(&dir, &sandbox::Options::default()).unwrap();
    assert_eq!(output(&sb, format!("cat {l}/n")), "again\n");
    assert!(sb.changes().unwrap().changes.is_empty());
    // An attribute a run set on a layer's root (its upper root itself) is gone too.
    let py = |code: &str| format!("/usr/bin/python3 -c \"import os; {code}\"");
    assert_eq!(
        sb.run(&sh(py("os.setxattr('/', 'user.hs_test', b'1')")))
            .unwrap(),
        0
    );
    assert_eq!(
        output(&sb, py("print('user.hs_test' in os.listxattr('/'))")),
        "True\n"
    );
    sb.recycle().unwrap();
    drop(sb);
    let sb = sandbox::Sandbox::create(&dir, &sandbox::Options::default()).unwrap();
    assert_eq!(
        output(&sb, py("print('user.hs_test' in os.listxattr('/'))")),
        "False\n"
    );
    assert_eq!(std::fs::read_to_string(live.join("keep")).unwrap(), "new\n");
    sb.discard().unwrap();
    assert!(!dir.exists());
    std::fs::remove_dir_all(&live).unwrap();
}

/// Root only: a small tmpfs as live filesystem and the upper dir elsewhere, so commit copies.
/// A commit that does not fit aborts cleanly, leaving the live tree unchanged; one that fits
/// keeps mode and times.
#[test]
fn copy_commit_and_enospc() {
    if !unpriv::is_root() {
        return;
    }
    let e = Env::new("enospc", false);
    let small = e.live().join("small");
    std::fs::create_dir(&small).unwrap();
    let hs = env!("CARGO_BIN_EXE_hs");
    let s1 = e.sbx("big");
    let s2 = e.sbx("ok");
    let script = format!(
        "set -e; mount -t tmpfs -o size=1m tmpfs {sm}; echo keep > {sm}/keep; \
         {hs} try -n -D {s1} -- sh -c 'head -c 700k /dev/zero > {sm}/a; head -c 700k /dev/zero > {sm}/b; rm {sm}/keep' 2>/dev/null; \
         if {hs} commit {s1} 2>{root}/err; then echo committed; fi; \
         ls -A {sm}; cat {sm}/keep; \
         {hs} try -y -D {s2} -- sh -c 'echo hi > {sm}/c; chmod 640 {sm}/c; touch -d 2001-02-03T04:05:06Z {sm}/c' 2>/dev/null; \
         stat -c '%a %Y' {sm}/c; cat {sm}/c",
        sm = small.display(),
        s1 = s1.display(),
        s2 = s2.display(),
        root = e.root.display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("HS_SANDBOX_UPPER_IN_DIR", "1")
        .output()
        .unwrap();
    let err = std::fs::read_to_string(e.root.join("err")).unwrap_or_default();
    assert_eq!(
        text(&out.stdout),
        "keep\nkeep\n640 981173106\nhi\n",
        "{}\n{err}",
        text(&out.stderr)
    );
    assert!(err.contains("no space left"), "{err}");
    assert!(err.contains("the live filesystem was not changed"), "{err}");
}

/// A prestarted sandbox runs its command later, with its fds, env, cwd and umask; an unused
/// one goes away quietly.
#[test]
fn prestarted_sandbox_runs_a_command_later() {
    let dir = PathBuf::from(format!("/var/tmp/hs-test-pre-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sb = sandbox::Sandbox::create(&dir, &sandbox::Options::default()).unwrap();
    let ready = sb.prestart().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (r, w) = std::io::pipe().unwrap();
    let c = sandbox::Command::new([
        "sh",
        "-c",
        "echo \"$X $(pwd) $(umask)\"; touch hs-test-pre-f; exit 7",
    ])
    .env(vec![
        ("X".into(), "x y".into()),
        ("PATH".into(), "/usr/bin:/bin".into()),
    ])
    .cwd("/var/tmp")
    .umask(0o027)
    .fd(1, w.into());
    let mut child = ready.exec(&c).unwrap();
    drop(c);
    let mut out = String::new();
    use std::io::Read;
    let mut r = r;
    r.read_to_string(&mut out).unwrap();
    assert_eq!(child.wait().unwrap(), 7);
    assert_eq!(out, "x y /var/tmp 0027\n");
    assert_eq!(sb.changes().unwrap().changes.len(), 1);
    let unused = sb.prestart().unwrap();
    drop(unused);
    sb.discard().unwrap();
}

/// Unprivileged: a commit into a directory the user can no longer write aborts before
/// changing anything, and succeeds once the permission is back.
#[test]
fn commit_preflight_refuses_unwritable_directories() {
    if !unpriv::is_root() {
        return;
    }
    let e = Env::new("preflight", true);
    e.sh("mkdir $L/d");
    let s = e.sbx("p");
    let out = e.try_sh(&["-n", "-D", s.to_str().unwrap()], "touch $L/d/x $L/y");
    assert_eq!(out.status.code(), Some(0));
    let d = e.live().join("d");
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let out = e.hs(&["commit".as_ref(), s.as_os_str()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("checking write permission"),
        "{}",
        text(&out.stderr)
    );
    assert!(!e.live().join("y").exists());
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = e.hs(&["commit".as_ref(), s.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(e.live().join("y").exists() && d.join("x").exists());
}

/// A live file changed after the sandbox started is not overwritten.
#[test]
fn commit_refuses_to_overwrite_later_live_changes() {
    both("conflict", |e| {
        e.sh("echo 1 > $L/f; echo 1 > $L/g");
        let s = e.sbx("c");
        e.try_sh(
            &["-n", "-D", s.to_str().unwrap()],
            "echo sandbox > $L/f; echo sandbox > $L/g",
        );
        e.sh("echo host > $L/f");
        let out = e.hs(&["commit".as_ref(), s.as_os_str()]);
        assert_ne!(out.status.code(), Some(0));
        assert!(
            text(&out.stderr).contains("changed in the live filesystem"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(e.live().join("f")).unwrap(),
            "host\n"
        );
        assert_eq!(std::fs::read_to_string(e.live().join("g")).unwrap(), "1\n");
    });
}

/// The sandboxed process cannot undo its sandbox: no unmounting the overlays, no new mounts
/// in the sandbox's mount namespace, no sysctl writes.
#[test]
fn no_escape_from_the_sandbox() {
    both("escape", |e| {
        let out = e.try_sh(
            &["-n"],
            "umount -l / 2>/dev/null && echo unmounted; mount -t tmpfs x /mnt 2>/dev/null && echo mounted; \
             echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo sysctl; echo done",
        );
        assert_eq!(text(&out.stdout), "done\n");
    });
}

/// Sandboxes created, prestarted, dropped and run from several threads at once do not keep
/// each other's pipes open (a leaked copy would block `spawn` or an unused `prestart`).
#[test]
fn concurrent_sandboxes_do_not_leak_fds_into_each_other() {
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..4 {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for i in 0..4 {
                let dir = PathBuf::from(format!(
                    "/var/tmp/hs-test-conc-{}-{t}-{i}",
                    std::process::id()
                ));
                let sb = sandbox::Sandbox::create(&dir, &sandbox::Options::default()).unwrap();
                if i % 2 == 0 {
                    drop(sb.prestart().unwrap());
                }
                let code = sb
                    .run(&sandbox::Command::new(["sh", "-c", "exit 5"]))
                    .unwrap();
                assert_eq!(code, 5);
                sb.discard().unwrap();
            }
            tx.send(t).unwrap();
        });
    }
    for _ in 0..4 {
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("a sandbox thread hung");
    }
}
