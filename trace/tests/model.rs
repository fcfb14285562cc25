//! The filter table and compiled program, and the `Trace` model.

use trace::{ARCH, Action, Filter, Flags, Kinds, Rule, Trace, default_rules, simulate};

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;

fn eval(f: &Filter, nr: i64, args: [u64; 6]) -> u32 {
    simulate(f.program(), ARCH, nr, args)
}

#[test]
fn compiled_filter_matches_the_table() {
    for fast in [false, true] {
        let f = Filter::from_rules(default_rules(fast)).unwrap();
        for r in f.rules() {
            let expect = match r.action {
                Action::Allow => ALLOW,
                Action::Errno(e) => libc::SECCOMP_RET_ERRNO | e as u32,
                _ => NOTIFY,
            };
            let got = eval(&f, r.nr, [0, 1, 2, 0, 1, 0]);
            if matches!(r.action, Action::NotifyIfNonZero { .. }) {
                assert_eq!(eval(&f, r.nr, [0; 6]), ALLOW, "syscall {}", r.nr);
                assert_eq!(
                    eval(&f, r.nr, [0, 0, 0, 0, 1 << 40, 0]),
                    NOTIFY,
                    "syscall {}",
                    r.nr
                );
            } else if let Action::NotifyIfArgIn { arg, values } = r.action {
                let mut args = [u64::MAX; 6];
                assert_eq!(eval(&f, r.nr, args), ALLOW, "syscall {}", r.nr);
                for v in values {
                    args[arg as usize] = u64::from(*v);
                    assert_eq!(eval(&f, r.nr, args), NOTIFY, "syscall {} value {v}", r.nr);
                }
            } else if !matches!(r.action, Action::NotifyUnlessFlag { .. }) {
                assert_eq!(got, expect, "syscall {}", r.nr);
            }
        }
        // Everything not in the table is allowed.
        for nr in 0..460 {
            if !f.rules().iter().any(|r| r.nr == nr) {
                assert_eq!(eval(&f, nr, [0; 6]), ALLOW, "syscall {nr}");
            }
        }
    }
}

#[test]
fn fstat_fast_path_lets_empty_path_stats_through() {
    let f = Filter::tracing();
    let empty = libc::AT_EMPTY_PATH as u64;
    assert_eq!(
        eval(&f, libc::SYS_newfstatat, [3, 0, 0, empty, 0, 0]),
        ALLOW
    );
    assert_eq!(eval(&f, libc::SYS_newfstatat, [3, 0, 0, 0, 0, 0]), NOTIFY);
    assert_eq!(eval(&f, libc::SYS_statx, [3, 0, empty, 0, 0, 0]), ALLOW);
    assert_eq!(eval(&f, libc::SYS_statx, [3, 0, 0, 0, 0, 0]), NOTIFY);
    let slow = Filter::from_rules(default_rules(false)).unwrap();
    assert_eq!(
        eval(&slow, libc::SYS_newfstatat, [3, 0, 0, empty, 0, 0]),
        NOTIFY
    );
}

