//! `benchmarks trace`: what the tracer costs, against no tracing and against strace, measured
//! in the same run (issue 4, DESIGN §7).
//!
//! Three workloads, each run untraced, under `trace` (the library, as hs uses it), under
//! `trace` with its LD_PRELOAD fast path, and under
//! `strace -f --seccomp-bpf -e trace=%file -o /dev/null`, alternating the modes run by run so
//! that drift in the machine's speed hits all alike; reported as medians:
//!
//! - `stat`: `find DIR -printf '%s\n'` over 15,000 files (one `newfstatat` per file);
//! - `make`: `make -j1` of 40 generated C files and a header, from clean each run;
//! - `fork/exec`: 1,500 × `cat FILE` from a shell loop.
//!
//! Targets (issue 4): traced/untraced ≤ 3× (stat), ≤ 1.3× (make), ≤ 1.6× (fork/exec), and
//! strace/traced ≥ 3× on each, checked on the fast path (the tracer's best mode).
//! `--check` turns them into the exit status.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

const HELP: &str = "\
usage: benchmarks trace [OPTIONS]

Runs a stat storm, a C build and a fork/exec loop untraced, traced, traced with the
fast path and under strace, alternating, and prints median times and ratios.

options:
  --runs N       runs per mode and workload (default 5)
  --only NAME    only this workload: stat, make or fork (repeatable)
  --no-strace    skip strace
  --no-sync      trace without SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (for comparison)
  --json FILE    also write the results as JSON
  --check        exit 1 if a target of issue 4 is missed
";

/// Whether traced runs use synchronous wake-ups (`--no-sync` turns them off).
static SYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

struct Workload {
    name: &'static str,
    /// Target traced/untraced ratio.
    target: f64,
    argv: Vec<OsString>,
    cwd: PathBuf,
    /// Runs before each timed run (untimed), e.g. `make clean`.
    reset: Option<Vec<OsString>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Untraced,
    Traced,
    /// Traced with the LD_PRELOAD fast path (`Tracer::fast_path`).
    Fast,
    Strace,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Untraced => "untraced",
            Mode::Traced => "traced",
            Mode::Fast => "fast",
            Mode::Strace => "strace",
        }
    }
}

