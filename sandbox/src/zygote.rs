//! The zygote: a small single-threaded process that forks sandbox helpers for its caller.
//!
//! A prestarted sandbox's helper lives as long as its command. Forked from a large
//! multi-threaded caller (hs's gate server), it copies the caller's page tables, and every page
//! either side writes afterwards is copied again: ~4 ms of CPU per sandbox. Forked from the
//! zygote — a copy of the caller taken while it was still small and had one thread — it costs
//! a fraction of that. [`start`] forks the zygote; [`crate::Sandbox::prestart`] then asks it
//! for each helper over a socket, passing the pipes and the encoded setup steps, and gets back
//! the helper's pid and a pidfd. The zygote reaps its helpers and reports each exit code on a
//! pipe of the caller's; it kills the helpers left and exits when the caller closes the socket.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};

use crate::exec::{ExecSpec, Helper, Prepared, helper};
use crate::sys::{self, Errno, Fork};

/// The zygote's pid, and the caller's end of its socket: `None` once a request failed
/// (helpers are then forked by the caller, as without a zygote) or after [`stop`].
static ZYGOTE: OnceLock<(libc::pid_t, Mutex<Option<OwnedFd>>)> = OnceLock::new();

/// Request flags.
const HAS_GO: u32 = 1;
const HAS_NET: u32 = 2;

/// The caller's and the zygote's ends of their socket.
fn socket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// Forks the zygote; from then on prestarted sandboxes get their helpers from it. Call it
/// while the process has one thread (else `EDEADLK`), and early, while it is small.
/// `low_priority`: the zygote and its helpers run at nice 19 (see
/// [`crate::nice_this_thread`]). `EEXIST` if a zygote was started already.
pub fn start(low_priority: bool) -> Result<(), Errno> {
    if ZYGOTE.get().is_some() {
        return Err(Errno::EEXIST);
    }
    let (ours, theirs) = socket_pair()?;
    match crate::fork_alone()? {
        crate::Forked::Child => {
            drop(ours);
            serve(theirs, low_priority)
        }
        crate::Forked::Parent(pid) => {
            drop(theirs);
            ZYGOTE
                .set((pid, Mutex::new(Some(ours))))
                .map_err(|_| Errno::EEXIST)
        }
    }
}

/// Names the socket an exec'd zygote inherits: `FD`, or `FD:nice` for low priority.
const ENV: &str = "__HS_ZYGOTE";

/// The descriptor an exec'd zygote finds its socket on.
const INHERITED_FD: RawFd = 3;

/// Like [`start`], but the zygote is a fresh exec of `exe` (the caller's own program, e.g.
/// `/proc/self/exe`, whose `main` calls [`main_if_asked`] first): it can be started at any
/// time, also from a multi-threaded process, and shares no memory with the caller, so the
/// caller's later writes cost no copy-on-write faults. If the exec fails, the first request
/// fails and helpers are forked by the caller. `EEXIST` if a zygote was started already.
pub fn spawn(exe: &std::ffi::CStr, low_priority: bool) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    if ZYGOTE.get().is_some() {
        return Err(Errno::EEXIST);
    }
    let (ours, theirs) = socket_pair()?;
    let cstr = |b: &[u8]| std::ffi::CString::new(b).map_err(|_| Errno::EINVAL);
    let argv = [cstr(b"hs-zygote")?];
    let mut envp = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k != ENV {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend(v.as_bytes());
            envp.push(cstr(&kv)?);
        }
    }
    let nice = if low_priority { ":nice" } else { "" };
    envp.push(cstr(format!("{ENV}={INHERITED_FD}{nice}").as_bytes())?);
    match sys::fork()? {
        Fork::Child => {
            // A `dup2` copy is not close-on-exec; the original may already be the one.
            let fd = theirs.as_raw_fd();
            let inherit = if fd == INHERITED_FD {
                nix::fcntl::fcntl(
                    &theirs,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )
                .map(drop)
            } else {
                sys::dup2(fd, INHERITED_FD)
            };
            if inherit.is_ok() {
                let _ = sys::execve(exe, &argv, &envp);
            }
            sys::exit(127)
        }
        Fork::Parent(pid) => {
            drop(theirs);
            ZYGOTE
                .set((pid, Mutex::new(Some(ours))))
                .map_err(|_| Errno::EEXIST)
        }
    }
}

