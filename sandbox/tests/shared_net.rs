//! Sandboxes that join one shared network namespace (`Options::shared_net`, root only): they
//! see only loopback, the same namespace as each other, and not the host's.

use std::io::Read;

use sandbox::{Command, Options, Sandbox};

/// Runs `sh -c script` in a new temporary sandbox; its stdout.
fn output(opts: &Options, script: &str, prestart: bool) -> String {
    let sb = Sandbox::create_temp(opts).unwrap();
    let (mut r, w) = std::io::pipe().unwrap();
    let cmd = Command::new(["sh", "-c", script]).fd(1, w.into());
    let mut child = if prestart {
        sb.prestart().and_then(|ready| ready.exec(&cmd)).unwrap()
    } else {
        sb.spawn(&cmd).unwrap()
    };
    drop(cmd);
    let mut out = String::new();
    r.read_to_string(&mut out).unwrap();
    assert_eq!(child.wait().unwrap(), 0, "{script}: {out}");
    sb.discard().unwrap();
    out
}

#[test]
fn sandboxes_share_one_loopback_only_network_namespace() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: a shared network namespace needs root");
        return;
    }
    let net = sandbox::shared_network().unwrap();
    let opts = Options {
        shared_net: Some(net),
        ..Default::default()
    };
    let plan = Sandbox::create_temp(&opts).unwrap();
    assert!(plan.plan().unwrap().to_string().contains("join-net"));
    plan.discard().unwrap();
    let ns = "readlink /proc/self/ns/net";
    let a = output(&opts, ns, false);
    let b = output(&opts, ns, true);
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(a, b, "two sandboxes, two namespaces");
    assert_ne!(a.trim(), host.to_str().unwrap(), "the host's namespace");
    // Interfaces: loopback only, and up.
    let dev = output(&opts, "cat /proc/net/dev", true);
    let names: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "{dev}");
    let flags = output(&opts, "cat /sys/class/net/lo/flags", false);
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "loopback is down");
}