#[test]
fn other_abis_are_killed_and_io_uring_fails() {
    let f = Filter::tracing();
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    assert_eq!(
        simulate(f.program(), AUDIT_ARCH_I386, 5, [0; 6]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(
        eval(&f, 0x4000_0000 | 2, [0; 6]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(
        eval(&f, libc::SYS_io_uring_setup, [0; 6]),
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
    );
    assert_eq!(eval(&f, libc::SYS_read, [0; 6]), ALLOW);
    assert_eq!(eval(&f, libc::SYS_openat, [0; 6]), NOTIFY);
}

#[test]
fn validation_rejects_dangerous_tables() {
    let notify = |nr| Rule {
        nr,
        action: Action::Notify,
    };
    for nr in [
        libc::SYS_write,
        libc::SYS_exit_group,
        libc::SYS_close,
        libc::SYS_ioctl,
    ] {
        let err = Filter::from_rules(vec![notify(nr)]).unwrap_err();
        assert!(err.to_string().contains("hand over the listener"), "{err}");
    }
    assert!(Filter::from_rules(vec![notify(2), notify(2)]).is_err());
    assert!(Filter::from_rules(vec![notify(0x4000_0002)]).is_err());
    assert!(
        Filter::from_rules(vec![Rule {
            nr: 2,
            action: Action::NotifyIfNonZero { arg: 6 }
        }])
        .is_err()
    );
    assert!(
        Filter::from_rules(vec![Rule {
            nr: 2,
            action: Action::Errno(0)
        }])
        .is_err()
    );
}

#[test]
fn trace_serializes_bytes_paths_and_round_trips() {
    let mut t = Trace::new();
    t.record(b"/a/b", Kinds::READ);
    t.record(b"/a/b", Kinds::STAT);
    t.record(b"/x/\xff", Kinds::CREATE);
    t.flag(Flags::NETWORK, || "connect".into());
    let json = serde_json::to_string(&t).unwrap();
    assert!(
        json.contains(r#"{"path":"/a/b","kinds":["read","stat"]}"#),
        "{json}"
    );
    assert!(json.contains(r#""path":[47,120,47,255]"#), "{json}");
    let back: Trace = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
}

#[test]
fn conflicts_are_read_after_write_only() {
    let mut w = Trace::new();
    w.record(b"/p/written", Kinds::WRITE_TRUNC);
    w.record(b"/p/new", Kinds::CREATE);
    w.record(b"/q", Kinds::DELETE);
    let mut r = Trace::new();
    r.record(b"/p/written", Kinds::READ);
    r.record(b"/p/other", Kinds::READ);
    let c = Trace::conflicts(&w, &r);
    assert_eq!(c, vec![b"/p/written".to_vec()]);

    // A listing of the parent and a lookup below a deleted directory conflict.
    let mut r = Trace::new();
    r.record(b"/p", Kinds::LIST);
    r.record(b"/q/deep/file", Kinds::MISSING);
    let c = Trace::conflicts(&w, &r);
    assert_eq!(c, vec![b"/p/new".to_vec(), b"/q".to_vec()]);

    // Write-after-write and write-after-read are not conflicts.
    let mut r = Trace::new();
    r.record(b"/p/written", Kinds::WRITE_TRUNC);
    assert!(Trace::conflicts(&w, &r).is_empty());
    assert!(Trace::conflicts(&r, &Trace::new()).is_empty());
}

#[test]
fn reads_and_writes_split_by_kind() {
    let mut t = Trace::new();
    t.record(b"/r", Kinds::READ);
    t.record(b"/w", Kinds::WRITE_TRUNC);
    t.record(b"/rw", Kinds::WRITE);
    t.record(b"/m", Kinds::MISSING);
    let reads: Vec<&[u8]> = t.reads().collect();
    let writes: Vec<&[u8]> = t.writes().collect();
    assert_eq!(reads, vec![&b"/m"[..], b"/r", b"/rw"]);
    assert_eq!(writes, vec![&b"/rw"[..], b"/w"]);
    assert!(t.is_clean());
    t.flag(Flags::NETWORK, || "x".into());
    assert!(!t.is_clean());
}

#[test]
fn notify_if_flag_stops_only_calls_with_a_flag_set() {
    let writes = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;
    let f = Filter::from_rules(vec![Rule {
        nr: libc::SYS_openat,
        action: Action::NotifyIfFlag {
            arg: 2,
            mask: writes,
        },
    }])
    .unwrap();
    let open = |flags: i32| eval(&f, libc::SYS_openat, [3, 0, flags as u64, 0, 0, 0]);
    assert_eq!(open(libc::O_RDONLY | libc::O_CLOEXEC), ALLOW);
    assert_eq!(open(libc::O_RDONLY | libc::O_DIRECTORY), ALLOW);
    assert_eq!(open(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC), NOTIFY);
    assert_eq!(open(libc::O_RDWR), NOTIFY);
    assert_eq!(open(libc::O_WRONLY | libc::O_APPEND), NOTIFY);
}

/// Calls made from the fast path's trampoline (right after its `syscall` instruction at
/// 0x4853_0000_0000 + 23) pass; the same call from anywhere else traps, and other ABIs are
/// still killed.
#[test]
fn trampoline_calls_pass_and_others_trap() {
    let f = Filter::tracing();
    let prog = f.program();
    let ip = 0x4853_0000_0000u64 + 25;
    let args = [libc::AT_FDCWD as u64, 0x1000, 0, 0, 0, 0];
    let at = |ip: u64| trace::simulate_at(prog, trace::ARCH, ip, libc::SYS_newfstatat, args);
    assert_eq!(at(ip), ALLOW);
    assert_eq!(at(0x7f00_0000_1234), NOTIFY);
    assert_eq!(at(ip + 1), NOTIFY);
    assert_eq!(at(ip | 1 << 40), NOTIFY);
    assert_eq!(at((ip & 0xffff_ffff) | 0x7fff_0000_0000), NOTIFY);
    let i386 = trace::simulate_at(prog, 0x4000_0003, ip, 5, [0; 6]);
    assert_eq!(i386, libc::SECCOMP_RET_KILL_PROCESS);
}
