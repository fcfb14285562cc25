/* hs_fast: the tracer's LD_PRELOAD fast path (trace/README.md, "Fast path").
 *
 * Pure lookups made through libc's exported functions — the stat family, access, readlink,
 * opens for reading, fopen(…, "r"), opendir, realpath — are recorded in a ring shared with
 * the supervisor and then issued from a trampoline page at a fixed address, which the seccomp
 * filter lets through without a notification. Everything else traps as before: calls this
 * file does not wrap, calls libc makes internally, static programs, calls made before the
 * constructor ran, a full ring. A record is committed, with the call's outcome, before the
 * wrapper returns, so the supervisor never misses a lookup a program could have acted on; it
 * drains the ring before it lets any create, delete or rename go, so a lookup is resolved
 * before any later change to its path.
 *
 * The shim passes itself on through the exec family and posix_spawn (LD_PRELOAD plus
 * $__HS_FAST, removed again by the constructor, so programs see the environment they were
 * given). The ring is a file in the tracer's private directory, named in $__HS_FAST with its
 * device and inode; each process maps it and closes it, so programs see exactly their own
 * descriptors, and a child that finds it gone or replaced runs without the fast path.
 *
 * The ring layout below must match trace/src/fast.rs. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FAST_MAGIC 0x48534652u /* "HSFR" */
#define FAST_VERSION 1u
#define TRAMP_ADDR 0x485300000000ul
#define HDR_SIZE 4096u
#define SLOT_SIZE 512u
#define SLOT_HEAD 8u
#define SLOT_PATH (SLOT_SIZE - SLOT_HEAD)
#define FREE 0u
#define WRITING 1u
#define COMMITTED 2u
#define K_STAT 1
#define K_READ 2
#define K_EXISTS 3
#define F_FOLLOW 1 /* the last component is followed */
#define F_SIMPLE 2 /* a canonical directory and one plain name: no resolution needed */
#define R_UNKNOWN 0
#define R_EXISTS 1
#define R_MISSING 2

struct hdr {
    uint32_t magic, version, nslots, slot_size;
    _Atomic uint64_t next;     /* slot allocation counter */
    _Atomic uint64_t count;    /* records started (incremented before commit) */
    _Atomic uint64_t gen;      /* bumped by the supervisor when paths may have changed */
    _Atomic uint32_t inflight; /* creates/deletes/renames let go but not known complete */
    _Atomic uint32_t sleeping; /* the reader waits on `wake` */
    _Atomic uint32_t wake;
    uint32_t pad;
    _Atomic uint64_t drained; /* records the reader took out */
};

struct slot {
    uint16_t kind;
    uint8_t flags;  /* F_FOLLOW, F_SIMPLE */
    uint8_t result; /* R_* */
    uint32_t len;
    char path[SLOT_PATH];
};

typedef long (*tramp_fn)(long, long, long, long, long, long, long);

/* mov %rdi,%rax; mov %rsi,%rdi; mov %rdx,%rsi; mov %rcx,%rdx; mov %r8,%r10; mov %r9,%r8;
 * mov 8(%rsp),%r9; syscall; ret — the filter allows the address after `syscall`. */
static const unsigned char tramp_code[] = {
    0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6, 0x48, 0x89, 0xca, 0x4d,
    0x89, 0xc2, 0x4d, 0x89, 0xc8, 0x4c, 0x8b, 0x4c, 0x24, 0x08, 0x0f, 0x05, 0xc3,
};

static struct hdr *ring;
static _Atomic uint32_t *states;
static struct slot *slots;
static tramp_fn tramp;
static dev_t ring_dev;
static ino_t ring_ino;
static char ring_path[256];
static char so_path[256];

extern char **environ;

