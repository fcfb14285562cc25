//! Criterion micro-benchmarks of the pieces every speculative run pays for:
//!
//! - `tracer/*`: `true` run plainly, and under the seccomp tracer;
//! - `sandbox/*`: a prestarted sandbox running `true`, from creation to discard; and
//!   `sandbox/commit_one_file`, running `sh -c 'echo x > f'` in one and committing it;
//! - `gate/*`: the `hs` binary on a script of 100 `/bin/true` units with speculation off
//!   (one gate each), next to bash on the same script.
//!
//! ```text
//! cargo bench -p benchmarks --bench micro [-- FILTER]
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};

use criterion::{Criterion, criterion_group, criterion_main};

/// Building and finding the release hs, as the `benchmarks` binary does.
#[allow(dead_code, unused_imports)]
#[path = "../src/common.rs"]
mod common;

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("micro-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("can create a scratch directory");
    d
}

fn quiet(mut c: Command) -> Command {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn tracer(c: &mut Criterion) {
    let mut g = c.benchmark_group("tracer");
    g.bench_function("true_untraced", |b| {
        b.iter(|| {
            let st = quiet(Command::new("/bin/true"))
                .status()
                .expect("runs true");
            assert!(st.success());
        })
    });
    g.bench_function("true_traced", |b| {
        b.iter(|| {
            let mut cmd = quiet(Command::new("/bin/true"));
            let child = trace::Tracer::new().spawn(&mut cmd).expect("traces true");
            let (st, _trace) = child.wait().expect("true finishes");
            assert!(st.success());
        })
    });
    g.finish();
}

fn sandbox(c: &mut Criterion) {
    let mut g = c.benchmark_group("sandbox");
    g.sample_size(30);
    g.bench_function("true_prestarted_to_discard", |b| {
        b.iter(|| {
            let sb = sandbox::Sandbox::create_temp(&sandbox::Options::default())
                .expect("can create a sandbox");
            let ready = sb.prestart().expect("can prestart");
            let mut child = ready
                .exec(&sandbox::Command::new(["/bin/true"]))
                .expect("runs true");
            assert_eq!(child.wait().expect("true finishes"), 0);
            sb.discard().expect("can discard");
        })
    });
    let dir = scratch("commit");
    let file = dir.join("f");
    g.bench_function("commit_one_file", |b| {
        b.iter(|| {
            let sb = sandbox::Sandbox::create_temp(&sandbox::Options::default())
                .expect("can create a sandbox");
            let script = format!("echo x > '{}'", file.display());
            let code = sb
                .run(&sandbox::Command::new(["sh", "-c", &script]))
                .expect("runs sh");
            assert_eq!(code, 0);
            sb.commit_before_discard().expect("can commit");
            sb.discard().expect("can discard");
            assert!(file.exists(), "the commit did not happen");
        })
    });
    g.finish();
}

fn gate(c: &mut Criterion) {
    let dir = scratch("gate");
    let script = dir.join("trues.sh");
    std::fs::write(&script, "/bin/true\n".repeat(100)).expect("can write the script");
    let hs = common::build_hs().expect("can build the release hs");
    let mut g = c.benchmark_group("gate");
    g.sample_size(20);
    g.bench_function("bash_100_trues", |b| {
        b.iter(|| {
            let mut cmd = quiet(Command::new("bash"));
            assert!(cmd.arg(&script).status().expect("runs bash").success());
        })
    });
    g.bench_function("hs_100_trues_no_speculate", |b| {
        b.iter(|| {
            let mut cmd = quiet(Command::new(&hs));
            cmd.arg("--no-speculate")
                .arg("--report")
                .arg(dir.join("r.json"));
            assert!(cmd.arg(&script).status().expect("runs hs").success());
        })
    });
    g.finish();
}

criterion_group!(benches, tracer, sandbox, gate);
criterion_main!(benches);
