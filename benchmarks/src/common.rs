//! What the bash-vs-hs subcommands (`overhead`, `corpus`) share: statistics over timed runs,
//! building and finding hs, the timing wrapper, workload discovery (the shared corpus and the
//! built-in `benchmarks/workloads/`), per-run preparation of identical inputs, and the
//! comparison of what a run left behind (exit status, stdout, stderr, final files).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::hash::Hasher as _;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Median, min and max of a sample (seconds).
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) samples: Vec<f64>,
}

impl Stats {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.samples.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    pub(crate) fn median(&self) -> f64 {
        median(&self.samples)
    }
    pub(crate) fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    pub(crate) fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
    pub(crate) fn show(&self) -> String {
        format!(
            "{:8.4} s ({:.4}–{:.4})",
            self.median(),
            self.min(),
            self.max()
        )
    }
    pub(crate) fn json(&self) -> Value {
        json!({"median_s": self.median(), "min_s": self.min(), "max_s": self.max(),
               "samples_s": self.samples})
    }
}

/// Median of the finite values (NaN if there are none).
pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Geometric mean of the finite positive values (NaN if there are none).
pub(crate) fn geomean(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs.filter(|x| x.is_finite() && *x > 0.0) {
        s += x.ln();
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        (s / n as f64).exp()
    }
}

/// One timed run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) wall: f64,
    /// User + system time of the whole process tree.
    pub(crate) cpu: f64,
}

/// Wall and CPU samples of one side (bash or hs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Side {
    pub(crate) wall: Stats,
    pub(crate) cpu: Stats,
}

impl Side {
    pub(crate) fn push(&mut self, s: Sample) {
        self.wall.samples.push(s.wall);
        self.cpu.samples.push(s.cpu);
    }
    pub(crate) fn json(&self) -> Value {
        json!({"wall": self.wall.json(), "cpu": self.cpu.json()})
    }
}

/// The repository root (this package's parent directory, fixed at build time).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the release hs and returns its path (beside this binary, else in the release
/// directory of the target `.cargo/config.toml` names, or of the host).
pub(crate) fn build_hs() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the release hs (cargo build --release -p engine --bin hs) ...");
    let st = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "engine", "--bin", "hs"])
        .current_dir(repo_root())
        .status()
        .context("failed to run cargo build for hs")?;
    if !st.success() {
        bail!("cargo build --release -p engine failed ({st})");
    }
    let beside = std::env::current_exe()?.with_file_name("hs");
    let candidates = [
        beside,
        repo_root().join("target/x86_64-unknown-linux-gnu/release/hs"),
        repo_root().join("target/release/hs"),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .context("built hs, but found it neither beside this binary nor under target/")
}

/// The hs to measure: `given` made absolute (runs happen in other directories), else the
/// freshly built release hs.
pub(crate) fn hs_binary(given: Option<&Path>) -> Result<OsString> {
    Ok(match given {
        Some(p) => std::fs::canonicalize(p)
            .with_context(|| format!("no hs at {}", p.display()))?
            .into(),
        None => build_hs()?.into(),
    })
}

