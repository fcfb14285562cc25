//! Differential fuzzer: random bash scripts over a tiny universe of files and directories run
//! under `bash` and under `hs`, in identical fresh directories at the same time; stdout,
//! stderr, exit status and the final tree (types, modes, contents, symlink targets) must agree.
//! A divergent seed is reduced by delta debugging to a minimal script, printed with the seed,
//! the hs flags and both results.
//!
//! - `tests/fuzz/generator.rs`: the seeded script generator (and what keeps scripts
//!   deterministic under bash);
//! - `tests/fuzz/runner.rs`: running a pair, comparison, reports (tree snapshots:
//!   `tests/util/tree.rs`, shared with tests/diff.rs and tests/kill.rs);
//! - `tests/fuzz/reduce.rs`: the reducer; `tests/fuzz/rng.rs`: splitmix64.
//!
//! # Running
//!
//!     cargo test -p engine --test fuzz                      # CI: >= 200 seeds, ~60 s
//!     HS_FUZZ_SEEDS=2000 cargo test -p engine --test fuzz --release fuzz_bash_vs_hs -- --nocapture
//!
//! Knobs (environment):
//! - `HS_FUZZ_SEEDS=N`: run exactly N seeds (no time bound, every divergence counted);
//!   default: seeds until `HS_FUZZ_SECS` (60) have passed, at least 200, stopping at the first
//!   divergence;
//! - `HS_MIN_UNIT_MS`: passed to hs (default here 0, so that every unit is speculated);
//! - `HS_FUZZ_START=S`: first seed (default 0); `HS_FUZZ_START=S HS_FUZZ_SEEDS=1` replays one;
//! - `HS_FUZZ_FLAGS="--no-speculate -j 2"`: options put before the script on hs's command line;
//! - `HS_BIN=/path/to/runner`: run that instead of the `hs` cargo built (as in tests/diff.rs);
//! - `HS_FUZZ_JOBS` (2): seeds run at once; `HS_FUZZ_TIMEOUT` (20): seconds per run;
//! - `HS_FUZZ_REDUCE` (3): how many divergent seeds to reduce; `HS_FUZZ_REDUCE_SECS` (180):
//!   time budget per reduction;
//! - `HS_FUZZ_SHOW=1`: print every generated script (with `--nocapture`);
//! - `HS_FUZZ_SKIP=type,errtrap`: replace a construct that triggers a known, recorded
//!   divergence by a harmless `echo` (same random stream, so every other statement of every
//!   seed stays the same), to fuzz past it until it is fixed.
//!
//! For long runs, copy the binary first (`cp target/x86_64-unknown-linux-gnu/debug/hs /tmp/hs && HS_BIN=/tmp/hs …`):
//! other cargo runs in the same target directory relink it.
//!
//! Divergences found so far are kept below as regression tests (`#[ignore]`d while open).
//!
//! # Figures (2-core machine shared with other builds, debug build, 2 seeds at a time)
//!
//! Latest, generator 0ac3850, hs built from the tree at 0ac3850 (f1f3307 and later):
//! `cp target/x86_64-unknown-linux-gnu/debug/hs /tmp/hs && HS_BIN=/tmp/hs HS_FUZZ_SEEDS=2000 cargo test -p engine --test
//! fuzz fuzz_bash_vs_hs`: 2,000 seeds, 0 divergent, 193 s; with
//! `HS_FUZZ_FLAGS=--no-speculate HS_FUZZ_START=100000`: 2,000 seeds, 0 divergent, 250 s.
//!
//! Before the fixes: the same 2,000 seeds against hs 39987fd gave 27 divergent (every one
//! `type f` or an ERR trap's `$BASH_COMMAND`, see the regression tests); an earlier generator
//! against hs 477383f gave 12 divergent out of 2,000 (every one `$_` after a pipeline).

#[path = "fuzz/generator.rs"]
mod generator;
#[path = "fuzz/reduce.rs"]
mod reduce;
#[path = "fuzz/rng.rs"]
mod rng;
#[path = "fuzz/runner.rs"]
mod runner;
#[path = "util/tree.rs"]
mod tree;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use generator::{Script, generate};
use runner::{Aspect, Outcome, Runner, differences, run_pair};
use tree::show_bytes;

/// Fewest seeds the time-bounded run does (unless a seed fails first).
const MIN_SEEDS: u64 = 200;

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Writes to the real stderr, past the test harness's output capture.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

#[derive(Clone, Debug)]
struct Config {
    runner: Runner,
    start: u64,
    /// Exactly this many seeds; `None`: time-bounded.
    seeds: Option<u64>,
    secs: u64,
    jobs: usize,
    reduce: usize,
    reduce_secs: u64,
    /// No line per divergent seed on stderr (the harness self-tests expect divergences).
    quiet: bool,
}

