//! The supervisor: receives seccomp notifications, decodes path arguments, classifies and
//! records them, and lets every call continue.
//!
//! Order of work for one notification (see the crate docs for why):
//! 1. `RECV`; read the path strings from the tracee (`process_vm_readv`) and make them absolute
//!    (`/proc/PID/cwd`, `/proc/PID/fd/N`) — all while the caller is stopped, because its buffers,
//!    cwd and fd table may change as soon as it runs;
//! 2. `ID_VALID`: the caller is still stopped in that call, so what we read was its memory;
//! 3. for calls that change whether their path exists (`O_CREAT`, `mkdir`, `unlink`, `rename`,
//!    …) resolve and classify now, then `CONTINUE`; for the rest `CONTINUE` first and resolve
//!    while the tracee runs on. That is sound within the traced tree: any call that could change
//!    the answer is itself trapped and waits until this one is done.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::fcntl::OFlag;

use crate::fast::Fast;
use crate::model::{Flags, Kinds, Trace};
use crate::procs::{InFlight, Procs, read_link};
use crate::sys::{self, Notif};
use crate::view::View;

/// How to classify one path once we know whether it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// `if_exists` when it exists, `missing` otherwise.
    Look { if_exists: Kinds, if_missing: Kinds },
}

/// One path to resolve and record.
#[derive(Debug)]
struct Pending {
    abs: Vec<u8>,
    follow: bool,
    class: Class,
    /// Look for `#!`/ELF interpreters (execve).
    exec: bool,
    /// Resolve before letting the call continue: a path of the caller's own `/proc` entry,
    /// which is gone as soon as a short-lived caller exits.
    early: bool,
}

fn kinds_of(c: Class) -> Kinds {
    let Class::Look {
        if_exists,
        if_missing,
    } = c;
    if_exists | if_missing
}

const fn look(if_exists: Kinds) -> Class {
    Class::Look {
        if_exists,
        if_missing: Kinds::MISSING,
    }
}

/// Maximum path length read from a tracee (PATH_MAX).
const PATH_MAX: usize = 4096;

/// How far the supervisor got: notifications received and notifications fully recorded.
/// [`crate::Session::take`] waits until every notification received before it was called has
/// been recorded, since lookups are recorded after the caller was already let go.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) received: AtomicU64,
    pub(crate) done: AtomicU64,
    /// The supervisor thread's id (0 until it runs).
    pub(crate) tid: std::sync::atomic::AtomicI32,
}