#define SYS(nr, a, b, c, d, e, f)                                                          \
    tramp((long)(nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* A raw result to the libc convention. */
static long ret(long r) {
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

#define REAL(name)                                                                         \
    static __typeof__(&name) real_##name;                                                  \
    if (!real_##name)                                                                      \
        real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name);

/* ---- the environment (edited in place: no allocation, nothing to free) ---- */

static char **find_entry(const char *name) {
    size_t len = strlen(name);
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return e;
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

/* ---- recording ---- */

/* Directory paths of dirfds by (dev, ino), valid for one `gen` of the ring. */
#define DIRS 16
static struct {
    dev_t dev;
    ino_t ino;
    uint64_t gen;
    uint32_t len;
    char path[SLOT_PATH];
} dirs[DIRS];
static atomic_flag dirs_busy = ATOMIC_FLAG_INIT;
static unsigned dirs_next;

/* The path of directory fd `fd` into buf (NUL-terminated); its length, or -1. */
static long fd_dir(int fd, char *buf) {
    struct stat st;
    if (SYS(SYS_fstat, fd, &st, 0, 0, 0, 0) != 0 || !S_ISDIR(st.st_mode))
        return -1;
    uint64_t gen = atomic_load(&ring->gen);
    int settled = atomic_load(&ring->inflight) == 0;
    if (!atomic_flag_test_and_set(&dirs_busy)) {
        for (int i = 0; i < DIRS; i++)
            if (dirs[i].len && dirs[i].dev == st.st_dev && dirs[i].ino == st.st_ino &&
                dirs[i].gen == gen) {
                long n = dirs[i].len;
                memcpy(buf, dirs[i].path, (size_t)n + 1);
                atomic_flag_clear(&dirs_busy);
                return n;
            }
        atomic_flag_clear(&dirs_busy);
    }
    char link[32];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    long n = SYS(SYS_readlinkat, AT_FDCWD, link, buf, SLOT_PATH - 1, 0, 0);
    if (n <= 0 || n >= (long)SLOT_PATH - 1 || buf[0] != '/')
        return -1;
    buf[n] = 0;
    if (n > 10 && memcmp(buf + n - 10, " (deleted)", 10) == 0)
        return -1;
    if (settled && !atomic_flag_test_and_set(&dirs_busy)) {
        unsigned i = dirs_next++ % DIRS;
        dirs[i].dev = st.st_dev;
        dirs[i].ino = st.st_ino;
        dirs[i].gen = gen;
        dirs[i].len = (uint32_t)n;
        memcpy(dirs[i].path, buf, (size_t)n + 1);
        atomic_flag_clear(&dirs_busy);
    }
    return n;
}

/* Paths below /proc and /dev go the slow way: the supervisor rewrites the caller's own
 * entries (/proc/self, /dev/fd/N, /dev/stdin) with its pid. */
static int special(const char *p) {
    while (*p == '/')
        p++;
    return (strncmp(p, "proc", 4) == 0 && (p[4] == '/' || !p[4])) ||
           (strncmp(p, "dev", 3) == 0 && (p[3] == '/' || !p[3]));
}

/* Claims a slot and fills it; its index, or -1 when the ring is full. */
static long claim(const char *path, size_t len, int kind, int flags) {
    uint32_t n = ring->nslots;
    for (int tries = 0; tries < 8; tries++) {
        uint64_t i = atomic_fetch_add(&ring->next, 1) % n;
        uint32_t expect = FREE;
        if (!atomic_compare_exchange_strong(&states[i], &expect, WRITING))
            continue;
        struct slot *s = &slots[i];
        s->kind = (uint16_t)kind;
        s->flags = (uint8_t)flags;
        s->result = R_UNKNOWN;
        s->len = (uint32_t)len;
        memcpy(s->path, path, len);
        return (long)i;
    }
    return -1;
}

/* What a call's raw result `r` says about its path. ENOTDIR is not "missing": with a simple
 * name under a directory it means the entry is no directory (O_DIRECTORY). */
static int outcome(int kind, long r) {
    if (r >= 0 || (r == -EINVAL && kind == K_READ)) /* readlink of a non-link: it exists */
        return R_EXISTS;
    return r == -ENOENT ? R_MISSING : R_UNKNOWN;
}

/* Completes record `i` with the call's result and commits it; returns `r`. Committing after
 * the call loses nothing: a process that dies in between never acted on the answer, and the
 * record is in the ring before anything the process does next (a trapped rename, say). */
static long done(long i, int kind, long r) {
    uint32_t n = ring->nslots;
    slots[i].result = (uint8_t)outcome(kind, r);
    atomic_fetch_add(&ring->count, 1);
    atomic_store(&states[i], COMMITTED);
    /* The reader drains on its own every few milliseconds; wake it early only when a
     * backlog builds up. */
    if (atomic_load(&ring->sleeping) &&
        atomic_load(&ring->count) - atomic_load(&ring->drained) >= n / 8) {
        atomic_fetch_add(&ring->wake, 1);
        SYS(SYS_futex, &ring->wake, FUTEX_WAKE, 1, 0, 0, 0);
    }
    return r;
}

/* Whether `name` is one plain component: no slash, not "." or "..". */
static int plain(const char *name) {
    return name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Starts the record of a lookup of `path` relative to `dirfd`: the slot to finish with
 * `done` once the call was made through the trampoline, or -1 when the caller must make the
 * call the ordinary way (it then traps). `canon` says the directory part of an absolute path
 * is canonical (realpath's own lookups). */
static long begin(int dirfd, const char *path, int kind, int follow, int canon) {
    if (!ring || !path || !path[0])
        return -1;
    size_t plen = strnlen(path, SLOT_PATH);
    if (plen >= SLOT_PATH)
        return -1;
    int flags = follow ? F_FOLLOW : 0;
    if (path[0] == '/') {
        if (special(path))
            return -1;
        const char *last = strrchr(path, '/') + 1;
        if (canon && plain(last))
            flags |= F_SIMPLE;
        return claim(path, plen, kind, flags);
    }
    char buf[SLOT_PATH];
    long n;
    if (dirfd == AT_FDCWD) {
        n = SYS(SYS_getcwd, buf, SLOT_PATH, 0, 0, 0, 0) - 1; /* length with its NUL */
        if (n <= 0 || buf[0] != '/')
            return -1;
    } else if ((n = fd_dir(dirfd, buf)) < 0) {
        return -1;
    }
    if (buf[n - 1] != '/')
        buf[n++] = '/';
    if ((size_t)n + plen >= SLOT_PATH)
        return -1;
    memcpy(buf + n, path, plen);
    buf[n + (long)plen] = 0;
    if (special(buf))
        return -1;
    /* getcwd and /proc/self/fd give canonical directories. */
    if (plain(path))
        flags |= F_SIMPLE;
    return claim(buf, (size_t)n + plen, kind, flags);
}

/* The call `call` through the trampoline when `begin(...)` recorded it, as a libc-style
 * result; otherwise falls through. */
#define FAST(dirfd, path, kind, follow, call)                                              \
    do {                                                                                   \
        long slot_ = begin(dirfd, path, kind, follow, 0);                                  \
        if (slot_ >= 0)                                                                    \
            return ret(done(slot_, kind, call));                                           \
    } while (0)

/* ---- the stat family, access, readlink ---- */

static int fstatat_common(int fd, const char *p, struct stat *b, int fl) {
    if ((fl & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT)) == 0)
        FAST(fd, p, K_STAT, !(fl & AT_SYMLINK_NOFOLLOW), SYS(SYS_newfstatat, fd, p, b, fl, 0, 0));
    REAL(fstatat);
    return real_fstatat(fd, p, b, fl);
}

int stat(const char *p, struct stat *b) { return fstatat_common(AT_FDCWD, p, b, 0); }
int stat64(const char *p, struct stat64 *b) {
    return fstatat_common(AT_FDCWD, p, (struct stat *)b, 0);
}
int lstat(const char *p, struct stat *b) {
    return fstatat_common(AT_FDCWD, p, b, AT_SYMLINK_NOFOLLOW);
}
int lstat64(const char *p, struct stat64 *b) {
    return fstatat_common(AT_FDCWD, p, (struct stat *)b, AT_SYMLINK_NOFOLLOW);
}
int fstatat(int fd, const char *p, struct stat *b, int fl) { return fstatat_common(fd, p, b, fl); }
int fstatat64(int fd, const char *p, struct stat64 *b, int fl) {
    return fstatat_common(fd, p, (struct stat *)b, fl);
}

int statx(int fd, const char *p, int fl, unsigned int mask, struct statx *b) {
    if ((fl & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)) == 0)
        FAST(fd, p, K_STAT, !(fl & AT_SYMLINK_NOFOLLOW), SYS(SYS_statx, fd, p, fl, mask, b, 0));
    REAL(statx);
    return real_statx(fd, p, fl, mask, b);
}

int access(const char *p, int mode) {
    FAST(AT_FDCWD, p, K_STAT, 1, SYS(SYS_access, p, mode, 0, 0, 0, 0));
    REAL(access);
    return real_access(p, mode);
}

int faccessat(int fd, const char *p, int mode, int fl) {
    if (fl == 0)
        FAST(fd, p, K_STAT, 1, SYS(SYS_faccessat, fd, p, mode, 0, 0, 0));
    REAL(faccessat);
    return real_faccessat(fd, p, mode, fl);
}

ssize_t readlink(const char *p, char *buf, size_t n) {
    if (n > 0) /* with no room the kernel fails before looking anything up */
        FAST(AT_FDCWD, p, K_READ, 0, SYS(SYS_readlink, p, buf, n, 0, 0, 0));
    REAL(readlink);
    return real_readlink(p, buf, n);
}

ssize_t readlinkat(int fd, const char *p, char *buf, size_t n) {
    if (n > 0)
        FAST(fd, p, K_READ, 0, SYS(SYS_readlinkat, fd, p, buf, n, 0, 0));
    REAL(readlinkat);
    return real_readlinkat(fd, p, buf, n);
}

/* ---- opens for reading ---- */

static int read_only(int fl) {
    return (fl & O_ACCMODE) == O_RDONLY && !(fl & (O_CREAT | O_TRUNC)) &&
           (fl & O_TMPFILE) != O_TMPFILE;
}

/* An open for reading through the trampoline, or -2 when it must go the ordinary way. */
static int open_fast(int fd, const char *p, int fl) {
    if (!read_only(fl))
        return -2;
    int kind = (fl & (O_PATH | O_DIRECTORY)) ? K_EXISTS : K_READ;
    FAST(fd, p, kind, !(fl & O_NOFOLLOW), SYS(SYS_openat, fd, p, fl, 0, 0, 0));
    return -2;
}

static mode_t mode_arg(int fl, va_list ap) {
    return (fl & O_CREAT) || (fl & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

/* open, open64, openat, openat64: the read-only ones through the trampoline. */
#define OPEN_AT(name, params, dirfd, args)                                                 \
    int name params {                                                                      \
        int r = open_fast(dirfd, p, fl);                                                   \
        if (r != -2)                                                                       \
            return r;                                                                      \
        va_list ap;                                                                        \
        va_start(ap, fl);                                                                  \
        mode_t m = mode_arg(fl, ap);                                                       \
        va_end(ap);                                                                        \
        REAL(name);                                                                        \
        return real_##name args;                                                           \
    }
OPEN_AT(open, (const char *p, int fl, ...), AT_FDCWD, (p, fl, m))
OPEN_AT(open64, (const char *p, int fl, ...), AT_FDCWD, (p, fl, m))
OPEN_AT(openat, (int fd, const char *p, int fl, ...), fd, (fd, p, fl, m))
OPEN_AT(openat64, (int fd, const char *p, int fl, ...), fd, (fd, p, fl, m))

/* The _FORTIFY_SOURCE entry points (their checks concern O_CREAT without a mode). */
int __open_2(const char *p, int fl);
int __open64_2(const char *p, int fl);
int __openat_2(int fd, const char *p, int fl);
int __openat64_2(int fd, const char *p, int fl);
#define OPEN_2(name, params, dirfd, args)                                                  \
    int name params {                                                                      \
        int r = open_fast(dirfd, p, fl);                                                   \
        if (r != -2)                                                                       \
            return r;                                                                      \
        REAL(name);                                                                        \
        return real_##name args;                                                           \
    }
OPEN_2(__open_2, (const char *p, int fl), AT_FDCWD, (p, fl))
OPEN_2(__open64_2, (const char *p, int fl), AT_FDCWD, (p, fl))
OPEN_2(__openat_2, (int fd, const char *p, int fl), fd, (fd, p, fl))
OPEN_2(__openat64_2, (int fd, const char *p, int fl), fd, (fd, p, fl))

/* fopen for reading: "r", "rb", "re", "rbe", "reb" (what glibc turns into O_RDONLY, plus
 * O_CLOEXEC for 'e'); any other mode goes to libc. */
static FILE *fopen_fast(const char *p, const char *mode, int *done) {
    *done = 0;
    if (!ring || !p || !mode || mode[0] != 'r')
        return NULL;
    int b = 0, e = 0;
    for (const char *m = mode + 1; *m; m++) {
        if (*m == 'b' && !b)
            b = 1;
        else if (*m == 'e' && !e)
            e = 1;
        else
            return NULL;
    }
    int fd = open_fast(AT_FDCWD, p, O_RDONLY | (e ? O_CLOEXEC : 0));
    if (fd == -2)
        return NULL;
    *done = 1;
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        int err = errno;
        close(fd);
        errno = err;
    }
    return f;
}

FILE *fopen(const char *p, const char *mode) {
    int done;
    FILE *f = fopen_fast(p, mode, &done);
    if (done)
        return f;
    REAL(fopen);
    return real_fopen(p, mode);
}

FILE *fopen64(const char *p, const char *mode) {
    int done;
    FILE *f = fopen_fast(p, mode, &done);
    if (done)
        return f;
    REAL(fopen64);
    return real_fopen64(p, mode);
}

DIR *opendir(const char *p) {
    if (p && p[0]) {
        int fd = open_fast(AT_FDCWD, p, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC);
        if (fd != -2) {
            if (fd < 0)
                return NULL;
            DIR *d = fdopendir(fd);
            if (!d) {
                int err = errno;
                close(fd);
                errno = err;
            }
            return d;
        }
    }
    REAL(opendir);
    return real_opendir(p);
}

/* ---- realpath ---- */

/* A lookup made on realpath's behalf: through the trampoline when recorded, else trapped. */
static long rp_readlink(const char *p, char *buf, size_t n) {
    long slot = begin(AT_FDCWD, p, K_READ, 0, 1);
    if (slot >= 0)
        return done(slot, K_READ, SYS(SYS_readlink, p, buf, n, 0, 0, 0));
    long r = syscall(SYS_readlink, p, buf, n);
    return r < 0 ? -errno : r;
}

static long rp_dir_check(const char *p) {
    long slot = begin(AT_FDCWD, p, K_STAT, 1, 0);
    if (slot >= 0)
        return done(slot, K_STAT, SYS(SYS_faccessat2, AT_FDCWD, p, F_OK, AT_EACCESS, 0, 0));
    return syscall(SYS_faccessat2, AT_FDCWD, p, F_OK, AT_EACCESS) < 0 ? -errno : 0;
}

/* Whether what follows a component makes glibc check that it is a directory: a trailing
 * slash or "/.", or a "/.." anywhere after "/." steps. */
static int needs_dir(const char *rest) {
    while (*rest == '/') {
        while (*rest == '/')
            rest++;
        if (!*rest)
            return 1;
        if (*rest != '.')
            return 0;
        rest++;
        if (!*rest || (*rest == '.' && (!rest[1] || rest[1] == '/')))
            return 1;
    }
    return 0;
}

/* Resolves `name` into `out` (PATH_MAX bytes) making the same lookups as glibc's realpath, in
 * the same order. Returns 1 on success; -1 when a component is missing, with errno ENOENT and
 * `out` holding the path up to it (what glibc leaves in a caller's buffer);
 * 0 when anything is unusual (a long path, a long or looping link, a directory check that
 * failed), in which case the caller asks libc, which repeats the lookups (they only read) and
 * produces its own result and errno. */
static int resolve(const char *name, char *out) {
    char rest[2 * PATH_MAX], link[PATH_MAX];
    size_t nlen = strlen(name);
    if (nlen >= PATH_MAX)
        return 0;
    memcpy(rest, name, nlen + 1);
    size_t d; /* length of the path resolved so far, in `out` */
    if (name[0] == '/') {
        out[0] = '/';
        d = 1;
    } else {
        long n = SYS(SYS_getcwd, out, PATH_MAX, 0, 0, 0, 0);
        if (n <= 1 || out[0] != '/')
            return 0;
        d = (size_t)n - 1;
    }
    int links = 0;
    char *p = rest;
    while (*p) {
        while (*p == '/')
            p++;
        char *end = p;
        while (*end && *end != '/')
            end++;
        size_t len = (size_t)(end - p);
        if (len == 0)
            break;
        if (len == 1 && p[0] == '.') {
            p = end;
            continue;
        }
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (d > 1)
                while (d > 1 && out[--d] != '/') {
                }
            if (d == 0)
                d = 1;
            p = end;
            continue;
        }
        if (d + len + 2 >= PATH_MAX)
            return 0;
        if (out[d - 1] != '/')
            out[d++] = '/';
        memcpy(out + d, p, len);
        d += len;
        out[d] = 0;
        long n = rp_readlink(out, link, sizeof link - 1);
        if (n >= 0) {
            if (n >= (long)sizeof link - 2 || ++links > 40)
                return 0;
            size_t tail = strlen(end);
            if ((size_t)n + tail >= sizeof rest)
                return 0;
            /* rest := link + the part after this component */
            memmove(rest + n, end, tail + 1);
            memcpy(rest, link, (size_t)n);
            p = rest;
            if (link[0] == '/')
                d = 1;
            else
                while (d > 1 && out[--d] != '/') {
                }
            if (d == 0)
                d = 1;
            continue;
        }
        if (n == -ENOENT) {
            errno = ENOENT;
            return -1;
        }
        if (n != -EINVAL)
            return 0; /* glibc fills the caller's buffer for ENOENT only */
        if (needs_dir(end)) {
            out[d] = '/';
            out[d + 1] = 0;
            long r = rp_dir_check(out);
            out[d] = 0;
            if (r != 0)
                return 0;
        }
        errno = EINVAL; /* what the failed readlink left in glibc's errno */
        p = end;
    }
    if (d > 1 && out[d - 1] == '/')
        d--;
    out[d] = 0;
    return 1;
}

char *realpath(const char *name, char *resolved) {
    if (ring && name && name[0]) {
        char out[PATH_MAX];
        int err = errno;
        int r = resolve(name, out);
        if (r < 0) {
            if (resolved)
                strcpy(resolved, out);
            return NULL;
        }
        if (r > 0) {
            if (resolved)
                return strcpy(resolved, out);
            char *dup = strdup(out);
            if (dup)
                return dup;
        }
        errno = err;
    }
    REAL(realpath);
    return real_realpath(name, resolved);
}

char *__realpath_chk(const char *name, char *resolved, size_t len);
char *__realpath_chk(const char *name, char *resolved, size_t len) {
    if (len >= PATH_MAX)
        return realpath(name, resolved);
    REAL(__realpath_chk);
    return real___realpath_chk(name, resolved, len);
}

char *canonicalize_file_name(const char *name) { return realpath(name, NULL); }

/* ---- passing the shim on ---- */

/* Whether the ring's and the shim's files are still there for a child (a child whose
 * ring file was replaced notices by device and inode). */
static int can_pass(void) {
    return ring && SYS(SYS_access, ring_path, R_OK | W_OK, 0, 0, 0, 0) == 0 &&
           SYS(SYS_access, so_path, R_OK, 0, 0, 0, 0) == 0;
}

#define MAX_ENV 65536

/* Fills `out` with `env` plus our variables; `ld`, `fast`, `orig` are buffers the new entries
 * live in. Returns 0 when the environment is too large to copy. */
static int child_env(char *const *env, char **out, char *ld, size_t ldcap, char *fast,
                     size_t fastcap, char *orig, size_t origcap) {
    const char *user = NULL;
    size_t n = 0;
    for (char *const *e = env; e && *e; e++) {
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0) {
            user = *e + 11;
            continue;
        }
        if (strncmp(*e, "__HS_FAST=", 10) == 0 || strncmp(*e, "__HS_FAST_LD=", 13) == 0)
            continue;
        if (n >= MAX_ENV)
            return 0;
        out[n++] = *e;
    }
    if (user && strlen(user) + 16 > origcap)
        return 0;
    /* After the user's own preloads (a sanitizer's runtime must come first). */
    snprintf(ld, ldcap, "LD_PRELOAD=%s%s%s", user ? user : "", user ? " " : "", so_path);
    snprintf(fast, fastcap, "__HS_FAST=%lu:%lu:%s:%s", (unsigned long)ring_dev,
             (unsigned long)ring_ino, ring_path, so_path);
    snprintf(orig, origcap, "__HS_FAST_LD=%s%s", user ? "1" : "0", user ? user : "");
    out[n++] = ld;
    out[n++] = fast;
    out[n++] = orig;
    out[n] = NULL;
    return 1;
}

static size_t env_len(char *const *env) {
    size_t n = 0;
    while (env && env[n] && n <= MAX_ENV)
        n++;
    return n;
}

static size_t user_ld_len(char *const *env) {
    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
            return strlen(*e);
    return 0;
}

/* Runs `call` with the child environment in `cenv` (the program's own `env` when the shim
 * cannot be passed on). */
#define WITH_CHILD_ENV(env, call)                                                          \
    do {                                                                                   \
        if (!(env) || !can_pass() || env_len(env) > MAX_ENV) {                             \
            char *const *cenv = (env);                                                     \
            return call;                                                                   \
        }                                                                                  \
        size_t ulen = user_ld_len(env);                                                    \
        char *cenv_buf[env_len(env) + 4];                                                  \
        char ld[sizeof so_path + ulen + 16], orig[ulen + 32];                              \
        char fast[sizeof ring_path + sizeof so_path + 64];                                 \
        char *const *cenv = (env);                                                         \
        if (child_env(env, cenv_buf, ld, sizeof ld, fast, sizeof fast, orig, sizeof orig)) \
            cenv = cenv_buf;                                                               \
        return call;                                                                       \
    } while (0)

int execve(const char *path, char *const argv[], char *const envp[]) {
    REAL(execve);
    WITH_CHILD_ENV(envp, real_execve(path, argv, cenv));
}

int execvpe(const char *file, char *const argv[], char *const envp[]) {
    REAL(execvpe);
    WITH_CHILD_ENV(envp, real_execvpe(file, argv, cenv));
}

int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }
int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

/* The execl family: gather the arguments, then as above. */
#define GATHER(first, ap, argv, n)                                                         \
    size_t n = 1;                                                                          \
    {                                                                                      \
        va_list c_;                                                                        \
        va_copy(c_, ap);                                                                   \
        while (va_arg(c_, char *))                                                         \
            n++;                                                                           \
        va_end(c_);                                                                        \
    }                                                                                      \
    char *argv[n + 1];                                                                     \
    argv[0] = (char *)(first);                                                             \
    for (size_t i_ = 1; i_ <= n; i_++)                                                     \
        argv[i_] = va_arg(ap, char *);

int execl(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    GATHER(arg, ap, argv, n);
    va_end(ap);
    return execve(path, argv, environ);
}

int execlp(const char *file, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    GATHER(arg, ap, argv, n);
    va_end(ap);
    return execvpe(file, argv, environ);
}

int execle(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    GATHER(arg, ap, argv, n);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    REAL(posix_spawn);
    WITH_CHILD_ENV(envp, real_posix_spawn(pid, path, fa, attr, argv, cenv));
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    REAL(posix_spawnp);
    WITH_CHILD_ENV(envp, real_posix_spawnp(pid, file, fa, attr, argv, cenv));
}

/* ---- start-up ---- */

static void restore_env(void) {
    char **fast_ld = find_entry("__HS_FAST_LD");
    if (!fast_ld)
        return;
    char *v = *fast_ld + 13;
    char **ld = find_entry("LD_PRELOAD");
    if (v[0] == '1' && ld) {
        /* "__HS_FAST_LD=1VALUE" becomes "LD_PRELOAD=VALUE" in the same storage. */
        char *s = *fast_ld;
        memmove(s + 11, v + 1, strlen(v + 1) + 1);
        memcpy(s, "LD_PRELOAD=", 11);
        *ld = s;
        *fast_ld = (char *)"__HS_FAST_LD=";
        drop("__HS_FAST_LD");
    } else {
        drop("__HS_FAST_LD");
        drop("LD_PRELOAD");
    }
}

__attribute__((constructor)) static void hs_fast_init(void) {
    char **entry = find_entry("__HS_FAST");
    char spec[sizeof ring_path + sizeof so_path + 64];
    spec[0] = 0;
    if (entry)
        snprintf(spec, sizeof spec, "%s", *entry + 10);
    drop("__HS_FAST");
    restore_env();
    /* DEV:INO:RING:SO, the paths free of ':' */
    unsigned long dev, ino;
    int off = 0;
    if (sscanf(spec, "%lu:%lu:%n", &dev, &ino, &off) != 2 || off <= 0)
        return;
    char *rp = spec + off, *sep = strchr(rp, ':');
    if (!sep)
        return;
    *sep = 0;
    const char *so = sep + 1;
    if (rp[0] != '/' || so[0] != '/' || strlen(rp) >= sizeof ring_path ||
        strlen(so) >= sizeof so_path)
        return;
    /* The trampoline first: the ring is opened through it, so that the open is not traced. */
    int prot = PROT_READ | PROT_WRITE | PROT_EXEC;
    void *t = mmap((void *)TRAMP_ADDR, 4096, prot,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (t == MAP_FAILED) {
        prot = PROT_READ | PROT_WRITE;
        t = mmap((void *)TRAMP_ADDR, 4096, prot,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    }
    if (t != (void *)TRAMP_ADDR) {
        if (t != MAP_FAILED)
            munmap(t, 4096);
        return;
    }
    memcpy(t, tramp_code, sizeof tramp_code);
    if (!(prot & PROT_EXEC) && mprotect(t, 4096, PROT_READ | PROT_EXEC) != 0)
        goto unmap_tramp;
    tramp = (tramp_fn)t;
    long fd = SYS(SYS_openat, AT_FDCWD, rp, O_RDWR | O_CLOEXEC, 0, 0, 0);
    if (fd < 0)
        goto unmap_tramp;
    struct stat st;
    void *m = MAP_FAILED;
    size_t total = 0;
    /* Its device and inode: a ring file replaced on the way is not ours. */
    if (SYS(SYS_fstat, fd, &st, 0, 0, 0, 0) == 0 && st.st_dev == dev && st.st_ino == ino &&
        st.st_size >= HDR_SIZE) {
        total = (size_t)st.st_size;
        m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
    }
    SYS(SYS_close, fd, 0, 0, 0, 0, 0);
    if (m == MAP_FAILED)
        goto unmap_tramp;
    struct hdr *h = m;
    uint32_t nslots = h->nslots;
    size_t states_size = ((size_t)nslots * 4 + 4095) & ~(size_t)4095;
    if (h->magic != FAST_MAGIC || h->version != FAST_VERSION || h->slot_size != SLOT_SIZE ||
        nslots == 0 || nslots > (1u << 20) ||
        total < HDR_SIZE + states_size + (size_t)nslots * SLOT_SIZE) {
        munmap(m, total);
        goto unmap_tramp;
    }
    ring_dev = (dev_t)dev;
    ring_ino = (ino_t)ino;
    snprintf(ring_path, sizeof ring_path, "%s", rp);
    snprintf(so_path, sizeof so_path, "%s", so);
    states = (_Atomic uint32_t *)((char *)m + HDR_SIZE);
    slots = (struct slot *)((char *)m + HDR_SIZE + states_size);
    ring = h;
    return;
unmap_tramp:
    tramp = NULL;
    munmap(t, 4096);
}
