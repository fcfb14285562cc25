/* hs_shim: preloaded into the real bash by `hs`, and only into it.
 *
 * 0. Opening "/dev/null/hs-replay:OUT:ERR" replays a committed unit's output (see hs_replay);
 *    opening one of the server's pipes for writing takes a copy of its fd (hs_server_pipe);
 *    "/dev/null/hs-buffer" and "/dev/null/hs-flush" send a gate's state report in one write
 *    (hs_buffer, hs_flush); "/dev/null/hs-probe" tells the prelude the shim is there.
 *
 * 1. The first open() of the script path ($__HS_SCRIPT) opens the instrumented copy
 *    ($__HS_SOURCE, a memfd of the hs server seen through /proc) instead, so bash keeps the
 *    user's path for $0, BASH_SOURCE and its error messages.
 * 2. When the main bash process exits, it tells the hs server and waits until the server is
 *    done (runs stopped, reports written), so whoever ran `hs` sees a finished run; the
 *    server removes its sandboxes after that answer.
 *
 * The constructor removes every variable hs added (and restores LD_PRELOAD) before bash reads
 * its environment, so nothing bash runs can see them. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static char *hs_script, *hs_request, *hs_reply;
static int hs_source_fd = -1;
static char hs_source[32];
static pid_t hs_main;
static int hs_server_pid; /* from $__HS_REQUEST, /proc/SERVER/fd/N */

extern char **environ;

/* bash defines its own getenv/setenv/unsetenv, which shadow libc's and do not work this early,
 * so the environment is read and edited here directly, in place. */
static char *find(const char *name) {
    size_t len = strlen(name);
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

static void drop(const char *name) {
    size_t len = strlen(name);
    char **out = environ;
    for (char **e = environ; e && *e; e++)
        if (!(strncmp(*e, name, len) == 0 && (*e)[len] == '='))
            *out++ = *e;
    if (out)
        *out = NULL;
}

static char *take(const char *name) {
    const char *v = find(name);
    char *copy = v ? strdup(v) : NULL;
    drop(name);
    return copy;
}

/* With speculation on, the real shell is traced like every speculative run, so that what it
 * does itself (its redirections, command substitutions, units it runs) is known: install the
 * seccomp filter the server compiled and hand its listener to the server's supervisor, as
 * trace::ChildHook does. $__HS_TRACE is "PID:REPORT:FILTER": the server's pid, its end of the
 * report socket and a memfd holding the struct sock_filter program, both taken from the server
 * with pidfd_getfd. Returns 0 when the shell is traced. */
static int hs_trace_self(const char *spec) {
    int spid, rfd, ffd;
    if (sscanf(spec, "%d:%d:%d", &spid, &rfd, &ffd) != 3)
        return -1;
    int pidfd = (int)syscall(SYS_pidfd_open, spid, 0);
    if (pidfd < 0)
        return -1;
    int report = (int)syscall(SYS_pidfd_getfd, pidfd, rfd, 0);
    int filter = (int)syscall(SYS_pidfd_getfd, pidfd, ffd, 0);
    close(pidfd);
    int rc = -1;
    struct stat st;
    char *prog = NULL;
    if (report < 0 || filter < 0 || fstat(filter, &st) < 0 || st.st_size <= 0 ||
        st.st_size % sizeof(struct sock_filter) != 0)
        goto out;
    prog = malloc((size_t)st.st_size);
    if (!prog || pread(filter, prog, (size_t)st.st_size, 0) != st.st_size)
        goto out;
    struct sock_fprog fprog = {
        .len = (unsigned short)(st.st_size / sizeof(struct sock_filter)),
        .filter = (struct sock_filter *)prog,
    };
    /* With CAP_SYS_ADMIN (root) no no_new_privs is needed, and set-user-ID programs the
     * script runs keep working; without it, the kernel requires no_new_privs. */
    int listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    if (listener < 0 && errno == EACCES) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            goto out;
        listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    }
    if (listener < 0)
        goto out;
    int32_t msg[2] = {(int32_t)getpid(), (int32_t)listener};
    if (write(report, msg, sizeof msg) == (ssize_t)sizeof msg) {
        /* A trapped call returns only once the supervisor holds the listener (every
         * filter hs uses stops chdir, which the supervisor's cwd cache needs). */
        if (chdir(".") != 0) {
        }
        rc = 0;
    }
    close(listener);
out:
    free(prog);
    if (report >= 0)
        close(report);
    if (filter >= 0)
        close(filter);
    return rc;
}

