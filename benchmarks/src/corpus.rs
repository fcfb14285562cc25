//! `benchmarks corpus`: hs's speedup over bash with speculation on, per script, against the
//! speedup the script's dependency DAG allows (issue 6, item 1).
//!
//! Workloads: every entry of the shared corpus (`../shared/corpus`, if present) and the
//! built-in ones in `benchmarks/workloads/` (`NAME.sh`, inputs from `NAME.setup.sh`). For each,
//! the setup runs once into a pristine directory; every run then gets a fresh `cp -a` copy of
//! it at one fixed path, a fresh `TMPDIR`, `LC_ALL=C`, `SCALE`, stdin from `/dev/null` (so bash
//! and hs see identical inputs), and bash and hs run in alternation, A B A B …, `--runs` times
//! each. Every hs run writes `--report`; every run's exit status, stdout, stderr and final files
//! are compared with bash's first run.
//!
//! Per script: median wall time of each side (min–max), speedup = bash / hs (medians), the
//! ideal speedup the run's DAG allows on the cores available,
//! `ideal = total / max(critical_path, total / cores)` with `cores = min(-j, CPUs)` and `total`,
//! `critical_path` from hs's report (median over the runs), capped by what bash's own CPU use
//! allows: hs must do bash's work too, so it cannot beat `bash_wall / (bash_cpu / cores)`
//! (pipelines already run in parallel under bash: "bash cores" = bash_cpu / bash_wall);
//! efficiency = speedup / ideal, and
//! wasted work = `stats.wasted / (total + wasted)` (median over the runs). Geomean row over the
//! scripts that ran. Table on stdout; `--csv`, `--json` for the same figures.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::common::{
    Outcome, Prepared, Side, Workload, builtin_dir, builtin_workloads, corpus_dir,
    corpus_workloads, cpu_count, geomean, hs_binary, loadavg, median, repo_root, temp_root, timed,
};

const HELP: &str = "\
usage: benchmarks corpus [OPTIONS]

hs (speculating) against bash on the corpus and the built-in workloads, alternating runs:
per script bash and hs median wall time (min-max), speedup = bash/hs, the ideal speedup the
run's DAG allows (total / max(critical path, total / cores), cores = min(-j, CPUs), from hs
--report) capped by bash's own CPU use (at best hs spreads bash's CPU time over the
cores: cores × bash wall / bash CPU; \"bash cores\" = bash CPU / bash wall, above 1 where
pipelines already run in parallel), efficiency = speedup / ideal, wasted work %, and whether
hs's exit status, stdout, stderr and final files were identical to bash's.

