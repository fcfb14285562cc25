//! `sandbox::unidle_tree`: a process tree at `SCHED_IDLE` gets `SCHED_OTHER` back (root only;
//! an unprivileged caller may not leave `SCHED_IDLE`).

use std::process::Command;

fn policy(pid: u32) -> String {
    let out = Command::new("chrt")
        .arg("-p")
        .arg(pid.to_string())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| trace::stat_field(p as i32, 1) == Some(i64::from(pid)))
        .collect()
}

#[test]
fn an_idle_tree_gets_normal_priority_back() {
    if !nix::unistd::geteuid().is_root() || Command::new("chrt").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and chrt");
        return;
    }
    // An idle shell with an idle child (policies are inherited on fork).
    let mut parent = Command::new("chrt")
        .args(["-i", "0", "sh", "-c", "sleep 5 & wait"])
        .spawn()
        .unwrap();
    let pid = parent.id();
    let mut child = None;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let kids = children(pid);
        if let Some(&k) = kids.first() {
            child = Some(k);
            break;
        }
    }
    let child = child.expect("the shell started its child");
    assert!(policy(pid).contains("SCHED_IDLE"), "{}", policy(pid));
    assert!(policy(child).contains("SCHED_IDLE"), "{}", policy(child));
    let n = sandbox::unidle_tree(pid as i32, &[]);
    assert!(n >= 2, "{n} threads changed");
    assert!(policy(pid).contains("SCHED_OTHER"), "{}", policy(pid));
    assert!(policy(child).contains("SCHED_OTHER"), "{}", policy(child));
    let _ = Command::new("kill").arg(child.to_string()).status();
    let _ = parent.wait();
}