/// In a zygote exec'd by [`spawn`], serves and never returns; elsewhere returns at once. Call
/// it first thing in `main`, while the process has one thread.
pub fn main_if_asked() {
    let Some(v) = std::env::var_os(ENV) else {
        return;
    };
    sys::remove_env_single_threaded(ENV);
    let v = v.to_string_lossy();
    let (fd, nice) = v.split_once(':').unwrap_or((&v, ""));
    match fd.parse::<RawFd>() {
        Ok(fd) if fd == INHERITED_FD => serve(sys::own_received(fd), nice == "nice"),
        _ => sys::exit(2),
    }
}

/// Ends the zygote and waits for it: it kills the helpers still running (their sandboxes can
/// no longer be used). Later prestarts fork their helpers directly.
pub fn stop() {
    if let Some((pid, sock)) = ZYGOTE.get() {
        let open = sock.lock().ok().and_then(|mut s| s.take()).is_some();
        if open {
            let _ = sys::waitpid(*pid, 0);
        }
    }
}

/// Asks the zygote for a helper running `prep` (`spec`: its status pipe and go socket; `err`:
/// the error pipe). `None` without a zygote or when it failed: the caller forks the helper.
pub(crate) fn fork_helper(prep: &Prepared, spec: &ExecSpec, err: RawFd) -> Option<Helper> {
    let mut sock = ZYGOTE.get()?.1.lock().ok()?;
    let s = sock.as_ref()?;
    match request(s.as_raw_fd(), prep, spec, err) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::debug!("the sandbox zygote failed ({e}); helpers are forked directly");
            *sock = None;
            None
        }
    }
}

fn request(sock: RawFd, prep: &Prepared, spec: &ExecSpec, err: RawFd) -> Result<Helper, Errno> {
    let (exit_r, exit_w) = sys::pipe()?;
    let mut flags = 0;
    let mut fds = vec![err, spec.status_fd, exit_w.as_raw_fd()];
    if spec.go_fd >= 0 {
        flags |= HAS_GO;
        fds.push(spec.go_fd);
    }
    if let Some(net) = prep.net {
        flags |= HAS_NET;
        fds.push(net);
    }
    let mut msg = flags.to_le_bytes().to_vec();
    msg.extend(prep.encode());
    let iov = [std::io::IoSlice::new(&msg)];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    drop(exit_w);
    let mut reply = [0u8; 4];
    let (n, mut got) = sys::recv_with_fds(sock, &mut reply)?;
    if n != 4 {
        return Err(Errno::EPIPE);
    }
    let pid = i32::from_le_bytes(reply);
    if pid <= 0 {
        return Err(Errno::from_raw(-pid));
    }
    let pidfd = got.pop().ok_or(Errno::EPROTO)?;
    Ok(Helper::Zygote {
        pid,
        pidfd,
        exit: exit_r,
    })
}

/// A received request: the setup steps and the descriptors the helper needs.
struct Request {
    prep: Prepared,
    err: OwnedFd,
    status: OwnedFd,
    exit: OwnedFd,
    go: Option<OwnedFd>,
    /// Owned here; `prep.net` refers to it.
    _net: Option<OwnedFd>,
}