options:
  --scale N         SCALE for the input generators (default: $SCALE, else 1)
  -j N              passed to hs as -j N (default: hs's own, the number of CPUs)
  --runs K          runs per side and script (default 3)
  --only NAME...    only scripts whose family/name contains one of the NAMEs (repeatable;
                    built-in ones are named builtin/NAME)
  --csv FILE        also write the table as CSV
  --json FILE       also write the results as JSON (with every hs run's report summary)
  --hs PATH         hs binary (default: build the release hs and use it)
  --shell PATH      bash binary (default: bash)
  --corpus DIR      corpus directory (default: $HS_CORPUS, else ../shared/corpus beside the repo)
  --no-corpus       only the built-in workloads
  --no-builtin      only the corpus
  --keep-diffs DIR  where to save the outputs of runs that differ from bash
                    (default: $TMPDIR/hs-bench-corpus-diffs)
";

struct Opts {
    scale: OsString,
    jobs: Option<usize>,
    runs: usize,
    only: Vec<String>,
    csv: Option<PathBuf>,
    json: Option<PathBuf>,
    hs: Option<PathBuf>,
    shell: OsString,
    corpus: Option<PathBuf>,
    no_corpus: bool,
    no_builtin: bool,
    keep_diffs: PathBuf,
}

fn parse(args: Vec<OsString>) -> Result<Option<Opts>> {
    let mut o = Opts {
        scale: std::env::var_os("SCALE").unwrap_or_else(|| "1".into()),
        jobs: None,
        runs: 3,
        only: vec![],
        csv: None,
        json: None,
        hs: None,
        shell: "bash".into(),
        corpus: None,
        no_corpus: false,
        no_builtin: false,
        keep_diffs: std::env::temp_dir().join("hs-bench-corpus-diffs"),
    };
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy().into_owned();
        // `--opt=value` as well as `--opt value`.
        let (a, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(OsString::from(v))),
            _ => (a, None),
        };
        let mut val = |name: &str| -> Result<OsString> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().with_context(|| format!("{name} needs a value")),
            }
        };
        let num = |v: OsString, name: &str| -> Result<usize> {
            v.to_string_lossy()
                .parse()
                .with_context(|| format!("bad {name} {v:?}"))
        };
        match a.as_str() {
            "--scale" => {
                let v = val("--scale")?;
                if num(v.clone(), "--scale")? == 0 {
                    bail!("--scale must be at least 1");
                }
                o.scale = v;
            }
            "-j" | "--jobs" => o.jobs = Some(num(val("-j")?, "-j")?),
            "--runs" => {
                o.runs = num(val("--runs")?, "--runs")?;
                if o.runs == 0 {
                    bail!("--runs must be at least 1");
                }
            }
            "--only" => {
                o.only.push(val("--only")?.to_string_lossy().into_owned());
                // Further names up to the next option.
                while let Some(n) = it.next_if(|n| !n.to_string_lossy().starts_with('-')) {
                    o.only.push(n.to_string_lossy().into_owned());
                }
            }
            "--csv" => o.csv = Some(val("--csv")?.into()),
            "--json" => o.json = Some(val("--json")?.into()),
            "--hs" => o.hs = Some(val("--hs")?.into()),
            "--shell" => o.shell = val("--shell")?,
            "--corpus" => o.corpus = Some(val("--corpus")?.into()),
            "--no-corpus" => o.no_corpus = true,
            "--no-builtin" => o.no_builtin = true,
            "--keep-diffs" => o.keep_diffs = val("--keep-diffs")?.into(),
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            other => bail!("unknown option {other:?} (see --help)"),
        }
    }
    Ok(Some(o))
}

/// The ideal speedup a run's DAG allows on `cores` cores: its total work over the longest of
/// its critical path and the work spread evenly on the cores. NaN without work.
pub(crate) fn ideal_speedup(total: f64, critical_path: f64, cores: usize) -> f64 {
    if total.is_nan() || total <= 0.0 || cores == 0 {
        return f64::NAN;
    }
    total / critical_path.max(total / cores as f64)
}

/// The most any runner can gain over bash on `cores` cores without doing less work than
/// bash: bash's CPU time spread evenly, `cores * wall / cpu`. NaN without a CPU figure.
pub(crate) fn cpu_bound(wall: f64, cpu: f64, cores: usize) -> f64 {
    if cpu.is_nan() || cpu <= 0.0 || cores == 0 {
        return f64::NAN;
    }
    cores as f64 * wall / cpu
}

/// The DAG's ideal capped by the CPU bound (either alone where the other is unknown).
pub(crate) fn capped_ideal(dag: f64, cpu: f64) -> f64 {
    match (dag.is_nan(), cpu.is_nan()) {
        (true, _) => f64::NAN,
        (false, true) => dag,
        (false, false) => dag.min(cpu),
    }
}

/// Achieved over ideal speedup.
pub(crate) fn efficiency(speedup: f64, ideal: f64) -> f64 {
    speedup / ideal
}

/// Share of all the run time spent in runs thrown away: `wasted / (total + wasted)`; 0 when
/// nothing ran.
pub(crate) fn wasted_fraction(wasted: f64, total: f64) -> f64 {
    let all = total + wasted;
    if all > 0.0 { wasted / all } else { 0.0 }
}

/// A duration in an hs report: seconds as a number, or serde's `{secs, nanos}`.
fn seconds(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| {
        let s = v.get("secs")?.as_f64()?;
        let n = v.get("nanos").and_then(Value::as_f64).unwrap_or(0.0);
        Some(s + n / 1e9)
    })
}

