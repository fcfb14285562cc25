//! Prestarted sandboxes whose helpers come from the zygote (`sandbox::start_zygote`, and
//! `sandbox::spawn_zygote` exec'ing this binary): they
//! run, report exit codes and output, commit, can be killed, and fall back to forking directly
//! once the zygote is stopped. Not under the test harness: the zygote must be forked while the
//! process has one thread. As root, the same checks run again as an unprivileged user.

use std::io::Read;
use std::time::{Duration, Instant};

use sandbox::{Command, Options, Sandbox};

/// The parent pid of process `pid`.
fn ppid(pid: u32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Runs `sh -c script` in a prestarted sandbox of `dir`: (exit code, stdout, helper's parent).
fn run(sb: &Sandbox, script: &str) -> (i32, String, i32) {
    let (mut r, w) = std::io::pipe().unwrap();
    let cmd = Command::new(["sh", "-c", script]).fd(1, w.into());
    let mut child = sb.prestart().and_then(|ready| ready.exec(&cmd)).unwrap();
    drop(cmd);
    let parent = ppid(child.id());
    let mut out = String::new();
    r.read_to_string(&mut out).unwrap();
    (child.wait().unwrap(), out, parent)
}

fn scenario() {
    let me = std::process::id() as i32;
    let opts = Options::default();
    let base = tempdir();
    let live = base.join("live");
    std::fs::create_dir(&live).unwrap();

    // Output, exit code and changes travel back; the helper is the zygote's child.
    let sb = Sandbox::create(&base.join("sb"), &opts).unwrap();
    let script = format!("echo hi; echo new > {}/f; exit 3", live.display());
    let (code, out, parent) = run(&sb, &script);
    assert_eq!((code, out.as_str()), (3, "hi\n"));
    assert_ne!(
        parent, me,
        "the helper was forked by the caller, not by the zygote"
    );
    assert!(
        !live.join("f").exists(),
        "a sandboxed write reached the live tree"
    );
    sb.commit().unwrap();
    assert_eq!(std::fs::read_to_string(live.join("f")).unwrap(), "new\n");
    sb.discard().unwrap();

    // A kill ends the command at once and the sandbox can be discarded.
    let sb = Sandbox::create(&base.join("sb2"), &opts).unwrap();
    let cmd = Command::new(["sleep", "30"]);
    let mut child = sb.prestart().and_then(|ready| ready.exec(&cmd)).unwrap();
    let t = Instant::now();
    child.kill();
    let code = child.wait().unwrap();
    assert!(code == 137 || code == 125, "killed sandbox gave {code}");
    assert!(t.elapsed() < Duration::from_secs(10));
    sb.discard().unwrap();

    // A prestarted sandbox never used: dropping it ends its helper.
    let sb = Sandbox::create(&base.join("sb3"), &opts).unwrap();
    drop(sb.prestart().unwrap());
    sb.discard().unwrap();

    // Many in turn, a few at once.
    let sbs: Vec<Sandbox> = (0..4)
        .map(|i| Sandbox::create(&base.join(format!("m{i}")), &opts).unwrap())
        .collect();
    let readies: Vec<_> = sbs.iter().map(|s| s.prestart().unwrap()).collect();
    for (i, ready) in readies.into_iter().enumerate() {
        let (mut r, w) = std::io::pipe().unwrap();
        let cmd = Command::new(["sh", "-c", &format!("echo {i}")]).fd(1, w.into());
        let mut child = ready.exec(&cmd).unwrap();
        drop(cmd);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(
            (child.wait().unwrap(), out.trim()),
            (0, i.to_string().as_str())
        );
    }
    for s in sbs {
        s.discard().unwrap();
    }

    // Stopped: helpers are forked by the caller again.
    sandbox::stop_zygote();
    let sb = Sandbox::create(&base.join("sb4"), &opts).unwrap();
    let (code, out, parent) = run(&sb, "echo after");
    assert_eq!((code, out.as_str(), parent), (0, "after\n", me));
    sb.discard().unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let d = sandbox::default_base().join(format!("hs-zygote-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn main() {
    // This binary is also the exec'd zygote of the `--spawned` run.
    sandbox::zygote_main_if_asked();
    // `cargo test -- --list` and filters: this file is a single test.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("zygote: test");
        return;
    }
    let spawned = args.iter().any(|a| a == "--spawned");
    if spawned {
        sandbox::spawn_zygote(c"/proc/self/exe", false).expect("cannot spawn the zygote");
    } else {
        sandbox::start_zygote(false).expect("cannot start the zygote");
    }
    scenario();
    println!("zygote: ok{}", if spawned { " (exec'd)" } else { "" });
    if spawned || args.iter().any(|a| a == "--as-nobody") {
        return;
    }
    // The same with a zygote exec'd from this binary, and, as root, both as an
    // unprivileged user.
    let rerun = |extra: &[&str], nobody: bool| {
        let mut cmd = if nobody {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(std::env::current_exe().unwrap());
            c
        } else {
            std::process::Command::new(std::env::current_exe().unwrap())
        };
        let st = cmd
            .args(extra)
            .current_dir("/")
            .status()
            .expect("cannot run the test again");
        assert!(st.success(), "run {extra:?} failed: {st}");
    };
    rerun(&["--spawned"], false);
    if nix::unistd::geteuid().is_root() {
        rerun(&["--as-nobody"], true);
        rerun(&["--as-nobody", "--spawned"], true);
    }
}
