//! Every `unsafe` block of the crate: thin, safe wrappers over the raw syscalls the sandbox
//! needs. Each wrapper takes borrowed C strings and returns `Result<_, Errno>`; nothing here
//! allocates except where noted, so the wrappers may be used between `fork` and `exec`.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::ptr;

use libc::{c_char, c_int, c_ulong, c_void, pid_t};
pub(crate) use nix::errno::Errno;

/// Result of a raw syscall wrapper.
pub(crate) type SysResult<T> = Result<T, Errno>;

fn check(ret: c_int) -> SysResult<c_int> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

fn opt_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

/// `AT_RECURSIVE` for `mount_setattr(2)` (not in the libc crate for all targets).
const AT_RECURSIVE: c_uint = 0x8000;
use libc::c_uint;
/// `MOUNT_ATTR_RDONLY` from `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID` from `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV` from `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` from `<linux/mount.h>` (version 0, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Which side of a `fork` we are on.
pub(crate) enum Fork {
    /// In the parent; the child's pid.
    Parent(pid_t),
    /// In the child.
    Child,
}

/// `fork(2)` through glibc, so that its at-fork handlers keep `malloc` usable in the child.
pub(crate) fn fork() -> SysResult<Fork> {
    // SAFETY: fork has no memory-safety preconditions. The child of a multi-threaded process
    // may only rely on state that glibc resets at fork (malloc); the callers run only the
    // sandbox setup code and then exec or `_exit`.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Errno::last()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// `_exit(2)`: leave without running atexit handlers or flushing Rust's stdio.
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// `unshare(2)`.
/// `setns(2)`.
pub(crate) fn setns(fd: RawFd, nstype: c_int) -> SysResult<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::setns(fd, nstype) }).map(drop)
}

pub(crate) fn unshare(flags: c_int) -> SysResult<()> {
    // SAFETY: plain syscall with an integer argument.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// `mount(2)`.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    // SAFETY: every pointer is either null or a valid NUL-terminated string borrowed for the
    // duration of the call.
    check(unsafe {
        libc::mount(
            opt_ptr(source),
            target.as_ptr(),
            opt_ptr(fstype),
            flags,
            opt_ptr(data).cast::<c_void>(),
        )
    })
    .map(drop)
}

