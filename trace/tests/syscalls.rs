//! Tracer tests per syscall class, with small C helpers compiled at test time (dynamic and
//! `-static`).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use trace::{Flags, Kinds, Trace};

mod common;

fn tmpdir(name: &str) -> common::TempDir {
    common::TempDir::new(name)
}

/// Compiles `src` into `dir/name` (and `dir/name-static`); returns both binaries.
fn cc(dir: &Path, name: &str, src: &str) -> Vec<PathBuf> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let mut out = Vec::new();
    for (suffix, extra) in [("", None), ("-static", Some("-static"))] {
        let bin = dir.join(format!("{name}{suffix}"));
        let mut cmd = Command::new("gcc");
        cmd.arg("-O1").arg("-o").arg(&bin).arg(&c).arg("-pthread");
        if let Some(e) = extra {
            cmd.arg(e);
        }
        let st = cmd.status().expect("gcc runs");
        assert!(st.success(), "gcc failed for {name}{suffix}");
        out.push(bin);
    }
    out
}

fn run(dir: &Path, argv: &[&std::ffi::OsStr]) -> Trace {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).current_dir(dir);
    let (status, trace) = trace::spawn_traced(&mut cmd).unwrap().wait().unwrap();
    assert!(
        status.success(),
        "{argv:?} failed: {status}\n{}",
        dump(&trace)
    );
    trace
}

fn run_bin(dir: &Path, bin: &Path) -> Trace {
    run(dir, &[bin.as_os_str()])
}

fn dump(t: &Trace) -> String {
    let mut s = String::new();
    for (p, k) in t.iter() {
        s.push_str(&format!("  {k:<30} {}\n", String::from_utf8_lossy(p)));
    }
    s.push_str(&format!("  flags: {:?} {:?}\n", t.flags, t.notes));
    s
}

#[track_caller]
fn has(t: &Trace, path: &Path, kinds: Kinds) {
    let got = t.get(path.as_os_str().as_bytes()).unwrap_or_default();
    assert!(
        got.contains(kinds),
        "expected {kinds} on {}, got {got}\n{}",
        path.display(),
        dump(t)
    );
}

#[track_caller]
fn lacks(t: &Trace, path: &Path, kinds: Kinds) {
    let got = t.get(path.as_os_str().as_bytes()).unwrap_or_default();
    assert!(
        !got.intersects(kinds),
        "unexpected {kinds} on {}, got {got}\n{}",
        path.display(),
        dump(t)
    );
}

const RELATIVE: &str = r#"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    mkdir("sub", 0755);
    int d = open("sub", O_RDONLY | O_DIRECTORY);
    if (d < 0) return 1;
    close(openat(d, "f", O_CREAT | O_WRONLY | O_TRUNC, 0644));
    fstatat(d, "nope", &st, 0);
    if (chdir("sub") != 0) return 2;
    close(open("g", O_CREAT | O_WRONLY, 0644));
    if (stat("../top", &st) != 0) return 3;
    access("../absent", R_OK);
    return 0;
}
"#;

#[test]
fn relative_paths_via_dirfd_and_after_chdir() {
    let dir = tmpdir("relative");
    for bin in cc(&dir, "relative", RELATIVE) {
        let _ = std::fs::remove_dir_all(dir.join("sub"));
        std::fs::write(dir.join("top"), "x").unwrap();
        let t = run_bin(&dir, &bin);
        has(&t, &dir.join("sub"), Kinds::CREATE);
        has(&t, &dir.join("sub/f"), Kinds::CREATE);
        has(&t, &dir.join("sub/nope"), Kinds::MISSING);
        has(&t, &dir.join("sub/g"), Kinds::CREATE);
        has(&t, &dir.join("top"), Kinds::STAT);
        has(&t, &dir.join("absent"), Kinds::MISSING);
        has(&t, &bin, Kinds::EXEC);
    }
}