/// What one hs run's `--report` says about its DAG.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RunReport {
    pub(crate) critical_path: f64,
    pub(crate) total: f64,
    pub(crate) wasted: f64,
    /// `stats` as the report gives it.
    pub(crate) stats: Value,
}

impl RunReport {
    /// Reads a report; `None` without speculation (`"speculation": false`) or when a figure
    /// is missing.
    pub(crate) fn parse(v: &Value) -> Option<RunReport> {
        if v.get("speculation").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        let stats = v.get("stats")?.clone();
        Some(RunReport {
            critical_path: seconds(v.get("critical_path")?)?,
            total: seconds(v.get("total")?)?,
            wasted: stats.get("wasted").and_then(seconds).unwrap_or(0.0),
            stats,
        })
    }

    fn ideal(&self, cores: usize) -> f64 {
        ideal_speedup(self.total, self.critical_path, cores)
    }

    fn wasted_fraction(&self) -> f64 {
        wasted_fraction(self.wasted, self.total)
    }

    fn json(&self, cores: usize) -> Value {
        json!({"critical_path_s": self.critical_path, "total_s": self.total,
               "wasted_s": self.wasted, "ideal": self.ideal(cores),
               "wasted_fraction": self.wasted_fraction(), "stats": self.stats})
    }
}

/// One workload's measurements.
struct Row {
    name: String,
    source: &'static str,
    bash: Side,
    hs: Side,
    /// One per hs run; `None` where hs wrote no usable report.
    reports: Vec<Option<RunReport>>,
    /// Why some hs runs have no report.
    no_report: Vec<&'static str>,
    /// Per differing run: "hs run N: what differs".
    diffs: Vec<String>,
    /// bash's own runs disagreed with each other (the script is not deterministic).
    bash_varies: bool,
    /// Setup failure or the like: no measurements.
    error: Option<String>,
}

impl Row {
    fn speedup(&self) -> f64 {
        self.bash.wall.median() / self.hs.wall.median()
    }
    /// The DAG's ideal (median over the runs), without the CPU cap.
    fn dag_ideal(&self, cores: usize) -> f64 {
        let v: Vec<f64> = self
            .reports
            .iter()
            .flatten()
            .map(|r| r.ideal(cores))
            .collect();
        median(&v)
    }
    /// bash's CPU time over its wall time (medians): the cores its pipelines keep busy.
    fn bash_cores(&self) -> f64 {
        self.bash.cpu.median() / self.bash.wall.median()
    }
    fn ideal(&self, cores: usize) -> f64 {
        let cpu = cpu_bound(self.bash.wall.median(), self.bash.cpu.median(), cores);
        capped_ideal(self.dag_ideal(cores), cpu)
    }
    fn efficiency(&self, cores: usize) -> f64 {
        efficiency(self.speedup(), self.ideal(cores))
    }
    fn wasted(&self) -> f64 {
        let v: Vec<f64> = self
            .reports
            .iter()
            .flatten()
            .map(RunReport::wasted_fraction)
            .collect();
        median(&v)
    }
    fn identical(&self) -> &'static str {
        match (&self.error, self.diffs.is_empty(), self.bash_varies) {
            (Some(_), _, _) => "-",
            (None, true, false) => "yes",
            (None, false, _) => "NO",
            (None, true, true) => "bash varies",
        }
    }
}