impl Config {
    fn from_env() -> Config {
        let program =
            std::env::var_os("HS_BIN").unwrap_or_else(|| OsString::from(env!("CARGO_BIN_EXE_hs")));
        let flags = std::env::var("HS_FUZZ_FLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(OsString::from)
            .collect();
        Config {
            runner: Runner {
                program,
                flags,
                timeout: Duration::from_secs(env_num("HS_FUZZ_TIMEOUT").unwrap_or(20)),
            },
            start: env_num("HS_FUZZ_START").unwrap_or(0),
            seeds: env_num("HS_FUZZ_SEEDS"),
            secs: env_num("HS_FUZZ_SECS").unwrap_or(60),
            jobs: env_num("HS_FUZZ_JOBS").unwrap_or(2).max(1) as usize,
            reduce: env_num("HS_FUZZ_REDUCE").unwrap_or(3) as usize,
            reduce_secs: env_num("HS_FUZZ_REDUCE_SECS").unwrap_or(180),
            quiet: false,
        }
    }

    fn flags_shown(&self) -> String {
        let f: Vec<String> = self
            .runner
            .flags
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        if f.is_empty() {
            "(none)".into()
        } else {
            f.join(" ")
        }
    }
}

/// A seed whose runs differed.
struct Failure {
    seed: u64,
    aspects: Vec<Aspect>,
    bash: Outcome,
    hs: Outcome,
}

struct Summary {
    seeds_run: u64,
    failures: Vec<Failure>,
    elapsed: Duration,
}

/// Runs seeds on `cfg.jobs` threads.
fn campaign(cfg: &Config) -> Summary {
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let failures = Mutex::new(vec![]);
    let show = std::env::var_os("HS_FUZZ_SHOW").is_some_and(|v| v == "1");
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let go_on = match cfg.seeds {
                        Some(n) => i < n,
                        None => {
                            !failed.load(Ordering::SeqCst)
                                && (i < MIN_SEEDS || start.elapsed().as_secs() < cfg.secs)
                        }
                    };
                    if !go_on {
                        break;
                    }
                    let seed = cfg.start + i;
                    let script = generate(seed);
                    let text = script.render();
                    if show {
                        say(&format!("--- seed {seed}\n{}", show_bytes(&text)));
                    }
                    let (bash, hs) = run_pair(&text, &cfg.runner);
                    let aspects = differences(&bash, &hs);
                    if !aspects.is_empty() {
                        failed.store(true, Ordering::SeqCst);
                        if !cfg.quiet {
                            say(&format!("fuzz: seed {seed} diverges ({aspects:?})"));
                        }
                        failures.lock().unwrap().push(Failure {
                            seed,
                            aspects,
                            bash,
                            hs,
                        });
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.seed);
    Summary {
        seeds_run: done.load(Ordering::SeqCst),
        failures,
        elapsed: start.elapsed(),
    }
}

/// How many of `n` runs of `script` diverge in one of `aspects`.
fn reproduce(script: &[u8], runner: &Runner, aspects: &[Aspect], n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let (b, h) = run_pair(script, runner);
            differences(&b, &h).iter().any(|a| aspects.contains(a))
        })
        .count()
}

/// The minimal reproduction of one failure, as a report.
fn reduce_failure(cfg: &Config, f: &Failure) -> (String, Script) {
    let original = generate(f.seed);
    let tests = AtomicUsize::new(0);
    let reduced = reduce::reduce(
        &original,
        |cand| {
            tests.fetch_add(1, Ordering::Relaxed);
            let (b, h) = run_pair(&cand.render(), &cfg.runner);
            differences(&b, &h).iter().any(|a| f.aspects.contains(a))
        },
        Duration::from_secs(cfg.reduce_secs),
    );
    let text = reduced.script.render();
    let (bash, hs) = run_pair(&text, &cfg.runner);
    let again = reproduce(&text, &cfg.runner, &f.aspects, 4);
    let reproduced = again + usize::from(!differences(&bash, &hs).is_empty());
    let mut r = String::new();
    let _ = writeln!(
        r,
        "\n#################### fuzz: seed {} diverges ####################\n\
         runner:  {}\nflags:   {}\ndiffers: {:?} (original script: {} bytes)\n\
         reduced: {} candidate runs{}; the minimal script diverges in {reproduced} of 5 runs\n\
         replay:  HS_FUZZ_START={} HS_FUZZ_SEEDS=1 cargo test -p engine --test fuzz fuzz_bash_vs_hs\n\
         \n--- minimal script ---\n```\n{}```",
        f.seed,
        cfg.runner.program.to_string_lossy(),
        cfg.flags_shown(),
        f.aspects,
        original.render().len(),
        reduced.tests,
        if reduced.out_of_time {
            " (stopped: out of time)"
        } else {
            ""
        },
        f.seed,
        show_bytes(&text),
    );
    let _ = writeln!(
        r,
        "--- results of the minimal script ---\n{}",
        runner::describe(&bash, &hs)
    );
    let _ = writeln!(
        r,
        "--- results of the original script ---\n{}",
        runner::describe(&f.bash, &f.hs)
    );
    (r, reduced.script)
}