const SYMLINKS: &str = r#"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    char buf[256];
    int fd = open("link", O_RDONLY);
    if (fd < 0) return 1;
    close(fd);
    if (lstat("link", &st) != 0) return 2;
    if (readlink("link", buf, sizeof buf) < 0) return 3;
    fd = open("dirlink/inner", O_RDONLY);
    if (fd < 0) return 4;
    close(fd);
    return 0;
}
"#;

#[test]
fn symlinks_resolve_to_targets_and_record_the_link() {
    let dir = tmpdir("symlinks");
    std::fs::write(dir.join("target"), "t").unwrap();
    std::os::unix::fs::symlink("target", dir.join("link")).unwrap();
    std::fs::create_dir(dir.join("real")).unwrap();
    std::fs::write(dir.join("real/inner"), "i").unwrap();
    std::os::unix::fs::symlink("real", dir.join("dirlink")).unwrap();
    for bin in cc(&dir, "symlinks", SYMLINKS) {
        let t = run_bin(&dir, &bin);
        has(&t, &dir.join("target"), Kinds::READ);
        has(
            &t,
            &dir.join("link"),
            Kinds::EXISTS | Kinds::STAT | Kinds::READ,
        );
        has(&t, &dir.join("real/inner"), Kinds::READ);
        has(&t, &dir.join("dirlink/inner"), Kinds::EXISTS);
    }
}

const EXECVP: &str = r#"
#include <unistd.h>
int main(void) {
    char *argv[] = {"hs-no-such-program", 0};
    execvp("hs-no-such-program", argv);
    return 0; /* expected: not found */
}
"#;

#[test]
fn failed_lookups_and_path_search_are_missing() {
    let dir = tmpdir("pathsearch");
    std::fs::create_dir(dir.join("bin1")).unwrap();
    std::fs::create_dir(dir.join("bin2")).unwrap();
    for bin in cc(&dir, "execvp", EXECVP) {
        let path = format!(
            "{}:{}",
            dir.join("bin1").display(),
            dir.join("bin2").display()
        );
        let mut cmd = Command::new(&bin);
        cmd.env("PATH", &path).current_dir(&dir);
        let (_, t) = trace::spawn_traced(&mut cmd).unwrap().wait().unwrap();
        has(&t, &dir.join("bin1/hs-no-such-program"), Kinds::MISSING);
        has(&t, &dir.join("bin2/hs-no-such-program"), Kinds::MISSING);
    }
    // The shell's own PATH search.
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        dir.join("bin1").display(),
        dir.join("bin2").display()
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("hs-missing-cmd 2>/dev/null; true")
        .env("PATH", &path);
    let (_, t) = trace::spawn_traced(&mut cmd).unwrap().wait().unwrap();
    has(&t, &dir.join("bin1/hs-missing-cmd"), Kinds::MISSING);
    has(&t, &dir.join("bin2/hs-missing-cmd"), Kinds::MISSING);
}

const LISTDIR: &str = r#"
#include <dirent.h>
int main(void) {
    DIR *d = opendir("d");
    if (!d) return 1;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n == 4 ? 0 : 2;
}
"#;

#[test]
fn getdents_records_a_listing() {
    let dir = tmpdir("getdents");
    std::fs::create_dir(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/x"), "").unwrap();
    std::fs::write(dir.join("d/y"), "").unwrap();
    for bin in cc(&dir, "listdir", LISTDIR) {
        let t = run_bin(&dir, &bin);
        has(&t, &dir.join("d"), Kinds::LIST);
        lacks(&t, &dir.join("d/x"), Kinds::READ);
    }
}

const RENAME: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    if (rename("a", "b") != 0) return 1;
    if (renameat2(AT_FDCWD, "x", AT_FDCWD, "y", RENAME_EXCHANGE) != 0) return 2;
    rename("ghost", "z");
    return 0;
}
"#;

