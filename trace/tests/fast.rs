//! The LD_PRELOAD fast path (`Tracer::fast_path`): the same trace as without it, fewer
//! notifications, and nothing the traced programs can see (their environment and fds are
//! their own).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use trace::{Kinds, Trace, Tracer};

mod common;

fn tmpdir(name: &str) -> common::TempDir {
    common::TempDir::new(name)
}

/// Accesses outside `/proc` (pid directories differ between runs), gcc's and make's random
/// temporary files, and the shim's own directory, as text lines.
fn comparable(t: &Trace) -> BTreeMap<String, String> {
    t.iter()
        .filter(|(p, _)| {
            !p.starts_with(b"/proc/") && !p.starts_with(b"/tmp/cc") && !p.starts_with(b"/tmp/Gm")
        })
        .map(|(p, k)| (String::from_utf8_lossy(p).into_owned(), k.to_string()))
        .collect()
}

/// Runs `cmd` traced with the fast path on or off; its stdout and trace.
fn traced(cmd: Command, fast: bool) -> (String, Trace) {
    traced_by(Tracer::new(), cmd, fast)
}

fn traced_by(tracer: Tracer, mut cmd: Command, fast: bool) -> (String, Trace) {
    let (status, out, t) = common::run_capturing(&tracer.fast_path(fast), &mut cmd);
    assert!(status.success(), "fast={fast}: {status}\n{out}");
    (out, t)
}

fn untraced(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?}", out);
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn assert_same(slow: &Trace, fast: &Trace) {
    let (a, b) = (comparable(slow), comparable(fast));
    let mut diff = String::new();
    for k in a.keys().chain(b.keys()) {
        if a.get(k) != b.get(k) && !diff.contains(&format!("{k}:")) {
            diff.push_str(&format!("  {k}: {:?} vs {:?}\n", a.get(k), b.get(k)));
        }
    }
    assert!(diff.is_empty(), "traces differ (slow vs fast):\n{diff}");
}

/// Runs the command `make` builds untraced, traced, and traced with the fast path: the same
/// stdout each time, the same trace in both modes, and more than `min_fast` lookups recorded
/// by the shim. Returns the untraced stdout and the plain trace.
#[track_caller]
fn same_in_both_modes(make: impl Fn() -> Command, min_fast: u64) -> (String, Trace) {
    let plain = untraced(make());
    let (slow_out, slow) = traced(make(), false);
    let (fast_out, fast) = traced(make(), true);
    assert_eq!(plain, slow_out);
    assert_eq!(plain, fast_out);
    assert_same(&slow, &fast);
    assert!(fast.stats.fast > min_fast, "{:?}", fast.stats);
    (plain, slow)
}

