//! `benchmarks overhead`: what hs's machinery costs when every gate answers "run it yourself".
//!
//! An empty script first gives the fixed cost of starting hs (3 × `--runs` runs each). Then two
//! measurements, each alternating bash and `hs --no-speculate` run by run (so drift in the
//! machine's speed hits both alike), reported as median and min–max over the runs:
//!
//! - (a) a script of 2,000 `/bin/true` calls; the per-gate cost is
//!   `(median hs − median bash) / 2000` (issue 2 asks for ≤ 1 ms);
//! - (b) every corpus script (`shared/corpus`, if present): its `.setup.sh` runs once in a
//!   private directory, and every run gets a fresh `cp -a` copy of it at one fixed path, with
//!   the environment `run_corpus.sh` gives (`LC_ALL=C`, a private `TMPDIR`, `SCALE`,
//!   `CORPUS_DIR`), stdin from `/dev/null`; the ratio hs/bash per script and its geometric
//!   mean (issue 2 asks for a geomean ≤ 1.03 and no script > 1.10). A run whose stdout, stderr,
//!   exit status or final files differ from bash's first run is flagged `DIFF`. Scripts under
//!   0.2 s get three times the runs.
//!
//! Each run is spawned and timed here (`common::timed`): wall time from spawn to exit, and CPU
//! time (user + system of the whole process tree, incl. hs's gate server, from `getrusage`). On a machine with other load,
//! the CPU ratio and the fastest runs' ratio (`min/min`) are the steadier figures; the limits
//! apply to the median wall-time ratio.
//!
//! Without `--hs`, the release `hs` is built first (`cargo build --release -p engine`) and taken
//! from beside this binary. `--check` turns the limits above into the exit status.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::common::{
    Outcome, Prepared, Sample, Side, Workload, corpus_dir, corpus_workloads, cpu_count, geomean,
    hs_binary, loadavg, temp_root, timed,
};

const HELP: &str = "\
usage: benchmarks overhead [OPTIONS]

Measures hs --no-speculate against bash, alternating A/B runs, median (min-max):
  (0) an empty script -> fixed cost of starting hs, in ms
  (a) a script of N /bin/true calls -> per-gate cost in ms = (hs - bash) / N
  (b) each corpus script -> hs/bash ratio per script and geomean

options:
  --runs N          runs per side for (a) (default 10)
  --corpus-runs N   runs per side and script for (b) (default 3; x3 for scripts under 0.2 s)
  --calls N         /bin/true calls in (a) (default 2000)
  --hs PATH         hs binary (default: build the release hs and use it)
  --hs-args ARGS    hs options, split on blanks (default: --no-speculate)
  --shell PATH      bash binary (default: bash)
  --corpus DIR      corpus directory (default: $HS_CORPUS, else ../shared/corpus beside the repo)
  --no-corpus       skip (b)
  --filter TEXT     only corpus entries whose family/name contains TEXT (repeatable)
  --json FILE       also write the results as JSON
  --check           exit 1 if per-gate > 1 ms, geomean > 1.03, any script > 1.10, or any DIFF
";

struct Opts {
    runs: usize,
    corpus_runs: usize,
    calls: usize,
    hs: Option<PathBuf>,
    hs_args: Vec<OsString>,
    shell: OsString,
    corpus: Option<PathBuf>,
    no_corpus: bool,
    filters: Vec<String>,
    json: Option<PathBuf>,
    check: bool,
}