#[test]
fn rename_records_both_paths() {
    let dir = tmpdir("rename");
    for bin in cc(&dir, "rename", RENAME) {
        for f in ["a", "x", "y"] {
            std::fs::write(dir.join(f), f).unwrap();
        }
        let _ = std::fs::remove_file(dir.join("b"));
        let t = run_bin(&dir, &bin);
        has(&t, &dir.join("a"), Kinds::RENAME_FROM);
        has(&t, &dir.join("b"), Kinds::RENAME_TO);
        has(&t, &dir.join("x"), Kinds::RENAME_FROM | Kinds::RENAME_TO);
        has(&t, &dir.join("y"), Kinds::RENAME_FROM | Kinds::RENAME_TO);
        has(&t, &dir.join("ghost"), Kinds::MISSING);
    }
}

const WRITES: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
int main(void) {
    close(open("trunc", O_WRONLY | O_TRUNC));
    close(open("append", O_WRONLY | O_APPEND));
    close(open("rw", O_RDWR));
    close(creat("new", 0644));
    close(open("excl", O_CREAT | O_EXCL | O_WRONLY, 0644));
    if (unlink("gone") != 0) return 1;
    if (mkdir("newdir", 0755) != 0) return 2;
    if (rmdir("olddir") != 0) return 3;
    if (truncate("meta", 1) != 0) return 4;
    if (chmod("meta", 0600) != 0) return 5;
    if (utimensat(AT_FDCWD, "meta", 0, 0) != 0) return 6;
    if (symlink("meta", "sym") != 0) return 7;
    if (link("meta", "hard") != 0) return 8;
    getxattr("meta", "user.x", 0, 0);
    struct stat st;
    int fd = open("meta", O_RDONLY);
    fstat(fd, &st); /* not trapped: the open was recorded */
    return 0;
}
"#;

#[test]
fn write_classes() {
    let dir = tmpdir("writes");
    for bin in cc(&dir, "writes", WRITES) {
        for f in ["trunc", "append", "rw", "gone", "meta", "excl"] {
            std::fs::write(dir.join(f), f).unwrap();
        }
        for f in ["new", "sym", "hard"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_dir(dir.join("newdir"));
        std::fs::create_dir_all(dir.join("olddir")).unwrap();
        let t = run_bin(&dir, &bin);
        has(&t, &dir.join("trunc"), Kinds::WRITE_TRUNC);
        lacks(&t, &dir.join("trunc"), Kinds::WRITE);
        has(&t, &dir.join("append"), Kinds::WRITE);
        has(&t, &dir.join("rw"), Kinds::WRITE);
        has(&t, &dir.join("new"), Kinds::CREATE);
        has(&t, &dir.join("excl"), Kinds::EXISTS);
        has(&t, &dir.join("gone"), Kinds::DELETE);
        has(&t, &dir.join("newdir"), Kinds::CREATE);
        has(&t, &dir.join("olddir"), Kinds::DELETE);
        has(
            &t,
            &dir.join("meta"),
            Kinds::WRITE | Kinds::SET_META | Kinds::STAT | Kinds::READ,
        );
        has(&t, &dir.join("sym"), Kinds::CREATE);
        has(&t, &dir.join("hard"), Kinds::CREATE);
        assert!(t.flags.is_empty(), "{}", dump(&t));
    }
}

const THREADS: &str = r#"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *work(void *arg) {
    char name[32];
    snprintf(name, sizeof name, "t%ld", (long)arg);
    int fd = open(name, O_RDONLY);
    if (fd >= 0) close(fd);
    return 0;
}
int main(void) {
    pthread_t th[4];
    for (long i = 0; i < 4; i++) pthread_create(&th[i], 0, work, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(th[i], 0);
    return 0;
}
"#;

#[test]
fn threads_are_traced() {
    let dir = tmpdir("threads");
    for i in 0..4 {
        std::fs::write(dir.join(format!("t{i}")), "").unwrap();
    }
    for bin in cc(&dir, "threads", THREADS) {
        let t = run_bin(&dir, &bin);
        for i in 0..4 {
            has(&t, &dir.join(format!("t{i}")), Kinds::READ);
        }
    }
}

const VFORK: &str = r#"
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t p = vfork();
    if (p == 0) {
        char *argv[] = {"cat", "input", 0};
        execv("/bin/cat", argv);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
"#;

#[test]
fn vfork_children_are_traced() {
    let dir = tmpdir("vfork");
    std::fs::write(dir.join("input"), "hello\n").unwrap();
    for bin in cc(&dir, "vfork", VFORK) {
        let t = run_bin(&dir, &bin);
        has(&t, &dir.join("input"), Kinds::READ);
        has(&t, Path::new("/bin/cat"), Kinds::EXISTS);
        let cat = std::fs::canonicalize("/bin/cat").unwrap();
        has(&t, &cat, Kinds::EXEC);
    }
}

#[test]
fn script_interpreters_are_recorded() {
    let dir = tmpdir("interp");
    let script = dir.join("script");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let t = run(&dir, &[script.as_os_str()]);
    has(&t, &script, Kinds::EXEC);
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    has(&t, &sh, Kinds::EXEC);
}

const NET: &str = r#"
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argv[1][0] == 'u') {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "/nonexistent-hs-sock"};
        connect(s, (struct sockaddr *)&a, sizeof a);
    } else if (argv[1][0] == 'a') {
        /* Abstract: "\0hs-abstract-test". */
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        memcpy(a.sun_path + 1, "hs-abstract-test", 16);
        connect(s, (struct sockaddr *)&a, sizeof(sa_family_t) + 17);
    } else {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        connect(s, (struct sockaddr *)&a, sizeof a);
    }
    return 0;
}
"#;