/// Compiles `src` with gcc (dynamic) into `dir/name`.
fn cc(dir: &Path, name: &str, src: &str, extra: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let bin = dir.join(name);
    let st = Command::new("gcc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&bin)
        .arg(&c)
        .args(extra)
        .status()
        .expect("gcc runs");
    assert!(st.success(), "gcc failed for {name}");
    bin
}

#[test]
fn a_shell_script_traces_the_same_with_and_without_the_fast_path() {
    let dir = tmpdir("fast-same");
    std::fs::write(dir.join("in"), "data\n").unwrap();
    std::fs::create_dir_all(dir.join("d/e")).unwrap();
    std::fs::write(dir.join("d/x"), "x").unwrap();
    std::fs::write(dir.join("d/e/y.txt"), "y").unwrap();
    let script = r#"
        cat in > out; ls -l d > listing; stat -c %s in; test -e missing; [ -d d ] && echo dir
        ln -s in link; ln -s d/e dlink; cat link dlink/y.txt; readlink link
        realpath d/../in dlink/y.txt; realpath -m nosuch/x; realpath -q nosuch/x || echo no
        (cd d && cat x && ls -la . .. >/dev/null)
        find . -name '*.txt' | sort; find -L . -type f | sort | head -3
        sh -c 'cat in; test -r d/x && echo readable'
        env -i PATH="$PATH" sh -c 'echo clean; cat d/e/y.txt'
        mkdir -p new/sub; mv out new/sub/moved; rm -f listing; rm link
        for i in 1 2 3; do test -f in$i || echo none$i; done
        head -c 3 /etc/passwd >/dev/null; grep -c . d/x
        xargs -n1 cat <<< "in d/x" >/dev/null
        touch -r in new/stamp; cp -r d copy; ls copy | sort
    "#;
    let mut runs = Vec::new();
    for fast in [false, true] {
        for f in ["out", "listing", "link", "dlink"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_dir_all(dir.join("new"));
        let _ = std::fs::remove_dir_all(dir.join("copy"));
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).current_dir(&dir);
        runs.push((fast, traced(cmd, fast)));
    }
    let (_, (out_slow, slow)) = &runs[0];
    let (_, (out_fast, fast)) = &runs[1];
    assert_eq!(out_slow, out_fast);
    assert!(out_fast.contains("clean\ny"), "{out_fast}");
    assert_same(slow, fast);
    assert_eq!(slow.stats.fast, 0);
    assert!(
        fast.stats.fast > 50 && fast.stats.notifications < slow.stats.notifications,
        "fast path barely used: {:?} vs {:?}",
        fast.stats,
        slow.stats
    );
    assert!(
        fast.get(dir.join("d/e/y.txt").as_os_str().as_bytes())
            .is_some()
    );
}

#[test]
fn make_traces_the_same_with_and_without_the_fast_path() {
    let dir = tmpdir("fast-make");
    std::fs::write(dir.join("util.h"), "#include <stdio.h>\nint util(void);\n").unwrap();
    std::fs::write(
        dir.join("util.c"),
        "#include \"util.h\"\nint util(void) { return puts(\"u\"); }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.c"),
        "#include \"util.h\"\n#include <stdlib.h>\nint main(void) { return util() < 0; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Makefile"),
        "prog: main.o util.o\n\tcc -o prog main.o util.o\n%.o: %.c util.h\n\tcc -c -o $@ $<\n",
    )
    .unwrap();
    let mut traces = Vec::new();
    for fast in [false, true] {
        for f in ["main.o", "util.o", "prog"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let mut cmd = Command::new("make");
        cmd.arg("-s").current_dir(&dir);
        traces.push(traced(cmd, fast).1);
        assert!(dir.join("prog").exists());
    }
    assert_same(&traces[0], &traces[1]);
    for f in ["main.c", "util.c", "util.h"] {
        let k = traces[1].get(dir.join(f).as_os_str().as_bytes());
        assert!(k.is_some_and(|k| k.contains(Kinds::READ)), "{f}: {k:?}");
    }
    // gcc's realpath lookups and header searches went through the shim.
    assert!(
        traces[1].stats.notifications * 2 < traces[0].stats.notifications,
        "{:?} vs {:?}",
        traces[1].stats,
        traces[0].stats
    );
}

/// Environment and open fds as without the shim.
#[test]
fn programs_see_the_environment_they_were_given() {
    let dir = tmpdir("fast-env");
    let script = "env | sort; echo ---; sh -c 'env | sort'; echo ---; \
                  env -i A=1 sh -c 'env | sort'; ls /proc/self/fd; sh -c 'ls -l /proc/$$/fd' | wc -l";
    for preload in [None, Some("/lib/x86_64-linux-gnu/libm.so.6")] {
        let make = || {
            let mut cmd = Command::new("bash");
            cmd.arg("-c").arg(script).current_dir(&dir);
            cmd.env("HS_SAMPLE", "1");
            match preload {
                Some(p) => cmd.env("LD_PRELOAD", p),
                None => cmd.env_remove("LD_PRELOAD"),
            };
            cmd
        };
        let plain = untraced(make());
        let (out, t) = traced(make(), true);
        assert!(t.stats.fast > 0, "{:?}", t.stats);
        assert_eq!(plain, out, "LD_PRELOAD={preload:?}");
        assert!(!out.contains("__HS_FAST"), "{out}");
        assert_eq!(
            out.contains("LD_PRELOAD="),
            preload.is_some(),
            "LD_PRELOAD={preload:?}: {out}"
        );
    }
}

const REALPATH: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char buf[PATH_MAX];
        memset(buf, '#', sizeof buf);
        buf[40] = 0;
        errno = 0;
        char *r = realpath(argv[i], buf);
        printf("%s -> %s errno=%d buf=%s\n", argv[i], r ? r : "NULL", errno, buf);
        errno = 0;
        char *m = realpath(argv[i], NULL);
        printf("  malloc: %s errno=%d\n", m ? m : "NULL", errno);
        free(m);
        m = canonicalize_file_name(argv[i]);
        printf("  canon: %s\n", m ? m : "NULL");
        free(m);
    }
    return 0;
}
"#;