/// `Ok(None)`: the caller closed its end.
fn receive(sock: RawFd, buf: &mut [u8]) -> Result<Option<Request>, Errno> {
    let mut cmsg = nix::cmsg_space!([RawFd; 5]);
    let (len, fds) = {
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                fds.extend(raw.into_iter().map(sys::own_received));
            }
        }
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(Errno::EMSGSIZE);
        }
        (msg.bytes, fds)
    };
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    let flags = u32::from_le_bytes(
        buf.get(..4)
            .ok_or(Errno::EPROTO)?
            .try_into()
            .unwrap_or_default(),
    );
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or(Errno::EPROTO);
    let (err, status, exit) = (next()?, next()?, next()?);
    let go = if flags & HAS_GO != 0 {
        Some(next()?)
    } else {
        None
    };
    let net = if flags & HAS_NET != 0 {
        Some(next()?)
    } else {
        None
    };
    let prep = Prepared::decode(&buf[4..len], net.as_ref().map(AsRawFd::as_raw_fd))
        .ok_or(Errno::EPROTO)?;
    Ok(Some(Request {
        prep,
        err,
        status,
        exit,
        go,
        _net: net,
    }))
}

fn reply(sock: RawFd, pid: Result<(i32, &OwnedFd), Errno>) {
    let (code, fds) = match pid {
        Ok((pid, fd)) => (pid, vec![fd.as_raw_fd()]),
        Err(e) => (-(e as i32), Vec::new()),
    };
    let bytes = code.to_le_bytes();
    let iov = [std::io::IoSlice::new(&bytes)];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
    let _ = sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None);
}

/// The zygote's loop: fork helpers on request, reap them, report their exit codes.
fn serve(sock: OwnedFd, low_priority: bool) -> ! {
    sys::close_all_except(&[sock.as_raw_fd()]);
    sys::set_name(c"hs-zygote");
    sys::set_signal(libc::SIGPIPE, true);
    if low_priority {
        let _ = sys::set_nice(19);
    }
    let timing = std::env::var_os("HS_SANDBOX_TIMING").is_some();
    // (pid, pidfd, exit pipe) of each live helper.
    let mut live: Vec<(libc::pid_t, OwnedFd, OwnedFd)> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let (requested, ended) = {
            let mut fds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                live.iter()
                    .map(|(_, p, _)| PollFd::new(p.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let ended: Vec<usize> = (1..fds.len()).filter(|&i| ready(&fds[i])).collect();
            (ready(&fds[0]), ended)
        };
        // Highest first, so that `swap_remove` moves only entries already looked at.
        for i in ended.into_iter().rev() {
            let (pid, _pidfd, exit) = live.swap_remove(i - 1);
            let code = sys::waitpid(pid, 0).map_or(125, |(_, st)| sys::status_code(st));
            let _ = sys::write_all(exit.as_raw_fd(), &code.to_le_bytes());
        }
        if !requested {
            continue;
        }
        let req = match receive(sock.as_raw_fd(), &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                reply(sock.as_raw_fd(), Err(e));
                continue;
            }
        };
        let mut spec = ExecSpec::placeholder();
        spec.status_fd = req.status.as_raw_fd();
        spec.go_fd = req.go.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        spec.timing = timing;
        match sys::fork() {
            Ok(Fork::Child) => helper(&req.prep, &spec, req.err.as_raw_fd()),
            Ok(Fork::Parent(pid)) => match sys::pidfd_open(pid) {
                Ok(pidfd) => {
                    reply(sock.as_raw_fd(), Ok((pid, &pidfd)));
                    live.push((pid, pidfd, req.exit));
                }
                Err(e) => {
                    let _ = sys::kill(pid, libc::SIGKILL);
                    let _ = sys::waitpid(pid, 0);
                    reply(sock.as_raw_fd(), Err(e));
                }
            },
            Err(e) => reply(sock.as_raw_fd(), Err(e)),
        }
    }
    // The caller is gone: nothing will use these sandboxes.
    for (pid, pidfd, _) in &live {
        let _ = sys::pidfd_kill(pidfd.as_raw_fd(), libc::SIGKILL);
        let _ = sys::waitpid(*pid, 0);
    }
    sys::exit(0)
}