#[test]
fn network_use_is_flagged_but_unix_sockets_are_not() {
    let dir = tmpdir("net");
    for bin in cc(&dir, "net", NET) {
        let t = run(&dir, &[bin.as_os_str(), "inet".as_ref()]);
        assert!(t.flags.contains(Flags::NETWORK), "{}", dump(&t));
        let t = run(&dir, &[bin.as_os_str(), "unix".as_ref()]);
        assert!(!t.flags.contains(Flags::NETWORK), "{}", dump(&t));
        // An abstract unix socket is in the network namespace, not the filesystem.
        let t = run(&dir, &[bin.as_os_str(), "abstract".as_ref()]);
        assert!(t.flags.contains(Flags::NETWORK), "{}", dump(&t));
    }
}

const URING: &str = r#"
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    char params[120];
    memset(params, 0, sizeof params);
    long r = syscall(SYS_io_uring_setup, 4, params);
    return r == -1 && errno == ENOSYS ? 0 : 1;
}
"#;

#[test]
fn io_uring_is_denied_with_enosys() {
    let dir = tmpdir("uring");
    for bin in cc(&dir, "uring", URING) {
        run_bin(&dir, &bin);
    }
}

const ESCAPE: &str = r#"
#define _GNU_SOURCE
#include <sched.h>
#include <sys/mount.h>
int main(void) {
    mount("none", "/nonexistent", "tmpfs", 0, 0);
    return 0;
}
"#;

#[test]
fn escape_hatches_are_flagged() {
    let dir = tmpdir("escape");
    for bin in cc(&dir, "escape", ESCAPE) {
        let t = run_bin(&dir, &bin);
        assert!(t.flags.contains(Flags::ESCAPE), "{}", dump(&t));
    }
}