#[test]
fn realpath_answers_as_libc_does() {
    let dir = tmpdir("fast-realpath");
    let bin = cc(&dir, "rp", REALPATH, &[]);
    std::fs::create_dir_all(dir.join("d/e")).unwrap();
    std::fs::write(dir.join("file"), "").unwrap();
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
    };
    link("d/e", "l");
    link(dir.join("d").to_str().unwrap(), "abs");
    link("../fast-realpath-x/none", "dangling");
    link("loop2", "loop1");
    link("loop1", "loop2");
    link("e", "d/rel");
    let args = [
        "l/",
        "d/e/.",
        "file/",
        "file/.",
        "file/..",
        "file/x",
        "nosuch/x",
        "l/..",
        "/",
        ".",
        "..",
        "//",
        "///usr//lib/",
        "loop1",
        "abs/e",
        "abs/rel/..",
        "d/rel",
        "dangling",
        "d/e/../../file",
        "./abs/./e/..",
        "l/nosuch",
        "",
        "/usr/lib/../bin/../lib",
        "d/./e",
        "d/.e",
        "d/./.",
        "d//e//",
        "abs/./rel/./",
        "d/e/...",
    ];
    let make = || {
        let mut cmd = Command::new(&bin);
        cmd.args(args).current_dir(&dir);
        cmd
    };
    same_in_both_modes(make, 40);
}

const THREADS: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
static void *work(void *arg) {
    long t = (long)arg;
    char p[64];
    struct stat st;
    for (int i = 0; i < 1500; i++) {
        snprintf(p, sizeof p, "t%ld-%d", t, i);
        stat(p, &st);
        if (i % 100 == 0) access("present", R_OK);
    }
    return 0;
}
int main(void) {
    pthread_t th[8];
    for (long t = 0; t < 8; t++) pthread_create(&th[t], 0, work, (void *)t);
    for (int t = 0; t < 8; t++) pthread_join(th[t], 0);
    return 0;
}
"#;

#[test]
fn threads_filling_the_ring_lose_no_lookup() {
    let dir = tmpdir("fast-threads");
    let bin = cc(&dir, "threads", THREADS, &[]);
    std::fs::write(dir.join("present"), "").unwrap();
    let mut cmd = Command::new(&bin);
    cmd.current_dir(&dir);
    let (_, t) = traced(cmd, true);
    for th in 0..8 {
        for i in 0..1500 {
            let p = dir.join(format!("t{th}-{i}"));
            let k = t.get(p.as_os_str().as_bytes()).unwrap_or_default();
            assert!(k.contains(Kinds::MISSING), "{}: {k}", p.display());
        }
    }
    let k = t
        .get(dir.join("present").as_os_str().as_bytes())
        .unwrap_or_default();
    assert!(k.contains(Kinds::STAT), "{k}");
    assert!(t.stats.fast > 1000, "{:?}", t.stats);
}

const STATIC_STAT: &str = r#"
#include <sys/stat.h>
int main(void) { struct stat st; return stat("present", &st) != 0; }
"#;

#[test]
fn static_programs_still_trap() {
    let dir = tmpdir("fast-static");
    let bin = cc(&dir, "st", STATIC_STAT, &["-static"]);
    std::fs::write(dir.join("present"), "").unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("{} && cat present", bin.display()))
        .current_dir(&dir);
    let (_, t) = traced(cmd, true);
    let k = t
        .get(dir.join("present").as_os_str().as_bytes())
        .unwrap_or_default();
    assert!(k.contains(Kinds::STAT | Kinds::READ), "{k}");
}

