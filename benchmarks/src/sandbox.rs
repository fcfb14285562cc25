//! `benchmarks sandbox`: cost of the sandbox crate (issue 3 targets in brackets).
//!
//! - setup + teardown of a sandbox running `true`, median over N runs [≤ 10 ms; binpash/try
//!   ~350 ms], next to a plain fork+exec of `true` as the floor;
//! - commit of 10,000 small files into an existing directory [≤ 1 s];
//! - commit of one 1 GiB file [≤ 50 ms, by rename];
//! - writing 1 GiB inside a sandbox and committing it, over writing it directly [≤ 1.1×].
//!
//! ```text
//! cargo run -p benchmarks --release -- sandbox [--runs N] [--skip-big] [--json FILE]
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sandbox::{Command, Options, Sandbox};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sh(script: &str) -> anyhow::Result<()> {
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()?;
    if !st.success() {
        bail!("setup script failed: {script}");
    }
    Ok(())
}

fn run_in(sb: &Sandbox, script: &str) -> anyhow::Result<()> {
    let code = sb.run(&Command::new(["sh", "-c", script]))?;
    if code != 0 {
        bail!("sandboxed script exited {code}: {script}");
    }
    Ok(())
}

struct Args {
    runs: usize,
    big_runs: usize,
    skip_big: bool,
    json: Option<PathBuf>,
}

fn parse(args: Vec<OsString>) -> anyhow::Result<Args> {
    let mut a = Args {
        runs: 50,
        big_runs: 5,
        skip_big: false,
        json: None,
    };
    let mut it = args.into_iter();
    while let Some(x) = it.next() {
        match x.to_str().unwrap_or("") {
            "--runs" => {
                a.runs = it
                    .next()
                    .context("--runs N")?
                    .to_str()
                    .context("--runs N")?
                    .parse()?
            }
            "--big-runs" => {
                a.big_runs = it
                    .next()
                    .context("--big-runs N")?
                    .to_str()
                    .context("--big-runs N")?
                    .parse()?;
                anyhow::ensure!(a.big_runs > 0, "--big-runs must be at least 1");
            }
            "--skip-big" => a.skip_big = true,
            "--json" => a.json = Some(it.next().context("--json FILE")?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: benchmarks sandbox [--runs N] [--big-runs N] [--skip-big] [--json FILE]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}"),
        }
    }
    Ok(a)
}