#[test]
fn make_of_a_tiny_c_project_reports_sources_and_headers() {
    let dir = tmpdir("make");
    std::fs::write(dir.join("util.h"), "int util(void);\n").unwrap();
    std::fs::write(
        dir.join("util.c"),
        "#include \"util.h\"\nint util(void) { return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.c"),
        "#include \"util.h\"\nint main(void) { return util(); }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Makefile"),
        "prog: main.o util.o\n\tcc -o prog main.o util.o\n%.o: %.c util.h\n\tcc -c -o $@ $<\n",
    )
    .unwrap();
    let t = run(&dir, &["make".as_ref(), "-s".as_ref()]);
    for f in ["main.c", "util.c", "util.h", "Makefile"] {
        has(&t, &dir.join(f), Kinds::READ);
    }
    for f in ["main.o", "util.o", "prog"] {
        has(&t, &dir.join(f), Kinds::CREATE);
    }
    assert!(dir.join("prog").exists());
}

#[test]
fn exit_status_and_signals_pass_through() {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg("exit 7");
    let (status, _) = trace::spawn_traced(&mut cmd).unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(7));
}

#[test]
fn spawn_error_is_reported() {
    let mut cmd = Command::new("/nonexistent/hs-program");
    let err = trace::spawn_traced(&mut cmd).unwrap_err();
    assert!(err.to_string().contains("failed to start"), "{err}");
}

#[test]
fn programs_using_ptrace_keep_working() {
    if trace::Tracer::new().uses_ptrace() {
        // A process has one tracer: under the ptrace fallback, strace cannot attach.
        eprintln!("the ptrace fallback is in use; skipping");
        return;
    }
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("strace not installed; skipping");
        return;
    }
    let dir = tmpdir("ptrace");
    std::fs::write(dir.join("input"), "x").unwrap();
    let t = run(
        &dir,
        &[
            "strace".as_ref(),
            "-f".as_ref(),
            "-o".as_ref(),
            "/dev/null".as_ref(),
            "cat".as_ref(),
            "input".as_ref(),
        ],
    );
    has(&t, &dir.join("input"), Kinds::READ);
    assert!(
        !t.flags.contains(Flags::ESCAPE),
        "strace of its own child is inside the tree\n{}",
        dump(&t)
    );
}

const ATTACH: &str = r#"
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/types.h>
int main(int argc, char **argv) {
    pid_t p = atoi(argv[1]);
    ptrace(PTRACE_SEIZE, p, 0, 0);
    ptrace(PTRACE_DETACH, p, 0, 0);
    return 0;
}
"#;

#[test]
fn ptrace_of_a_process_outside_the_tree_is_flagged() {
    let dir = tmpdir("attach");
    let bins = cc(&dir, "attach", ATTACH);
    let mut outside = Command::new("sleep").arg("5").spawn().unwrap();
    let pid = outside.id().to_string();
    let t = run(&dir, &[bins[0].as_os_str(), pid.as_ref()]);
    outside.kill().unwrap();
    let _ = outside.wait();
    assert!(t.flags.contains(Flags::ESCAPE), "{}", dump(&t));
    assert!(t.notes.iter().any(|n| n.contains("ptrace")), "{}", dump(&t));
}

#[test]
fn daemons_that_outlive_the_command_are_flagged() {
    let dir = tmpdir("daemon");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg("sleep 2 & exit 0").current_dir(&dir);
    let tracer = trace::Tracer::new().grace(std::time::Duration::from_millis(100));
    let start = std::time::Instant::now();
    let (status, t) = tracer.spawn(&mut cmd).unwrap().wait().unwrap();
    assert!(status.success());
    assert!(
        start.elapsed() < std::time::Duration::from_millis(1500),
        "waited for the daemon"
    );
    assert!(t.flags.contains(Flags::OUTLIVED), "{}", dump(&t));
    assert!(t.stats.notifications > 0, "{}", dump(&t));
}

#[test]
fn device_writes_are_flagged() {
    let dir = tmpdir("device");
    let t = run(
        &dir,
        &[
            "/bin/sh".as_ref(),
            "-c".as_ref(),
            "echo x > /dev/null; : > /dev/full; true".as_ref(),
        ],
    );
    assert!(!t.flags.contains(Flags::DEVICE), "{}", dump(&t));
    let t = run(
        &dir,
        &[
            "/bin/sh".as_ref(),
            "-c".as_ref(),
            // (/dev/tty counts only with a controlling terminal: tests/devices.rs.)
            "(echo x > /dev/ptmx) 2>/dev/null; true".as_ref(),
        ],
    );
    assert!(t.flags.contains(Flags::DEVICE), "{}", dump(&t));
}