fn parse(args: Vec<OsString>) -> Result<Option<Opts>> {
    let mut o = Opts {
        runs: 10,
        corpus_runs: 3,
        calls: 2000,
        hs: None,
        hs_args: vec!["--no-speculate".into()],
        shell: "bash".into(),
        corpus: std::env::var_os("HS_CORPUS").map(PathBuf::from),
        no_corpus: false,
        filters: vec![],
        json: None,
        check: false,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy().into_owned();
        let mut val = |name: &str| -> Result<OsString> {
            it.next().with_context(|| format!("{name} needs a value"))
        };
        let num = |v: OsString, name: &str| -> Result<usize> {
            let n: usize = v
                .to_string_lossy()
                .parse()
                .with_context(|| format!("bad {name}"))?;
            if n == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(n)
        };
        match a.as_str() {
            "--runs" => o.runs = num(val("--runs")?, "--runs")?,
            "--corpus-runs" => o.corpus_runs = num(val("--corpus-runs")?, "--corpus-runs")?,
            "--calls" => o.calls = num(val("--calls")?, "--calls")?,
            "--hs" => o.hs = Some(val("--hs")?.into()),
            "--hs-args" => {
                let v = val("--hs-args")?;
                o.hs_args = v
                    .to_string_lossy()
                    .split_whitespace()
                    .map(OsString::from)
                    .collect();
            }
            "--shell" => o.shell = val("--shell")?,
            "--corpus" => o.corpus = Some(val("--corpus")?.into()),
            "--no-corpus" => o.no_corpus = true,
            "--filter" => o
                .filters
                .push(val("--filter")?.to_string_lossy().into_owned()),
            "--json" => o.json = Some(val("--json")?.into()),
            "--check" => o.check = true,
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            other => bail!("unknown option {other:?} (see --help)"),
        }
    }
    Ok(Some(o))
}

/// Ratios hs/bash of two sides: median wall, fastest wall, median CPU.
fn ratios(bash: &Side, hs: &Side) -> (f64, f64, f64) {
    (
        hs.wall.median() / bash.wall.median(),
        hs.wall.min() / bash.wall.min(),
        hs.cpu.median() / bash.cpu.median(),
    )
}