/// Runs one workload: setup, then bash and hs alternately.
fn measure(o: &Opts, w: &Workload, hs_argv: &[OsString], root: &Path, cores: usize) -> Result<Row> {
    let mut row = Row {
        name: w.name.clone(),
        source: w.source,
        bash: Side::default(),
        hs: Side::default(),
        reports: vec![],
        no_report: vec![],
        diffs: vec![],
        bash_varies: false,
        error: None,
    };
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let p = match Prepared::new(w, root, &o.scale)? {
        Ok(p) => p,
        Err(e) => {
            row.error = Some(e);
            return Ok(row);
        }
    };
    let report = scratch.join("report.json");
    let bash_argv = vec![o.shell.clone(), w.script.clone().into()];
    let mut hs_argv = hs_argv.to_vec();
    hs_argv.push("--report".into());
    hs_argv.push(report.clone().into());
    hs_argv.push(w.script.clone().into());
    let mut reference: Option<Outcome> = None;
    for r in 0..o.runs {
        for hs in [false, true] {
            p.fresh()?;
            let _ = std::fs::remove_file(&report);
            let argv = if hs { &hs_argv } else { &bash_argv };
            let (sample, out) = timed(argv, &p.work, &p.env, &scratch)?;
            let got = Outcome::of(out, &p.work);
            if !hs {
                row.bash.push(sample);
                match &reference {
                    None => reference = Some(got),
                    Some(want) => row.bash_varies |= *want != got,
                }
                continue;
            }
            row.hs.push(sample);
            let rep = read_report(&report);
            let want = reference.as_ref().expect("bash ran first");
            let d = want.differences(&got);
            if !d.is_empty() {
                row.diffs
                    .push(format!("hs run {}: {}", r + 1, d.join("; ")));
                let dir = o
                    .keep_diffs
                    .join(w.name.replace('/', "__"))
                    .join(format!("run{}", r + 1));
                want.save(&dir, "bash")?;
                got.save(&dir, "hs")?;
                let _ = std::fs::copy(&report, dir.join("hs.report.json"));
            }
            if let Err(why) = rep
                && !row.no_report.contains(&why)
            {
                row.no_report.push(why);
            }
            row.reports.push(rep.ok());
        }
        let ideal = row.reports[r].as_ref().map_or(f64::NAN, |x| x.ideal(cores));
        eprintln!(
            "  run {}/{}: bash {:.3} s, hs {:.3} s, ideal {}{}",
            r + 1,
            o.runs,
            row.bash.wall.samples[r],
            row.hs.wall.samples[r],
            fmt_x(ideal),
            if row
                .diffs
                .iter()
                .any(|d| d.starts_with(&format!("hs run {}:", r + 1)))
            {
                ", DIFFERS from bash"
            } else {
                ""
            }
        );
    }
    Ok(row)
}

/// hs's report of the run that just ended, or why there is none. It is written by hs's gate
/// server, which may finish a moment after hs itself.
fn read_report(path: &Path) -> std::result::Result<RunReport, &'static str> {
    for _ in 0..20 {
        if let Ok(text) = std::fs::read(path)
            && let Ok(v) = serde_json::from_slice::<Value>(&text)
        {
            return RunReport::parse(&v).ok_or(
                if v.get("speculation").and_then(Value::as_bool) == Some(false) {
                    "hs did not speculate (report: \"speculation\": false; HS_LOG=debug says why)"
                } else {
                    "hs's report lacks total or critical_path"
                },
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err("hs wrote no report")
}

/// `hs --version`, and the repository's commit with the top-level directories that have
/// uncommitted changes (the binary may include them).
fn versions(hs: &OsString) -> (String, String) {
    let version = Command::new(hs)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hs (unknown version)".into());
    let git = |args: &[&str]| -> Option<String> {
        let o = Command::new("git")
            .args(args)
            .current_dir(repo_root())
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let mut commit = git(&["rev-parse", "--short=12", "HEAD"])
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    if let Some(st) = git(&["status", "--porcelain", "--untracked-files=no"]) {
        let mut dirs: Vec<&str> = st
            .lines()
            .filter_map(|l| l.get(3..)?.split('/').next())
            .collect();
        dirs.sort();
        dirs.dedup();
        if !dirs.is_empty() {
            let _ = write!(commit, " + uncommitted changes in {}", dirs.join(", "));
        }
    }
    (version, commit)
}

fn fmt_x(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "-".into()
    }
}

fn fmt_pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}%", 100.0 * x)
    } else {
        "-".into()
    }
}

fn fmt_side(s: &Side) -> String {
    if s.wall.samples.is_empty() {
        "-".into()
    } else {
        format!(
            "{:.3} ({:.3}–{:.3})",
            s.wall.median(),
            s.wall.min(),
            s.wall.max()
        )
    }
}

