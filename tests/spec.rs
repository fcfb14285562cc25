//! Speculation seen from outside: what `--report`, `--dag` and `--timeline` say about a run,
//! and output in a terminal (a pty from `script`), always against bash.

#[path = "util/unpriv.rs"]
mod unpriv;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn hs() -> &'static str {
    env!("CARGO_BIN_EXE_hs")
}

/// `prog ARGS… script` run in `work` (created), its output.
fn run_in(prog: &str, args: &[&str], script: &Path, work: &Path) -> std::process::Output {
    std::fs::create_dir_all(work).unwrap();
    Command::new(prog)
        .args(args)
        .arg(script)
        .current_dir(work)
        .output()
        .unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("spec-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `text` to `DIR/s.sh`, its path.
fn script_in(dir: &Path, text: &str) -> PathBuf {
    let script = dir.join("s.sh");
    std::fs::write(&script, text).unwrap();
    script
}

/// `hs --stats SCRIPT` run in `work` (created) with `HS_MIN_UNIT_MS=min_unit`: its stdout, and
/// its stderr (the stats line).
fn hs_with_stats(script: &Path, work: &Path, min_unit: &str) -> (Vec<u8>, String) {
    std::fs::create_dir_all(work).unwrap();
    let out = Command::new(hs())
        .arg("--stats")
        .arg(script)
        .current_dir(work)
        .env("HS_MIN_UNIT_MS", min_unit)
        .output()
        .unwrap();
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `text` as `DIR/s.sh` under bash in `DIR/bash` and under `hs ARGS…` in `DIR/hs`, and
/// checks that hs printed and returned what bash did.
fn run_as_bash(dir: &Path, text: &str, args: &[&str]) {
    let script = script_in(dir, text);
    let bash = run_in("bash", &[], &script, &dir.join("bash"));
    let hs_out = run_in(hs(), args, &script, &dir.join("hs"));
    assert_eq!(hs_out.stdout, bash.stdout);
    assert_eq!(hs_out.stderr, bash.stderr);
    assert_eq!(hs_out.status.code(), bash.status.code());
}

/// The count before ` WHAT` in hs's `--stats` line (`hs: 3 gates, 1 speculated, …`).
fn stats_count(stats: &str, what: &str) -> u32 {
    stats
        .split(", ")
        .find_map(|f| f.strip_suffix(&format!(" {what}")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{what}` in the stats line: {stats}"))
}

/// The writer is slow, so the appender and the reader, started with it, run on a stale
/// `report`: both are found to conflict with the writer's commit and run again. The result is
/// bash's, and the report shows the second run with why the first was thrown away. (The
/// writer's redirection is inside `sh -c`, where hs cannot see it: see the next test.)
#[test]
fn a_stale_reader_is_rerun_after_the_writer_and_the_report_says_why() {
    let dir = tmpdir("weather");
    let report = dir.join("r.json");
    let dot = dir.join("r.dot");
    let svg = dir.join("r.svg");
    run_as_bash(
        &dir,
        "sh -c 'sleep 0.4; date +%Y > report'\n/bin/echo sunny >> report\nwc -l < report\n",
        &[
            "--report",
            report.to_str().unwrap(),
            "--dag",
            dot.to_str().unwrap(),
            "--timeline",
            svg.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(dir.join("hs/report")).unwrap(),
        std::fs::read(dir.join("bash/report")).unwrap()
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["speculation"], true, "{r}");
    let instances = r["instances"].as_array().unwrap();
    // Unit 1, the appender: a run discarded because `report` changed under it.
    let appender = instances
        .iter()
        .find(|i| i["instance"]["unit"] == 1)
        .unwrap_or_else(|| panic!("no record of the appender: {r}"));
    let runs = appender["runs"].as_array().unwrap();
    let stale = runs.iter().find(|x| {
        x["discarded"]["Conflict"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/report"))
    });
    assert!(stale.is_some(), "no stale run of the appender: {appender}");
    assert!(
        appender["outcome"] == "Direct" || appender["outcome"].get("Committed").is_some(),
        "{appender}"
    );
    let dot = std::fs::read_to_string(&dot).unwrap();
    assert!(dot.contains("raw ") && dot.contains("/report"), "{dot}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
    assert!(svg.contains("u2"), "the reader's bar: {svg}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same, with the writer's redirection in its own words: hs reads the path there before
/// the writer ever ran, holds the appender and the reader back until it is done instead of
/// running them on the old `report`, and throws nothing away.
#[test]
fn readers_of_a_path_an_earlier_unit_redirects_to_wait_for_it() {
    let dir = tmpdir("weather-held");
    let report = dir.join("r.json");
    run_as_bash(
        &dir,
        "sh -c 'sleep 0.4; date +%Y' > report\n/bin/echo sunny >> report\nwc -l < report\n",
        &["--report", report.to_str().unwrap()],
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let stats = &r["stats"];
    assert!(stats["held"].as_u64().unwrap_or(0) > 0, "{r}");
    let stale = r["runs"].as_array().unwrap().iter().any(|x| {
        x["why"]
            .as_str()
            .is_some_and(|w| w.contains("/report") && w.contains("was changed by"))
    });
    assert!(!stale, "a run saw a stale report: {r}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a terminal, speculated units get a pty: `ls` prints columns and `grep --color=auto`
/// colours, as under bash, and stdout and stderr keep their order.
#[test]
fn terminal_output_matches_bash() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to give a terminal");
        return;
    }
    let dir = tmpdir("tty");
    for i in 0..12 {
        std::fs::write(dir.join(format!("file-{i:02}")), "root\n").unwrap();
    }
    let script = dir.join("t.sh");
    std::fs::write(
        &script,
        "ls\ngrep --color=auto root file-01\nls missing-file\nsleep 0.2\nls -d file-0*\n",
    )
    .unwrap();
    let in_pty = |cmd: String| {
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .current_dir(&dir)
            .env("COLUMNS", "100")
            .env("LINES", "30")
            .output()
            .unwrap();
        out.stdout
    };
    let s = script.to_str().unwrap();
    let bash = in_pty(format!("stty cols 100 rows 30; bash {s}"));
    let ours = in_pty(format!("stty cols 100 rows 30; {} {s}", hs()));
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&bash)
    );
    assert!(
        String::from_utf8_lossy(&bash).contains("\x1b["),
        "grep coloured in a terminal"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh world-writable directory `hs-spec-NAME-PID` holding `s.sh` (`text`), for runs as
/// an unprivileged user: (directory, script).
fn unpriv_script(name: &str, text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("hs-spec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = dir.join("s.sh");
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, script)
}

/// Runs `runner… script` as uid 65534 in `work` (made world-writable; HOME too), with `env`.
fn run_as_nobody(
    runner: &[&std::ffi::OsStr],
    script: &std::path::Path,
    work: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    std::fs::create_dir_all(work).unwrap();
    std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o777)).unwrap();
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(runner)
        .arg(script)
        .current_dir(work)
        .env("HOME", work)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// As an unprivileged user (user namespaces, overlays on the writable trees only, the shell
/// traced with no_new_privs): speculation commits, and the result is bash's.
#[test]
fn speculation_works_unprivileged() {
    if !unpriv::is_root() {
        eprintln!("skipped: switching to an unprivileged user needs root (setpriv)");
        return;
    }
    let (dir, script) = unpriv_script(
        "unpriv",
        "sh -c 'sleep 0.3; echo one' > out\n/bin/echo two >> out\nwc -l < out\n\
         for i in 1 2 3; do sleep 0.2; echo $i | tr 1-3 a-c; done\nls -d /nonexistent-$$-x\n",
    );
    let run = |runner: &[&std::ffi::OsStr], work: &str| {
        run_as_nobody(runner, &script, &dir.join(work), &[])
    };
    let bash = run(&["bash".as_ref()], "bash");
    let report = dir.join("r.json");
    let hs = unpriv::hs_for_anyone();
    let ours = run(
        &[hs.as_os_str(), "--report".as_ref(), report.as_os_str()],
        "hs",
    );
    // `$$` differs: compare the message without it.
    let strip = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .split_whitespace()
            .filter(|w| !w.contains("nonexistent"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&bash.stdout)
    );
    assert_eq!(strip(&ours.stderr), strip(&bash.stderr));
    assert_eq!(ours.status.code(), bash.status.code());
    assert_eq!(
        std::fs::read(dir.join("hs/out")).unwrap(),
        std::fs::read(dir.join("bash/out")).unwrap()
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["speculation"], true, "{r}");
    assert!(
        r["stats"]["committed"].as_u64().unwrap_or(0) >= 1,
        "nothing committed unprivileged: {}",
        r["stats"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unprivileged, in a world-writable directory owned by root: a sandbox maps only the
/// caller's ids, so overlayfs cannot copy that directory up and every write below it fails
/// there (EOVERFLOW) though it works live. Such runs must be redone for real, not committed
/// with their error messages.
#[test]
fn unprivileged_writes_below_a_foreign_directory_are_redone() {
    if !unpriv::is_root() {
        eprintln!("skipped: switching to an unprivileged user needs root (setpriv)");
        return;
    }
    let (dir, script) = unpriv_script(
        "foreign",
        "for i in 1 2 3 4 5 6; do\n  sleep 0.02; echo \"line $i\" >> out\n  wc -l < out\n  \
         mkdir -p d$i; echo x > d$i/f; rm -r d$((i-1)) 2>/dev/null\ndone\nls\n",
    );
    let hs = unpriv::hs_for_anyone();
    // The work directories are owned by root and writable by everyone.
    let run = |runner: &std::ffi::OsStr, work: &str| {
        run_as_nobody(
            &[runner],
            &script,
            &dir.join(work),
            &[("HS_MIN_UNIT_MS", "0")],
        )
    };
    let bash = run("bash".as_ref(), "bash");
    assert!(
        bash.status.success(),
        "{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    for n in 0..3 {
        let ours = run(hs.as_os_str(), &format!("hs{n}"));
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&bash.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&bash.stdout)
        );
        assert_eq!(ours.status.code(), bash.status.code());
        assert_eq!(
            std::fs::read(dir.join(format!("hs{n}/out"))).unwrap(),
            std::fs::read(dir.join("bash/out")).unwrap()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loop whose unit reads a variable set from `$(basename …)` just before it (the corpus's
/// compress_files): prediction computes the value, so later iterations are committed
/// speculations, and the files are bash's.
#[test]
fn loop_iterations_after_computed_assignments_are_speculated() {
    let dir = tmpdir("computed");
    let script = dir.join("compress.sh");
    std::fs::write(
        &script,
        "set -- in out\nmkdir -p $2\nfor item in $1/*; do\n    name=\"$2/$(basename $item).gz\"\n    \
         { sleep 0.1; cat $item; } | gzip -n -c > $name\ndone\nls $2\n",
    )
    .unwrap();
    let run = |prog: &str, args: &[&str], work: &Path| {
        std::fs::create_dir_all(work.join("in")).unwrap();
        for i in 0..6 {
            std::fs::write(work.join(format!("in/f{i}")), format!("data {i}\n")).unwrap();
        }
        run_in(prog, args, &script, work)
    };
    let bash = run("bash", &[], &dir.join("bash"));
    let report = dir.join("r.json");
    let hs_out = run(
        hs(),
        &["--report", report.to_str().unwrap()],
        &dir.join("hs"),
    );
    assert_eq!(hs_out.stdout, bash.stdout);
    assert_eq!(hs_out.stderr, bash.stderr);
    for i in 0..6 {
        let f = format!("out/f{i}.gz");
        assert_eq!(
            std::fs::read(dir.join("hs").join(&f)).unwrap(),
            std::fs::read(dir.join("bash").join(&f)).unwrap()
        );
    }
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(
        r["stats"]["committed"].as_u64().unwrap_or(0) >= 3,
        "loop iterations not committed: {}",
        r["stats"]
    );
}

/// A job of the shell writes `f` through the fd it was started with (no path syscall) while
/// a later reader of `f` is speculated; the job has exited by the reader's gate. The server
/// skips its scan of open fds at gates while no run is alive, so the scan when the first run
/// starts must find `f`: the reader is redone after the write, as bash would print it. Both
/// with speculation starting paused (the default) and from the start.
#[test]
fn a_write_through_a_jobs_fd_during_a_run_discards_its_readers() {
    let dir = tmpdir("job-fd");
    let script = script_in(
        &dir,
        "(/bin/sleep 1; echo new) > f &\n/bin/sleep 1.5\ncat f\nwc -c f\n",
    );
    let bash = run_in("bash", &[], &script, &dir.join("bash"));
    assert_eq!(String::from_utf8_lossy(&bash.stdout), "new\n4 f\n");
    for min_unit in ["30", "0"] {
        let (stdout, stats) = hs_with_stats(&script, &dir.join(format!("hs-{min_unit}")), min_unit);
        assert_eq!(
            String::from_utf8_lossy(&stdout),
            "new\n4 f\n",
            "HS_MIN_UNIT_MS={min_unit}: {stats}"
        );
        // The readers were speculated and thrown away (not merely run by the shell).
        let discarded = stats_count(&stats, "discarded");
        assert!(discarded >= 1, "HS_MIN_UNIT_MS={min_unit}: {stats}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With speculation paused (units shorter than `HS_MIN_UNIT_MS`), gates do not wait: each
/// tells the server which unit the shell runs (`a`, written to a copy of the server's pipe
/// end that the shim takes with `pidfd_getfd` when bash opens the pipe by path). Every gate
/// must arrive: the server counts them.
#[test]
fn every_gate_that_does_not_wait_reaches_the_server() {
    let dir = tmpdir("a-gates");
    let script = script_in(
        &dir,
        "for i in 1 2 3; do /bin/echo $i; done\n/bin/true\ncat /dev/null\nx=$(/bin/echo sub)\n/bin/echo $x\n",
    );
    let bash = run_in("bash", &[], &script, &dir.join("bash"));
    let (stdout, stats) = hs_with_stats(&script, &dir.join("hs"), "1000000");
    assert_eq!(stdout, bash.stdout);
    assert!(
        stats.starts_with("hs: 6 gates, 0 speculated") && stats.contains("6 run directly"),
        "{stats}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A state report larger than a pipe holds (120 KB of exported variables) goes to the server
/// through the shim's buffer in several writes; the server reads it whole, so the loop's units
/// are committed (a truncated report would match no state and commit nothing).
#[test]
fn a_state_report_larger_than_a_pipe_arrives_whole() {
    let dir = tmpdir("big-report");
    let script = script_in(
        &dir,
        "x=$(head -c 30000 /dev/zero | tr '\\0' x)\nexport BIG1=$x BIG2=$x BIG3=$x BIG4=$x\n\
         for i in 1 2 3 4 5 6; do /bin/echo \"$i ${#BIG1}\"; /bin/sleep 0.05; done\n",
    );
    let bash = run_in("bash", &[], &script, &dir.join("bash"));
    assert!(bash.status.success());
    let (stdout, stats) = hs_with_stats(&script, &dir.join("hs"), "0");
    assert_eq!(stdout, bash.stdout);
    let committed = stats_count(&stats, "committed");
    assert!(committed >= 3, "{stats}");
    let _ = std::fs::remove_dir_all(&dir);
}