const IN_ROOT: &str = r#"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    int fd = open("/link", O_RDONLY);
    if (fd < 0) return 1;
    close(fd);
    stat("/data/missing", &st);
    if (chdir("/data") != 0) return 2;
    fd = open("file", O_RDONLY);
    if (fd < 0) return 3;
    return 0;
}
"#;

#[test]
fn paths_resolve_under_a_foreign_root() {
    let dir = tmpdir("root");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/file"), "in root").unwrap();
    // An absolute symlink: it must resolve inside the root, not on the host.
    std::os::unix::fs::symlink("/data/file", root.join("link")).unwrap();
    let bins = cc(&dir, "inroot", IN_ROOT);
    std::fs::copy(&bins[1], root.join("bin/helper")).unwrap();
    let mut cmd = if nix::unistd::geteuid().is_root() {
        Command::new("chroot")
    } else {
        let mut c = Command::new("unshare");
        c.arg("-r").arg("chroot");
        c
    };
    cmd.arg(&root).arg("/bin/helper");
    let rootfd = std::os::fd::OwnedFd::from(std::fs::File::open(&root).unwrap());
    let (status, t) = trace::Tracer::new()
        .root(rootfd)
        .spawn(&mut cmd)
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success(), "{status}\n{}", dump(&t));
    has(&t, Path::new("/data/file"), Kinds::READ);
    has(&t, Path::new("/link"), Kinds::EXISTS);
    has(&t, Path::new("/data/missing"), Kinds::MISSING);
    assert!(
        t.get(root.join("data/file").as_os_str().as_bytes())
            .is_none(),
        "{}",
        dump(&t)
    );
}

const CACHES: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    if (stat("nd/x", &st) == 0) return 1;          /* missing parent */
    mkdir("nd", 0755);
    close(open("nd/x", O_CREAT | O_WRONLY, 0644));
    if (stat("nd/x", &st) != 0) return 2;          /* now exists */
    mkdir("a", 0755);
    close(open("a/f", O_CREAT | O_WRONLY, 0644));
    if (stat("a/f", &st) != 0) return 3;
    if (rename("a", "b") != 0) return 4;
    if (stat("b/f", &st) != 0) return 5;
    if (stat("a/f", &st) == 0) return 6;           /* gone with its directory */
    if (stat("l/f", &st) != 0) return 7;           /* l -> d1 */
    unlink("l");
    if (symlink("d2", "l") != 0) return 8;
    if (stat("l/f", &st) != 0) return 9;           /* l -> d2 now */
    return 0;
}
"#;

#[test]
fn caches_follow_changes_made_by_the_tree() {
    let dir = tmpdir("caches");
    for bin in cc(&dir, "caches", CACHES) {
        for d in ["nd", "a", "b", "d1", "d2"] {
            let _ = std::fs::remove_dir_all(dir.join(d));
        }
        let _ = std::fs::remove_file(dir.join("l"));
        std::fs::create_dir(dir.join("d1")).unwrap();
        std::fs::create_dir(dir.join("d2")).unwrap();
        std::fs::write(dir.join("d1/f"), "1").unwrap();
        std::fs::write(dir.join("d2/f"), "2").unwrap();
        std::os::unix::fs::symlink("d1", dir.join("l")).unwrap();
        let t = run_bin(&dir, &bin);
        has(
            &t,
            &dir.join("nd/x"),
            Kinds::MISSING | Kinds::CREATE | Kinds::STAT,
        );
        has(
            &t,
            &dir.join("a/f"),
            Kinds::CREATE | Kinds::STAT | Kinds::MISSING,
        );
        has(&t, &dir.join("a"), Kinds::RENAME_FROM);
        has(&t, &dir.join("b"), Kinds::RENAME_TO);
        has(&t, &dir.join("b/f"), Kinds::STAT);
        has(&t, &dir.join("d1/f"), Kinds::STAT);
        has(&t, &dir.join("d2/f"), Kinds::STAT);
        has(&t, &dir.join("l"), Kinds::DELETE | Kinds::CREATE);
    }
}

