//! Every raw syscall and every `unsafe` block of the crate, behind safe wrappers.
//!
//! Functions marked *async-signal-safe* may run in a forked child before `exec` (in a
//! `pre_exec` closure): they do not allocate, lock or touch thread-local state.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` from `<linux/seccomp.h>` (kernel ≥ 6.6), for
/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS`. The libc crate does not define it. With it the kernel wakes
/// the supervisor on the tracee's CPU and switches to it synchronously, which DESIGN §7 measured
/// as the difference between 3.6× and 1.36× on a C build.
pub(crate) const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// One seccomp user notification, copied out of the kernel's `struct seccomp_notif`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Notif {
    /// Cookie to answer with.
    pub(crate) id: u64,
    /// Thread id of the caller, in the supervisor's pid namespace.
    pub(crate) pid: u32,
    /// Syscall number.
    pub(crate) nr: i64,
    /// Audit architecture of the call.
    pub(crate) arch: u32,
    /// The six raw arguments.
    pub(crate) args: [u64; 6],
}

/// Sets `no_new_privs` and loads `prog` as a seccomp filter with a user-notification listener,
/// returning the listener fd (close-on-exec). Async-signal-safe.
pub(crate) fn install_filter(prog: &[libc::sock_filter]) -> Result<RawFd, io::Error> {
    load_filter(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER).map(|fd| fd as RawFd)
}

/// `no_new_privs`, then `seccomp(SET_MODE_FILTER, flags, prog)`; its result. Async-signal-safe.
fn load_filter(
    prog: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> Result<libc::c_long, io::Error> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fprog` points to `prog`, which outlives the call; the kernel copies the program.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Writes all of `bytes` to `fd` with raw `write(2)`, retrying on EINTR. Async-signal-safe.
pub(crate) fn write_all_raw(fd: RawFd, mut bytes: &[u8]) -> Result<(), io::Error> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// `getpid(2)`. Async-signal-safe.
pub(crate) fn getpid_raw() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getpid() }
}

/// Registers `f` to run in the forked child of `cmd` just before `exec`.
///
/// `f` must be async-signal-safe: it runs after `fork` in a possibly multi-threaded parent.
pub(crate) fn set_pre_exec<F>(cmd: &mut Command, f: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    // SAFETY: the only closures passed here (crate::spawn) call async-signal-safe functions of
    // this module and allocate nothing.
    unsafe {
        cmd.pre_exec(f);
    }
}