__attribute__((constructor)) static void hs_init(void) {
    char *orig = take("__HS_LD_PRELOAD");
    /* Put the user's own LD_PRELOAD back in place of ours, or remove ours. */
    for (char **e = environ; orig && e && *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0) {
            size_t n = strlen(orig) + 12;
            char *v = malloc(n);
            if (v) {
                snprintf(v, n, "LD_PRELOAD=%s", orig);
                *e = v;
            }
        }
    if (!orig)
        drop("LD_PRELOAD");
    free(orig);
    char *shim_fd = take("__HS_SHIM_FD");
    if (shim_fd) {
        /* The loader has mapped us; our copy of the memfd is no longer needed. */
        close(atoi(shim_fd));
        free(shim_fd);
    }
    hs_script = take("__HS_SCRIPT");
    char *source_fd = take("__HS_SOURCE_FD");
    if (source_fd) {
        hs_source_fd = atoi(source_fd);
        snprintf(hs_source, sizeof hs_source, "/proc/self/fd/%d", hs_source_fd);
        free(source_fd);
    }
    if (hs_source_fd < 0) {
        free(hs_script);
        hs_script = NULL;
    }
    hs_request = take("__HS_REQUEST");
    if (hs_request && sscanf(hs_request, "/proc/%d/", &hs_server_pid) != 1)
        hs_server_pid = 0;
    hs_reply = take("__HS_REPLY");
    hs_main = getpid();
    char *trace = take("__HS_TRACE");
    if (trace) {
        hs_trace_self(trace);
        free(trace);
    }
}

/* Whether `path` is the script's, the first time only. */
static int hs_is_script(const char *path) {
    if (hs_script && path && strcmp(path, hs_script) == 0) {
        free(hs_script);
        hs_script = NULL;
        return 1;
    }
    return 0;
}

typedef int (*open_fn)(const char *, int, ...);

/* Writes all of `buf` to `fd`; returns 0, or -1 when a write fails (the reader is gone). */
static int hs_write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copies file `in`, from its start whatever its offset, to `out`; returns 0, or -1 when a
 * write fails. */
static int hs_copy_fd(int in, int out) {
    char buf[65536];
    off_t at = 0;
    for (;;) {
        ssize_t n = pread(in, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        if (hs_write_all(out, buf, (size_t)n) != 0)
            return -1;
        at += n;
    }
}

/* Copies file `path` to `fd`; returns 0, or -1 when the reader is gone. */
static int hs_copy(open_fn real, const char *path, int fd) {
    if (!*path)
        return 0;
    int in = real(path, O_RDONLY | O_CLOEXEC, 0);
    if (in < 0)
        return 0;
    int rc = hs_copy_fd(in, fd);
    close(in);
    return rc;
}

/* Blocks SIGPIPE while writing to a pipe whose reader may be gone, so that bash itself never
 * dies of it; `hs_pipe_unguard` drops a SIGPIPE raised meanwhile (with `drop`) and restores
 * the mask. */
static void hs_pipe_guard(sigset_t *old) {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe, old);
}

static void hs_pipe_unguard(const sigset_t *old, int drop) {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    struct timespec zero = {0, 0};
    while (drop && sigtimedwait(&pipe, NULL, &zero) > 0)
        ;
    sigprocmask(SIG_SETMASK, old, NULL);
}

/* `__hs_replay` reads from "/dev/null/hs-replay:OUT:ERR" (a path that cannot exist): copy a
 * committed unit's captured output to bash's current fds 1 and 2, exactly where the unit's own
 * writes would have gone. SIGPIPE is blocked meanwhile so that bash itself never dies of it.
 * Returns an fd to read "p" from after a broken pipe (the caller then returns status 141, as
 * the unit would have), else an fd of /dev/null. */
#define HS_REPLAY "/dev/null/hs-replay:"

static int hs_replay(open_fn real, const char *spec) {
    char out[4096], *err;
    snprintf(out, sizeof out, "%s", spec);
    err = strchr(out, ':');
    if (!err) {
        errno = EINVAL;
        return -1;
    }
    *err++ = 0;
    sigset_t old;
    hs_pipe_guard(&old);
    int broken = hs_copy(real, out, 1) < 0 || hs_copy(real, err, 2) < 0;
    hs_pipe_unguard(&old, 1);
    if (broken) {
        /* Reads "p": `__hs_replay` then returns 141, with no message from bash. */
        int fd = (int)syscall(SYS_memfd_create, "hs-replay", MFD_CLOEXEC);
        if (fd >= 0 && write(fd, "p\n", 2) == 2 && lseek(fd, 0, SEEK_SET) == 0)
            return fd;
        if (fd >= 0)
            close(fd);
        errno = ENXIO;
        return -1;
    }
    return real("/dev/null", O_RDONLY | O_CLOEXEC, 0);
}

/* Gates write to the server's pipes by path, /proc/SERVER/fd/N (so that no fd of hs's stays
 * open in the shell). Opening such a path for writing is a call the shell's tracer stops: a
 * round trip to the server at every gate. A copy of the server's fd from pidfd_getfd is the
 * same pipe without that call. Returns -1 to let the real open() handle `path`. */
