//! Committed sandbox runs against the same command run directly: directory renames (overlayfs
//! `redirect_dir` as root, `EXDEV` and `mv`'s copy fallback unprivileged), hard links, with
//! the upper layer on the live filesystem (commit renames) and on another one (commit copies).
//!
//! Each scenario builds the same tree twice, runs its script in a sandbox over one copy and
//! commits, runs it with plain `bash -c` on the other, and compares the two trees: types,
//! contents, modes, owners, symlink targets and which names share an inode.

mod common;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;

use common::{in_children_env, work};
use sandbox::{Command, Options, Sandbox};

/// A tree as comparable text: one line per entry, with hard links named by their first name.
fn snapshot(root: &Path) -> String {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<Vec<u8>, String>,
        inodes: &mut BTreeMap<u64, Vec<u8>>,
    ) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let mut line = format!("mode {:o} owner {}:{}", md.mode(), md.uid(), md.gid());
            if ft.is_dir() {
                line.push_str(" dir");
                out.insert(rel, line);
                walk(root, &p, out, inodes);
                continue;
            }
            if ft.is_symlink() {
                line.push_str(&format!(" -> {:?}", std::fs::read_link(&p).unwrap()));
            } else if ft.is_file() {
                line.push_str(&format!(
                    " {:?}",
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                ));
            }
            if md.nlink() > 1 {
                line.push_str(&format!(" nlink {}", md.nlink()));
                match inodes.get(&md.ino()) {
                    Some(first) => line.push_str(&format!(
                        " same-inode-as {}",
                        String::from_utf8_lossy(first)
                    )),
                    None => {
                        inodes.insert(md.ino(), rel.clone());
                    }
                }
            }
            out.insert(rel, line);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, &mut BTreeMap::new());
    out.iter()
        .map(|(p, l)| format!("{}: {l}\n", String::from_utf8_lossy(p)))
        .collect()
}

fn bash(dir: &Path, script: &str) -> i32 {
    let st = Proc::new("bash")
        .arg("-c")
        .arg(script)
        .env("T", dir)
        .current_dir(dir)
        .status()
        .unwrap();
    st.code().unwrap_or(128)
}

/// What a scenario's commit must do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Commit, and give the same tree as the direct run.
    Same,
    /// `changes()` reports a hazard on this path (relative to the tree) and commit refuses,
    /// leaving the live tree untouched.
    Refused(&'static str),
}

struct Scenario {
    name: &'static str,
    setup: &'static str,
    script: &'static str,
    expect: Expect,
    /// As root (overlayfs `redirect_dir`): the change set shows these renames (to, from).
    renamed: &'static [(&'static str, &'static str)],
}

/// The cases every run checks. `$T` is the tree.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "mv-dir-same-parent",
        setup: "mkdir -p a/sub && echo 1 > a/f && echo 2 > a/sub/g",
        script: "mv a b",
        expect: Expect::Same,
        renamed: &[("b", "a")],
    },
    Scenario {
        name: "mv-dir-into-existing-dir",
        setup: "mkdir -p a/sub d && echo 1 > a/f && echo 2 > a/sub/g && echo 3 > d/x",
        script: "mv a d/",
        expect: Expect::Same,
        renamed: &[("d/a", "a")],
    },
    Scenario {
        name: "mv-dir-into-new-dir",
        setup: "mkdir -p a/sub && echo 1 > a/f && echo 2 > a/sub/g",
        script: "mkdir -p n/m && mv a n/m/a2 && echo new > n/m/a2/added",
        expect: Expect::Same,
        renamed: &[("n/m/a2", "a")],
    },
    Scenario {
        name: "mv-dir-then-change-inside",
        setup: "mkdir -p a/sub && echo 1 > a/f && echo 2 > a/g && echo 3 > a/sub/h",
        script: "mv a b && echo changed > b/f && rm b/g && mkdir b/new && echo n > b/new/x \
                 && chmod 700 b/sub",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "nested-renames",
        setup: "mkdir -p a/sub/deep && echo 1 > a/f && echo 2 > a/sub/g && echo 3 > a/sub/deep/h",
        script: "mv a b && mv b/sub x && mv x/deep b/deep2 && echo 4 > x/g2",
        expect: Expect::Same,
        renamed: &[("b", "a"), ("x", "a/sub"), ("b/deep2", "a/sub/deep")],
    },
    Scenario {
        name: "swap-two-dirs",
        setup: "mkdir a b && echo A > a/f && echo B > b/f",
        script: "mv a tmp && mv b a && mv tmp b",
        expect: Expect::Same,
        renamed: &[("a", "b"), ("b", "a")],
    },
    Scenario {
        name: "rename-there-and-back",
        setup: "mkdir -p a/sub && echo 1 > a/f",
        script: "mv a b && echo 2 > b/g && mv b a",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "replace-empty-dir",
        setup: "mkdir -p a e && echo 1 > a/f",
        script: "mv -T a e",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "rename-dir-made-in-sandbox",
        setup: "true",
        script: "mkdir -p p/q && echo 1 > p/q/f && mv p r",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "rename-then-recreate-source",
        setup: "mkdir a && echo 1 > a/f",
        script: "mv a b && mkdir a && echo 2 > a/g",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "dir-with-hard-links-renamed",
        setup: "mkdir a && echo 1 > a/f && ln a/f a/f2",
        script: "mv a b && echo 2 > b/other",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "link-to-live-file",
        setup: "echo 1 > f",
        script: "ln f f2 && mkdir d && ln f d/f3",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "links-among-new-files",
        setup: "mkdir d",
        script: "echo n > new && ln new new2 && ln new d/new3 && mkdir e && echo m > e/x \
                 && ln e/x e/y",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "delete-one-of-a-live-pair",
        setup: "echo 1 > h1 && ln h1 h2",
        script: "rm h1",
        expect: Expect::Same,
        renamed: &[],
    },
    Scenario {
        name: "append-to-a-live-pair",
        setup: "echo 1 > h1 && ln h1 h2",
        script: "echo 2 >> h1",
        expect: Expect::Refused("h1"),
        renamed: &[],
    },
    Scenario {
        name: "chmod-a-live-pair",
        setup: "echo 1 > h1 && ln h1 h2",
        script: "chmod 600 h2",
        expect: Expect::Refused("h2"),
        renamed: &[],
    },
];

