//! A long-lived session cut into segments with `Session::take`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use trace::{Flags, Kinds, Trace};

mod common;

fn tmpdir(name: &str) -> common::TempDir {
    common::TempDir::new(name)
}

fn dump(t: &Trace) -> String {
    let mut s = String::new();
    for (p, k) in t.iter() {
        s.push_str(&format!("  {k:<30} {}\n", String::from_utf8_lossy(p)));
    }
    s.push_str(&format!("  flags: {:?} {:?}\n", t.flags, t.notes));
    s
}

fn kinds(t: &Trace, p: &Path) -> Kinds {
    t.get(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// One shell traced for its whole life, stopped at two "gates" (a line on stdout, then
/// waiting for a line on stdin): each segment holds exactly what the shell did in it, and
/// flags raised in one segment do not leak into the next.
#[test]
fn take_cuts_a_session_into_segments() {
    let dir = tmpdir("take");
    for n in ["a", "b", "c"] {
        std::fs::write(dir.join(n), n).unwrap();
    }
    std::fs::create_dir(dir.join("listed")).unwrap();
    let d = dir.to_str().unwrap();
    // Segment 1: read a, probe a missing path, touch the network (a flag).
    // Segment 2: read b, create out, list a directory. Segment 3: read c.
    let script = format!(
        "cat {d}/a >/dev/null; test -e {d}/missing1; \
         (exec 3<>/dev/tcp/127.0.0.1/9) 2>/dev/null; echo gate1; read x; \
         cat {d}/b >/dev/null; echo x > {d}/out; ls {d}/listed >/dev/null; echo gate2; read x; \
         cat {d}/c >/dev/null"
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = trace::Tracer::new().spawn(&mut cmd).unwrap();
    let mut stdin = child.child_mut().stdin.take().unwrap();
    let mut stdout = BufReader::new(child.child_mut().stdout.take().unwrap());
    let mut line = String::new();

    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "gate1\n");
    let seg1 = child.session().take();
    // Taking again at once gives nothing new: the shell is blocked.
    let empty = child.session().take();
    writeln!(stdin).unwrap();

    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "gate2\n");
    let seg2 = child.session().take();
    writeln!(stdin).unwrap();
    drop(stdin);
    let (status, seg3) = child.wait().unwrap();
    assert!(status.success());

    let s1 = dump(&seg1);
    assert!(kinds(&seg1, &dir.join("a")).contains(Kinds::READ), "{s1}");
    assert!(
        kinds(&seg1, &dir.join("missing1")).contains(Kinds::MISSING),
        "{s1}"
    );
    assert!(seg1.flags.contains(Flags::NETWORK), "{s1}");
    for n in ["b", "c", "out", "listed"] {
        assert!(
            seg1.get(dir.join(n).as_os_str().as_bytes()).is_none(),
            "{n}: {s1}"
        );
    }
    assert!(
        empty.is_empty() && empty.flags.is_empty() && empty.notes.is_empty(),
        "{}",
        dump(&empty)
    );

    let s2 = dump(&seg2);
    assert!(kinds(&seg2, &dir.join("b")).contains(Kinds::READ), "{s2}");
    assert!(
        kinds(&seg2, &dir.join("out")).contains(Kinds::CREATE),
        "{s2}"
    );
    assert!(
        kinds(&seg2, &dir.join("listed")).contains(Kinds::LIST),
        "{s2}"
    );
    assert!(seg2.flags.is_empty() && seg2.notes.is_empty(), "{s2}");
    for n in ["a", "missing1", "c"] {
        assert!(
            seg2.get(dir.join(n).as_os_str().as_bytes()).is_none(),
            "{n}: {s2}"
        );
    }

    let s3 = dump(&seg3);
    assert!(kinds(&seg3, &dir.join("c")).contains(Kinds::READ), "{s3}");
    for n in ["a", "b", "out", "listed"] {
        assert!(
            seg3.get(dir.join(n).as_os_str().as_bytes()).is_none(),
            "{n}: {s3}"
        );
    }
    assert!(seg3.flags.is_empty(), "{s3}");
    assert!(seg1.stats.notifications > 0 && seg2.stats.notifications > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `take` right after the last call of a tight loop of lookups misses none of them: every
/// lookup is recorded after its caller continues, and `take` waits for those records.
#[test]
fn take_waits_for_lookups_still_being_recorded() {
    let dir = tmpdir("take-race");
    let d = dir.to_str().unwrap();
    for round in 0..20 {
        let script = format!(
            "for i in 1 2 3 4 5 6 7 8; do test -e {d}/r{round}-$i; done; echo gate; read x"
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = trace::Tracer::new().spawn(&mut cmd).unwrap();
        let mut stdin = child.child_mut().stdin.take().unwrap();
        let mut stdout = BufReader::new(child.child_mut().stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let seg = child.session().take();
        for i in 1..=8 {
            let p = dir.join(format!("r{round}-{i}"));
            assert!(
                kinds(&seg, &p).contains(Kinds::MISSING),
                "round {round}: {}\n{}",
                p.display(),
                dump(&seg)
            );
        }
        writeln!(stdin).unwrap();
        drop(stdin);
        let (status, _) = child.wait().unwrap();
        assert!(status.success());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