static int hs_server_pipe(const char *path, int flags) {
    int spid, fd;
    char extra;
    if (hs_server_pid <= 0 || (flags & O_ACCMODE) == O_RDONLY || !path ||
        strncmp(path, "/proc/", 6) != 0 ||
        sscanf(path, "/proc/%d/fd/%d%c", &spid, &fd, &extra) != 2 || spid != hs_server_pid)
        return -1;
    int pidfd = (int)syscall(SYS_pidfd_open, spid, 0);
    if (pidfd < 0)
        return -1;
    int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    close(pidfd);
    struct stat st;
    if (copy >= 0 && (fstat(copy, &st) != 0 || !S_ISFIFO(st.st_mode))) {
        close(copy);
        return -1;
    }
    /* pidfd_getfd sets close-on-exec; an open() without O_CLOEXEC does not. */
    if (copy >= 0 && !(flags & O_CLOEXEC))
        fcntl(copy, F_SETFD, 0);
    return copy;
}

/* A gate's state report (`declare -px` and more) is many lines, and bash writes each with
 * its own write(): to the server's pipe, each wakes the server. The gate writes the report to
 * "/dev/null/hs-buffer" instead, a memfd the shim keeps a copy of (at 600 or above, closed at
 * the flush), then reads "/dev/null/hs-flush", which sends it to the server in one write. */
#define HS_BUFFER "/dev/null/hs-buffer"
#define HS_FLUSH "/dev/null/hs-flush"
#define HS_PROBE "/dev/null/hs-probe"
static int hs_buffer_fd = -1;

static int hs_buffer(int flags) {
    if (hs_buffer_fd >= 0) {
        close(hs_buffer_fd);
        hs_buffer_fd = -1;
    }
    int m = (int)syscall(SYS_memfd_create, "hs-report", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
    if (m < 0)
        return -1;
    hs_buffer_fd = fcntl(m, F_DUPFD_CLOEXEC, 600);
    if (hs_buffer_fd < 0)
        hs_buffer_fd = fcntl(m, F_DUPFD_CLOEXEC, 0);
    if (hs_buffer_fd < 0) {
        close(m);
        return -1;
    }
    return m;
}

static int hs_flush(open_fn real) {
    int b = hs_buffer_fd;
    hs_buffer_fd = -1;
    if (b < 0)
        return real("/dev/null", O_RDONLY | O_CLOEXEC, 0);
    int rc = -1;
    sigset_t old;
    hs_pipe_guard(&old);
    int out = hs_server_pipe(hs_request, O_WRONLY);
    if (out < 0 && hs_request)
        out = real(hs_request, O_WRONLY | O_CLOEXEC, 0);
    if (out >= 0) {
        rc = hs_copy_fd(b, out);
        close(out);
    }
    hs_pipe_unguard(&old, rc != 0);
    close(b);
    if (rc != 0) {
        errno = EPIPE;
        return -1;
    }
    return real("/dev/null", O_RDONLY | O_CLOEXEC, 0);
}

static int hs_open(const char *sym, const char *path, int flags, va_list ap) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE))
        mode = va_arg(ap, mode_t);
    static open_fn real_open, real_open64;
    open_fn *slot = strcmp(sym, "open") == 0 ? &real_open : &real_open64;
    if (!*slot)
        *slot = (open_fn)dlsym(RTLD_NEXT, sym);
    open_fn real = *slot;
    if (path && strncmp(path, HS_REPLAY, sizeof HS_REPLAY - 1) == 0)
        return hs_replay(real, path + sizeof HS_REPLAY - 1);
    if (path && strncmp(path, "/dev/null/hs-", 13) == 0) {
        if (strcmp(path, HS_BUFFER) == 0)
            return hs_buffer(flags);
        if (strcmp(path, HS_FLUSH) == 0)
            return hs_flush(real);
        if (strcmp(path, HS_PROBE) == 0)
            return real("/dev/null", O_RDONLY | O_CLOEXEC, 0);
    }
    int pipe_fd = hs_server_pipe(path, flags);
    if (pipe_fd >= 0)
        return pipe_fd;
    if (hs_is_script(path)) {
        int fd = real(hs_source, flags, mode);
        close(hs_source_fd);
        hs_source_fd = -1;
        return fd;
    }
    return real(path, flags, mode);
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    int fd = hs_open("open", path, flags, ap);
    va_end(ap);
    return fd;
}

int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    int fd = hs_open("open64", path, flags, ap);
    va_end(ap);
    return fd;
}

__attribute__((destructor)) static void hs_fini(void) {
    if (!hs_request || !hs_reply || getpid() != hs_main)
        return;
    int q = open(hs_request, O_WRONLY | O_CLOEXEC);
    if (q < 0)
        return;
    char msg[32];
    int n = snprintf(msg, sizeof msg, "x %d\n", (int)hs_main);
    ssize_t w = write(q, msg, (size_t)n);
    close(q);
    if (w != n)
        return;
    int a = open(hs_reply, O_RDONLY | O_CLOEXEC);
    if (a < 0)
        return;
    char c;
    while (read(a, &c, 1) == 1 && c != '\n')
        ;
    close(a);
}