/// `pidfd_open(pid, 0)`.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_getfd(pidfd, targetfd, 0)`: duplicates fd `target` of the process behind `pidfd`.
pub(crate) fn pidfd_getfd(pidfd: BorrowedFd<'_>, target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn ioctl_ptr<T>(fd: BorrowedFd<'_>, req: libc::Ioctl, arg: *mut T) -> io::Result<()> {
    // SAFETY: callers pass a pointer to a live value of the type the request expects.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS`.
pub(crate) fn notif_set_flags(fd: BorrowedFd<'_>, flags: u64) -> io::Result<()> {
    // The kernel takes the flags as the ioctl's integer argument, not through a pointer.
    // SAFETY: integer argument.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: blocks until a notification is pending.
pub(crate) fn notif_recv(fd: BorrowedFd<'_>) -> io::Result<Notif> {
    // SAFETY: all-zero is a valid `seccomp_notif` (plain integers), and the kernel requires the
    // buffer to be zeroed.
    let mut raw: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    ioctl_ptr(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut raw)?;
    Ok(Notif {
        id: raw.id,
        pid: raw.pid,
        nr: i64::from(raw.data.nr),
        arch: raw.data.arch,
        args: raw.data.args,
    })
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether notification `id` is still pending (its thread is
/// alive and still in the syscall), so memory read from it belonged to the right process.
pub(crate) fn notif_id_valid(fd: BorrowedFd<'_>, id: u64) -> bool {
    let mut id = id;
    ioctl_ptr(fd, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id).is_ok()
}

/// `SECCOMP_IOCTL_NOTIF_SEND` with `SECCOMP_USER_NOTIF_FLAG_CONTINUE` (`errno == 0`), or a
/// failure with `errno`.
pub(crate) fn notif_send(fd: BorrowedFd<'_>, id: u64, errno: i32) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -errno,
        flags: if errno == 0 {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    ioctl_ptr(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp)
}

/// Reads tracee memory with `process_vm_readv`, falling back to `/proc/PID/mem`.
pub(crate) fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    use nix::sys::uio::{RemoteIoVec, process_vm_readv};
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: buf.len(),
    }];
    let mut local = [io::IoSliceMut::new(buf)];
    match process_vm_readv(nix::unistd::Pid::from_raw(pid as i32), &mut local, &remote) {
        Ok(n) => Ok(n),
        Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EPERM) => {
            use std::os::unix::fs::FileExt;
            let mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
            mem.read_at(&mut local[0], addr)
        }
        Err(e) => Err(e.into()),
    }
}

/// `waitid`-free exit check: `poll` on fds for readability. Returns the `revents` of each.
pub(crate) fn poll_in(fds: &[BorrowedFd<'_>; 2], timeout_ms: i32) -> io::Result<[i16; 2]> {
    let mut p = [
        libc::pollfd {
            fd: fds[0].as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: fds[1].as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `p` is a live array of two pollfd structs.
        let rc = unsafe { libc::poll(p.as_mut_ptr(), 2, timeout_ms) };
        if rc >= 0 {
            return Ok([p[0].revents, p[1].revents]);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// A new eventfd (close-on-exec), used to stop the supervisor.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_open(tid, PIDFD_THREAD)` (Linux 6.9): a pidfd for one thread, readable once that
/// thread exits. Falls back to a process pidfd on older kernels.
pub(crate) fn pidfd_open_thread(tid: i32) -> io::Result<OwnedFd> {
    /// `PIDFD_THREAD` from `<linux/pidfd.h>`, not in the libc crate.
    const PIDFD_THREAD: libc::c_int = libc::O_EXCL;
    // SAFETY: integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    if fd < 0 {
        return pidfd_open(tid);
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the process or thread behind `pidfd` has exited (non-blocking `poll`).
pub(crate) fn has_exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one live pollfd struct.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    rc != 0
}

/// Whether the seccomp listener `fd` reports `POLLHUP`: no process uses its filter any more.
/// Does not block.
pub(crate) fn hung_up(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one live pollfd struct.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(p.revents & libc::POLLIN == 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0)
}

/// `kcmp(pid1, pid2, KCMP_FILE, fd1, fd2) == 0`: whether fd `fd1` of `pid1` and fd `fd2` of
/// `pid2` are the same open file description. `Err` if either process or fd is gone.
pub(crate) fn same_file(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> io::Result<bool> {
    const KCMP_FILE: libc::c_int = 0;
    // SAFETY: integer arguments only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1,
            pid2,
            KCMP_FILE,
            fd1 as libc::c_ulong,
            fd2 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc == 0)
}

/// Whether the kernel supports `SECCOMP_RET_USER_NOTIF` (`SECCOMP_GET_ACTION_AVAIL`, 5.0).
pub(crate) fn user_notif_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(probe_user_notif)
}

fn probe_user_notif() -> bool {
    let action: u32 = libc::SECCOMP_RET_USER_NOTIF;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 from the pointer, which is live.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    rc == 0
}

/// Sets `no_new_privs` and loads `prog` (whose stops are `SECCOMP_RET_TRACE`) without a
/// listener. Async-signal-safe.
pub(crate) fn install_trace_filter(prog: &[libc::sock_filter]) -> Result<(), io::Error> {
    load_filter(prog, 0).map(drop)
}

/// Reads one byte from `fd` with raw `read(2)`, retrying on EINTR; end of file is an error.
/// Async-signal-safe.
pub(crate) fn read_byte_raw(fd: RawFd) -> Result<u8, io::Error> {
    let mut b = 0u8;
    loop {
        // SAFETY: reads at most one byte into a live local.
        let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
        if n == 1 {
            return Ok(b);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Options the ptrace fallback seizes with: seccomp stops, every new process and thread, exec
/// events, and SIGKILL for the tracees if the tracer goes away.
pub(crate) const PTRACE_OPTIONS: libc::c_int = libc::PTRACE_O_TRACESECCOMP
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_EXITKILL;

fn ptrace_raw(req: libc::c_uint, pid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: the requests used here (SEIZE, CONT, LISTEN, GETEVENTMSG, GETREGS) take integers
    // or a pointer to a live buffer of the size the request writes (see the callers).
    let rc = unsafe {
        libc::ptrace(
            req,
            pid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// `PTRACE_SEIZE` with `options`.
pub(crate) fn ptrace_seize(pid: i32, options: libc::c_int) -> io::Result<()> {
    ptrace_raw(libc::PTRACE_SEIZE, pid, 0, options as usize).map(drop)
}

/// `PTRACE_CONT`, delivering `sig` (0 for none).
pub(crate) fn ptrace_cont(pid: i32, sig: i32) -> io::Result<()> {
    ptrace_raw(libc::PTRACE_CONT, pid, 0, sig as usize).map(drop)
}

/// `PTRACE_LISTEN`: leave a group-stopped tracee stopped, but report its events.
pub(crate) fn ptrace_listen(pid: i32) -> io::Result<()> {
    ptrace_raw(libc::PTRACE_LISTEN, pid, 0, 0).map(drop)
}

/// The syscall number and arguments of a tracee in a seccomp stop (x86_64 registers).
pub(crate) fn ptrace_syscall(pid: i32) -> io::Result<(i64, [u64; 6])> {
    // SAFETY: all-zero is a valid user_regs_struct (plain integers).
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    ptrace_raw(
        libc::PTRACE_GETREGS,
        pid,
        0,
        &mut regs as *mut libc::user_regs_struct as usize,
    )?;
    Ok((
        regs.orig_rax as i64,
        [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
    ))
}

/// `waitpid(-1, __WALL | __WNOTHREAD)`: the next event of this thread's tracees (and of its own
/// children, of which the supervisor thread has none). `Ok(None)` on ECHILD.
pub(crate) fn wait_tracees() -> io::Result<Option<(i32, i32)>> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if pid >= 0 {
            return Ok(Some((pid, status)));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(None),
            _ => return Err(err),
        }
    }
}

/// The ptrace fallback's `pre_exec` step for a child of this process: fork once more and
/// return in the grandchild, which is then traced and execs. The child stays behind as a
/// middle process: it closes every descriptor, waits for the grandchild and exits with its
/// status (dying of the same signal if it was killed), so that its parent — us — never waits
/// for a tracee (a `waitpid` in any thread of the tracer's process would take the tracee's
/// ptrace stops). The grandchild is killed if the middle process dies. Async-signal-safe.
pub(crate) fn become_grandchild() -> io::Result<()> {
    // SAFETY: fork in a single-threaded child (we are in `pre_exec`); both sides only make
    // async-signal-safe calls afterwards.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: prctl with integer arguments.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        // SAFETY: no arguments.
        if unsafe { libc::getppid() } == 1 {
            return Err(io::Error::other("the middle process died"));
        }
        return Ok(());
    }
    // SAFETY: closes every descriptor of this (middle) process, which uses none from now on;
    // prctl and setrlimit take integers or a live struct.
    unsafe {
        libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    }
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: _exit never returns.
            unsafe { libc::_exit(125) };
        }
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: resetting a disposition to SIG_DFL, unblocking it and raising it are valid
        // for any signal number the kernel reported.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
        }
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(128 + sig) };
    }
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(libc::WEXITSTATUS(status)) }
}

/// A shared, read-write mapping of a whole file (the fast path's ring, see `fast.rs`).
pub(crate) struct SharedMap {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access that can race with another process
// goes through the atomics handed out below, and byte reads copy out (see `read`).
unsafe impl Send for SharedMap {}
// SAFETY: as above.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// A new file at `path` (mode 0600, which must not exist) of `len` bytes, mapped shared;
    /// the open file too (close-on-exec).
    pub(crate) fn create(path: &std::path::Path, len: usize) -> io::Result<(OwnedFd, SharedMap)> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(len as u64)?;
        let fd = OwnedFd::from(file);
        // SAFETY: a fresh shared mapping of the whole file; nothing else refers to that range.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast()).ok_or_else(io::Error::last_os_error)?;
        Ok((fd, SharedMap { ptr, len }))
    }

    /// The 4-byte atomic at byte offset `off` (4-aligned).
    pub(crate) fn u32_at(&self, off: usize) -> &std::sync::atomic::AtomicU32 {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len, "u32 at {off}");
        // SAFETY: in bounds and aligned (the mapping is page-aligned); shared memory is only
        // ever accessed atomically at this offset, here and in the shim.
        unsafe {
            &*self
                .ptr
                .as_ptr()
                .add(off)
                .cast::<std::sync::atomic::AtomicU32>()
        }
    }

    /// The 8-byte atomic at byte offset `off` (8-aligned).
    pub(crate) fn u64_at(&self, off: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(off.is_multiple_of(8) && off + 8 <= self.len, "u64 at {off}");
        // SAFETY: as for `u32_at`.
        unsafe {
            &*self
                .ptr
                .as_ptr()
                .add(off)
                .cast::<std::sync::atomic::AtomicU64>()
        }
    }

    /// Copies `out.len()` bytes at `off` (a region no writer touches while it is read: a
    /// committed slot).
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= self.len, "read at {off}");
        // SAFETY: in bounds; volatile-free copy of plain bytes, see above.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), out.as_mut_ptr(), out.len())
        }
    }

    /// Writes `bytes` at `off` (the header, before the ring is shared).
    pub(crate) fn write(&self, off: usize, bytes: &[u8]) {
        assert!(off + bytes.len() <= self.len, "write at {off}");
        // SAFETY: in bounds, and nobody else maps the file yet.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(off), bytes.len())
        }
    }

    /// `FUTEX_WAIT` (shared) on the u32 at `off` while it equals `val`, for at most `timeout`.
    pub(crate) fn wait(&self, off: usize, val: u32, timeout: std::time::Duration) {
        let word = self.u32_at(off);
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `word` is a live u32 in the mapping; `ts` outlives the call.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                val,
                &ts as *const libc::timespec,
            )
        };
    }

    /// `FUTEX_WAKE` (shared) of every waiter on the u32 at `off`.
    pub(crate) fn wake(&self, off: usize) {
        let word = self.u32_at(off);
        // SAFETY: `word` is a live u32 in the mapping.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Whether the filesystem holding `path` is mounted `noexec` (the loader could not map a
/// shared object from it).
pub(crate) fn mounted_noexec(path: &std::path::Path) -> io::Result<bool> {
    let st = nix::sys::statvfs::statvfs(path)?;
    Ok(st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC))
}