fn run_scenario(base: &Path, sb_base: &Path, s: &Scenario) {
    let live = base.join(format!("live-{}", s.name));
    let direct = base.join(format!("direct-{}", s.name));
    for t in [&live, &direct] {
        std::fs::create_dir(t).unwrap();
        assert_eq!(bash(t, s.setup), 0, "{}: setup", s.name);
    }
    let before = snapshot(&live);
    let sb = Sandbox::create(&sb_base.join(s.name), &Options::default()).unwrap();
    let code = sb
        .run(
            &Command::new(["bash", "-c", s.script])
                .env(
                    std::env::vars_os()
                        .filter(|(k, _)| k != "T")
                        .chain([("T".into(), live.clone().into())])
                        .collect(),
                )
                .cwd(&live),
        )
        .unwrap();
    let changes = sb.changes().unwrap();
    let direct_code = bash(&direct, s.script);
    let what = format!(
        "scenario {} (sandbox in {})\nchanges:\n{}",
        s.name,
        sb_base.display(),
        changes.to_text()
    );
    assert_eq!(code, direct_code, "{what}");
    if std::env::var_os("HS_TEST_SHOW_CHANGES").is_some() {
        eprintln!("{what}");
    }
    if common::is_root() {
        let text = changes.to_text();
        for (to, from) in s.renamed {
            let line = format!(
                "renamed      {}/ (from {})",
                live.join(to).display(),
                live.join(from).display()
            );
            assert!(text.contains(&line), "{line}\n{what}");
            assert!(
                !text.contains(&format!("deleted      {}/", live.join(from).display())),
                "{what}"
            );
        }
    }
    match s.expect {
        Expect::Same => {
            assert!(changes.hazards.is_empty(), "{what}");
            let report = sb
                .commit()
                .unwrap_or_else(|e| panic!("{what}\ncommit: {e}"));
            let (got, want) = (snapshot(&live), snapshot(&direct));
            assert_eq!(got, want, "{what}\n{report:?}");
        }
        Expect::Refused(path) => {
            let p = live.join(path);
            assert!(
                changes.hazards.iter().any(|h| h.path == p),
                "expected a hazard on {}\n{what}",
                p.display()
            );
            let err = sb.commit().expect_err(&what);
            assert!(
                matches!(err, sandbox::Error::Unfaithful { .. }),
                "{err}\n{what}"
            );
            assert!(err.to_string().contains("hard link"), "{err}");
            assert_eq!(snapshot(&live), before, "{what}: live tree changed");
            // The direct run really differs from what committing would give.
            assert_ne!(snapshot(&direct), before, "{what}");
            sb.discard().unwrap();
        }
    }
}

fn all_scenarios(sb_base: &Path) {
    let base = work().join("trees");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir_all(sb_base).unwrap();
    for s in SCENARIOS {
        run_scenario(&base, sb_base, s);
    }
}

/// Upper dirs on the live filesystem: commit renames.
#[test]
fn commit_matches_direct_run() {
    if in_children_env("commit_matches_direct_run", b"", &[]) {
        return;
    }
    all_scenarios(&work().join("sandboxes"));
}