/// Geomeans of speedup, ideal and efficiency over the rows that ran.
fn geomeans(rows: &[Row], cores: usize) -> (f64, f64, f64) {
    let ok = || rows.iter().filter(|r| r.error.is_none());
    (
        geomean(ok().map(Row::speedup)),
        geomean(ok().map(|r| r.ideal(cores))),
        geomean(ok().map(|r| r.efficiency(cores))),
    )
}

fn table(rows: &[Row], cores: usize) -> String {
    let mut out = String::new();
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(8);
    let _ = writeln!(
        out,
        "{:<w$}  {:>23}  {:>23}  {:>7}  {:>10}  {:>5}  {:>6}  {:>6}  identical",
        "script",
        "bash s median (min–max)",
        "hs s median (min–max)",
        "speedup",
        "bash cores",
        "ideal",
        "effic.",
        "wasted",
    );
    for r in rows {
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{:<w$}  {e}", r.name);
            continue;
        }
        let _ = writeln!(
            out,
            "{:<w$}  {:>23}  {:>23}  {:>7}  {:>10}  {:>5}  {:>6}  {:>6}  {}",
            r.name,
            fmt_side(&r.bash),
            fmt_side(&r.hs),
            fmt_x(r.speedup()),
            format!("{:.2}", r.bash_cores()),
            fmt_x(r.ideal(cores)),
            fmt_pct(r.efficiency(cores)),
            fmt_pct(r.wasted()),
            r.identical()
        );
    }
    let (gs, gi, ge) = geomeans(rows, cores);
    let n = rows.iter().filter(|r| r.error.is_none()).count();
    let _ = writeln!(
        out,
        "{:<w$}  {:>23}  {:>23}  {:>7}  {:>10}  {:>5}  {:>6}",
        format!("geomean ({n})"),
        "",
        "",
        fmt_x(gs),
        "",
        fmt_x(gi),
        fmt_pct(ge)
    );
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(rows: &[Row], cores: usize) -> String {
    let mut out = String::from(
        "script,source,bash_median_s,bash_min_s,bash_max_s,hs_median_s,hs_min_s,hs_max_s,\
         speedup,ideal,efficiency,wasted_fraction,identical,note\n",
    );
    let num = |x: f64| {
        if x.is_finite() {
            format!("{x:.6}")
        } else {
            String::new()
        }
    };
    for r in rows {
        let note = r.error.clone().unwrap_or_else(|| r.diffs.join(" | "));
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.name),
            r.source,
            num(r.bash.wall.median()),
            num(r.bash.wall.min()),
            num(r.bash.wall.max()),
            num(r.hs.wall.median()),
            num(r.hs.wall.min()),
            num(r.hs.wall.max()),
            num(r.speedup()),
            num(r.ideal(cores)),
            num(r.efficiency(cores)),
            num(r.wasted()),
            if r.error.is_some() { "" } else { r.identical() },
            csv_field(&note)
        );
    }
    let (gs, gi, ge) = geomeans(rows, cores);
    let _ = writeln!(out, "geomean,,,,,,,,{},{},{},,,", num(gs), num(gi), num(ge));
    out
}