/// A fresh private directory under the system's temporary directory.
pub(crate) fn temp_root(tag: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("hs-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}

/// The first field of /proc/loadavg, and the whole line.
pub(crate) fn loadavg() -> (String, String) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1 = load.split_whitespace().next().unwrap_or("?").to_string();
    (load1, load.trim().to_string())
}

/// CPUs this process may run on.
pub(crate) fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What a timed run produced besides its times.
pub(crate) struct RunOutput {
    pub(crate) status: i32,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

/// How long a timed run may take before it is killed.
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(900);

/// How long to wait, after a timed run exits, for processes it left behind (hs's gate server
/// outlives the shell by a moment) so that their CPU time is counted.
const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `argv` in `cwd` with `env` added and stdin from /dev/null, timed; output goes to files
/// under `scratch`. Wall time runs from the spawn to the command's exit (µs resolution); CPU
/// time is user + system of everything it started, from `getrusage(RUSAGE_CHILDREN)`: this
/// process is a child subreaper, so processes the command leaves behind are reaped here (for up
/// to [`ORPHAN_GRACE`]) and counted too. A run over [`TIME_LIMIT`] is killed.
pub(crate) fn timed(
    argv: &[OsString],
    cwd: &Path,
    env: &[(&str, OsString)],
    scratch: &Path,
) -> Result<(Sample, RunOutput)> {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use std::time::{Duration, Instant};
    let cpu_so_far = || -> Result<f64> {
        let u = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
        Ok(secs(u.user_time()) + secs(u.system_time()))
    };
    nix::sys::prctl::set_child_subreaper(true).context("cannot become a child subreaper")?;
    let (o, e) = (scratch.join("stdout"), scratch.join("stderr"));
    let file = |p: &Path| {
        std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))
    };
    let (out_file, err_file) = (file(&o)?, file(&e)?);
    let (program, args) = argv.split_first().context("empty command")?;
    let cpu_before = cpu_so_far()?;
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
        .with_context(|| format!("cannot run {}", Path::new(program).display()))?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, stop) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(TIME_LIMIT) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let st = child.wait().context("cannot wait for the timed command")?;
    let wall = start.elapsed().as_secs_f64();
    drop(done);
    let _ = watchdog.join();
    let grace_end = Instant::now() + ORPHAN_GRACE;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < grace_end => {
                std::thread::sleep(Duration::from_micros(500))
            }
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let sample = Sample {
        wall,
        cpu: cpu_so_far()? - cpu_before,
    };
    let out = RunOutput {
        // As a shell reports it: 128 + the signal that ended the command.
        status: st
            .code()
            .or_else(|| std::os::unix::process::ExitStatusExt::signal(&st).map(|n| 128 + n))
            .unwrap_or(-1),
        stdout: std::fs::read(&o).unwrap_or_default(),
        stderr: std::fs::read(&e).unwrap_or_default(),
    };
    Ok((sample, out))
}

/// Copies `src` to `dst` with `cp -a`.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let st = Command::new("cp").arg("-a").arg(src).arg(dst).status()?;
    if !st.success() {
        bail!("cp -a {} {} failed", src.display(), dst.display());
    }
    Ok(())
}

/// The shared corpus: `dir` if given, else `$HS_CORPUS`, else `../shared/corpus` beside the
/// repository; `None` when it holds no `run_corpus.sh`.
pub(crate) fn corpus_dir(dir: Option<&Path>) -> (PathBuf, bool) {
    let d = dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("HS_CORPUS").map(PathBuf::from))
        .unwrap_or_else(|| repo_root().join("../shared/corpus"));
    let d = std::fs::canonicalize(&d).unwrap_or(d);
    let present = d.join("run_corpus.sh").is_file();
    (d, present)
}

/// The built-in workloads' directory, `benchmarks/workloads/`.
pub(crate) fn builtin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads")
}

/// Whether `name` passes the filters (none: everything; else a filter it contains).
pub(crate) fn selected(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// One script to run under bash and hs, with the generator of its inputs.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    /// `family/name` (`builtin/name` for the built-in ones).
    pub(crate) name: String,
    /// Where it comes from: `corpus` or `builtin`.
    pub(crate) source: &'static str,
    pub(crate) script: PathBuf,
    /// Run with bash in the fresh input directory; `None`: the script needs no inputs.
    pub(crate) setup: Option<PathBuf>,
    /// Added to the environment of the setup and of every run.
    pub(crate) env: Vec<(&'static str, OsString)>,
}

/// The corpus entries (`run_corpus.sh --list`) that pass `filters`.
pub(crate) fn corpus_workloads(corpus: &Path, filters: &[String]) -> Result<Vec<Workload>> {
    let out = Command::new("bash")
        .arg(corpus.join("run_corpus.sh"))
        .arg("--list")
        .output()
        .context("cannot list the corpus")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|e| !e.is_empty() && selected(e, filters))
        .map(|e| Workload {
            name: e.to_string(),
            source: "corpus",
            script: corpus.join(format!("{e}.sh")),
            setup: Some(corpus.join(format!("{e}.setup.sh"))),
            env: vec![("CORPUS_DIR", corpus.into())],
        })
        .collect())
}

/// The built-in workloads: every `NAME.sh` in `dir` but the `*.setup.sh`, with its
/// `NAME.setup.sh` if there is one, named `builtin/NAME`, in name order.
pub(crate) fn builtin_workloads(dir: &Path, filters: &[String]) -> Result<Vec<Workload>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sh") && !n.ends_with(".setup.sh"))
        .map(|n| n.trim_end_matches(".sh").to_string())
        .collect();
    names.sort();
    Ok(names
        .into_iter()
        .filter(|n| selected(&format!("builtin/{n}"), filters))
        .map(|n| {
            let setup = dir.join(format!("{n}.setup.sh"));
            Workload {
                name: format!("builtin/{n}"),
                source: "builtin",
                script: dir.join(format!("{n}.sh")),
                setup: setup.is_file().then_some(setup),
                env: vec![("WORKLOADS_DIR", dir.into())],
            }
        })
        .collect())
}