const AT_CALLS: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
int main(void) {
    int d = open("w", O_RDONLY | O_DIRECTORY);
    if (d < 0) return 1;
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY;
    int fd = syscall(SYS_openat2, d, "o2", &how, sizeof how);
    if (fd < 0) return 2;
    close(fd);
    how.resolve = RESOLVE_IN_ROOT;
    fd = syscall(SYS_openat2, d, "/inroot", &how, sizeof how);  /* w/inroot, not /inroot */
    if (fd < 0) return 18;
    close(fd);
    struct statx sx;
    if (statx(d, "sx", 0, STATX_BASIC_STATS, &sx) != 0) return 3;
    if (faccessat(d, "fa", R_OK, AT_EACCESS) != 0) return 4;
    if (mkdirat(d, "md", 0755) != 0) return 5;
    if (symlinkat("target", d, "sl") != 0) return 6;
    if (linkat(d, "o2", d, "hl", 0) != 0) return 7;
    if (renameat(d, "rn", d, "rn2") != 0) return 8;
    if (unlinkat(d, "ul", 0) != 0) return 9;
    if (unlinkat(d, "md", AT_REMOVEDIR) != 0) return 10;
    if (mknodat(d, "fifo", S_IFIFO | 0644, 0) != 0) return 11;
    if (fchmodat(d, "o2", 0600, 0) != 0) return 12;
    if (utimensat(d, "o2", 0, 0) != 0) return 13;
    fd = openat(d, "ut", O_RDONLY);
    if (futimens(fd, 0) != 0) return 14;          /* utimensat(fd, NULL, ...) */
    close(fd);
    fd = openat(d, ".", O_WRONLY | O_TMPFILE, 0644);
    if (fd >= 0) close(fd);
    if (chdir("w") != 0) return 15;
    DIR *dir = opendir(".");
    if (!dir) return 16;
    while (readdir(dir)) {}
    closedir(dir);
    char buf[64];
    if (readlinkat(AT_FDCWD, "sl", buf, sizeof buf) < 0) return 17;
    return 0;
}
"#;

#[test]
fn at_calls_resolve_against_their_dirfd() {
    let dir = tmpdir("atcalls");
    for bin in cc(&dir, "atcalls", AT_CALLS) {
        let w = dir.join("w");
        let _ = std::fs::remove_dir_all(&w);
        std::fs::create_dir(&w).unwrap();
        for f in ["o2", "sx", "fa", "rn", "ul", "ut", "inroot"] {
            std::fs::write(w.join(f), f).unwrap();
        }
        let t = run_bin(&dir, &bin);
        has(
            &t,
            &w.join("o2"),
            Kinds::READ | Kinds::EXISTS | Kinds::SET_META,
        );
        has(&t, &w.join("sx"), Kinds::STAT);
        has(&t, &w.join("inroot"), Kinds::READ);
        assert!(t.get(b"/inroot").is_none(), "{}", dump(&t));
        has(&t, &w.join("fa"), Kinds::STAT);
        has(&t, &w.join("md"), Kinds::CREATE | Kinds::DELETE);
        has(&t, &w.join("sl"), Kinds::CREATE | Kinds::READ);
        has(&t, &w.join("hl"), Kinds::CREATE);
        has(&t, &w.join("rn"), Kinds::RENAME_FROM);
        has(&t, &w.join("rn2"), Kinds::RENAME_TO);
        has(&t, &w.join("ul"), Kinds::DELETE);
        has(&t, &w.join("fifo"), Kinds::CREATE);
        has(&t, &w.join("ut"), Kinds::READ | Kinds::SET_META);
        has(&t, &w, Kinds::LIST);
    }
}