#[test]
fn take_includes_what_the_shim_recorded() {
    let dir = tmpdir("fast-take");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg("test -e first; echo ready; read line; test -e second; true")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = Tracer::new().fast_path(true).spawn(&mut cmd).unwrap();
    let mut stdin = child.child_mut().stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.child_mut().stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let first = child.session().take();
    let k = first
        .get(dir.join("first").as_os_str().as_bytes())
        .unwrap_or_default();
    assert!(k.contains(Kinds::MISSING), "first: {k} {:?}", first.stats);
    writeln!(stdin, "go").unwrap();
    drop(stdin);
    let (status, rest) = child.wait().unwrap();
    assert!(status.success());
    let k = rest
        .get(dir.join("second").as_os_str().as_bytes())
        .unwrap_or_default();
    assert!(k.contains(Kinds::MISSING), "second: {k}");
    assert!(rest.get(dir.join("first").as_os_str().as_bytes()).is_none());
    assert!(first.stats.fast + rest.stats.fast > 0);
}

/// A lookup the shim recorded is resolved before a later trapped call can change its answer:
/// `link/f` is looked up while `link` points to `d$i`, then `link` is moved on.
#[test]
fn lookups_resolve_before_later_changes() {
    let dir = tmpdir("fast-order");
    for i in 0..20 {
        std::fs::create_dir(dir.join(format!("d{i}"))).unwrap();
        std::fs::write(dir.join(format!("d{i}/f")), "").unwrap();
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg("for i in $(seq 0 19); do ln -sfn d$i link; test -e link/f; done")
        .current_dir(&dir);
    let (_, t) = traced(cmd, true);
    for i in 0..20 {
        let p = dir.join(format!("d{i}/f"));
        let k = t.get(p.as_os_str().as_bytes()).unwrap_or_default();
        assert!(
            k.contains(Kinds::STAT),
            "{}: {k} ({:?})",
            p.display(),
            t.stats
        );
    }
    assert!(t.stats.fast >= 20, "{:?}", t.stats);
}

const LOOKUPS: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    struct statx sx;
    char buf[256];
    const char *names[] = {"file", "link", "dangling", "missing", "dir", ".", "..", "dir/inner",
                           "link/x", "file/x", "dirlink", "dirlink/inner", 0};
    int d = open(".", O_RDONLY | O_DIRECTORY);
    for (int i = 0; names[i]; i++) {
        const char *n = names[i];
        int r1 = fstatat(d, n, &st, AT_SYMLINK_NOFOLLOW);
        int r2 = fstatat(d, n, &st, 0);
        int r3 = lstat(n, &st);
        int r4 = stat(n, &st);
        int r5 = statx(d, n, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx);
        long r6 = readlinkat(d, n, buf, sizeof buf);
        long r7 = readlink(n, buf, sizeof buf);
        int fd = openat(d, n, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) close(fd);
        fd = openat(d, n, O_PATH | O_NOFOLLOW);
        if (fd >= 0) close(fd);
        fd = openat(d, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (fd >= 0) close(fd);
        fd = open(n, O_RDONLY);
        if (fd >= 0) close(fd);
        int r8 = access(n, F_OK);
        int r9 = faccessat(d, n, R_OK, 0);
        printf("%s %d %d %d %d %d %ld %ld %d %d\n", n, r1, r2, r3, r4, r5, r6, r7, r8, r9);
    }
    if (chdir("dir") != 0) return 1;
    printf("%d %d\n", stat("inner", &st), lstat("../link", &st));
    DIR *dd = opendir("..");
    if (dd) closedir(dd);
    FILE *f = fopen("../file", "re");
    if (f) fclose(f);
    return 0;
}
"#;

#[test]
fn lookups_of_every_kind_trace_the_same() {
    let dir = tmpdir("fast-lookups");
    let bin = cc(&dir, "lookups", LOOKUPS, &[]);
    let work = dir.join("work");
    std::fs::create_dir_all(work.join("dir")).unwrap();
    std::fs::write(work.join("file"), "f").unwrap();
    std::fs::write(work.join("dir/inner"), "i").unwrap();
    std::os::unix::fs::symlink("file", work.join("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", work.join("dangling")).unwrap();
    std::os::unix::fs::symlink("dir", work.join("dirlink")).unwrap();
    let make = || {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&work);
        cmd
    };
    let (plain, slow) = same_in_both_modes(make, 100);
    // The ptrace fallback lets the trampoline's calls through the same way.
    let (ptrace_out, ptrace) = traced_by(Tracer::new().ptrace(true), make(), true);
    assert_eq!(plain, ptrace_out);
    assert_same(&slow, &ptrace);
    assert!(ptrace.stats.fast > 100, "{:?}", ptrace.stats);
}
