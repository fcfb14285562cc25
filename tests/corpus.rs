//! Corpus test: the 40 third-party scripts of `shared/corpus` run under bash and under hs, and
//! `run_corpus.sh --compare` must report every entry the same (stdout, stderr, exit status and
//! final files).
//!
//! The corpus is looked up in `$HS_CORPUS`, else in `../shared/corpus` beside the repository
//! (where CI clones it). When it is absent the test prints a note and passes.
//!
//! Knobs: `HS_BIN` runs another binary instead of the `hs` cargo built; `HS_CORPUS_ARGS` adds
//! options to the hs command line (split on blanks, e.g. `--no-speculate`); `SCALE` is passed
//! to the corpus setups as usual; `HS_CORPUS_MIN` (default 40) is the least number of entries
//! the corpus must have. The work root is private to the test run and removed when the
//! test passes (kept, with the per-entry outputs, when it fails).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("HS_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    dir.join("run_corpus.sh")
        .is_file()
        .then(|| dir.canonicalize().unwrap())
}

fn hs_bin() -> OsString {
    std::env::var_os("HS_BIN").unwrap_or_else(|| OsString::from(env!("CARGO_BIN_EXE_hs")))
}

/// Runs `run_corpus.sh` with `args`, returning its stdout; panics on a failure to start.
fn run_corpus(script: &Path, args: &[OsString]) -> (bool, String) {
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// For one entry that differs, the first lines of `diff -u` of its kept outputs.
fn entry_diff(root: &Path, entry: &str) -> String {
    let key = entry.replace('/', "__");
    let mut s = String::new();
    for ext in ["stdout", "stderr", "state"] {
        let a = root.join("bash.results").join(format!("{key}.{ext}"));
        let b = root.join("hs.results").join(format!("{key}.{ext}"));
        let Ok(out) = Command::new("diff").arg("-u").arg(&a).arg(&b).output() else {
            continue;
        };
        if out.stdout.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        s.push_str(&format!("--- {entry}: {ext} (bash vs hs) ---\n```\n"));
        for l in lines.iter().take(40) {
            s.push_str(&l[..l.len().min(300)]);
            s.push('\n');
        }
        if lines.len() > 40 {
            s.push_str(&format!("... ({} more diff lines)\n", lines.len() - 40));
        }
        s.push_str("```\n");
    }
    s
}

/// The result row of `entry` in a run_corpus.sh TSV file.
fn tsv_row(file: &Path, entry: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find(|l| !l.starts_with('#') && l.split('\t').next() == Some(entry))
        .map(str::to_string)
}

/// What must agree in a row: exit status and the stdout, stderr and final-state hashes (not
/// the wall time or the note).
fn fingerprint(row: &str) -> Vec<&str> {
    let f: Vec<&str> = row.split('\t').collect();
    [1, 3, 4, 5]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(""))
        .collect()
}

/// Replaces the row of `entry` in a TSV file.
fn replace_row(file: &Path, entry: &str, row: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let out: Vec<&str> = text
        .lines()
        .map(|l| {
            if !l.starts_with('#') && l.split('\t').next() == Some(entry) {
                row
            } else {
                l
            }
        })
        .collect();
    std::fs::write(file, out.join("\n") + "\n").unwrap();
}

#[test]
fn corpus_matches_bash() {
    let extra = std::env::var_os("HS_CORPUS_ARGS")
        .map(|a| {
            a.to_string_lossy()
                .split_whitespace()
                .map(OsString::from)
                .collect()
        })
        .unwrap_or_default();
    check_corpus("hs", extra);
}

/// The tracer's LD_PRELOAD fast path changes nothing a script can see: every corpus script
/// run as `hs trace --fast -o /dev/null -- bash SCRIPT` matches bash.
#[test]
fn corpus_matches_bash_under_the_fast_tracer() {
    let args = ["trace", "--fast", "-o", "/dev/null", "--", "bash"];
    check_corpus("trace", args.iter().map(OsString::from).collect());
}