const FEXECVE: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
extern char **environ;
int main(void) {
    int fd = open("/bin/true", O_PATH);
    char *argv[] = {"true", 0};
    syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
    return 1;
}
"#;

#[test]
fn execveat_of_an_fd_records_the_program() {
    let dir = tmpdir("fexecve");
    for bin in cc(&dir, "fexecve", FEXECVE) {
        let t = run_bin(&dir, &bin);
        let tru = std::fs::canonicalize("/bin/true").unwrap();
        has(&t, &tru, Kinds::EXEC);
    }
}

#[test]
fn concurrent_traces_stay_separate() {
    let dir = tmpdir("concurrent");
    for i in 0..4 {
        std::fs::write(dir.join(format!("in{i}")), "x").unwrap();
    }
    let children: Vec<_> = (0..4)
        .map(|i| {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(format!("for k in 1 2 3 4 5; do cat in{i}; done >/dev/null"))
                .current_dir(&dir);
            trace::spawn_traced(&mut cmd).unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let (status, t) = child.wait().unwrap();
        assert!(status.success());
        for j in 0..4 {
            let p = dir.join(format!("in{j}"));
            if i == j {
                has(&t, &p, Kinds::READ);
            } else {
                assert!(
                    t.get(p.as_os_str().as_bytes()).is_none(),
                    "trace {i} saw in{j}\n{}",
                    dump(&t)
                );
            }
        }
    }
}

#[test]
fn reads_of_the_inherited_stdin_are_flagged_when_watched() {
    let dir = tmpdir("stdin");
    let run_sh = |script: &str, watch: bool| {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .current_dir(&dir)
            .stdin(std::process::Stdio::inherit());
        let tracer = if watch {
            trace::Tracer::new().watch_stdin()
        } else {
            trace::Tracer::new()
        };
        let (status, t) = tracer.spawn(&mut cmd).unwrap().wait().unwrap();
        assert!(status.success());
        t
    };
    let t = run_sh("read x || true", true);
    assert!(t.flags.contains(Flags::STDIN), "{}", dump(&t));
    let t = run_sh("echo hi | { read x; }", true);
    assert!(!t.flags.contains(Flags::STDIN), "{}", dump(&t));
    let t = run_sh("read x || true", false);
    assert!(!t.flags.contains(Flags::STDIN), "{}", dump(&t));
}

const BAD_DIRFD: &str = r#"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    int p[2];
    if (pipe(p) != 0) return 1;
    fstatat(p[0], "x", &st, 0);     /* ENOTDIR */
    fstatat(999, "x", &st, 0);      /* EBADF */
    return 0;
}
"#;

#[test]
fn failing_dirfds_are_not_untraceable() {
    let dir = tmpdir("baddirfd");
    for bin in cc(&dir, "baddirfd", BAD_DIRFD) {
        let t = run_bin(&dir, &bin);
        assert!(!t.flags.contains(Flags::UNTRACEABLE), "{}", dump(&t));
    }
}

const SPAWN: &str = r#"
#include <spawn.h>
#include <sys/wait.h>
extern char **environ;
int main(void) {
    pid_t p;
    char *argv[] = {"cat", "input", 0};
    if (posix_spawnp(&p, "cat", 0, 0, argv, environ) != 0) return 1;
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 2;
}
"#;

#[test]
fn posix_spawn_children_are_traced() {
    let dir = tmpdir("posix-spawn");
    std::fs::write(dir.join("input"), "").unwrap();
    for bin in cc(&dir, "spawn", SPAWN) {
        let t = run_bin(&dir, &bin);
        has(&t, &dir.join("input"), Kinds::READ);
        has(&t, &std::fs::canonicalize("/bin/cat").unwrap(), Kinds::EXEC);
    }
}