/// Runs a campaign with `cfg` and returns (summary line, full report of the failures).
fn run_and_report(cfg: &Config) -> (Summary, String) {
    let summary = campaign(cfg);
    let mut report = String::new();
    for (i, f) in summary.failures.iter().enumerate() {
        if i < cfg.reduce {
            let (r, _) = reduce_failure(cfg, f);
            report.push_str(&r);
        } else {
            let _ = writeln!(
                report,
                "\nfuzz: seed {} also diverges ({:?}); not reduced (HS_FUZZ_REDUCE={})",
                f.seed, f.aspects, cfg.reduce
            );
        }
    }
    (summary, report)
}

/// The fuzzer proper: bash against hs.
#[test]
fn fuzz_bash_vs_hs() {
    let cfg = Config::from_env();
    let (summary, report) = run_and_report(&cfg);
    let line = format!(
        "fuzz: {} seeds run (from {}), {} divergent, {:.1} s, hs flags: {}, runner: {}",
        summary.seeds_run,
        cfg.start,
        summary.failures.len(),
        summary.elapsed.as_secs_f64(),
        cfg.flags_shown(),
        cfg.runner.program.to_string_lossy()
    );
    say(&line);
    if !summary.failures.is_empty() {
        panic!("{line}\n{report}");
    }
    if cfg.seeds.is_none() {
        assert!(summary.seeds_run >= MIN_SEEDS, "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests of the fuzzer itself.

/// The same seed gives the same script; every script is valid bash.
#[test]
fn fuzz_generator_is_deterministic_and_valid() {
    let dir = runner::scratch_dir("gen");
    let mut sizes = 0;
    for seed in 0..150 {
        let a = generate(seed);
        assert_eq!(a, generate(seed));
        let text = a.render();
        sizes += text.len();
        let p = dir.join(format!("s{seed}.sh"));
        std::fs::write(&p, &text).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seed {seed}: bash -n fails: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            show_bytes(&text)
        );
    }
    assert_ne!(generate(1), generate(2));
    assert!(
        sizes / 150 > 200,
        "scripts too small: {} bytes",
        sizes / 150
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A runner script that strips leading options, then runs `body` (where `"$@"` is the script).
fn fake_runner(dir: &std::path::Path, name: &str, body: &str) -> OsString {
    let p = dir.join(name);
    let strip = r#"while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done"#;
    std::fs::write(&p, format!("#!/bin/bash\n{strip}\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.into_os_string()
}

fn test_config(program: OsString, seeds: u64, start: u64) -> Config {
    Config {
        runner: Runner {
            program,
            flags: vec!["--no-speculate".into()],
            timeout: Duration::from_secs(20),
        },
        start,
        seeds: Some(seeds),
        secs: 60,
        jobs: 2,
        reduce: 1,
        reduce_secs: 120,
        quiet: true,
    }
}

/// bash against bash agrees on every seed: the generated scripts are deterministic, and the
/// comparison (path normalisation, trees) adds no noise.
#[test]
fn fuzz_harness_bash_agrees_with_itself() {
    let dir = runner::scratch_dir("self-same");
    let same = fake_runner(&dir, "same", r#"exec bash "$@""#);
    let cfg = test_config(same, 60, 1000);
    let summary = campaign(&cfg);
    let seeds: Vec<u64> = summary.failures.iter().map(|f| f.seed).collect();
    let mut detail = String::new();
    if let Some(f) = summary.failures.first() {
        detail = format!(
            "{}\n{}",
            show_bytes(&generate(f.seed).render()),
            runner::describe(&f.bash, &f.hs)
        );
    }
    assert!(
        seeds.is_empty(),
        "bash vs bash differs on seeds {seeds:?}\n{detail}"
    );
    assert_eq!(summary.seeds_run, 60);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runners that change stdout, stderr, the exit status or the files are caught, and the
/// reducer shrinks the script to the statement that triggers the change.
#[test]
fn fuzz_harness_catches_and_reduces() {
    let dir = runner::scratch_dir("self-bad");
    // The first seed whose script runs `rmdir`.
    let seed = (0..)
        .find(|&s| String::from_utf8_lossy(&generate(s).render()).contains("rmdir"))
        .unwrap();
    let last = r#"for s; do :; done"#;
    for (name, body, aspect) in [
        (
            "out",
            format!(r#"{last}; bash "$@"; rc=$?; grep -q rmdir "$s" && echo extra; exit $rc"#),
            Aspect::Stdout,
        ),
        (
            "err",
            format!(r#"{last}; bash "$@"; rc=$?; grep -q rmdir "$s" && echo extra >&2; exit $rc"#),
            Aspect::Stderr,
        ),
        (
            "rc",
            format!(r#"{last}; bash "$@"; rc=$?; grep -q rmdir "$s" && rc=99; exit $rc"#),
            Aspect::Status,
        ),
        (
            "files",
            format!(
                r#"{last}; bash "$@"; rc=$?; grep -q rmdir "$s" && mkdir -p "$TMPDIR/../work/zz"; exit $rc"#
            ),
            Aspect::Tree,
        ),
    ] {
        let bad = fake_runner(&dir, name, &body);
        let cfg = test_config(bad, 1, seed);
        let summary = campaign(&cfg);
        assert_eq!(summary.failures.len(), 1, "{name}: not caught");
        let f = &summary.failures[0];
        assert!(f.aspects.contains(&aspect), "{name}: {:?}", f.aspects);
        if name == "out" {
            let (report, minimal) = reduce_failure(&cfg, f);
            let text = String::from_utf8_lossy(&minimal.render()).into_owned();
            let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("top=")).collect();
            assert!(
                lines.len() <= 3 && text.contains("rmdir"),
                "not reduced enough:\n{report}"
            );
            assert!(
                report.contains("seed") && report.contains("extra"),
                "{report}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Divergences the fuzzer found, as regression tests. A new one is `#[ignore]`d until hs is
// fixed (run those with `cargo test -p engine --test fuzz -- --ignored`); the fix drops the
// `#[ignore]`.

/// Runs `script` under bash and hs (`$HS_BIN`, `$HS_FUZZ_FLAGS` as for the fuzzer) and panics
/// with both results if they differ.
fn check_script(script: &str) {
    let cfg = Config::from_env();
    let (bash, hs) = run_pair(script.as_bytes(), &cfg.runner);
    let diffs = differences(&bash, &hs);
    assert!(
        diffs.is_empty(),
        "hs differs from bash ({diffs:?}) on:\n{script}\n{}",
        runner::describe(&bash, &hs)
    );
}

/// Found by the fuzzer (seeds 21, 64, 66, 79, 199, 524, 644, 870, 1204, 1620, 1725, 1795 of the
/// first 2,000, default flags): after a unit that is a *pipeline*, `$_` is the gate's argument.
/// The instrumented line is `if __hs_gate 0; then find a | sort; else __hs_replay; fi`; a
/// pipeline runs in subshells and leaves the shell's `$_` alone, so `$_` keeps the value from
/// `__hs_gate 0`, i.e. `0`, where bash has the value from before the pipeline (here empty).
/// (A simple-command unit sets `$_` itself, so only pipelines show it.) The parser leaves units
/// that expand `$_` unwrapped, but here it is the *next* command that reads it.
/// Fixed by 2e6d2c4 (every gate call passes the caller's `"$_"` as its last argument).
#[test]
fn regression_underscore_after_pipeline() {
    check_script("find a | sort\necho \"last=$_\"\n");
}

/// Found by the fuzzer (seeds 66 and 384 of the first 500, generator 3352314+, default flags):
/// `type f` (also `type -a f`, `command -V f`) prints the *instrumented* body of a function,
/// gates included (`if __hs_gate 0 "$_"; then ls a; else __hs_replay; fi`), where bash prints
/// the user's text. `declare -f f`, `typeset -f f`, `declare -f`, `compgen -A function` are
/// fine (hs runs those scripts unchanged); `type` and `command -V` were not detected.
/// Fixed by f1f3307 (such scripts run unchanged).
#[test]
fn regression_type_shows_instrumented_function() {
    check_script("f1() {\nls a\n}\ntype f1\n");
    check_script("f1() {\nls a\n}\ncommand -V f1\n");
}

/// Found by the fuzzer (seeds 101, 289, 381, 477 of the first 500, default flags): in an ERR
/// trap, `$BASH_COMMAND` for a failing *subshell* is the subshell's instrumented text:
/// bash prints `ERR: ( ls /nonexistent )`, hs prints
/// `ERR: ( if __hs_gate 0 "$_"; then\n    ls /nonexistent;\nelse\n    __hs_replay;\nfi )`.
/// (For a failing simple command, `if`, `{ }`, function call or `$( )` it is right.)
/// Fixed by f1f3307 (such scripts run unchanged).
#[test]
fn regression_err_trap_bash_command_in_subshell() {
    check_script("trap 'echo \"ERR: $BASH_COMMAND\"' ERR\n( ls /nonexistent )\necho \"rc=$?\"\n");
}