/// Entry point of `benchmarks trace`.
pub fn main(args: Vec<OsString>) -> Result<()> {
    let mut runs = 5usize;
    let mut only: Vec<String> = Vec::new();
    let mut strace = true;
    let mut sync = true;
    let mut json_out: Option<PathBuf> = None;
    let mut check = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.to_str().unwrap_or("") {
            "--runs" => {
                runs = it
                    .next()
                    .context("--runs needs a value")?
                    .to_str()
                    .unwrap_or("")
                    .parse()?
            }
            "--only" => only.push(
                it.next()
                    .context("--only needs a value")?
                    .to_string_lossy()
                    .into_owned(),
            ),
            "--no-strace" => strace = false,
            "--no-sync" => sync = false,
            "--json" => json_out = Some(it.next().context("--json needs a value")?.into()),
            "--check" => check = true,
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(());
            }
            other => bail!("unknown option {other:?}\n\n{HELP}"),
        }
    }
    if strace
        && Command::new("strace")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_err()
    {
        eprintln!("benchmarks trace: strace not found; skipping it (apt-get install strace)");
        strace = false;
    }
    let root = std::env::temp_dir().join(format!("hs-bench-trace-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    SYNC.store(sync, std::sync::atomic::Ordering::Relaxed);
    let result = run_all(&root, runs, &only, strace, json_out.as_deref(), check);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run_all(
    root: &Path,
    runs: usize,
    only: &[String],
    strace: bool,
    json_out: Option<&Path>,
    check: bool,
) -> Result<()> {
    let workloads = setup(root)?;
    let mut modes = vec![Mode::Untraced, Mode::Traced, Mode::Fast];
    if strace {
        modes.push(Mode::Strace);
    }
    let header = |what: &str| {
        let mut h = format!("{what:<10}");
        for m in &modes {
            h.push_str(&format!(" {:>10}", m.name()));
            if *m != Mode::Untraced {
                h.push_str(&format!(" {:>7}", "ratio"));
            }
        }
        h
    };
    let mut report = format!("{}  strace/fast  target\n", header("wall"));
    let mut cpu_report = format!(
        "\nCPU time (user+sys of the command tree, plus the supervisor's threads when traced):\n{}\n",
        header("cpu")
    );
    let mut rows = Vec::new();
    let mut missed = Vec::new();
    for w in workloads
        .iter()
        .filter(|w| only.is_empty() || only.iter().any(|o| o == w.name))
    {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
        let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
        // One warm-up run per mode (page cache, dentry cache).
        for &m in &modes {
            run_once(w, m)?;
        }
        for _ in 0..runs {
            for (i, &m) in modes.iter().enumerate() {
                let (wall, c) = run_once(w, m)?;
                times[i].push(wall);
                cpu[i].push(c);
            }
        }
        let med: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
        let cpu_med: Vec<f64> = cpu.iter_mut().map(|t| median(t)).collect();
        let line = |v: &[f64]| {
            let mut l = format!("{:<10}", w.name);
            for (i, x) in v.iter().enumerate() {
                l.push_str(&format!(" {:>8.1}ms", x * 1e3));
                if i > 0 {
                    l.push_str(&format!(" {:>6.2}x", x / v[0]));
                }
            }
            l
        };
        let (traced, fast) = (med[1] / med[0], med[2] / med[0]);
        let vs_strace = med.get(3).map(|s| s / med[2]);
        writeln!(
            report,
            "{}  {:>11}  fast <= {:.1}x, strace >= 3x",
            line(&med),
            vs_strace.map_or("-".to_string(), |v| format!("{v:.2}x")),
            w.target,
        )?;
        writeln!(cpu_report, "{}", line(&cpu_med))?;
        if fast > w.target {
            missed.push(format!(
                "{}: fast path {fast:.2}x > {:.1}x",
                w.name, w.target
            ));
        }
        if let Some(v) = vs_strace
            && v < 3.0
        {
            missed.push(format!("{}: only {v:.2}x faster than strace", w.name));
        }
        rows.push(json!({
            "workload": w.name,
            "untraced_s": med[0],
            "traced_s": med[1],
            "fast_s": med[2],
            "strace_s": med.get(3),
            "traced_ratio": traced,
            "fast_ratio": fast,
            "cpu_untraced_s": cpu_med[0],
            "cpu_traced_s": cpu_med[1],
            "cpu_fast_s": cpu_med[2],
            "cpu_strace_s": cpu_med.get(3),
            "strace_ratio": med.get(3).map(|s| s / med[0]),
            "strace_over_fast": vs_strace,
            "target": w.target,
            "runs": runs,
        }));
    }
    print!("{report}{cpu_report}");
    if let Some(path) = json_out {
        std::fs::write(path, serde_json::to_vec_pretty(&json!({ "trace": rows }))?)?;
    }
    if !missed.is_empty() {
        println!("missed: {}", missed.join("; "));
        if check {
            bail!("{} target(s) missed", missed.len());
        }
    }
    Ok(())
}

fn median(t: &mut [Duration]) -> f64 {
    t.sort();
    t[t.len() / 2].as_secs_f64()
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

fn setup(root: &Path) -> Result<Vec<Workload>> {
    // Stat storm: 30 directories × 500 files.
    let storm = root.join("storm");
    for d in 0..30 {
        let dir = storm.join(format!("d{d}"));
        std::fs::create_dir_all(&dir)?;
        for f in 0..500 {
            std::fs::write(dir.join(format!("f{f}")), b"")?;
        }
    }
    // C build: 40 sources including one header.
    let proj = root.join("proj");
    std::fs::create_dir_all(&proj)?;
    std::fs::write(
        proj.join("common.h"),
        "#include <stdio.h>\n#include <stdlib.h>\nint f(int);\n",
    )?;
    let mut objs = String::new();
    for i in 0..40 {
        std::fs::write(
            proj.join(format!("s{i}.c")),
            format!(
                "#include \"common.h\"\nint g{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i}; return s; }}\n"
            ),
        )?;
        write!(objs, " s{i}.o")?;
    }
    std::fs::write(
        proj.join("main.c"),
        "#include \"common.h\"\nint f(int x) { return x; }\nint main(void) { return f(0); }\n",
    )?;
    std::fs::write(
        proj.join("Makefile"),
        format!(
            "prog: main.o{objs}\n\tcc -o prog main.o{objs}\n%.o: %.c common.h\n\tcc -O0 -c -o $@ $<\n"
        ),
    )?;
    // Fork/exec loop.
    let loop_dir = root.join("loop");
    std::fs::create_dir_all(&loop_dir)?;
    std::fs::write(loop_dir.join("input"), "x\n")?;
    let script = "i=0; while [ $i -lt 1500 ]; do cat input; i=$((i+1)); done >/dev/null";
    Ok(vec![
        Workload {
            name: "stat",
            target: 3.0,
            argv: vec![
                "find".into(),
                storm.into_os_string(),
                "-printf".into(),
                "%s\\n".into(),
            ],
            cwd: root.to_path_buf(),
            reset: None,
        },
        Workload {
            name: "make",
            target: 1.3,
            argv: os(&["make", "-j1", "-s"]),
            cwd: proj,
            reset: Some(os(&["sh", "-c", "rm -f *.o prog"])),
        },
        Workload {
            name: "fork/exec",
            target: 1.6,
            argv: os(&["sh", "-c", script]),
            cwd: loop_dir,
            reset: None,
        },
    ])
}

fn command(argv: &[OsString], cwd: &Path) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).current_dir(cwd).stdout(Stdio::null());
    c
}

/// CPU time (user + sys) of this process and of its waited-for children, from
/// `/proc/self/stat` (clock ticks).
fn cpu_now() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    // Fields after the command: state is field 3; utime..cstime are fields 14..17.
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks: u64 = f.get(11..15).map_or(0, |s| s.iter().sum());
    Duration::from_millis(ticks * 10)
}

fn run_once(w: &Workload, mode: Mode) -> Result<(Duration, Duration)> {
    if let Some(reset) = &w.reset {
        command(reset, &w.cwd).status()?;
    }
    let cpu0 = cpu_now();
    let start = Instant::now();
    let status = match mode {
        Mode::Untraced => command(&w.argv, &w.cwd).status()?,
        Mode::Traced | Mode::Fast => {
            let tracer = trace::Tracer::new()
                .sync_wake_up(SYNC.load(std::sync::atomic::Ordering::Relaxed))
                .fast_path(mode == Mode::Fast);
            let (status, trace) = tracer.spawn(&mut command(&w.argv, &w.cwd))?.wait()?;
            std::hint::black_box(trace);
            status
        }
        Mode::Strace => {
            let mut argv = os(&[
                "strace",
                "-f",
                "--seccomp-bpf",
                "-e",
                "trace=%file",
                "-o",
                "/dev/null",
            ]);
            argv.extend(w.argv.iter().cloned());
            command(&argv, &w.cwd).status()?
        }
    };
    let elapsed = start.elapsed();
    let cpu = cpu_now().saturating_sub(cpu0);
    if !status.success() {
        bail!("{} failed ({status})", w.name);
    }
    Ok((elapsed, cpu))
}
