//! What tracing and SCHED_IDLE add to a sandboxed run: medians over N runs of `true` and of
//! `bash -c 'cat /etc/hostname; ls /usr/bin >/dev/null'`, prestarted and spawned, untraced and
//! traced. `cargo run --release -p sandbox --example traced_cost [N]`.

use std::time::{Duration, Instant};

use sandbox::{Command, Options, Sandbox};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(sb: &Sandbox, argv: &[&str], traced: bool, prestart: bool) -> Duration {
    let tracer = trace::Tracer::new().root_from_tracee();
    let null = std::fs::File::create("/dev/null").unwrap();
    let ready = prestart.then(|| sb.prestart().unwrap());
    if prestart {
        // Let the background setup finish: measure the command, not the setup.
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = Instant::now();
    let mut cmd = Command::new(argv.iter().copied()).fd(1, null.into());
    let session = if traced {
        let (session, hook) = tracer.start().unwrap();
        cmd = cmd.trace(hook);
        Some(session)
    } else {
        None
    };
    let mut child = match ready {
        Some(r) => r.exec(&cmd).unwrap(),
        None => sb.spawn(&cmd).unwrap(),
    };
    drop(cmd);
    let t1 = t0.elapsed();
    assert_eq!(child.wait().unwrap(), 0);
    let t2 = t0.elapsed();
    if let Some(s) = session {
        let t = s.finish().unwrap();
        assert!(!t.is_empty());
    }
    if std::env::var_os("PROBE").is_some() {
        eprintln!(
            "traced={traced} prestart={prestart}: exec'd {:?} waited {:?} finished {:?}",
            t1,
            t2,
            t0.elapsed()
        );
    }
    t0.elapsed()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let sb = Sandbox::create_temp(&Options::default()).unwrap();
    let cases: [(&str, &[&str]); 2] = [
        ("true", &["true"]),
        (
            "bash: cat + ls /usr/bin",
            &["bash", "-c", "cat /etc/hostname; ls /usr/bin >/dev/null"],
        ),
    ];
    for (name, argv) in cases {
        for prestart in [true, false] {
            let mut row = Vec::new();
            for traced in [false, true] {
                let times: Vec<_> = (0..n).map(|_| run(&sb, argv, traced, prestart)).collect();
                row.push(median(times));
            }
            println!(
                "{name:<26} {:<9} untraced {:>8.2} ms  traced {:>8.2} ms  (+{:.2} ms)",
                if prestart { "prestart" } else { "spawn" },
                row[0].as_secs_f64() * 1e3,
                row[1].as_secs_f64() * 1e3,
                (row[1].as_secs_f64() - row[0].as_secs_f64()) * 1e3
            );
        }
    }
    sb.discard().unwrap();
}