/// Entry point of `benchmarks corpus`.
pub(crate) fn main(args: Vec<OsString>) -> Result<()> {
    let Some(o) = parse(args)? else { return Ok(()) };
    let hs = hs_binary(o.hs.as_deref())?;
    let cpus = cpu_count();
    let cores = o.jobs.unwrap_or(cpus).min(cpus);
    let (version, commit) = versions(&hs);
    let (load1, load) = loadavg();

    let mut workloads = vec![];
    let (corpus, present) = corpus_dir(o.corpus.as_deref());
    if o.no_corpus {
        println!("corpus skipped (--no-corpus)");
    } else if !present {
        println!(
            "corpus skipped: no run_corpus.sh in {} (set --corpus or $HS_CORPUS)",
            corpus.display()
        );
    } else {
        workloads.extend(corpus_workloads(&corpus, &o.only)?);
    }
    if !o.no_builtin {
        workloads.extend(builtin_workloads(&builtin_dir(), &o.only)?);
    }
    if workloads.is_empty() {
        bail!("no workload to run (check --only / --no-corpus / --no-builtin)");
    }

    let mut hs_argv = vec![hs.clone()];
    if let Some(j) = o.jobs {
        hs_argv.push("-j".into());
        hs_argv.push(j.to_string().into());
    }
    let hs_cmd = hs_argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    match &o.hs {
        None => println!("{version}, built from commit {commit}"),
        Some(_) => println!(
            "{version} ({}, given by --hs; the repository is at commit {commit})",
            Path::new(&hs).display()
        ),
    }
    println!(
        "{cpus} CPUs; hs -j {} -> ideal computed for {cores} cores; SCALE={}; {} alternating \
         runs each (bash first); load average {load1} at start",
        o.jobs
            .map_or_else(|| format!("default ({cpus})"), |j| j.to_string()),
        o.scale.to_string_lossy(),
        o.runs
    );
    println!(
        "`{hs_cmd} --report R SCRIPT` vs `{} SCRIPT`, {} scripts\n",
        o.shell.to_string_lossy(),
        workloads.len()
    );

    let root = temp_root("corpus")?;
    let _ = std::fs::remove_dir_all(&o.keep_diffs);
    let mut rows = vec![];
    for (i, w) in workloads.iter().enumerate() {
        eprintln!("[{}/{}] {}", i + 1, workloads.len(), w.name);
        rows.push(measure(&o, w, &hs_argv, &root, cores)?);
    }
    let _ = std::fs::remove_dir_all(&root);

    let mut out = String::from("\n");
    out.push_str(&table(&rows, cores));
    let differ: Vec<&Row> = rows.iter().filter(|r| !r.diffs.is_empty()).collect();
    let varies: Vec<&str> = rows
        .iter()
        .filter(|r| r.bash_varies)
        .map(|r| r.name.as_str())
        .collect();
    let failed: Vec<&Row> = rows.iter().filter(|r| r.error.is_some()).collect();
    let _ = writeln!(
        out,
        "\n{} of {} scripts identical to bash in every run; {} setups failed",
        rows.len() - failed.len() - differ.len(),
        rows.len() - failed.len(),
        failed.len()
    );
    for r in &differ {
        for d in &r.diffs {
            let _ = writeln!(out, "  DIFF {}: {d}", r.name);
        }
    }
    if !differ.is_empty() {
        let _ = writeln!(
            out,
            "  (bash's and hs's outputs of those runs saved under {})",
            o.keep_diffs.display()
        );
    }
    if !varies.is_empty() {
        let _ = writeln!(
            out,
            "  bash's own runs differ from each other for: {}",
            varies.join(", ")
        );
    }
    for r in rows.iter().filter(|r| r.error.is_none()) {
        for why in &r.no_report {
            let _ = writeln!(out, "  no ideal for {}: {why}", r.name);
        }
    }
    print!("{out}");

    if let Some(path) = &o.csv {
        std::fs::write(path, csv(&rows, cores))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &o.json {
        let (gs, gi, ge) = geomeans(&rows, cores);
        let report = json!({
            "hs": hs_cmd, "hs_version": version, "commit": commit,
            "shell": o.shell.to_string_lossy(), "cpus": cpus, "jobs": o.jobs, "cores": cores,
            "scale": o.scale.to_string_lossy(), "runs": o.runs, "loadavg_start": load,
            "geomean": {"speedup": gs, "ideal": gi, "efficiency": ge},
            "scripts": rows.iter().map(|r| json!({
                "name": r.name, "source": r.source, "error": r.error,
                "bash": r.bash.json(), "hs": r.hs.json(),
                "speedup": r.speedup(), "ideal": r.ideal(cores),
                "dag_ideal": r.dag_ideal(cores), "bash_cores": r.bash_cores(),
                "efficiency": r.efficiency(cores), "wasted_fraction": r.wasted(),
                "identical": r.error.is_none() && r.diffs.is_empty(),
                "differences": r.diffs, "bash_varies": r.bash_varies, "no_report": r.no_report,
                "reports": r.reports.iter()
                    .map(|x| x.as_ref().map_or(Value::Null, |x| x.json(cores)))
                    .collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn ideal_is_bounded_by_cores_and_critical_path() {
        // 10 s of independent work on 2 cores: the cores bound it.
        assert!(close(ideal_speedup(10.0, 1.0, 2), 2.0));
        // ... on 64 cores: the critical path does.
        assert!(close(ideal_speedup(10.0, 1.0, 64), 10.0));
        // A fully sequential chain: nothing to gain.
        assert!(close(ideal_speedup(10.0, 10.0, 2), 1.0));
        // Between the two.
        assert!(close(ideal_speedup(9.0, 6.0, 4), 1.5));
        // One core.
        assert!(close(ideal_speedup(9.0, 0.5, 1), 1.0));
        // Nothing ran, or no core: undefined.
        assert!(ideal_speedup(0.0, 0.0, 2).is_nan());
        assert!(ideal_speedup(1.0, 1.0, 0).is_nan());
    }

    #[test]
    fn ideal_is_capped_by_bash_cpu_use() {
        // bash kept 1.5 cores busy: on 2 cores at most 2 / 1.5 faster.
        assert!(close(cpu_bound(3.0, 4.5, 2), 4.0 / 3.0));
        assert!(close(capped_ideal(2.0, cpu_bound(3.0, 4.5, 2)), 4.0 / 3.0));
        // A script waiting on I/O (CPU under wall) is left to its DAG.
        assert!(close(capped_ideal(1.5, cpu_bound(3.0, 1.0, 2)), 1.5));
        assert!(close(capped_ideal(1.5, f64::NAN), 1.5));
        assert!(capped_ideal(f64::NAN, 2.0).is_nan());
        assert!(cpu_bound(1.0, 0.0, 2).is_nan());
    }

    #[test]
    fn efficiency_and_wasted() {
        assert!(close(efficiency(1.5, 2.0), 0.75));
        assert!(efficiency(1.5, f64::NAN).is_nan());
        assert!(close(wasted_fraction(1.0, 3.0), 0.25));
        assert!(close(wasted_fraction(0.0, 3.0), 0.0));
        assert!(close(wasted_fraction(0.0, 0.0), 0.0));
    }

    #[test]
    fn geomean_of_speedups() {
        assert!(close(geomean([1.0, 4.0].into_iter()), 2.0));
        assert!(close(geomean([0.5, 2.0, 1.0].into_iter()), 1.0));
        // Efficiency of the geomeans is the geomean of the efficiencies.
        let (s, i) = ([1.2, 1.8, 0.9], [2.0, 2.0, 1.0]);
        let e: Vec<f64> = s.iter().zip(&i).map(|(s, i)| efficiency(*s, *i)).collect();
        assert!(close(
            geomean(e.into_iter()),
            geomean(s.into_iter()) / geomean(i.into_iter())
        ));
    }

    #[test]
    fn report_figures() {
        let v = json!({
            "speculation": true, "critical_path": 0.5, "total": 2.0,
            "stats": {"started": 3, "wasted": {"secs": 1, "nanos": 500_000_000}},
        });
        let r = RunReport::parse(&v).unwrap();
        assert!(close(r.wasted, 1.5));
        assert!(close(r.ideal(2), 2.0));
        assert!(close(r.ideal(8), 4.0));
        assert!(close(r.wasted_fraction(), 1.5 / 3.5));
        let v = json!({"speculation": true, "critical_path": 1.0, "total": 2.0,
                       "stats": {"wasted": 0.25}});
        assert!(close(RunReport::parse(&v).unwrap().wasted, 0.25));
        assert!(RunReport::parse(&json!({"speculation": false, "gates": 3})).is_none());
    }

    #[test]
    fn options() {
        let o = parse(
            [
                "--scale", "2", "-j", "4", "--runs", "5", "--only", "a", "b", "--csv", "x.csv",
                "--only=c",
            ]
            .map(OsString::from)
            .to_vec(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.scale, "2");
        assert_eq!(o.jobs, Some(4));
        assert_eq!(o.runs, 5);
        assert_eq!(o.only, ["a", "b", "c"]);
        assert_eq!(o.csv.as_deref(), Some(Path::new("x.csv")));
        assert!(parse(vec!["--runs".into(), "0".into()]).is_err());
    }
}