/// Runs the corpus under bash and under `hs EXTRA… SCRIPT`; panics with the differences.
fn check_corpus(tag: &str, extra: Vec<OsString>) {
    let Some(corpus) = corpus_dir() else {
        eprintln!(
            "note: corpus test skipped: no run_corpus.sh in $HS_CORPUS or ../shared/corpus \
             beside the repository"
        );
        return;
    };
    let script = corpus.join("run_corpus.sh");
    let (ok, list) = run_corpus(&script, &["--list".into()]);
    assert!(ok, "run_corpus.sh --list failed:\n{list}");
    let entries = list.lines().filter(|l| !l.trim().is_empty()).count();
    // The shared corpus has 40 entries; HS_CORPUS_MIN lowers the bar for a trimmed corpus.
    let min: usize = std::env::var("HS_CORPUS_MIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    assert!(
        entries >= min,
        "expected at least {min} corpus entries, found {entries}:\n{list}"
    );

    let root = std::env::temp_dir().join(format!("hs-corpus-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let p = |name: &str| OsString::from(root.join(name));

    // Arguments of run_corpus.sh for one side ("bash" or "hs"), output files named after `tag`,
    // optionally only one entry.
    let args = |side: &str, tag: &str, only: Option<&str>| -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "-w".into(),
            p("work"),
            "-r".into(),
            p(&format!("{tag}.results")),
            "-o".into(),
            p(&format!("{tag}.tsv")),
        ];
        if let Some(e) = only {
            v.push("-f".into());
            v.push(format!("^{}$", e.replace('.', "\\.")).into());
        }
        if side == "hs" {
            v.push(hs_bin());
            v.extend(extra.iter().cloned());
        }
        v
    };
    let (_, bash_log) = run_corpus(&script, &args("bash", "bash", None));
    let (_, hs_log) = run_corpus(&script, &args("hs", "hs", None));
    let compare = || run_corpus(&script, &["--compare".into(), p("bash.tsv"), p("hs.tsv")]);
    let (mut same, mut table) = compare();
    eprintln!("{table}");

    // A few corpus scripts race with their own background jobs (e.g. pash-scripts/
    // tee_web_index_bug removes files its jobs may not have created yet), so on a loaded
    // machine one run can differ from another even under bash alone. An entry that differs is
    // run again under both, up to twice; when a pair agrees, it replaces the first results.
    let mut retries = String::new();
    if !same {
        let failing: Vec<String> = table
            .lines()
            .filter(|l| l.contains("DIFF"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        for e in &failing {
            for attempt in 1..=2 {
                run_corpus(&script, &args("bash", "bash.retry", Some(e)));
                run_corpus(&script, &args("hs", "hs.retry", Some(e)));
                let (b, h) = (
                    tsv_row(&root.join("bash.retry.tsv"), e),
                    tsv_row(&root.join("hs.retry.tsv"), e),
                );
                let agree = match (&b, &h) {
                    (Some(b), Some(h)) => fingerprint(b) == fingerprint(h),
                    _ => false,
                };
                retries.push_str(&format!(
                    "retry {attempt} of {e}: {}\n",
                    if agree {
                        "bash and hs agree"
                    } else {
                        "still differs"
                    }
                ));
                if agree {
                    replace_row(&root.join("bash.tsv"), e, b.as_deref().unwrap());
                    replace_row(&root.join("hs.tsv"), e, h.as_deref().unwrap());
                    break;
                }
            }
        }
        (same, table) = compare();
        eprintln!("{retries}\nafter retries:\n{table}");
    }

    let want = format!("{entries} passed, 0 failed");
    if same && table.lines().any(|l| l.trim() == want) {
        let _ = std::fs::remove_dir_all(&root);
        return;
    }
    let mut report = format!(
        "\n#################### corpus differs from bash ####################\n\
         expected \"{want}\"; kept {}\n\n{table}\n{retries}\n",
        root.display()
    );
    for line in table
        .lines()
        .filter(|l| l.contains("DIFF") || l.contains("MISSING"))
    {
        let entry = line.split_whitespace().next().unwrap_or("");
        report.push_str(&entry_diff(&root, entry));
    }
    report.push_str(&format!(
        "\nbash run log:\n{bash_log}\nhs run log:\n{hs_log}\n"
    ));
    panic!("{report}");
}