/// `mount_setattr(2)` on `path`: set `set` attributes (and propagation if non-zero).
pub(crate) fn mount_setattr(
    path: &CStr,
    recursive: bool,
    set: u64,
    propagation: u64,
) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid struct mount_attr of the size passed; `path` is a valid C string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `umount2(2)`.
pub(crate) fn umount2(target: &CStr, flags: c_int) -> SysResult<()> {
    // SAFETY: valid C string.
    check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `pivot_root(2)`.
pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    // SAFETY: valid C strings; pivot_root has no glibc wrapper.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `chdir(2)`.
pub(crate) fn chdir(path: &CStr) -> SysResult<()> {
    // SAFETY: valid C string.
    check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `mkdir(2)`; an existing entry is not an error.
pub(crate) fn mkdir(path: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: valid C string.
    match check(unsafe { libc::mkdir(path.as_ptr(), mode) }) {
        Err(Errno::EEXIST) | Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `mknod(2)` of an empty regular file (a bind-mount target); an existing entry is fine.
pub(crate) fn create_file(path: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: valid C string.
    match check(unsafe { libc::mknod(path.as_ptr(), libc::S_IFREG | mode, 0) }) {
        Err(Errno::EEXIST) | Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `symlink(2)`.
pub(crate) fn symlink(target: &CStr, link: &CStr) -> SysResult<()> {
    // SAFETY: valid C strings.
    match check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }) {
        Err(Errno::EEXIST) | Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `waitpid(2)` for one child, retrying on EINTR; returns the raw wait status.
pub(crate) fn waitpid(pid: pid_t, flags: c_int) -> SysResult<(pid_t, c_int)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        return Ok((ret, status));
    }
}

/// Shell-style exit code of a wait status: the exit code, or 128 + signal number.
pub(crate) fn status_code(status: c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Removes `name` from the environment. Only for a process with one thread (e.g. first
/// thing in `main`): another thread reading the environment meanwhile would race.
pub(crate) fn remove_env_single_threaded(name: &str) {
    // SAFETY: the caller guarantees that no other thread exists.
    unsafe { std::env::remove_var(name) };
}

/// `execve(2)`; returns only on failure.
pub(crate) fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let mut av: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    av.push(ptr::null());
    let mut ev: Vec<*const c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    ev.push(ptr::null());
    // SAFETY: `av` and `ev` are NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(path.as_ptr(), av.as_ptr(), ev.as_ptr()) };
    Errno::last()
}

/// `dup2(2)`.
pub(crate) fn dup2(old: RawFd, new: RawFd) -> SysResult<()> {
    // SAFETY: plain syscall on integers.
    check(unsafe { libc::dup2(old, new) }).map(drop)
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a duplicate at or above `min`.
pub(crate) fn dup_above(fd: RawFd, min: RawFd) -> SysResult<RawFd> {
    // SAFETY: plain syscall on integers.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// `close(2)`, ignoring errors.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// Close every descriptor from 3 up except those in `keep` (`close_range(2)`, Linux 5.9).
pub(crate) fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd >= 3).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut lo: libc::c_uint = 3;
    for fd in keep.into_iter().chain([RawFd::MAX]) {
        let fd = fd as libc::c_uint;
        if fd > lo {
            // SAFETY: closes descriptors this process no longer uses; none is referenced by
            // a live Rust owner in this single-threaded child that will be used again.
            unsafe { libc::syscall(libc::SYS_close_range, lo, fd - 1, 0) };
        }
        lo = fd.saturating_add(1);
    }
}

/// `umask(2)`.
pub(crate) fn umask(mask: u32) {
    // SAFETY: plain syscall.
    unsafe { libc::umask(mask) };
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`.
pub(crate) fn die_with_parent() -> SysResult<()> {
    // SAFETY: plain prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0) })
        .map(drop)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub(crate) fn no_new_privs() -> SysResult<()> {
    // SAFETY: plain prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as c_ulong, 0, 0, 0) }).map(drop)
}

/// Whether `sig` is currently ignored (`SIG_IGN`).
pub(crate) fn signal_ignored(sig: c_int) -> bool {
    // SAFETY: a zeroed sigaction is a valid out-buffer; a null `act` only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Set `sig` to `SIG_IGN` (`ignore`) or `SIG_DFL`.
pub(crate) fn set_signal(sig: c_int, ignore: bool) {
    // SAFETY: SIG_IGN and SIG_DFL are valid dispositions for any catchable signal.
    unsafe {
        libc::signal(sig, if ignore { libc::SIG_IGN } else { libc::SIG_DFL });
    }
}

/// Reset the signal mask to empty (a forked child inherits the parent's).
pub(crate) fn unblock_all_signals() {
    // SAFETY: a sigset initialised by sigemptyset is valid to pass.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut());
    }
}

/// `kill(2)`.
pub(crate) fn kill(pid: pid_t, sig: c_int) -> SysResult<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` is a valid two-int out-buffer.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `write(2)` of the whole buffer, retrying on EINTR and short writes.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// `read(2)` into `buf`, retrying on EINTR; 0 means end of file.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        return Ok(n as usize);
    }
}

/// [`read`] until `buf` is full or at end of file: how many bytes were read.
pub(crate) fn read_full(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    let mut got = 0;
    while got < buf.len() {
        match read(fd, &mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// `struct ifreq` reduced to the name and flags members (40 bytes on Linux).
#[repr(C)]
struct IfReqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Bring the loopback interface of the current network namespace up.
pub(crate) fn loopback_up() -> SysResult<()> {
    // SAFETY: plain socket syscall.
    let sock =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `sock` is a fresh descriptor owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut req = IfReqFlags {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write a struct ifreq; `req` is large enough.
    unsafe {
        check(libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as _,
            &mut req,
        ))?;
        req.flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req))?;
    }
    Ok(())
}

/// `renameat2(2)` with `AT_FDCWD` on both sides.
pub(crate) fn renameat2(old: &CStr, new: &CStr, flags: c_uint) -> SysResult<()> {
    // SAFETY: valid C strings.
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            old.as_ptr(),
            libc::AT_FDCWD,
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Convert a path to a C string (paths never contain NUL; one that does is EINVAL).
pub(crate) fn cstr(p: &OsStr) -> SysResult<CString> {
    CString::new(p.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `llistxattr(2)`: the names of the extended attributes of `path` (not following symlinks).
pub(crate) fn llistxattr(path: &CStr) -> SysResult<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            match Errno::last() {
                Errno::ERANGE => {
                    buf.resize(buf.len() * 4, 0);
                    continue;
                }
                Errno::ENOTSUP => return Ok(Vec::new()),
                e => return Err(e),
            }
        }
        return Ok(buf[..n as usize]
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect());
    }
}

/// `lgetxattr(2)`: the value of one extended attribute, or `None` if absent.
pub(crate) fn lgetxattr(path: &CStr, name: &CStr) -> SysResult<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; strings are valid.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            match Errno::last() {
                Errno::ERANGE => {
                    buf.resize(buf.len() * 4, 0);
                    continue;
                }
                Errno::ENODATA | Errno::ENOTSUP => return Ok(None),
                e => return Err(e),
            }
        }
        buf.truncate(n as usize);
        return Ok(Some(buf));
    }
}

/// `lsetxattr(2)`.
pub(crate) fn lsetxattr(path: &CStr, name: &CStr, value: &[u8]) -> SysResult<()> {
    // SAFETY: valid strings; `value` valid for its length.
    check(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// `lremovexattr(2)`; an absent attribute is not an error.
pub(crate) fn lremovexattr(path: &CStr, name: &CStr) -> SysResult<()> {
    // SAFETY: valid strings.
    match check(unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) }) {
        Ok(_) | Err(Errno::ENODATA) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `utimensat(2)` without following symlinks; times as (seconds, nanoseconds).
pub(crate) fn lutimens(path: &CStr, atime: (i64, i64), mtime: (i64, i64)) -> SysResult<()> {
    let ts = [
        libc::timespec {
            tv_sec: atime.0 as _,
            tv_nsec: atime.1 as _,
        },
        libc::timespec {
            tv_sec: mtime.0 as _,
            tv_nsec: mtime.1 as _,
        },
    ];
    // SAFETY: `ts` is a valid two-element timespec array; `path` is a valid C string.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `fsync(2)` / `syncfs(2)`-free durability helper: fsync a path opened read-only.
pub(crate) fn fsync_path(path: &CStr) -> SysResult<()> {
    // SAFETY: valid C string; the descriptor is closed below.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just opened here.
    let r = check(unsafe { libc::fsync(fd) });
    close(fd);
    r.map(drop)
}

/// `ioctl(FICLONE)`: share `src`'s extents with `dst` (reflink); fails where unsupported.
pub(crate) fn ficlone(dst: RawFd, src: RawFd) -> SysResult<()> {
    const FICLONE: c_ulong = 0x4004_9409;
    // SAFETY: FICLONE takes the source descriptor as its integer argument.
    check(unsafe { libc::ioctl(dst, FICLONE as _, src) }).map(drop)
}

/// Real and effective ids of the calling process: (uid, gid, euid).
pub(crate) fn ids() -> (u32, u32, u32) {
    // SAFETY: these calls cannot fail.
    unsafe { (libc::getuid(), libc::getgid(), libc::geteuid()) }
}

/// `sched_setscheduler(0, SCHED_IDLE)`: run the calling process (and what it forks) only when
/// a CPU has nothing else to do. Lowering the policy needs no privilege.
pub(crate) fn sched_idle() -> SysResult<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the duration of the call.
    check(unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }).map(drop)
}

/// `SCHED_OTHER` for thread `tid` (undoes [`sched_idle`]; needs `CAP_SYS_NICE` unless the
/// nice limit allows it).
pub(crate) fn sched_other(tid: libc::pid_t) -> SysResult<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the duration of the call.
    check(unsafe { libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) }).map(drop)
}

/// Take ownership of a descriptor just received by `SCM_RIGHTS` (nothing else owns it).
pub(crate) fn own_received(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for this message; no other owner
    // exists, and the caller uses it only through the returned `OwnedFd`.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `OPEN_TREE_CLONE` from `<linux/mount.h>`.
const OPEN_TREE_CLONE: c_uint = 0x1;
/// `MOVE_MOUNT_F_EMPTY_PATH` from `<linux/mount.h>`.
const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x4;
/// `MOVE_MOUNT_T_EMPTY_PATH` from `<linux/mount.h>`.
const MOVE_MOUNT_T_EMPTY_PATH: c_uint = 0x40;
/// `STATX_MNT_ID_UNIQUE` (Linux 6.8): mount ids that are never reused.
const STATX_MNT_ID_UNIQUE: c_uint = 0x4000;

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of the mount tree at
/// `fd` (Linux 5.2).
pub(crate) fn open_tree_clone(fd: RawFd) -> SysResult<OwnedFd> {
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as c_uint | AT_RECURSIVE | libc::AT_EMPTY_PATH as c_uint;
    // SAFETY: the path is a valid empty C string; open_tree has no glibc wrapper.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attach the detached tree
/// `from` on top of whatever `to` shows (Linux 5.2).
pub(crate) fn move_mount(from: RawFd, to: RawFd) -> SysResult<()> {
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: both paths are valid empty C strings; move_mount has no glibc wrapper.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to,
            c"".as_ptr(),
            flags,
        )
    };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE)` setting `set` on a whole tree.
pub(crate) fn mount_setattr_tree(fd: RawFd, set: u64) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = AT_RECURSIVE | libc::AT_EMPTY_PATH as c_uint;
    // SAFETY: `attr` is a valid struct mount_attr of the size passed; the path is empty.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// The id of the mount `fd` is on, and whether `fd` is that mount's root (`statx(2)`,
/// Linux 5.8; the never-reused id from Linux 6.8).
pub(crate) fn mount_id(fd: RawFd) -> SysResult<(u64, bool)> {
    for mask in [STATX_MNT_ID_UNIQUE, libc::STATX_MNT_ID] {
        // SAFETY: a zeroed statx is a valid out-buffer; the path is a valid empty C string.
        let st = unsafe {
            let mut st: libc::statx = std::mem::zeroed();
            check(libc::statx(
                fd,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                mask,
                &mut st,
            ))?;
            st
        };
        if st.stx_mask & mask != 0 {
            let root = st.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
            return Ok((st.stx_mnt_id, root));
        }
    }
    Err(Errno::ENOSYS)
}

/// `recvmsg(2)` on a unix socket: bytes into `buf` and the descriptors passed along
/// (`SCM_RIGHTS`, received close-on-exec).
pub(crate) fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> SysResult<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these descriptors in this process; nothing
            // else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((msg.bytes, fds))
}

/// `pidfd_open(2)` (Linux 5.3): a descriptor for process `pid`, close-on-exec.
pub(crate) fn pidfd_open(pid: pid_t) -> SysResult<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signal the process of `pidfd` (no pid-reuse race).
pub(crate) fn pidfd_kill(pidfd: RawFd, sig: c_int) -> SysResult<()> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2)".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `prctl(PR_SET_NAME)`: the process name `ps` and `perf` show (15 bytes at most).
pub(crate) fn set_name(name: &CStr) {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as c_ulong, 0, 0, 0) };
}

/// `ioctl(FIONREAD)`: how many bytes a pipe holds unread.
pub(crate) fn unread_bytes(fd: RawFd) -> SysResult<usize> {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int through the valid pointer `&mut n`.
    check(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) })?;
    Ok(n.max(0) as usize)
}

/// `setpriority(PRIO_PROCESS, 0, nice)`: the calling thread's nice value (Linux: per thread).
pub(crate) fn set_nice(nice: c_int) -> SysResult<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) }).map(drop)
}
