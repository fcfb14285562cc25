//! The `device` flag: bash opens `/dev/tty` for writing at every start (`check_dev_tty`),
//! which only touches a device when the process has a controlling terminal.

use std::process::Command;

use trace::Flags;

fn tty_notes(t: &trace::Trace) -> Vec<&String> {
    t.notes.iter().filter(|n| n.contains("/dev/tty ")).collect()
}

#[test]
fn dev_tty_without_a_controlling_terminal_is_no_device_access() {
    // `setsid` leaves bash without a controlling terminal: its open of /dev/tty fails (ENXIO).
    let mut cmd = Command::new("setsid");
    cmd.args(["-w", "bash", "-c", "echo ok </dev/null"]);
    let (status, t) = trace::spawn_traced(&mut cmd).unwrap().wait().unwrap();
    assert!(status.success());
    assert!(
        t.get(b"/dev/tty").is_some(),
        "bash opens /dev/tty: {:?}",
        t.iter()
            .map(|(p, _)| String::from_utf8_lossy(p))
            .collect::<Vec<_>>()
    );
    assert!(tty_notes(&t).is_empty(), "{:?} {:?}", t.flags, t.notes);
    assert!(
        !t.flags.contains(Flags::DEVICE),
        "{:?} {:?}",
        t.flags,
        t.notes
    );
}

#[test]
fn dev_tty_with_a_controlling_terminal_is_a_device_access() {
    // `script` runs bash on a new pseudo-terminal, its controlling terminal.
    let mut cmd = Command::new("script");
    cmd.args(["-qec", "bash -c 'echo ok'", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let (status, t) = trace::spawn_traced(&mut cmd).unwrap().wait().unwrap();
    assert!(status.success());
    assert!(
        t.flags.contains(Flags::DEVICE),
        "{:?} {:?}",
        t.flags,
        t.notes
    );
    assert!(!tty_notes(&t).is_empty(), "{:?}", t.notes);
}