/// A workload's inputs, generated once into a pristine directory; every run gets a fresh
/// `cp -a` copy of them at one fixed path (scripts that print `$PWD` agree across runners) and
/// a fresh, empty `TMPDIR` outside it, with the environment `run_corpus.sh` gives: `LC_ALL=C`,
/// `SCALE`, and the workload's own variables (`CORPUS_DIR`).
pub(crate) struct Prepared {
    pristine: PathBuf,
    /// Where each run happens.
    pub(crate) work: PathBuf,
    tmp: PathBuf,
    /// The environment of every run.
    pub(crate) env: Vec<(&'static str, OsString)>,
}

impl Prepared {
    /// Runs the workload's setup under `root`; `Ok(Err(reason))` when the setup itself failed.
    pub(crate) fn new(
        w: &Workload,
        root: &Path,
        scale: &OsStr,
    ) -> Result<std::result::Result<Prepared, String>> {
        let key = w.name.replace('/', "__");
        let pristine = root.join("setup").join(&key);
        let work = root.join("work").join(&key);
        let tmp = root.join("work").join(format!("{key}.tmp"));
        let _ = std::fs::remove_dir_all(&pristine);
        for d in [&pristine, &root.join("work")] {
            std::fs::create_dir_all(d)?;
        }
        let mut env: Vec<(&'static str, OsString)> = vec![
            ("LC_ALL", "C".into()),
            ("TMPDIR", tmp.clone().into()),
            ("SCALE", scale.into()),
        ];
        env.extend(w.env.iter().cloned());
        let p = Prepared {
            pristine,
            work,
            tmp,
            env,
        };
        if let Some(setup) = &w.setup {
            std::fs::create_dir_all(&p.tmp)?;
            let out = Command::new("bash")
                .arg(setup)
                .current_dir(&p.pristine)
                .envs(p.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .output()?;
            let _ = std::fs::remove_dir_all(&p.tmp);
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                let last = err.lines().last().unwrap_or("").trim();
                return Ok(Err(format!("setup failed ({}): {last}", out.status)));
            }
        }
        Ok(Ok(p))
    }

    /// Gives the next run fresh copies of the inputs and an empty `TMPDIR`.
    pub(crate) fn fresh(&self) -> Result<()> {
        self.clear();
        copy_tree(&self.pristine, &self.work)?;
        std::fs::create_dir_all(&self.tmp)?;
        Ok(())
    }

    fn clear(&self) {
        let _ = std::fs::remove_dir_all(&self.work);
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        self.clear();
        let _ = std::fs::remove_dir_all(&self.pristine);
    }
}

/// One entry of a directory tree's final state, as `run_corpus.sh` fingerprints it: type,
/// permission bits, and the contents (a hash of a file's bytes, a symlink's target); owners and
/// times are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    File { mode: u32, len: u64, hash: u64 },
    Dir { mode: u32 },
    Symlink { target: PathBuf },
    Other { mode: u32 },
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::File { mode, len, hash } => write!(f, "f {mode:o} {len} bytes {hash:016x}"),
            Node::Dir { mode } => write!(f, "d {mode:o}"),
            Node::Symlink { target } => write!(f, "l -> {}", target.display()),
            Node::Other { mode } => write!(f, "? {mode:o}"),
        }
    }
}

/// Relative path → [`Node`] of everything under a directory.
pub(crate) type Manifest = BTreeMap<PathBuf, Node>;

/// The final state of the tree under `dir`.
pub(crate) fn manifest(dir: &Path) -> Manifest {
    fn walk(root: &Path, dir: &Path, out: &mut Manifest) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let mode = md.permissions().mode() & 0o7777;
            let ft = md.file_type();
            let node = if ft.is_symlink() {
                Node::Symlink {
                    target: std::fs::read_link(&path).unwrap_or_default(),
                }
            } else if ft.is_dir() {
                walk(root, &path, out);
                Node::Dir { mode }
            } else if ft.is_file() {
                Node::File {
                    mode,
                    len: md.len(),
                    hash: hash_file(&path),
                }
            } else {
                Node::Other { mode }
            };
            out.insert(rel, node);
        }
    }
    let mut m = Manifest::new();
    walk(dir, dir, &mut m);
    m
}