/// A script of `calls` `/bin/true` lines under bash and hs, `runs` alternating runs each; `tag`
/// names the progress line. With 0 calls it measures the fixed cost of starting hs.
fn true_calls(
    o: &Opts,
    hs: &OsString,
    root: &Path,
    calls: usize,
    runs: usize,
    tag: &str,
) -> Result<(Side, Side)> {
    let script = root.join(format!("true{calls}.sh"));
    let mut text = String::from("# independent external commands\n");
    for _ in 0..calls {
        text.push_str("/bin/true\n");
    }
    std::fs::write(&script, text)?;
    let bash_argv = vec![o.shell.clone(), script.clone().into()];
    let mut hs_argv = vec![hs.clone()];
    hs_argv.extend(o.hs_args.iter().cloned());
    hs_argv.push(script.clone().into());
    let run = |argv: &[OsString]| -> Result<Sample> {
        let (s, out) = timed(argv, root, &[], root)?;
        if out.status != 0 {
            bail!(
                "{:?} failed with status {}: {}",
                argv,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(s)
    };
    // One warm-up run each (page cache, binary loading), not counted.
    run(&bash_argv)?;
    run(&hs_argv)?;
    let (mut b, mut h) = (Side::default(), Side::default());
    for r in 0..runs {
        let bash_first = r % 2 == 0;
        for side in [bash_first, !bash_first] {
            if side {
                b.push(run(&bash_argv)?);
            } else {
                h.push(run(&hs_argv)?);
            }
        }
        eprint!("\r{tag} run {}/{}", r + 1, runs);
    }
    eprintln!();
    Ok((b, h))
}

struct EntryResult {
    name: String,
    bash: Side,
    hs: Side,
    same: bool,
    error: Option<String>,
}

/// Measures one corpus entry; setup problems are reported in `error`, not as a failure.
fn corpus_entry(
    o: &Opts,
    w: &Workload,
    argvs: [&[OsString]; 2],
    root: &Path,
) -> Result<EntryResult> {
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let scale = std::env::var_os("SCALE").unwrap_or_else(|| "1".into());
    let mut result = EntryResult {
        name: w.name.clone(),
        bash: Side::default(),
        hs: Side::default(),
        same: true,
        error: None,
    };
    let p = match Prepared::new(w, root, &scale)? {
        Ok(p) => p,
        Err(e) => {
            result.error = Some(e);
            return Ok(result);
        }
    };
    let mut reference: Option<Outcome> = None;
    let mut runs = o.corpus_runs;
    let mut r = 0;
    while r < runs {
        let bash_first = r % 2 == 0;
        for side in [bash_first, !bash_first] {
            p.fresh()?;
            let argv = argvs[usize::from(!side)];
            let (sample, out) = timed(argv, &p.work, &p.env, &scratch)?;
            let got = Outcome::of(out, &p.work);
            match &reference {
                None if side => reference = Some(got),
                Some(want) if !want.differences(&got).is_empty() => result.same = false,
                _ => {}
            }
            if side {
                result.bash.push(sample)
            } else {
                result.hs.push(sample)
            }
        }
        // Short scripts are the noisiest: three times the runs.
        if r == 0 && result.bash.wall.samples[0] < 0.2 {
            runs = 3 * o.corpus_runs;
        }
        r += 1;
    }
    Ok(result)
}

/// (b): each corpus script, alternating bash and hs.
fn corpus(o: &Opts, hs: &OsString, corpus: &Path, root: &Path) -> Result<Vec<EntryResult>> {
    let entries = corpus_workloads(corpus, &o.filters)?;
    let mut results = vec![];
    for (i, w) in entries.iter().enumerate() {
        eprint!("\r(b) {}/{} {:<50}", i + 1, entries.len(), w.name);
        let bash_argv = vec![o.shell.clone(), w.script.clone().into()];
        let mut hs_argv = vec![hs.clone()];
        hs_argv.extend(o.hs_args.iter().cloned());
        hs_argv.push(w.script.clone().into());
        results.push(corpus_entry(o, w, [&bash_argv, &hs_argv], root)?);
    }
    eprintln!();
    Ok(results)
}

/// Entry point of `benchmarks overhead`.
pub(crate) fn main(args: Vec<OsString>) -> Result<()> {
    let Some(o) = parse(args)? else { return Ok(()) };
    let hs = hs_binary(o.hs.as_deref())?;
    let root = temp_root("overhead")?;
    let hs_cmd = format!(
        "{} {}",
        Path::new(&hs).display(),
        o.hs_args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (load1, load) = loadavg();
    println!(
        "overhead: `{hs_cmd}` vs `{}` (load average {load1} on {} CPUs at start)",
        Path::new(&o.shell).display(),
        cpu_count()
    );

    let (eb, eh) = true_calls(&o, &hs, &root, 0, 3 * o.runs, "(0)")?;
    let ms = |x: f64| x * 1000.0;
    println!(
        "\n(0) empty script, {} alternating runs each: fixed cost of starting hs {:.1} ms wall \
         (median; {:.1} ms from the fastest runs), {:.1} ms cpu\n    \
         wall: bash {}   hs {}",
        3 * o.runs,
        ms(eh.wall.median() - eb.wall.median()),
        ms(eh.wall.min() - eb.wall.min()),
        ms(eh.cpu.median() - eb.cpu.median()),
        eb.wall.show(),
        eh.wall.show(),
    );
    let (tb, th) = true_calls(&o, &hs, &root, o.calls, o.runs, "(a)")?;
    let n = o.calls as f64;
    let per_gate_ms = (th.wall.median() - tb.wall.median()) / n * 1000.0;
    let per_gate_fastest_ms = (th.wall.min() - tb.wall.min()) / n * 1000.0;
    let per_gate_cpu_ms = (th.cpu.median() - tb.cpu.median()) / n * 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n(a) {} x /bin/true, {} alternating runs each, median (min–max)\n    \
         wall: bash {}   hs {}\n    cpu:  bash {}   hs {}\n    \
         per-gate cost: {:.4} ms wall (limit 1 ms); {:.4} ms from the fastest runs; {:.4} ms cpu",
        o.calls,
        o.runs,
        tb.wall.show(),
        th.wall.show(),
        tb.cpu.show(),
        th.cpu.show(),
        per_gate_ms,
        per_gate_fastest_ms,
        per_gate_cpu_ms,
    );
    print!("{out}");
    let mut report = json!({
        "hs": hs_cmd, "shell": Path::new(&o.shell).display().to_string(), "loadavg_start": load,
        "startup": {"runs": 3 * o.runs, "bash": eb.json(), "hs": eh.json(),
                    "fixed_cost_ms": ms(eh.wall.median() - eb.wall.median()),
                    "fixed_cost_cpu_ms": ms(eh.cpu.median() - eb.cpu.median())},
        "true_calls": {"calls": o.calls, "runs": o.runs, "bash": tb.json(), "hs": th.json(),
                       "per_gate_ms": per_gate_ms, "per_gate_ms_fastest": per_gate_fastest_ms,
                       "per_gate_cpu_ms": per_gate_cpu_ms},
    });
    let mut failed = per_gate_ms > 1.0;

    let (corpus_dir, present) = corpus_dir(o.corpus.as_deref());
    if o.no_corpus {
        println!("\n(b) corpus skipped (--no-corpus)");
    } else if !present {
        println!(
            "\n(b) corpus skipped: no run_corpus.sh in {}",
            corpus_dir.display()
        );
    } else {
        let res = corpus(&o, &hs, &corpus_dir, &root)?;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n(b) corpus, {} alternating runs each (x3 under 0.2 s), wall median (min–max)\n\
             {:<40} {:>26} {:>26} {:>7} {:>7} {:>7}  output",
            o.corpus_runs, "entry", "bash", "hs", "hs/bash", "min/min", "cpu"
        );
        for r in &res {
            let (w, m, c) = ratios(&r.bash, &r.hs);
            let verdict = match (&r.error, r.same) {
                (Some(e), _) => e.as_str(),
                (None, true) => "same",
                (None, false) => "DIFF",
            };
            let _ = writeln!(
                out,
                "{:<40} {:>26} {:>26} {:>7.3} {:>7.3} {:>7.3}  {}",
                r.name,
                r.bash.wall.show(),
                r.hs.wall.show(),
                w,
                m,
                c,
                verdict
            );
        }
        let ok: Vec<&EntryResult> = res.iter().filter(|r| r.error.is_none()).collect();
        let gm = geomean(ok.iter().map(|r| ratios(&r.bash, &r.hs).0));
        let gm_min = geomean(ok.iter().map(|r| ratios(&r.bash, &r.hs).1));
        let gm_cpu = geomean(ok.iter().map(|r| ratios(&r.bash, &r.hs).2));
        let worst = ok.iter().max_by(|a, b| {
            ratios(&a.bash, &a.hs)
                .0
                .total_cmp(&ratios(&b.bash, &b.hs).0)
        });
        let worst_ratio = worst.map_or(f64::NAN, |w| ratios(&w.bash, &w.hs).0);
        let ndiff = ok.iter().filter(|r| !r.same).count();
        let nerr = res.len() - ok.len();
        let _ = writeln!(
            out,
            "geomean hs/bash: {gm:.3} wall (limit 1.03), {gm_min:.3} fastest runs, {gm_cpu:.3} cpu; \
             worst {worst_ratio:.3} {} (limit 1.10); {ndiff} of {} outputs differ; {nerr} setups failed",
            worst.map_or("-", |w| w.name.as_str()),
            ok.len()
        );
        print!("{out}");
        failed |= gm > 1.03 || worst_ratio > 1.10 || ndiff > 0 || nerr > 0;
        report["corpus"] = json!({
            "runs": o.corpus_runs,
            "geomean_ratio": gm,
            "geomean_fastest_ratio": gm_min,
            "geomean_cpu_ratio": gm_cpu,
            "max_ratio": worst_ratio,
            "max_ratio_entry": worst.map(|w| w.name.clone()),
            "differ": ndiff,
            "setup_failed": nerr,
            "entries": res.iter().map(|r| {
                let (w, m, c) = ratios(&r.bash, &r.hs);
                json!({"name": r.name, "bash": r.bash.json(), "hs": r.hs.json(), "ratio": w,
                       "fastest_ratio": m, "cpu_ratio": c, "same": r.same, "error": r.error})
            }).collect::<Vec<_>>(),
        });
    }
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    let _ = std::fs::remove_dir_all(&root);
    if o.check && failed {
        bail!("overhead above the limits of issue 2 (see the table)");
    }
    Ok(())
}