impl Progress {
    /// Waits until every notification received so far has been recorded (or `limit` passed).
    pub(crate) fn settle(&self, limit: std::time::Duration) {
        let target = self.received.load(Ordering::SeqCst);
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        while self.done.load(Ordering::SeqCst) < target && start.elapsed() < limit {
            if spins < 64 {
                std::thread::yield_now();
                spins += 1;
            } else {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
}

pub(crate) struct Supervisor {
    /// The seccomp listener; `None` in the ptrace fallback, where stops arrive by `waitpid`.
    listener: Option<OwnedFd>,
    trace: Arc<Mutex<Trace>>,
    progress: Arc<Progress>,
    pending: Vec<Pending>,
    resolver: Resolver,
    procs: Procs,
    /// Threads stopped in a delete or rename whose effect may not have happened yet.
    unsettled: InFlight,
    /// The traced command's pid (the root of the tree).
    root_pid: i32,
    /// Decoding an `openat2` with `RESOLVE_IN_ROOT`.
    in_root: bool,
    scratch: Vec<u8>,
    /// Pending notification count since the last flush into `trace` (stats).
    handled: u64,
    vanished: u64,
    /// Renames of directories on overlayfs whose outcome is not known yet.
    dir_renames: Vec<DirRename>,
    /// Directory renames on overlayfs that failed: (source, target).
    failed_renames: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether reads of our stdin are watched ([`crate::Tracer::watch_stdin`]): opening it
    /// anew (`/dev/stdin`, `/proc/self/fd/0`) counts too.
    watch_stdin: bool,
    /// The preload shim's ring ([`crate::Tracer::fast_path`]).
    fast: Option<Arc<Fast>>,
}

/// A rename of a directory on overlayfs, checked once its caller's call completed: if the
/// source is still there, the rename failed (see [`Flags::REFUSED`]).
#[derive(Debug)]
struct DirRename {
    tid: u32,
    src: Vec<u8>,
    dst: Vec<u8>,
    dev: u64,
    ino: u64,
}

/// `OVERLAYFS_SUPER_MAGIC`.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

impl Supervisor {
    pub(crate) fn new(
        listener: Option<OwnedFd>,
        trace: Arc<Mutex<Trace>>,
        progress: Arc<Progress>,
        view: View,
        root_pid: i32,
    ) -> Supervisor {
        Supervisor {
            listener,
            trace,
            progress,
            pending: Vec::new(),
            resolver: Resolver::new(view.clone()),
            procs: Procs::new(view),
            unsettled: InFlight::default(),
            root_pid,
            in_root: false,
            scratch: vec![0; PATH_MAX],
            handled: 0,
            vanished: 0,
            dir_renames: Vec::new(),
            failed_renames: Vec::new(),
            watch_stdin: false,
            fast: None,
        }
    }

    /// Drains the fast path's ring before every trapped call, and tells it when paths change.
    pub(crate) fn with_fast(mut self, fast: Option<Arc<Fast>>) -> Supervisor {
        self.fast = fast;
        self
    }

    /// The caches were invalidated (`all`: directory paths too), or a namespace change started
    /// or settled: the shim's and the drainer's caches follow.
    fn caches_changed(&self, all: bool) {
        if let Some(f) = &self.fast {
            f.caches_changed(all, !self.unsettled.is_empty());
        }
    }

    /// See [`Supervisor::watch_stdin`](field@Supervisor::watch_stdin).
    pub(crate) fn watching_stdin(mut self, on: bool) -> Supervisor {
        self.watch_stdin = on;
        self
    }

    /// The pid of thread `tid` as the tracee itself sees it: in another pid namespace (the
    /// sandbox, whose `/proc` the view resolves in), the last `NSpid` entry.
    fn own_pid(&self, tid: u32) -> u32 {
        if !self.resolver.view.is_rooted() {
            return tid;
        }
        std::fs::read_to_string(format!("/proc/{tid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("NSpid:"))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|p| p.parse().ok())
            })
            .unwrap_or(tid)
    }

    /// Settles the directory renames of thread `tid` (every one when `None`: the tree is gone).
    fn check_dir_renames(&mut self, tid: Option<u32>) {
        if self.dir_renames.is_empty() {
            return;
        }
        let view = self.resolver.view.clone();
        let mut failed = Vec::new();
        self.dir_renames.retain(|r| {
            if tid.is_some_and(|t| t != r.tid) {
                return true;
            }
            if let Ok(st) = view.lstat(&r.src)
                && st.st_dev == r.dev
                && st.st_ino == r.ino
            {
                failed.push((r.src.clone(), r.dst.clone()));
            }
            false
        });
        self.failed_renames.extend(failed);
    }

    /// Before a rename runs: remember it if it moves a directory on overlayfs.
    fn note_dir_rename(&mut self, tid: u32, records: &[(Vec<u8>, Kinds)]) {
        let src = records.iter().find(|(_, k)| *k == Kinds::RENAME_FROM);
        let dst = records.iter().find(|(_, k)| *k == Kinds::RENAME_TO);
        let (Some((src, _)), Some((dst, _))) = (src, dst) else {
            return; // an exchange, or a missing source
        };
        let Ok(fd) = self
            .resolver
            .view
            .open(src, OFlag::O_PATH | OFlag::O_NOFOLLOW)
        else {
            return;
        };
        let Ok(st) = nix::sys::stat::fstat(fd.as_fd()) else {
            return;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return;
        }
        let on_overlay = nix::sys::statfs::fstatfs(fd.as_fd())
            .is_ok_and(|fs| fs.filesystem_type().0 == OVERLAYFS_MAGIC);
        if on_overlay {
            self.dir_renames.push(DirRename {
                tid,
                src: src.clone(),
                dst: dst.clone(),
                dev: st.st_dev,
                ino: st.st_ino,
            });
        }
    }

    /// At the end of the trace: flag failed directory renames the command did not work
    /// around by creating the target and deleting the source itself.
    fn flag_refused_renames(&mut self) {
        self.check_dir_renames(None);
        if self.failed_renames.is_empty() {
            return;
        }
        let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
        for (src, dst) in std::mem::take(&mut self.failed_renames) {
            let copied = t.get(&dst).is_some_and(|k| k.contains(Kinds::CREATE))
                && t.get(&src).is_some_and(|k| k.contains(Kinds::DELETE));
            if !copied {
                t.flag(Flags::REFUSED, || {
                    format!(
                        "rename of directory {} to {} failed on overlayfs",
                        String::from_utf8_lossy(&src),
                        String::from_utf8_lossy(&dst)
                    )
                });
            }
        }
    }

    /// Serves notifications until every process using the filter has exited. `sync` asks for
    /// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (skipped with a debug message on kernels < 6.6).
    pub(crate) fn run(mut self, sync: bool) -> io::Result<()> {
        let listener = match &self.listener {
            Some(l) => l.try_clone()?,
            None => return Err(io::Error::other("no seccomp listener")),
        };
        if sync
            && let Err(e) =
                sys::notif_set_flags(listener.as_fd(), sys::SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
        {
            tracing::debug!("seccomp sync wake-up unavailable ({e}); tracing will be slower");
        }
        // Block in RECV rather than poll first: one syscall less per notification, and the
        // wake-up SYNC_WAKE_UP was designed for. RECV fails with ENOENT both when a caller was
        // interrupted before we got to it and once no process uses the filter any more; a
        // non-blocking poll tells the two apart.
        loop {
            let fd = listener.as_fd();
            match sys::notif_recv(fd) {
                Ok(n) => {
                    self.progress.received.fetch_add(1, Ordering::SeqCst);
                    self.handle(&n);
                    self.progress.done.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINTR)) => {
                    if sys::hung_up(fd)? {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.finish_run();
        Ok(())
    }

    fn finish_run(&mut self) {
        if let Some(f) = &self.fast {
            f.drain(&self.trace);
        }
        self.flag_refused_renames();
        let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
        t.stats.notifications += self.handled;
        t.stats.vanished += self.vanished;
    }

    /// The ptrace fallback (no seccomp user notification): the filter stops path syscalls
    /// with `SECCOMP_RET_TRACE`, and this thread — the tracer of `root`, which it seized, and
    /// of everything `root` starts — serves the seccomp stops with the same decoding, and
    /// resumes every other stop. Runs until no tracee is left. The root must not be a child of
    /// this process (a `waitpid` in another thread would take its stops): the sandbox's
    /// command is init's child, and `Tracer::spawn` puts a middle process in between.
    pub(crate) fn run_ptrace(mut self) -> io::Result<()> {
        while let Some((pid, status)) = sys::wait_tracees()? {
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                continue;
            }
            if !libc::WIFSTOPPED(status) {
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            match status >> 16 {
                libc::PTRACE_EVENT_SECCOMP => {
                    let Ok((nr, args)) = sys::ptrace_syscall(pid) else {
                        continue; // killed meanwhile
                    };
                    let n = Notif {
                        id: 0,
                        pid: pid as u32,
                        nr,
                        arch: crate::filter::ARCH,
                        args,
                    };
                    self.progress.received.fetch_add(1, Ordering::SeqCst);
                    self.handle(&n);
                    self.progress.done.fetch_add(1, Ordering::SeqCst);
                }
                // A group-stop (a stop signal was delivered): stay stopped, as job control
                // wants, until SIGCONT.
                libc::PTRACE_EVENT_STOP
                    if matches!(
                        sig,
                        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                    ) =>
                {
                    let _ = sys::ptrace_listen(pid);
                }
                // fork/vfork/clone/exec events, and the first stop of a new tracee.
                e if e != 0 => {
                    let _ = sys::ptrace_cont(pid, 0);
                }
                // A signal on its way to the tracee: deliver it.
                _ => {
                    let _ = sys::ptrace_cont(pid, sig);
                }
            }
        }
        self.finish_run();
        Ok(())
    }

    /// Lets the call continue. Returns false when the notification is no longer valid (the
    /// caller died or was interrupted): the kernel checks what `ID_VALID` checks, atomically with
    /// the reply, so a successful reply also proves that the memory read before it was the
    /// caller's. In the ptrace fallback: resume the stopped caller.
    fn reply(&self, n: &Notif) -> bool {
        match &self.listener {
            Some(l) => sys::notif_send(l.as_fd(), n.id, 0).is_ok(),
            None => sys::ptrace_cont(n.pid as i32, 0).is_ok(),
        }
    }

    fn handle(&mut self, n: &Notif) {
        self.handled += 1;
        debug_assert_eq!(n.arch, crate::filter::ARCH, "the filter kills other ABIs");
        self.pending.clear();
        self.procs.seen(n.pid);
        self.check_dir_renames(Some(n.pid));
        if self.unsettled.settle(n.pid) {
            // A namespace change has completed: drop what was learnt meanwhile.
            self.resolver.invalidate();
            self.procs.invalidate_dirs();
            self.caches_changed(true);
        }
        let flag = self.decode(n);
        let mutating = self
            .pending
            .iter()
            .any(|p| p.early || kinds_of(p.class).intersects(Kinds::NAMESPACE));
        let records = if mutating {
            if let Some(f) = &self.fast {
                // Lookups the shim recorded before this call: resolve them before it can
                // change their answer (other calls leave them to the reader thread).
                f.drain(&self.trace);
            }
            // Classify before the call changes the answer; record only if the reply proves the
            // notification was still valid.
            let records = self.resolve_all(n.pid);
            if matches!(
                n.nr,
                libc::SYS_rename | libc::SYS_renameat | libc::SYS_renameat2
            ) {
                self.note_dir_rename(n.pid, &records);
            }
            if !self.reply(n) {
                self.vanished += 1;
                self.dir_renames.retain(|r| r.tid != n.pid);
                return;
            }
            records
        } else {
            if !self.reply(n) {
                self.vanished += 1;
                return;
            }
            self.resolve_all(n.pid)
        };
        if records.is_empty() && flag.is_none() {
            return;
        }
        let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
        t.stats.notifications += std::mem::take(&mut self.handled);
        t.stats.vanished += std::mem::take(&mut self.vanished);
        if let Some((flag, note)) = flag {
            t.flag(flag, || note);
        }
        for (path, kinds) in records {
            if self.fast.as_ref().is_some_and(|f| f.is_shim(&path)) {
                continue; // the loader opening the preload shim
            }
            if kinds.intersects(Kinds::WRITE | Kinds::WRITE_TRUNC)
                && is_device(&path)
                && (path != b"/dev/tty" || has_controlling_tty(n.pid))
            {
                t.flag(Flags::DEVICE, || {
                    format!(
                        "write to {} by pid {}",
                        String::from_utf8_lossy(&path),
                        n.pid
                    )
                });
            }
            t.record(&path, kinds);
        }
    }

    fn resolve_all(&mut self, pid: u32) -> Vec<(Vec<u8>, Kinds)> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let pending = std::mem::take(&mut self.pending);
        self.resolver.caching = self.unsettled.is_empty();
        self.procs.dir_caching = self.unsettled.is_empty();
        let mut records: Vec<(Vec<u8>, Kinds)> = Vec::with_capacity(pending.len() + 1);
        for p in &pending {
            let (canon, exists) = self.resolver.resolve(&p.abs, p.follow);
            let Class::Look {
                if_exists,
                if_missing,
            } = p.class;
            let kinds = if exists { if_exists } else { if_missing };
            if kinds.intersects(Kinds::NAMESPACE) {
                // A new entry invalidates cached missing directories; a deleted or renamed one
                // may change what a cached directory path means. Forget, and learn nothing new
                // until the caller is seen again (its call completed).
                let all = kinds.intersects(Kinds::DELETE | Kinds::RENAME_FROM | Kinds::RENAME_TO);
                if all {
                    self.resolver.invalidate();
                    self.procs.invalidate_dirs();
                } else {
                    self.resolver.missing.clear();
                    self.resolver.results.clear();
                }
                self.unsettled.add(pid);
                self.caches_changed(all);
            }
            self.resolver.caching = self.unsettled.is_empty();
            self.procs.dir_caching = self.unsettled.is_empty();
            records.extend(symlink_lookup(&p.abs, &canon, exists));
            if exists && p.exec {
                // Interpreters of an unchanged file (same inode and ctime) are the same.
                let key = self
                    .resolver
                    .last_stat
                    .map(|st| (st.st_dev, st.st_ino, st.st_ctime, st.st_ctime_nsec));
                match key.and_then(|k| self.resolver.interps.get(&k)) {
                    Some(cached) => records.extend(cached.iter().cloned()),
                    None => {
                        let start = records.len();
                        interpreters(&mut self.resolver, &canon, pid, &mut records, 0);
                        if let Some(k) = key {
                            self.resolver.interps.insert(k, records[start..].to_vec());
                        }
                    }
                }
            }
            records.push((canon, kinds));
        }
        self.pending = pending;
        self.pending.clear();
        records
    }

    /// Reads a NUL-terminated string at `addr` in the tracee.
    fn read_cstr(&mut self, pid: u32, addr: u64) -> Option<Vec<u8>> {
        if addr == 0 {
            return None;
        }
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < PATH_MAX {
            // Never cross a page boundary in one read: the next page may be unmapped.
            let to_page_end = 4096 - (at % 4096) as usize;
            let want = to_page_end.min(PATH_MAX - out.len());
            let n = sys::read_mem(pid, at, &mut self.scratch[..want]).ok()?;
            if n == 0 {
                return None;
            }
            let chunk = &self.scratch[..n];
            if let Some(end) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Some(out);
            }
            out.extend_from_slice(chunk);
            at += n as u64;
        }
        None
    }

    fn read_u64(&mut self, pid: u32, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        (sys::read_mem(pid, addr, &mut b).ok()? == 8).then(|| u64::from_ne_bytes(b))
    }

    fn read_u16(&mut self, pid: u32, addr: u64) -> Option<u16> {
        let mut b = [0u8; 2];
        (sys::read_mem(pid, addr, &mut b).ok()? == 2).then(|| u16::from_ne_bytes(b))
    }

    /// Absolute path of `path` relative to `dirfd` in process `pid`; `empty_ok` handles
    /// `AT_EMPTY_PATH` (an empty path names `dirfd` itself).
    fn absolute(&mut self, pid: u32, dirfd: i32, path: &[u8], empty_ok: bool) -> Option<Vec<u8>> {
        let stripped;
        let path = if self.in_root && dirfd != libc::AT_FDCWD {
            stripped = path
                .iter()
                .position(|&b| b != b'/')
                .map_or(&b""[..], |i| &path[i..]);
            stripped
        } else {
            path
        };
        if path.first() == Some(&b'/') {
            if !is_self_path(path) {
                return Some(path.to_vec());
            }
            return Some(rewrite_self(self.own_pid(pid), path));
        }
        if path.is_empty() && !empty_ok && !self.in_root {
            return None;
        }
        let base = if dirfd == libc::AT_FDCWD {
            self.procs.cwd(pid)?
        } else {
            self.procs.fd_path(pid, dirfd)?
        };
        if base.first() != Some(&b'/') {
            return None;
        }
        if path.is_empty() {
            return Some(base);
        }
        let mut abs = base;
        if abs.last() != Some(&b'/') {
            abs.push(b'/');
        }
        abs.extend_from_slice(path);
        Some(abs)
    }

    /// Queues the path at `addr` (relative to `dirfd`) for resolution. Returns whether a path
    /// was queued; a path that cannot be read makes the trace untraceable.
    fn path(&mut self, n: &Notif, dirfd: u64, addr: u64, flags: PathFlags, class: Class) {
        let dirfd = dirfd as i32;
        let path = if addr == 0 {
            if flags.null_is_fd {
                Some(Vec::new())
            } else {
                None
            }
        } else {
            self.read_cstr(n.pid, addr)
        };
        let Some(path) = path else {
            if addr != 0 {
                self.untraceable(n, "unreadable path argument");
            }
            return;
        };
        if self.watch_stdin
            && matches!(
                n.nr,
                libc::SYS_open | libc::SYS_openat | libc::SYS_openat2 | libc::SYS_creat
            )
            && let Some(fd) = fd_of_self_path(&path)
            && sys::same_file(n.pid as i32, fd, std::process::id() as i32, 0).unwrap_or(false)
        {
            let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
            t.flag(Flags::STDIN, || {
                format!(
                    "open of the inherited stdin as {} by pid {}",
                    String::from_utf8_lossy(&path),
                    n.pid
                )
            });
        }
        let empty_ok = flags.empty_path || (addr == 0 && flags.null_is_fd);
        match self.absolute(n.pid, dirfd, &path, empty_ok) {
            Some(abs) => self.pending.push(Pending {
                abs,
                follow: flags.follow,
                class,
                exec: flags.exec,
                early: is_self_path(&path),
            }),
            None if path.is_empty() && !empty_ok => {}
            // A dirfd that is not open, or not a path (a pipe, a socket): the call fails with
            // EBADF or ENOTDIR without looking anything up.
            None if dirfd != libc::AT_FDCWD
                && path.first() != Some(&b'/')
                && read_link(format!("/proc/{}/fd/{dirfd}", n.pid))
                    .is_none_or(|p| p.first() != Some(&b'/')) => {}
            None => self.untraceable(n, "unresolvable directory fd or cwd"),
        }
    }

    fn fd(&mut self, n: &Notif, fd: u64, kinds: Kinds) {
        match self.procs.fd_path(n.pid, fd as i32) {
            Some(p) if p.first() == Some(&b'/') => self.pending.push(Pending {
                abs: p,
                follow: false,
                class: look(kinds),
                exec: false,
                early: false,
            }),
            // Pipes, sockets, anonymous inodes: not paths.
            _ => {}
        }
    }

    fn untraceable(&mut self, n: &Notif, why: &str) {
        let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
        t.flag(Flags::UNTRACEABLE, || {
            format!("{why} in syscall {} of pid {}", n.nr, n.pid)
        });
    }

    /// Network check on a `sockaddr` at `addr` of length `len`.
    fn sockaddr(&mut self, n: &Notif, what: &str, addr: u64, len: u64) -> Option<(Flags, String)> {
        if addr == 0 || len < 2 {
            return None;
        }
        let family = self.read_u16(n.pid, addr)?;
        // AF_UNIX is local IPC; AF_NETLINK is how libc asks the kernel about interfaces;
        // AF_UNSPEC disconnects a datagram socket. But abstract unix sockets (a name starting
        // with a NUL byte, or autobind's empty one) live in the network namespace, not the
        // filesystem: whoever listens there is outside the trace.
        match i32::from(family) {
            libc::AF_UNIX
                if len == 2
                    || self
                        .read_u16(n.pid, addr + 2)
                        .is_some_and(|b| b & 0xff == 0) =>
            {
                Some((
                    Flags::NETWORK,
                    format!("{what} with an abstract unix socket by pid {}", n.pid),
                ))
            }
            libc::AF_UNIX | libc::AF_NETLINK | libc::AF_UNSPEC => None,
            f => Some((
                Flags::NETWORK,
                format!("{what} with address family {f} by pid {}", n.pid),
            )),
        }
    }

    /// Decodes one notification into `self.pending`; returns a flag to raise.
    #[allow(non_upper_case_globals)]
    fn decode(&mut self, n: &Notif) -> Option<(Flags, String)> {
        use libc::*;
        let a = n.args;
        const CWD: u64 = AT_FDCWD as u64;
        let fl = PathFlags::default();
        let nofollow = PathFlags {
            follow: false,
            ..fl
        };
        let at = |flags: u64, follow_bit: Option<i32>, nofollow_bit: Option<i32>| PathFlags {
            follow: match (follow_bit, nofollow_bit) {
                (Some(b), _) => flags & b as u64 != 0,
                (_, Some(b)) => flags & b as u64 == 0,
                _ => true,
            },
            empty_path: flags & AT_EMPTY_PATH as u64 != 0,
            ..fl
        };
        let stat = look(Kinds::STAT);
        let meta = look(Kinds::SET_META);
        let create = Class::Look {
            if_exists: Kinds::EXISTS,
            if_missing: Kinds::CREATE,
        };
        let delete = look(Kinds::DELETE);
        match n.nr {
            SYS_open => self.open(n, CWD, a[0], a[1]),
            SYS_openat => self.open(n, a[0], a[1], a[2]),
            SYS_creat => self.open(n, CWD, a[0], (O_CREAT | O_WRONLY | O_TRUNC) as u64),
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            SYS_openat2 => match (self.read_u64(n.pid, a[2]), self.read_u64(n.pid, a[2] + 16)) {
                (Some(flags), Some(resolve)) => {
                    // RESOLVE_IN_ROOT: an absolute path starts at the dirfd.
                    self.in_root = resolve & 0x10 != 0;
                    self.open(n, a[0], a[1], flags);
                    self.in_root = false;
                }
                _ => self.untraceable(n, "unreadable open_how"),
            },
            SYS_stat | SYS_statfs => self.path(n, CWD, a[0], fl, stat),
            SYS_lstat => self.path(n, CWD, a[0], nofollow, stat),
            SYS_newfstatat => self.path(
                n,
                a[0],
                a[1],
                at(a[3], None, Some(AT_SYMLINK_NOFOLLOW)),
                stat,
            ),
            SYS_statx => self.path(
                n,
                a[0],
                a[1],
                at(a[2], None, Some(AT_SYMLINK_NOFOLLOW)),
                stat,
            ),
            SYS_access => self.path(n, CWD, a[0], fl, stat),
            SYS_faccessat => self.path(n, a[0], a[1], fl, stat),
            SYS_faccessat2 => self.path(
                n,
                a[0],
                a[1],
                at(a[3], None, Some(AT_SYMLINK_NOFOLLOW)),
                stat,
            ),
            SYS_readlink => self.path(n, CWD, a[0], nofollow, look(Kinds::READ)),
            SYS_readlinkat => self.path(
                n,
                a[0],
                a[1],
                PathFlags {
                    follow: false,
                    empty_path: true,
                    ..fl
                },
                look(Kinds::READ),
            ),
            SYS_getdents | SYS_getdents64 => self.fd(n, a[0], Kinds::LIST),
            SYS_execve => self.path(
                n,
                CWD,
                a[0],
                PathFlags { exec: true, ..fl },
                look(Kinds::EXEC),
            ),
            SYS_execveat => self.path(
                n,
                a[0],
                a[1],
                PathFlags {
                    exec: true,
                    ..at(a[4], None, Some(AT_SYMLINK_NOFOLLOW))
                },
                look(Kinds::EXEC),
            ),
            SYS_rename => self.rename(n, CWD, a[0], CWD, a[1], 0),
            SYS_renameat => self.rename(n, a[0], a[1], a[2], a[3], 0),
            SYS_renameat2 => self.rename(n, a[0], a[1], a[2], a[3], a[4]),
            SYS_unlink | SYS_rmdir => self.path(n, CWD, a[0], nofollow, delete),
            SYS_unlinkat => self.path(n, a[0], a[1], nofollow, delete),
            SYS_mkdir | SYS_mknod => self.path(n, CWD, a[0], nofollow, create),
            SYS_mkdirat | SYS_mknodat => self.path(n, a[0], a[1], nofollow, create),
            SYS_link => {
                self.path(
                    n,
                    CWD,
                    a[0],
                    nofollow,
                    look(Kinds::EXISTS | Kinds::SET_META),
                );
                self.path(n, CWD, a[1], nofollow, create);
            }
            SYS_linkat => {
                let old = at(a[4], Some(AT_SYMLINK_FOLLOW), None);
                self.path(n, a[0], a[1], old, look(Kinds::EXISTS | Kinds::SET_META));
                self.path(n, a[2], a[3], nofollow, create);
            }
            SYS_symlink => self.path(n, CWD, a[1], nofollow, create),
            SYS_symlinkat => self.path(n, a[1], a[2], nofollow, create),
            SYS_truncate => {
                let k = if a[1] == 0 {
                    Kinds::WRITE_TRUNC
                } else {
                    Kinds::WRITE
                };
                self.path(n, CWD, a[0], fl, look(k))
            }
            SYS_chmod | SYS_chown | SYS_utime | SYS_utimes | SYS_setxattr | SYS_removexattr => {
                self.path(n, CWD, a[0], fl, meta)
            }
            SYS_lchown | SYS_lsetxattr | SYS_lremovexattr => {
                self.path(n, CWD, a[0], nofollow, meta)
            }
            SYS_getxattr | SYS_listxattr => self.path(n, CWD, a[0], fl, stat),
            SYS_lgetxattr | SYS_llistxattr => self.path(n, CWD, a[0], nofollow, stat),
            SYS_fchmod | SYS_fchown | SYS_fsetxattr | SYS_fremovexattr => {
                self.fd(n, a[0], Kinds::SET_META)
            }
            SYS_fchmodat => self.path(n, a[0], a[1], fl, meta),
            SYS_fchmodat2 => self.path(
                n,
                a[0],
                a[1],
                at(a[3], None, Some(AT_SYMLINK_NOFOLLOW)),
                meta,
            ),
            SYS_fchownat => self.path(
                n,
                a[0],
                a[1],
                at(a[4], None, Some(AT_SYMLINK_NOFOLLOW)),
                meta,
            ),
            SYS_utimensat => {
                let f = PathFlags {
                    null_is_fd: true,
                    ..at(a[3], None, Some(AT_SYMLINK_NOFOLLOW))
                };
                self.path(n, a[0], a[1], f, meta)
            }
            SYS_futimesat => self.path(
                n,
                a[0],
                a[1],
                PathFlags {
                    null_is_fd: true,
                    ..fl
                },
                meta,
            ),
            crate::filter::SYS_GETXATTRAT | crate::filter::SYS_LISTXATTRAT => self.path(
                n,
                a[0],
                a[1],
                at(a[2], None, Some(AT_SYMLINK_NOFOLLOW)),
                stat,
            ),
            crate::filter::SYS_SETXATTRAT | crate::filter::SYS_REMOVEXATTRAT => self.path(
                n,
                a[0],
                a[1],
                at(a[2], None, Some(AT_SYMLINK_NOFOLLOW)),
                meta,
            ),
            SYS_chdir => {
                self.path(n, CWD, a[0], fl, look(Kinds::EXISTS));
                self.procs.chdir(n.pid);
            }
            SYS_fchdir => self.procs.chdir(n.pid),
            SYS_chroot => {
                self.path(n, CWD, a[0], fl, look(Kinds::EXISTS));
                self.procs.chdir(n.pid);
                return Some((Flags::ESCAPE, format!("chroot by pid {}", n.pid)));
            }
            SYS_name_to_handle_at => {
                self.path(n, a[0], a[1], at(a[4], Some(AT_SYMLINK_FOLLOW), None), stat)
            }
            SYS_unshare => {
                self.procs.chdir(n.pid);
                let harmless = (CLONE_FILES | CLONE_FS | CLONE_SYSVSEM) as u64;
                if a[0] & !harmless != 0 {
                    return Some((
                        Flags::ESCAPE,
                        format!("unshare({:#x}) by pid {}", a[0], n.pid),
                    ));
                }
            }
            SYS_open_by_handle_at
            | SYS_mount
            | SYS_umount2
            | SYS_pivot_root
            | SYS_setns
            | SYS_fsopen
            | SYS_fsmount
            | SYS_move_mount
            | SYS_open_tree => {
                return Some((Flags::ESCAPE, format!("syscall {} by pid {}", n.nr, n.pid)));
            }
            SYS_ptrace => {
                let target = a[1] as i32;
                if !self.in_tree(target) {
                    return Some((
                        Flags::ESCAPE,
                        format!(
                            "ptrace attach to pid {target}, outside the traced tree, by pid {}",
                            n.pid
                        ),
                    ));
                }
            }
            SYS_read | SYS_readv | SYS_pread64 | SYS_preadv | SYS_preadv2 => {
                // Only fd 0 traps. Is it the very stdin we were given (same open file)?
                let ours = std::process::id() as i32;
                if sys::same_file(n.pid as i32, 0, ours, 0).unwrap_or(false) {
                    return Some((
                        Flags::STDIN,
                        format!("read of the inherited stdin by pid {}", n.pid),
                    ));
                }
            }
            SYS_connect => return self.sockaddr(n, "connect", a[1], a[2]),
            SYS_bind => {
                // Binding a named unix socket creates a directory entry (an abstract one,
                // sun_path starting with a NUL byte, does not).
                let unix = self.read_u16(n.pid, a[1]).map(i32::from) == Some(AF_UNIX);
                let named = a[2] > 2
                    && self
                        .read_u16(n.pid, a[1] + 2)
                        .is_some_and(|b| b & 0xff != 0);
                if unix && named {
                    self.path(n, CWD, a[1] + 2, nofollow, create);
                }
                return self.sockaddr(n, "bind", a[1], a[2]);
            }
            SYS_sendto => return self.sockaddr(n, "sendto", a[4], a[5]),
            SYS_sendmsg | SYS_sendmmsg => {
                // struct msghdr starts with msg_name (pointer) and msg_namelen (u32); an mmsghdr
                // starts with a msghdr. Only the first message of sendmmsg is checked.
                let name = self.read_u64(n.pid, a[1])?;
                let len = self.read_u64(n.pid, a[1] + 8)? & 0xffff_ffff;
                // The name pointer came from tracee memory: make sure it was this caller's before
                // following it.
                if let Some(l) = &self.listener
                    && !sys::notif_id_valid(l.as_fd(), n.id)
                {
                    return None;
                }
                return self.sockaddr(n, "sendmsg", name, len);
            }
            _ => {}
        }
        None
    }

    /// Whether `pid` descends from the traced command (walking parents through `/proc`).
    fn in_tree(&self, pid: i32) -> bool {
        let mut p = pid;
        for _ in 0..128 {
            if p == self.root_pid {
                return true;
            }
            if p <= 1 {
                return false;
            }
            match crate::procs::stat_field(p, 1) {
                Some(pp) => p = pp as i32,
                None => return false,
            }
        }
        false
    }

    fn open(&mut self, n: &Notif, dirfd: u64, addr: u64, flags: u64) {
        let flags = flags as i32;
        let excl = flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0;
        let follow = flags & libc::O_NOFOLLOW == 0 && !excl;
        let acc = flags & libc::O_ACCMODE;
        let trunc = flags & libc::O_TRUNC != 0;
        let if_exists = if flags & libc::O_PATH != 0 || excl {
            Kinds::EXISTS
        } else if acc == libc::O_RDONLY {
            if flags & libc::O_DIRECTORY != 0 {
                Kinds::EXISTS
            } else {
                Kinds::READ
            }
        } else if trunc {
            Kinds::WRITE_TRUNC
        } else {
            Kinds::WRITE
        };
        let if_missing = if flags & libc::O_CREAT != 0 {
            Kinds::CREATE
        } else {
            Kinds::MISSING
        };
        let pf = PathFlags {
            follow,
            ..PathFlags::default()
        };
        self.path(
            n,
            dirfd,
            addr,
            pf,
            Class::Look {
                if_exists,
                if_missing,
            },
        );
    }

    fn rename(&mut self, n: &Notif, ofd: u64, old: u64, nfd: u64, new: u64, flags: u64) {
        let nofollow = PathFlags {
            follow: false,
            ..PathFlags::default()
        };
        let exchange = flags & libc::RENAME_EXCHANGE as u64 != 0;
        let both = Kinds::RENAME_FROM | Kinds::RENAME_TO;
        let src = Class::Look {
            if_exists: if exchange { both } else { Kinds::RENAME_FROM },
            if_missing: Kinds::MISSING,
        };
        let dst = Class::Look {
            if_exists: if exchange { both } else { Kinds::RENAME_TO },
            if_missing: Kinds::RENAME_TO,
        };
        self.path(n, ofd, old, nofollow, src);
        self.path(n, nfd, new, nofollow, dst);
    }
}

#[derive(Clone, Copy, Debug)]
struct PathFlags {
    follow: bool,
    empty_path: bool,
    null_is_fd: bool,
    exec: bool,
}

impl Default for PathFlags {
    fn default() -> Self {
        PathFlags {
            follow: true,
            empty_path: false,
            null_is_fd: false,
            exec: false,
        }
    }
}

/// The lookup of `abs` as written when it differs from its canonical path `canon` (a symlink
/// on the way, or `..` through one): an observation of its own, `exists` or `missing`.
pub(crate) fn symlink_lookup(abs: &[u8], canon: &[u8], exists: bool) -> Option<(Vec<u8>, Kinds)> {
    let lexical = normalize(abs);
    let kinds = if exists {
        Kinds::EXISTS
    } else {
        Kinds::MISSING
    };
    (lexical != canon).then_some((lexical, kinds))
}

/// Whether [`rewrite_self`] would change `path`.
fn is_self_path(path: &[u8]) -> bool {
    path.starts_with(b"/proc/self")
        || path.starts_with(b"/proc/thread-self")
        || path.starts_with(b"/dev/fd")
        || path.starts_with(b"/dev/std")
}

/// The caller's fd that `path` opens anew: `/dev/stdin` (0), `/dev/stdout` (1), `/dev/stderr`
/// (2), `/dev/fd/N`, `/proc/self/fd/N`, `/proc/thread-self/fd/N`.
fn fd_of_self_path(path: &[u8]) -> Option<i32> {
    match path {
        b"/dev/stdin" => return Some(0),
        b"/dev/stdout" => return Some(1),
        b"/dev/stderr" => return Some(2),
        _ => {}
    }
    let rest = [
        &b"/dev/fd/"[..],
        b"/proc/self/fd/",
        b"/proc/thread-self/fd/",
    ]
    .iter()
    .find_map(|p| path.strip_prefix(*p))?;
    let digits = rest.strip_suffix(b"/").unwrap_or(rest);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `/proc/self`, `/proc/thread-self` and `/dev/fd` name the caller; rewrite them to its pid so
/// that the supervisor resolves them in the tracee rather than in itself.
fn rewrite_self(pid: u32, path: &[u8]) -> Vec<u8> {
    const PREFIXES: &[(&[u8], &str)] = &[
        (b"/proc/self", ""),
        (b"/proc/thread-self", ""),
        (b"/dev/fd", "/fd"),
        (b"/dev/stdin", "/fd/0"),
        (b"/dev/stdout", "/fd/1"),
        (b"/dev/stderr", "/fd/2"),
    ];
    for (prefix, repl) in PREFIXES {
        if path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/')) {
            let mut out = format!("/proc/{pid}{repl}").into_bytes();
            out.extend_from_slice(&path[prefix.len()..]);
            return out;
        }
    }
    path.to_vec()
}

/// Removes empty and `.` components and resolves `..` lexically.
pub(crate) fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn open_path(view: &View, path: &[u8], follow: bool, dir: bool) -> nix::Result<OwnedFd> {
    let mut flags = OFlag::O_PATH;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    if dir {
        flags |= OFlag::O_DIRECTORY;
    }
    view.open(path, flags)
}

fn canonical_of(view: &View, fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    view.fd_path(fd)
}

/// A file's identity and change time: (dev, ino, ctime seconds, ctime nanoseconds).
pub(crate) type FileVersion = (u64, u64, i64, i64);

/// Resolves paths, caching the canonical path of directories.
///
/// The cache is cleared whenever the traced tree deletes or renames anything (the only ways to
/// change what an existing directory path resolves to), so it is exact within the tree; a
/// directory symlink changed by a process outside the tree during the trace may be missed.
pub(crate) struct Resolver {
    pub(crate) view: View,
    /// Answers by (path as given, follow), valid until the tree changes a directory entry.
    results: std::collections::HashMap<Vec<u8>, (Vec<u8>, bool, Option<nix::sys::stat::FileStat>)>,
    /// Directories (as written, normalized) known not to exist.
    pub(crate) missing: std::collections::HashSet<Vec<u8>>,
    /// `lstat` of the last path resolved by the fast path (not a symlink), if any.
    pub(crate) last_stat: Option<nix::sys::stat::FileStat>,
    /// Interpreter records by (dev, ino, ctime) of the executed file.
    pub(crate) interps: std::collections::HashMap<FileVersion, Vec<(Vec<u8>, Kinds)>>,
    dirs: std::collections::HashMap<Vec<u8>, Vec<u8>>,
    /// Whether new entries may be cached (not while a namespace change is in flight).
    pub(crate) caching: bool,
}

impl Resolver {
    pub(crate) fn new(view: View) -> Resolver {
        Resolver {
            view,
            last_stat: None,
            missing: Default::default(),
            results: Default::default(),
            interps: Default::default(),
            dirs: Default::default(),
            caching: true,
        }
    }

    pub(crate) fn invalidate(&mut self) {
        self.results.clear();
        self.dirs.clear();
        self.missing.clear();
        self.interps.clear();
    }

    /// Forgets answers and missing directories, keeping directory paths (a new entry cannot
    /// change what an existing directory path means).
    pub(crate) fn forget_answers(&mut self) {
        self.results.clear();
        self.missing.clear();
    }

    /// Resolves `abs` (see [`resolve_slow`]) with one `lstat` when the parent is cached.
    pub(crate) fn resolve(&mut self, abs: &[u8], follow: bool) -> (Vec<u8>, bool) {
        // The same lookup again, with no create/delete/rename in the tree since: same answer.
        let mut key = Vec::with_capacity(abs.len() + 1);
        key.extend_from_slice(abs);
        key.push(follow as u8);
        if let Some((canon, exists, st)) = self.results.get(&key) {
            self.last_stat = *st;
            return (canon.clone(), *exists);
        }
        let (canon, exists) = self.resolve_uncached(abs, follow);
        if self.caching {
            if self.results.len() > 65_536 {
                self.results.clear();
            }
            self.results
                .insert(key, (canon.clone(), exists, self.last_stat));
        }
        (canon, exists)
    }

    fn resolve_uncached(&mut self, abs: &[u8], follow: bool) -> (Vec<u8>, bool) {
        self.last_stat = None;
        let lexical = normalize(abs);
        let dotdot = abs.split(|&b| b == b'/').any(|c| c == b"..");
        let Some(slash) = lexical.iter().rposition(|&b| b == b'/') else {
            return resolve_slow(&self.view, abs, follow);
        };
        if dotdot || lexical.len() == 1 {
            return resolve_slow(&self.view, abs, follow);
        }
        let (parent, name) = (&lexical[..slash.max(1)], &lexical[slash + 1..]);
        if self.missing.contains(parent) {
            return (lexical, false);
        }
        let parent_canon = match self.dirs.get(parent) {
            Some(c) => c.clone(),
            None => {
                let c = match open_path(&self.view, parent, true, true) {
                    Ok(fd) => canonical_of(&self.view, fd.as_fd()),
                    Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => {
                        // Same answer as the slow path: the path as written, missing.
                        if self.caching {
                            if self.missing.len() > 16_384 {
                                self.missing.clear();
                            }
                            self.missing.insert(parent.to_vec());
                        }
                        return (lexical, false);
                    }
                    Err(_) => None,
                };
                let Some(c) = c else {
                    return resolve_slow(&self.view, abs, follow);
                };
                if c.first() != Some(&b'/') {
                    return resolve_slow(&self.view, abs, follow);
                }
                if self.caching {
                    if self.dirs.len() > 16_384 {
                        self.dirs.clear();
                    }
                    self.dirs.insert(parent.to_vec(), c.clone());
                }
                c
            }
        };
        let mut full = parent_canon;
        if full.last() != Some(&b'/') {
            full.push(b'/');
        }
        full.extend_from_slice(name);
        match self.view.lstat(&full) {
            Ok(st) if follow && st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                resolve_slow(&self.view, &full, true)
            }
            Ok(st) => {
                self.last_stat = Some(st);
                (full, true)
            }
            Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => (full, false),
            Err(_) => (full, true),
        }
    }
}

/// Resolves `abs` in the supervisor's view of the filesystem: the canonical path (symlinks
/// resolved; for a missing path, its parent's canonical path plus the last name) and whether
/// it exists.
pub(crate) fn resolve_slow(view: &View, abs: &[u8], follow: bool) -> (Vec<u8>, bool) {
    match open_path(view, abs, follow, false) {
        Ok(fd) => match canonical_of(view, fd.as_fd()) {
            Some(c) if c.first() == Some(&b'/') => (c, true),
            _ => (normalize(abs), true),
        },
        Err(_) => {
            let lexical = normalize(abs);
            let Some(slash) = lexical.iter().rposition(|&b| b == b'/') else {
                return (lexical, false);
            };
            let (parent, name) = (&lexical[..slash.max(1)], &lexical[slash + 1..]);
            let parent_canon = open_path(view, parent, true, true)
                .ok()
                .and_then(|fd| canonical_of(view, fd.as_fd()))
                .filter(|c| c.first() == Some(&b'/'));
            match parent_canon {
                Some(mut c) if !name.is_empty() => {
                    if c.last() != Some(&b'/') {
                        c.push(b'/');
                    }
                    c.extend_from_slice(name);
                    (c, false)
                }
                _ => (lexical, false),
            }
        }
    }
}

/// Records the `#!` and ELF (`PT_INTERP`) interpreters the kernel opens for `exec` of `path`
/// without a syscall of the tracee.
fn interpreters(
    resolver: &mut Resolver,
    path: &[u8],
    pid: u32,
    out: &mut Vec<(Vec<u8>, Kinds)>,
    depth: u32,
) {
    use std::os::unix::fs::FileExt;
    if depth > 4 {
        return;
    }
    let Ok(file) = resolver
        .view
        .open(path, OFlag::O_RDONLY)
        .map(std::fs::File::from)
    else {
        return;
    };
    // One read covers the `#!` line or the ELF header and, almost always, its program headers.
    let mut buf = [0u8; 4096];
    let Ok(n) = file.read_at(&mut buf, 0) else {
        return;
    };
    let head = &buf[..n];
    let interp: Option<Vec<u8>> = if head.starts_with(b"#!") {
        let line = &head[2..];
        let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
        let start = line
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(line.len());
        let rest = &line[start..];
        let end = rest
            .iter()
            .position(|&b| b == b' ' || b == b'\t')
            .unwrap_or(rest.len());
        Some(rest[..end].to_vec()).filter(|p| !p.is_empty())
    } else if head.len() >= 64 && head.starts_with(b"\x7fELF\x02\x01") {
        elf_interp(&file, head)
    } else {
        None
    };
    let Some(interp) = interp else { return };
    let abs = if interp.first() == Some(&b'/') {
        interp
    } else {
        // A relative interpreter is looked up from the caller's cwd.
        let Some(mut cwd) =
            read_link(format!("/proc/{pid}/cwd")).map(|c| resolver.view.translate(c))
        else {
            return;
        };
        cwd.push(b'/');
        cwd.extend_from_slice(&interp);
        cwd
    };
    let (canon, exists) = resolver.resolve(&abs, true);
    let lexical = normalize(&abs);
    if lexical != canon {
        out.push((
            lexical,
            if exists {
                Kinds::EXISTS
            } else {
                Kinds::MISSING
            },
        ));
    }
    if exists {
        interpreters(resolver, &canon, pid, out, depth + 1);
        out.push((canon, Kinds::EXEC));
    } else {
        out.push((canon, Kinds::MISSING));
    }
}

/// The `PT_INTERP` path of a 64-bit little-endian ELF file whose first bytes are `head`.
fn elf_interp(file: &std::fs::File, head: &[u8]) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let phoff = usize::try_from(u64_at(head, 0x20)).ok()?;
    let (phentsize, phnum) = (u16_at(head, 0x36), u16_at(head, 0x38).min(128));
    if phentsize < 56 {
        return None;
    }
    let table_len = phentsize * phnum;
    let mut table_buf;
    let table = if phoff + table_len <= head.len() {
        &head[phoff..phoff + table_len]
    } else {
        table_buf = vec![0u8; table_len];
        file.read_exact_at(&mut table_buf, phoff as u64).ok()?;
        &table_buf[..]
    };
    for ph in table.chunks_exact(phentsize) {
        if u32::from_le_bytes(ph[0..4].try_into().expect("4 bytes")) != 3 {
            continue;
        }
        let (off, size) = (u64_at(ph, 8), u64_at(ph, 32).min(PATH_MAX as u64) as usize);
        let mut name = vec![0u8; size];
        match head.get(off as usize..off as usize + size) {
            Some(bytes) => name.copy_from_slice(bytes),
            None => file.read_exact_at(&mut name, off).ok()?,
        }
        if let Some(end) = name.iter().position(|&b| b == 0) {
            name.truncate(end);
        }
        return Some(name);
    }
    None
}

/// Whether thread `tid` has a controlling terminal (`tty_nr` in `/proc/TID/stat`). Without
/// one, opening `/dev/tty` fails with `ENXIO`: bash opens it for writing at every start (its
/// `check_dev_tty`), which is then no device access at all. Unknown counts as having one.
fn has_controlling_tty(tid: u32) -> bool {
    crate::procs::stat_field(tid as i32, 4).is_none_or(|tty| tty != 0)
}

/// Devices whose writes have effects outside the sandbox (terminals, disks); the harmless
/// character devices and the caller's own stdio are not.
fn is_device(path: &[u8]) -> bool {
    const HARMLESS: &[&[u8]] = &[
        b"/dev/null",
        b"/dev/zero",
        b"/dev/full",
        b"/dev/random",
        b"/dev/urandom",
    ];
    path.starts_with(b"/dev/")
        && !HARMLESS.contains(&path)
        && !path.starts_with(b"/dev/shm/")
        && !path.starts_with(b"/dev/mqueue/")
}