/// Upper dirs on another filesystem (`/dev/shm`, tmpfs) than the live tree: commit copies.
#[test]
fn commit_matches_direct_run_across_filesystems() {
    if in_children_env(
        "commit_matches_direct_run_across_filesystems",
        b"",
        &[("HS_SANDBOX_UPPER_IN_DIR", "1")],
    ) {
        return;
    }
    let shm: PathBuf = format!("/dev/shm/hs-sbx-xfs-{}", std::process::id()).into();
    all_scenarios(&shm);
    let _ = std::fs::remove_dir_all(&shm);
}

/// Not a test of its own: commits the sandbox named by `HS_SBX_COMMIT` (with whatever
/// `HS_COMMIT_CRASH_AFTER` says) for [`recovery_after_a_crash_at_every_step`].
#[test]
fn commit_helper() {
    if let Some(dir) = std::env::var_os("HS_SBX_COMMIT") {
        Sandbox::open(Path::new(&dir)).unwrap().commit().unwrap();
    }
}

/// A commit SIGKILLed after each of its operations in turn, then recovered: always the tree of
/// the direct run. Renames (phases: upper parts out, live sources out, deletions, placements,
/// renamed directories in, metadata) and hard links.
fn crash_at_every_step(sb_base: &Path) {
    let names = [
        "nested-renames",
        "swap-two-dirs",
        "rename-there-and-back",
        "mv-dir-into-new-dir",
        "mv-dir-then-change-inside",
        "links-among-new-files",
    ];
    let base = work().join("crash");
    std::fs::create_dir_all(sb_base).unwrap();
    for s in SCENARIOS.iter().filter(|s| names.contains(&s.name)) {
        let mut n = 0;
        loop {
            let tag = format!("{}-{n}", s.name);
            let live = base.join(format!("live-{tag}"));
            let direct = base.join(format!("direct-{tag}"));
            for t in [&live, &direct] {
                std::fs::create_dir_all(t).unwrap();
                assert_eq!(bash(t, s.setup), 0);
            }
            bash(&direct, s.script);
            let sbdir = sb_base.join(&tag);
            let sb = Sandbox::create(&sbdir, &Options::default()).unwrap();
            let env: Vec<_> = std::env::vars_os()
                .filter(|(k, _)| k != "T")
                .chain([("T".into(), live.clone().into())])
                .collect();
            sb.run(&Command::new(["bash", "-c", s.script]).env(env).cwd(&live))
                .unwrap();
            drop(sb);
            let out = Proc::new(std::env::current_exe().unwrap())
                .args(["--exact", "commit_helper", "--test-threads=1"])
                .env("HS_SBX_COMMIT", &sbdir)
                .env("HS_COMMIT_CRASH_AFTER", n.to_string())
                .env_remove(common::INNER)
                .output()
                .unwrap();
            use std::os::unix::process::ExitStatusExt;
            let crashed = out.status.signal() == Some(9);
            assert!(
                crashed || out.status.success(),
                "{tag}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if crashed {
                // (Any `hs` started meanwhile on this machine may have recovered it first:
                // `hs try` recovers every interrupted commit of its user. Either way the
                // journal must be gone and the tree right.)
                sandbox::recover(&sbdir).unwrap();
                assert!(!sbdir.join("journal").exists(), "{tag}");
                assert!(sbdir.join("committed").exists(), "{tag}");
            }
            assert_eq!(snapshot(&live), snapshot(&direct), "{tag}: after recovery");
            // Nothing of the commit's own is left in the live tree.
            let leftovers = Proc::new("find")
                .arg(&live)
                .args(["-name", ".hs-*"])
                .output()
                .unwrap();
            assert!(leftovers.stdout.is_empty(), "{tag}: {leftovers:?}");
            if !crashed {
                break;
            }
            n += 1;
            assert!(n < 200, "{tag}: the commit never finished");
        }
        assert!(n >= 3, "{}: only {n} operations", s.name);
    }
}

#[test]
fn recovery_after_a_crash_at_every_step() {
    if in_children_env("recovery_after_a_crash_at_every_step", b"", &[]) {
        return;
    }
    crash_at_every_step(&work().join("crash-sandboxes"));
}

#[test]
fn recovery_after_a_crash_at_every_step_across_filesystems() {
    if in_children_env(
        "recovery_after_a_crash_at_every_step_across_filesystems",
        b"",
        &[("HS_SANDBOX_UPPER_IN_DIR", "1")],
    ) {
        return;
    }
    let shm: PathBuf = format!("/dev/shm/hs-sbx-crash-{}", std::process::id()).into();
    crash_at_every_step(&shm);
    let _ = std::fs::remove_dir_all(&shm);
}
