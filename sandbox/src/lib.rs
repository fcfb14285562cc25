//! Copy-on-write sandboxes of the live filesystem, and transactional commit of their changes.
//!
//! A [`Sandbox`] lives in a directory. [`Sandbox::create`] reads `/proc/self/mountinfo` and
//! builds a [`Plan`]: a list of [`Step`]s (unshare, map ids, mount overlays, bind read-only,
//! build `/dev`, mount `/proc`, `pivot_root`, exec) computed without side effects, printable
//! (`hs try --plan`), and executed by one loop in the sandbox's init process. Writable real
//! filesystems get an overlay whose upper dir sits on the same filesystem as the live data, so
//! that [`Sandbox::commit`] moves files with `rename(2)` instead of copying them; every other
//! mount is bound read-only, so a write the sandbox cannot capture fails.
//!
//! ```no_run
//! use sandbox::{Command, Options, Sandbox};
//! let sb = Sandbox::create_temp(&Options::default())?;
//! let status = sb.run(&Command::shell("echo hi > /tmp/x; rm -f /tmp/y"))?;
//! print!("{}", sb.changes()?.to_text());
//! if status == 0 {
//!     sb.commit()?;
//! }
//! # Ok::<(), sandbox::Error>(())
//! ```
//!
//! Namespaces: user (the caller's uid/gid mapped to themselves; as root, entered after the
//! mounts with the identity map so the sandboxed root cannot unmount its overlays), mount, pid
//! (own `/proc`), ipc and, unless [`Options::net`], net with only loopback up.
//!
//! As root, `/` gets one overlay. Unprivileged, the kernel refuses an overlay whose lower dir
//! has locked submounts and cannot copy up directories of unmapped users, so the root becomes
//! a read-only tmpfs skeleton: the topmost writable directories on the way to `/tmp`,
//! `/var/tmp`, `$HOME` and the cwd get an overlay each, everything else is bound read-only.
//!
//! Sandboxes can be set up ahead of use ([`Sandbox::prestart`], a pool) so that setup latency
//! stays off the critical path. See README.md for the commit algorithm and measurements.
//!
//! All `unsafe` code lives in the private `sys` module.
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![deny(unsafe_code)]

mod changes;
mod commit;
mod error;
mod exec;
mod plan;
mod sandbox;
mod sys;
pub mod views;
mod zygote;

pub use crate::changes::{Change, ChangeKind, ChangeSet, FileKind, Hazard};
pub use crate::commit::{CommitReport, recover, recover_all, remove_stale};
pub use crate::error::Error;
pub use crate::exec::{Child, Command, Ready};
pub use crate::plan::{
    Layer, MountInfo, Plan, PlanInput, Step, build as build_plan, parse_mountinfo, read_mountinfo,
    writable_roots,
};
pub use crate::sandbox::{Options, Sandbox, default_base};
pub use crate::zygote::{
    main_if_asked as zygote_main_if_asked, spawn as spawn_zygote, start as start_zygote,
    stop as stop_zygote,
};
pub use nix::errno::Errno;

/// A network namespace with only loopback, up, for sandboxes to share
/// ([`Options::shared_net`]): creating and destroying one per sandbox costs more than the
/// rest of its setup. Root only (`CAP_SYS_ADMIN` in the initial user namespace).
pub fn shared_network() -> Result<std::sync::Arc<std::os::fd::OwnedFd>, Error> {
    // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its own, which ends.
    let made = std::thread::spawn(|| -> Result<std::fs::File, Error> {
        let step = |e: Errno| {
            Error::io(
                "create",
                std::path::Path::new("network namespace"),
                e.into(),
            )
        };
        sys::unshare(libc::CLONE_NEWNET).map_err(step)?;
        sys::loopback_up().map_err(step)?;
        std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("open", std::path::Path::new("/proc/thread-self/ns/net"), e))
    })
    .join()
    .map_err(|_| Error::InvalidCommand("the network namespace thread panicked"))??;
    Ok(std::sync::Arc::new(made.into()))
}

