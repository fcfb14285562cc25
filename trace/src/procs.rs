//! What the supervisor knows about each traced thread: a pidfd (to detect tid reuse and to copy
//! fds out with `pidfd_getfd`) and its cwd, cached.
//!
//! A cached cwd stays valid until the thread exits (its pidfd turns readable; a recycled tid
//! gets a fresh entry) or any traced thread calls `chdir`/`fchdir`/`chroot`/`unshare`, which
//! clear every cached cwd (threads sharing `CLONE_FS` change each other's cwd).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use crate::sys;
use crate::view::View;

struct Entry {
    pidfd: OwnedFd,
    cwd: Option<Vec<u8>>,
}

/// Per-thread cache; see the module docs.
pub(crate) struct Procs {
    map: HashMap<u32, Entry>,
    /// Directory fds of the tracees: our copy of the file and its path; cleared with the
    /// resolver's cache.
    fds: HashMap<(u32, i32), (OwnedFd, Vec<u8>)>,
    /// Threads stopped in `chdir`-like calls that may not have taken effect yet: no cwd is
    /// cached until each of them has been seen again (so its call completed).
    chdir_pending: InFlight,
    /// Whether directory paths may be cached (not while a namespace change is in flight).
    pub(crate) dir_caching: bool,
    view: View,
}

/// Threads remembered at once (each holds a pidfd; several tracers share one fd limit).
const MAX_ENTRIES: usize = 64;

impl Procs {
    pub(crate) fn new(view: View) -> Self {
        Procs {
            view,
            map: HashMap::new(),
            fds: HashMap::new(),
            chdir_pending: InFlight::default(),
            dir_caching: true,
        }
    }
}

impl Procs {
    fn entry(&mut self, tid: u32) -> Option<&mut Entry> {
        let alive = match self.map.get(&tid) {
            Some(e) => !sys::has_exited(e.pidfd.as_fd()),
            None => false,
        };
        if !alive {
            if self.map.len() >= MAX_ENTRIES {
                self.map.retain(|_, e| !sys::has_exited(e.pidfd.as_fd()));
                if self.map.len() >= MAX_ENTRIES {
                    self.map.clear();
                }
            }
            let pidfd = sys::pidfd_open_thread(tid as i32).ok()?;
            self.map.insert(tid, Entry { pidfd, cwd: None });
        }
        self.map.get_mut(&tid)
    }

    /// Thread `tid` is about to change its cwd (or its root, or unshare its fs): forget every
    /// cached cwd, and cache none until `tid` has been seen again.
    pub(crate) fn chdir(&mut self, tid: u32) {
        for e in self.map.values_mut() {
            e.cwd = None;
        }
        self.chdir_pending.add(tid);
    }

    /// A notification from `tid` arrived: any `chdir` it was stopped in has completed.
    pub(crate) fn seen(&mut self, tid: u32) {
        if self.chdir_pending.settle(tid) {
            for e in self.map.values_mut() {
                e.cwd = None;
            }
        }
    }

    /// Forgets the canonical paths of directories.
    pub(crate) fn invalidate_dirs(&mut self) {
        self.fds.clear();
    }

    /// The cwd of thread `tid`.
    pub(crate) fn cwd(&mut self, tid: u32) -> Option<Vec<u8>> {
        let cacheable = self.chdir_pending.is_empty();
        let view = self.view.clone();
        let Some(e) = self.entry(tid) else {
            return read_link(format!("/proc/{tid}/cwd")).map(|c| view.translate(c));
        };
        if let Some(c) = &e.cwd {
            return Some(c.clone());
        }
        let c = view.translate(read_link(format!("/proc/{tid}/cwd"))?);
        if cacheable {
            e.cwd = Some(c.clone());
        }
        Some(c)
    }

    /// The path of fd `fd` of thread `tid` (for sockets and pipes: `socket:[…]` and the like).
    ///
    /// Directory fds (the `dirfd` of `*at` calls, `getdents`) are cached per (tid, fd) together
    /// with our own copy of the file; a cached entry is used only if `kcmp` says the tracee's
    /// fd is still that same open file (one syscall instead of `pidfd_getfd`, `fstat`, `close`).
    pub(crate) fn fd_path(&mut self, tid: u32, fd: i32) -> Option<Vec<u8>> {
        if let Some((ours, path)) = self.fds.get(&(tid, fd)) {
            use std::os::fd::AsRawFd;
            match sys::same_file(tid as i32, fd, std::process::id() as i32, ours.as_raw_fd()) {
                Ok(true) => return Some(path.clone()),
                _ => {
                    self.fds.remove(&(tid, fd));
                }
            }
        }
        // No liveness check needed: `pidfd_getfd` fails with ESRCH if the cached pidfd's
        // process is gone (its tid now names another one), and we then open a fresh pidfd.
        let cached = self
            .map
            .get(&tid)
            .map(|e| sys::pidfd_getfd(e.pidfd.as_fd(), fd));
        let ours = match cached {
            Some(Ok(ours)) => Some(ours),
            Some(Err(e)) if e.raw_os_error() != Some(libc::ESRCH) => None,
            _ => {
                self.map.remove(&tid);
                self.entry(tid)
                    .and_then(|e| sys::pidfd_getfd(e.pidfd.as_fd(), fd).ok())
            }
        };
        let Some(ours) = ours else {
            return read_link(format!("/proc/{tid}/fd/{fd}")).map(|p| self.view.translate(p));
        };
        let st = nix::sys::stat::fstat(ours.as_fd()).ok()?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let p = self.view.fd_path(ours.as_fd())?;
        if is_dir && self.dir_caching && p.first() == Some(&b'/') {
            if self.fds.len() >= MAX_FDS {
                self.fds.clear();
            }
            self.fds.insert((tid, fd), (ours, p.clone()));
        }
        Some(p)
    }
}

/// Threads stopped in a call whose effect may not have happened yet (a `chdir`, a `rename`):
/// a thread is settled once it is seen in another notification (so that call completed) or
/// has exited.
#[derive(Default)]
pub(crate) struct InFlight(Vec<(u32, Option<OwnedFd>)>);

impl InFlight {
    pub(crate) fn add(&mut self, tid: u32) {
        if !self.0.iter().any(|(t, _)| *t == tid) {
            self.0.push((tid, sys::pidfd_open_thread(tid as i32).ok()));
        }
    }

    /// Drops `seen` and every thread that exited; returns whether any was dropped.
    pub(crate) fn settle(&mut self, seen: u32) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let before = self.0.len();
        self.0.retain(|(t, fd)| {
            *t != seen && !fd.as_ref().is_some_and(|fd| sys::has_exited(fd.as_fd()))
        });
        self.0.len() != before
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Directory fds kept open for [`Procs::fd_path`].
const MAX_FDS: usize = 32;

/// Numeric field `index` of `/proc/PID/stat` after the command name (1: the parent's pid,
/// 4: the controlling terminal), if the process exists and the field is a number.
pub fn stat_field(pid: i32, index: usize) -> Option<i64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp session tty_nr ...": comm may hold anything but a last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(index)
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse().ok())
}

pub(crate) fn read_link(path: String) -> Option<Vec<u8>> {
    nix::fcntl::readlink(path.as_str())
        .ok()
        .map(std::ffi::OsString::into_vec)
}

/// The path of one of the supervisor's own fds.
pub(crate) fn own_fd_path(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}
