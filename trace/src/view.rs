//! The supervisor's view of the tracee's filesystem.
//!
//! By default the tracee shares the supervisor's root and mount namespace, and paths are used
//! as they are. A tracee in another mount namespace (the sandbox) sees other files under the
//! same names: give the tracer an fd of the tracee's root ([`crate::Tracer::root`]) and every
//! lookup goes through `openat2(root, path, RESOLVE_IN_ROOT)`, so that absolute symlinks and
//! `..` stay inside it, and every path read back from `/proc` (cwd, fds, canonical paths) is
//! translated to the tracee's view by removing the root's own path.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode};

use crate::procs::own_fd_path;

/// See the module docs. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct View {
    root: Option<Arc<Root>>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.root {
            None => f.write_str("View(shared root)"),
            Some(r) => write!(f, "View(root {:?})", String::from_utf8_lossy(&r.prefix)),
        }
    }
}

struct Root {
    fd: OwnedFd,
    /// The root's path in the supervisor's view, without a trailing slash ("" for "/").
    prefix: Vec<u8>,
}

impl View {
    /// A view under `root` (an fd of the tracee's root directory).
    pub(crate) fn under(root: OwnedFd) -> View {
        let mut prefix = own_fd_path(root.as_fd()).unwrap_or_default();
        if prefix == b"/" || prefix.first() != Some(&b'/') {
            prefix.clear();
        }
        View {
            root: Some(Arc::new(Root { fd: root, prefix })),
        }
    }

    /// Whether the tracee has a root of its own (another mount namespace).
    pub(crate) fn is_rooted(&self) -> bool {
        self.root.is_some()
    }

    /// Opens `abs` (a path in the tracee's view) with `flags` (plus `O_CLOEXEC`).
    pub(crate) fn open(&self, abs: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
        match &self.root {
            None => nix::fcntl::open(abs, flags | OFlag::O_CLOEXEC, Mode::empty()),
            Some(r) => {
                let rel = relative(abs);
                let how = OpenHow::new()
                    .flags(flags | OFlag::O_CLOEXEC)
                    .resolve(ResolveFlag::RESOLVE_IN_ROOT);
                nix::fcntl::openat2(r.fd.as_fd(), rel, how)
            }
        }
    }

    /// `lstat` of `abs`, whose directories are canonical (no symlinks, no `..`).
    pub(crate) fn lstat(&self, abs: &[u8]) -> nix::Result<FileStat> {
        match &self.root {
            None => nix::sys::stat::lstat(abs),
            Some(r) => nix::sys::stat::fstatat(
                r.fd.as_fd(),
                relative(abs),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
        }
    }

    /// The path of one of the supervisor's fds, in the tracee's view.
    pub(crate) fn fd_path(&self, fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
        own_fd_path(fd).map(|p| self.translate(p))
    }

    /// Translates a path read from `/proc` (the supervisor's view) to the tracee's view.
    pub(crate) fn translate(&self, path: Vec<u8>) -> Vec<u8> {
        match &self.root {
            Some(r) if !r.prefix.is_empty() && path.starts_with(&r.prefix) => {
                match path.get(r.prefix.len()) {
                    None => b"/".to_vec(),
                    Some(b'/') => path[r.prefix.len()..].to_vec(),
                    Some(_) => path,
                }
            }
            _ => path,
        }
    }
}

fn relative(abs: &[u8]) -> &[u8] {
    let rel = abs.strip_prefix(b"/").unwrap_or(abs);
    if rel.is_empty() { b"." } else { rel }
}
