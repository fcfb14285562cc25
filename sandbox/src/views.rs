//! Private views of paths: a mount namespace of the calling process (inside a new user
//! namespace unless it is root) where chosen paths show other directories or files, as
//! "variant symlinks" do, with no setuid helper.
//!
//! Paths are opened once (`O_PATH`) by whoever names them, possibly in another process that
//! sends the descriptors over a unix socket; the mounts then go from descriptor to descriptor
//! (`open_tree` + `move_mount`), so nothing is resolved twice. A view replaced on the same
//! destination is unmounted first, so views do not pile up.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Error, USERNS_HINT};
use crate::sys::{self, Errno};

/// An open path (`O_PATH`, symlinks followed) and the name it was opened by, for messages.
#[derive(Debug)]
pub struct PathFd {
    fd: OwnedFd,
    path: PathBuf,
}

impl PathFd {
    /// Open `path`, following symlinks; fails if it does not exist.
    pub fn open(path: &Path) -> Result<PathFd, Error> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("open", path, e.into()))?;
        Ok(PathFd {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// A descriptor opened elsewhere (e.g. received over a socket), named `path` in messages.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> PathFd {
        PathFd { fd, path }
    }

    /// The name it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> Result<bool, Error> {
        let st =
            nix::sys::stat::fstat(&self.fd).map_err(|e| Error::io("stat", &self.path, e.into()))?;
        Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
    }

    fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

impl AsFd for PathFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One view made here: the id of its mount, and what it was mounted on.
#[derive(Debug)]
struct View {
    mount: u64,
    under: PathFd,
}

/// The calling process's private mount namespace and the views made in it.
#[derive(Debug)]
pub struct Views {
    views: Vec<View>,
}

impl Views {
    /// Move the calling process into a new mount namespace: as root only that; otherwise
    /// inside a new user namespace where the caller's uid and gid map to themselves (so `id`
    /// is unchanged and files keep their owners). Mounts become slaves of the host's: host
    /// mounts still show up here, views never leak out.
    ///
    /// Must be called while the process has a single thread (the kernel refuses otherwise).
    pub fn enter() -> Result<Views, Error> {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let user_ns = if uid == 0 {
            match sys::unshare(libc::CLONE_NEWNS) {
                Ok(()) => false,
                Err(Errno::EPERM) => true, // root of a container without CAP_SYS_ADMIN
                Err(errno) => {
                    return Err(Error::Namespace {
                        what: "mount",
                        errno,
                        hint: None,
                    });
                }
            }
        } else {
            true
        };
        if user_ns {
            sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).map_err(|errno| {
                Error::Namespace {
                    what: "user and mount",
                    errno,
                    hint: matches!(
                        errno,
                        Errno::EPERM | Errno::ENOSPC | Errno::EACCES | Errno::EUSERS
                    )
                    .then_some(USERNS_HINT),
                }
            })?;
            for (file, text) in [
                ("/proc/self/setgroups", "deny".to_string()),
                ("/proc/self/uid_map", format!("{uid} {uid} 1\n")),
                ("/proc/self/gid_map", format!("{gid} {gid} 1\n")),
            ] {
                std::fs::write(file, text).map_err(|e| Error::io("write", Path::new(file), e))?;
            }
        }
        sys::mount(None, c"/", None, libc::MS_REC | libc::MS_SLAVE, None)
            .map_err(|e| Error::io("mark as slaves the mounts under", Path::new("/"), e.into()))?;
        Ok(Views { views: Vec::new() })
    }

    /// Make `dst` show `src` (both directories, or both not), read-only if asked, with the
    /// mounts below `src`. A view made here on `dst` before is replaced; anything else
    /// mounted there (an outer shell's view) is covered.
    pub fn bind(&mut self, src: &PathFd, dst: PathFd, read_only: bool) -> Result<(), Error> {
        let src_is_dir = src.is_dir()?;
        if src_is_dir != dst.is_dir()? {
            return Err(Error::ViewKind {
                src: src.path.clone(),
                dst: dst.path.clone(),
                src_is_dir,
            });
        }
        let dst_path = dst.path.clone();
        let fail = |action: &'static str, e: Errno| Error::io(action, &dst_path, e.into());
        let tree = sys::open_tree_clone(src.fd.as_raw_fd())
            .map_err(|e| Error::io("clone the mount of", &src.path, e.into()))?;
        if read_only {
            sys::mount_setattr_tree(tree.as_raw_fd(), sys::MOUNT_ATTR_RDONLY)
                .map_err(|e| fail("make read-only the view of", e))?;
        }
        let target = match self.mine(dst.fd.as_raw_fd()).map_err(|e| fail("stat", e))? {
            Some(i) => {
                unmount(&dst).map_err(|e| fail("unmount the old view on", e))?;
                let old = self.views.remove(i);
                PathFd::from_fd(old.under.fd, dst.path)
            }
            None => dst,
        };
        sys::move_mount(tree.as_raw_fd(), target.fd.as_raw_fd())
            .map_err(|e| fail("bind-mount on", e))?;
        let (mount, _) = sys::mount_id(tree.as_raw_fd()).map_err(|e| fail("stat", e))?;
        // Ids may be reused (before Linux 6.8): a stale record must not shadow this one.
        self.views.retain(|v| v.mount != mount);
        self.views.push(View {
            mount,
            under: target,
        });
        Ok(())
    }

    /// Remove the view made here on `dst`, showing again what was below it.
    pub fn unbind(&mut self, dst: &PathFd) -> Result<(), Error> {
        let fail = |action: &'static str, e: Errno| Error::io(action, &dst.path, e.into());
        let Some(i) = self.mine(dst.fd.as_raw_fd()).map_err(|e| fail("stat", e))? else {
            return Err(Error::NotAView {
                path: dst.path.clone(),
            });
        };
        unmount(dst).map_err(|e| fail("unmount the view on", e))?;
        self.views.remove(i);
        Ok(())
    }

    /// The index of the view made here whose root `fd` is.
    fn mine(&self, fd: RawFd) -> Result<Option<usize>, Errno> {
        let (id, root) = sys::mount_id(fd)?;
        Ok(root
            .then(|| self.views.iter().position(|v| v.mount == id))
            .flatten())
    }
}

/// Lazily unmount the mount whose root `p` is.
fn unmount(p: &PathFd) -> Result<(), Errno> {
    sys::umount2(&sys::cstr(p.proc_path().as_os_str())?, libc::MNT_DETACH)
}

/// Send `data` with descriptors `fds` (`SCM_RIGHTS`) on a unix socket; returns the bytes sent.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, Errno> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    let iov = [std::io::IoSlice::new(data)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
}

/// Receive bytes into `buf` and up to four descriptors from a unix socket (close-on-exec).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), Errno> {
    sys::recv_with_fds(sock.as_raw_fd(), buf)
}