/// Which side of [`fork_alone`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(i32),
    /// In the child: a copy of the caller, which must end with `std::process::exit`.
    Child,
}

/// `fork(2)`, for a process with a single thread only (checked: else `EDEADLK`), where the
/// child may go on running any code, since no other thread held a lock when it was copied.
/// `hs` uses it to split into the gate server (the child) and the shell (the parent, which
/// then `exec`s bash) without a second `exec` of itself.
pub fn fork_alone() -> Result<Forked, Errno> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|_| Errno::ENOENT)?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse::<u32>().ok());
    if threads != Some(1) {
        return Err(Errno::EDEADLK);
    }
    match sys::fork()? {
        sys::Fork::Parent(pid) => Ok(Forked::Parent(pid)),
        sys::Fork::Child => Ok(Forked::Child),
    }
}

/// A standard input for a sandboxed command that tells afterwards whether the command read
/// from it: a pipe holding one byte, its write end closed. Nothing is trapped (a tracer that
/// stops every `read` of fd 0 stops every read of every pipeline stage after the first);
/// once the command's processes are gone, [`StdinProbe::was_read`] looks at whether the byte
/// is still there. A reader sees one newline, then end of file.
pub fn stdin_probe() -> Result<(std::os::fd::OwnedFd, StdinProbe), Errno> {
    let (r, w) = sys::pipe()?;
    sys::write_all(std::os::fd::AsRawFd::as_raw_fd(&w), b"\n")?;
    drop(w);
    let probe = r
        .try_clone()
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    Ok((r, StdinProbe(probe)))
}

/// See [`stdin_probe`].
#[derive(Debug)]
pub struct StdinProbe(std::os::fd::OwnedFd);

impl StdinProbe {
    /// Whether anything read the byte (an error counts as read).
    pub fn was_read(&self) -> bool {
        sys::unread_bytes(std::os::fd::AsRawFd::as_raw_fd(&self.0)).map_or(true, |n| n == 0)
    }
}

/// The only user and group ids a sandbox maps when its caller is unprivileged (the caller's
/// own), or `None` when it maps every id (root). Overlayfs cannot copy up a file or directory
/// owned by an id outside the map (`EOVERFLOW`), so in an unprivileged sandbox a write to such
/// a file, or below such a directory, fails where it would succeed live. Computed once.
pub fn mapped_ids() -> Option<(u32, u32)> {
    static IDS: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
    *IDS.get_or_init(|| {
        if crate::sandbox::privileged() {
            None
        } else {
            let (uid, gid, _) = crate::sys::ids();
            Some((uid, gid))
        }
    })
}

/// Lowers the calling thread (and what it starts afterwards) to nice 19: below every normal
/// task, above `SCHED_IDLE` ones (e.g. sandbox setup, which speculative runs wait for).
pub fn nice_this_thread() -> Result<(), Errno> {
    sys::set_nice(19)
}

/// Lowers the calling thread (and what it starts afterwards) to `SCHED_IDLE`, e.g. for the
/// threads that set sandboxes up ahead of use: they then only take CPU time nothing else wants.
pub fn idle_this_thread() -> Result<(), Errno> {
    sys::sched_idle()
}

/// Raises every thread of process `pid` and of its descendants, and the threads `tids`, from
/// `SCHED_IDLE` back to `SCHED_OTHER`: for a speculative run the shell has come to wait for.
/// Returns how many threads were changed (0 where the caller may not: unprivileged callers
/// cannot leave `SCHED_IDLE` with the default nice limit).
pub fn unidle_tree(pid: i32, tids: &[i32]) -> usize {
    // Down the tree through each thread's `children` list: only the run's own processes are
    // read, not every process of the system.
    let mut tree = vec![pid];
    let mut changed = 0;
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        i += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if sys::sched_other(tid).is_ok() {
                changed += 1;
            }
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            tree.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    for &t in tids {
        if sys::sched_other(t).is_ok() {
            changed += 1;
        }
    }
    changed
}