/// Hash of a file's bytes (`DefaultHasher::new()` hashes alike within a process); 0 when it
/// cannot be read.
fn hash_file(path: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let mut h = std::hash::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => h.write(&buf[..n]),
        }
    }
    h.finish()
}

/// Everything a run must reproduce exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) status: i32,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) files: Manifest,
}

impl Outcome {
    /// The outcome of a run that produced `out` and left `work` behind.
    pub(crate) fn of(out: RunOutput, work: &Path) -> Outcome {
        Outcome {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
            files: manifest(work),
        }
    }

    /// How `got` differs from `self` (empty: identical), e.g. `exit 0 vs 1`, `stdout`,
    /// `files: out.txt (changed), b (missing), c (extra)`.
    pub(crate) fn differences(&self, got: &Outcome) -> Vec<String> {
        let mut d = vec![];
        if self.status != got.status {
            d.push(format!("exit {} vs {}", self.status, got.status));
        }
        for (what, a, b) in [
            ("stdout", &self.stdout, &got.stdout),
            ("stderr", &self.stderr, &got.stderr),
        ] {
            if a != b {
                let at = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
                d.push(format!(
                    "{what} ({} vs {} bytes, first difference at byte {at})",
                    a.len(),
                    b.len()
                ));
            }
        }
        let mut files = vec![];
        for (p, n) in &self.files {
            match got.files.get(p) {
                None => files.push(format!("{} (missing)", p.display())),
                Some(m) if m != n => files.push(format!("{} ({n} vs {m})", p.display())),
                _ => {}
            }
        }
        for p in got.files.keys().filter(|p| !self.files.contains_key(*p)) {
            files.push(format!("{} (extra)", p.display()));
        }
        if !files.is_empty() {
            let n = files.len();
            files.truncate(5);
            let more = if n > 5 {
                format!(", … {} more", n - 5)
            } else {
                String::new()
            };
            d.push(format!("files: {}{more}", files.join(", ")));
        }
        d
    }

    /// Writes stdout, stderr, exit status and the file manifest as `PREFIX.stdout` etc.
    pub(crate) fn save(&self, dir: &Path, prefix: &str) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{prefix}.stdout")), &self.stdout)?;
        std::fs::write(dir.join(format!("{prefix}.stderr")), &self.stderr)?;
        std::fs::write(
            dir.join(format!("{prefix}.exit")),
            format!("{}\n", self.status),
        )?;
        let mut m = String::new();
        for (p, n) in &self.files {
            m.push_str(&format!("{}\t{n}\n", p.display()));
        }
        std::fs::write(dir.join(format!("{prefix}.files")), m)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_geomean() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 1.0]), 1.0);
        assert!(median(&[]).is_nan());
        assert!((geomean([2.0, 8.0].into_iter()) - 4.0).abs() < 1e-12);
        // Non-positive and non-finite values are left out.
        assert!((geomean([2.0, 8.0, 0.0, f64::NAN].into_iter()) - 4.0).abs() < 1e-12);
        assert!(geomean(std::iter::empty()).is_nan());
    }

    #[test]
    fn outcome_differences() {
        let dir = std::env::temp_dir().join(format!("hs-bench-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), "one").unwrap();
        std::fs::write(dir.join("sub/b"), "two").unwrap();
        let out = || RunOutput {
            status: 0,
            stdout: b"x".to_vec(),
            stderr: vec![],
        };
        let want = Outcome::of(out(), &dir);
        assert_eq!(want.files.len(), 3);
        assert!(want.differences(&Outcome::of(out(), &dir)).is_empty());
        std::fs::write(dir.join("a"), "ONE").unwrap();
        std::fs::remove_file(dir.join("sub/b")).unwrap();
        std::fs::write(dir.join("c"), "").unwrap();
        let mut got = Outcome::of(out(), &dir);
        got.status = 1;
        got.stdout = b"y".to_vec();
        let d = want.differences(&got);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[0], "exit 0 vs 1");
        assert!(d[1].starts_with("stdout (1 vs 1 bytes"), "{d:?}");
        assert!(
            d[2].starts_with("files: a (") && d[2].contains("sub/b (missing)"),
            "{d:?}"
        );
        assert!(d[2].ends_with("c (extra)"), "{d:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