/// Entry point.
pub fn main(args: Vec<OsString>) -> anyhow::Result<()> {
    let args = parse(args)?;
    let base = sandbox::default_base().join(format!("hs-bench-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let result = bench(&args, &base);
    let _ = std::process::Command::new("rm")
        .arg("-rf")
        .arg(&base)
        .status();
    let report = result?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

fn bench(args: &Args, base: &Path) -> anyhow::Result<serde_json::Value> {
    let opts = Options::default();

    // 1. Setup + teardown of `true`.
    let mut create = Vec::new();
    let mut run = Vec::new();
    let mut floor = Vec::new();
    for i in 0..args.runs {
        let t = Instant::now();
        let sb = Sandbox::create(&base.join(format!("true-{i}")), &opts)?;
        create.push(ms(t.elapsed()));
        let t = Instant::now();
        let code = sb.run(&Command::new(["true"]))?;
        run.push(ms(t.elapsed()));
        anyhow::ensure!(code == 0, "true exited {code}");
        sb.discard()?;
        let t = Instant::now();
        std::process::Command::new("true").status()?;
        floor.push(ms(t.elapsed()));
    }
    // Prestarted (pool): the setup runs ahead; time only exec + wait.
    let mut pre = Vec::new();
    for i in 0..args.runs {
        let sb = Sandbox::create(&base.join(format!("pre-{i}")), &opts)?;
        let ready = sb.prestart()?;
        std::thread::sleep(Duration::from_millis(30));
        let t = Instant::now();
        let code = ready.exec(&Command::new(["true"]))?.wait()?;
        pre.push(ms(t.elapsed()));
        anyhow::ensure!(code == 0, "true exited {code}");
        sb.discard()?;
    }
    let pre_ms = median(pre);
    eprintln!("prestarted sandbox true (exec + wait only): {pre_ms:.2} ms median");
    let setup_ms = median(run.clone());
    eprintln!(
        "sandbox true: create (plan) {:.2} ms, run (namespaces + mounts + exec + wait) {:.2} ms median, plain fork+exec {:.2} ms",
        median(create.clone()),
        setup_ms,
        median(floor.clone())
    );

    // 2. Commit of 10,000 small files into an existing directory.
    let live = base.join("live-small");
    std::fs::create_dir_all(&live)?;
    let sb = Sandbox::create(&base.join("small"), &opts)?;
    run_in(
        &sb,
        &format!(
            "cd '{}' && seq 1 10000 > .all && split -l 1 -a 5 .all f && rm .all",
            live.display()
        ),
    )?;
    let t = Instant::now();
    let r = sb.commit()?;
    let small_ms = ms(t.elapsed());
    anyhow::ensure!(
        std::fs::read_dir(&live)?.count() == 10000,
        "commit lost files"
    );
    eprintln!(
        "commit 10,000 small files: {small_ms:.1} ms ({} renamed)",
        r.renamed
    );
    sb.discard()?;

    let mut big = serde_json::Value::Null;
    if !args.skip_big {
        // 3. Commit of one 1 GiB file, and 4. write + commit vs writing directly.
        let live = base.join("live-big");
        std::fs::create_dir_all(&live)?;
        let write = |dir: &Path| {
            format!(
                "head -c 1073741824 /dev/zero > '{}/big' && sync",
                dir.display()
            )
        };
        // Alternated (a disk's write speed drifts), medians compared.
        let (mut direct, mut in_sandbox, mut commit) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.big_runs {
            sh("sync")?;
            let t = Instant::now();
            sh(&write(&live))?;
            direct.push(ms(t.elapsed()));
            std::fs::remove_file(live.join("big"))?;
            sh("sync")?;
            let sb = Sandbox::create(&base.join("big"), &opts)?;
            let t = Instant::now();
            run_in(&sb, &write(&live))?;
            in_sandbox.push(ms(t.elapsed()));
            let t = Instant::now();
            sb.commit()?;
            commit.push(ms(t.elapsed()));
            anyhow::ensure!(
                std::fs::metadata(live.join("big"))?.len() == 1 << 30,
                "big file not committed"
            );
            sb.discard()?;
            std::fs::remove_file(live.join("big"))?;
        }
        let show = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        eprintln!(
            "1 GiB runs (ms, in order): direct {}; in sandbox {}; commit {}",
            show(&direct),
            show(&in_sandbox),
            show(&commit)
        );
        let (direct_ms, in_sandbox_ms, commit_ms) = (
            median(direct.clone()),
            median(in_sandbox.clone()),
            median(commit.clone()),
        );
        let ratio = (in_sandbox_ms + commit_ms) / direct_ms;
        eprintln!(
            "1 GiB (medians of {}, alternated): write directly {direct_ms:.0} ms; in sandbox {in_sandbox_ms:.0} ms + commit {commit_ms:.1} ms = {ratio:.2}x",
            args.big_runs
        );
        big = serde_json::json!({
            "runs": args.big_runs,
            "write_direct_ms_runs": direct,
            "write_in_sandbox_ms_runs": in_sandbox,
            "write_direct_ms": direct_ms,
            "write_in_sandbox_ms": in_sandbox_ms,
            "commit_ms": commit_ms,
            "ratio": ratio,
        });
    }
    Ok(serde_json::json!({
        "runs": args.runs,
        "create_ms_median": median(create),
        "setup_teardown_true_ms_median": setup_ms,
        "prestarted_exec_true_ms_median": pre_ms,
        "plain_fork_exec_true_ms_median": median(floor),
        "commit_10k_small_files_ms": small_ms,
        "big_file": big,
    }))
}
