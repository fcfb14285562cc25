//! Starting a traced command: the listener hand-over and the supervisor thread.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Error;
use crate::fast::Fast;
use crate::filter::Filter;
use crate::model::{Flags, Trace};
use crate::supervisor::{Progress, Supervisor};
use crate::sys;
use crate::view::View;

/// Configures and starts traces.
#[derive(Clone, Debug)]
pub struct Tracer {
    filter: Arc<Filter>,
    grace: Duration,
    view: View,
    root_from_tracee: bool,
    sync_wake_up: bool,
    watch_stdin: bool,
    ptrace: bool,
    fast: bool,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::new()
    }
}

impl Tracer {
    /// A tracer with the default filter ([`Filter::tracing`]) and a 500 ms grace period.
    pub fn new() -> Tracer {
        Tracer::with_filter(Filter::tracing())
    }

    /// A tracer with a custom filter.
    pub fn with_filter(filter: Filter) -> Tracer {
        Tracer {
            filter: Arc::new(filter),
            grace: Duration::from_millis(500),
            view: View::default(),
            root_from_tracee: false,
            sync_wake_up: true,
            watch_stdin: false,
            ptrace: std::env::var_os("HS_TRACE_FORCE_PTRACE").is_some_and(|v| v == "1")
                || !sys::user_notif_available(),
            fast: false,
        }
    }

    /// How long [`Session::finish`] waits, after the traced command exited, for the processes
    /// it left behind before returning the trace flagged [`Flags::OUTLIVED`].
    pub fn grace(mut self, grace: Duration) -> Tracer {
        self.grace = grace;
        self
    }

    /// Resolves the tracee's paths under `root`, an fd of the directory that is `/` for the
    /// tracee (for a tracee in another mount namespace, e.g. the sandbox's new root). Paths are
    /// recorded as the tracee sees them.
    pub fn root(mut self, root: OwnedFd) -> Tracer {
        self.view = View::under(root);
        self.root_from_tracee = false;
        self
    }

    /// Resolves the tracee's paths under its own root as it is when the filter is installed
    /// (`/proc/PID/root`): the sandbox's case, where [`ChildHook::install`] runs after
    /// `pivot_root` in a new mount namespace.
    pub fn root_from_tracee(mut self) -> Tracer {
        self.root_from_tracee = true;
        self
    }

    /// Also flags reads of the standard input this process received ([`Flags::STDIN`]): the
    /// `read` family traps when it reads fd 0, and the supervisor checks with `kcmp` whether
    /// that fd 0 is our own stdin (inherited) or something else (a pipe within the command).
    /// Off by default, since every read of fd 0 then costs a round trip.
    pub fn watch_stdin(mut self) -> Tracer {
        let mut rules = self.filter.rules().to_vec();
        rules.extend(crate::filter::stdin_rules());
        self.filter = Arc::new(Filter::from_rules(rules).expect("the stdin rules are valid"));
        self.watch_stdin = true;
        self
    }

    /// Whether to ask for synchronous wake-ups (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, on by
    /// default): the tracee and the supervisor then hand the CPU to each other instead of
    /// waking across CPUs (DESIGN §7). Off is for measurements.
    pub fn sync_wake_up(mut self, on: bool) -> Tracer {
        self.sync_wake_up = on;
        self
    }

    /// Whether to use the ptrace fallback: the filter stops path syscalls with
    /// `SECCOMP_RET_TRACE` and the supervisor thread traces the command tree with `ptrace`
    /// instead of serving seccomp user notifications. The default is the fallback only where
    /// user notification is unavailable (kernels before 5.0) or `HS_TRACE_FORCE_PTRACE=1`. The
    /// trace is the same; it is slower, and the traced programs cannot use `ptrace`
    /// themselves.
    pub fn ptrace(mut self, on: bool) -> Tracer {
        self.ptrace = on;
        self
    }

    /// Whether [`Tracer::spawn`] preloads the fast-path shim (off by default): dynamically
    /// linked programs then record the lookups they make through libc (the stat family,
    /// `access`, `readlink`, opens for reading, `fopen` for reading, `opendir`, `realpath`) in
    /// shared memory and make them without a notification; everything else traps as before, so
    /// the trace is the same (see README.md, "Fast path"). Traced programs see the shim in
    /// their memory maps, nothing else. `HS_TRACE_NO_FAST=1` turns it off. Without a usable
    /// private directory for the shim and its ring (in `/dev/shm` or `$TMPDIR`, not mounted
    /// `noexec`), tracing goes on without it.
    pub fn fast_path(mut self, on: bool) -> Tracer {
        self.fast = on && std::env::var_os("HS_TRACE_NO_FAST").is_none_or(|v| v != "1");
        self
    }

    /// Whether this tracer uses the ptrace fallback (see [`Tracer::ptrace`]).
    pub fn uses_ptrace(&self) -> bool {
        self.ptrace
    }

    /// Starts a supervisor that waits for a child to install the filter.
    ///
    /// This is the hook for callers that create the child themselves (the sandbox, after its
    /// namespace setup): call [`ChildHook::install`] in the child as the last step before
    /// `exec`, then [`Session::finish`] after the child exited (or [`Session::abort`] if it never
    /// got to `install`). Drop the parent's [`ChildHook`] once the child exists.
    pub fn start(&self) -> Result<(Session, ChildHook), Error> {
        let (pending, hook) = self.prepare()?;
        Ok((pending.start()?, hook))
    }

    /// Like [`Tracer::start`], but the supervisor thread starts only with [`Pending::start`]:
    /// for a caller that forks between the two (a fork copies no threads), so that the child
    /// supervises and the parent `exec`s into the traced program.
    pub fn prepare(&self) -> Result<(Pending, ChildHook), Error> {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt,
        };
        let (read, write) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::Setup {
            action: "create the listener socket pair",
            source: e.into(),
        })?;
        // With SO_PASSCRED on our end, the kernel attaches the writer's pid, translated into our
        // pid namespace, even to a plain write(2): a child in a new pid namespace need not know
        // its pid as we see it.
        setsockopt(&read, sockopt::PassCred, &true).map_err(|e| Error::Setup {
            action: "set SO_PASSCRED",
            source: e.into(),
        })?;
        let stop = Arc::new(sys::eventfd().map_err(|source| Error::Setup {
            action: "create an eventfd",
            source,
        })?);
        let fast = if self.fast {
            match Fast::new() {
                Ok(f) => Some(Arc::new(f)),
                Err(e) => {
                    tracing::debug!("tracing without the fast path: {e}");
                    None
                }
            }
        } else {
            None
        };
        let pending = Pending {
            read,
            stop,
            fast,
            view: self.view.clone(),
            mode: Mode {
                root_from_tracee: self.root_from_tracee,
                sync: self.sync_wake_up,
                stdin: self.watch_stdin,
                ptrace: self.ptrace,
            },
            grace: self.grace,
        };
        let hook = ChildHook {
            program: self.filter.shared_program(self.ptrace),
            report: write,
            ptrace: self.ptrace,
        };
        Ok((pending, hook))
    }

    /// Spawns `cmd` traced. The filter is installed in a `pre_exec` hook, so it is inherited by
    /// everything the command starts.
    pub fn spawn(&self, cmd: &mut Command) -> Result<TracedChild, Error> {
        let (session, hook) = self.start()?;
        // Ptrace fallback: the command runs as a grandchild behind a middle process (see
        // `sys::become_grandchild`), so that no thread of ours ever waits for a tracee.
        let ptrace = self.ptrace;
        if let Some(f) = &session.fast {
            let explicit = cmd
                .get_envs()
                .find(|(k, _)| *k == "LD_PRELOAD")
                .map(|(_, v)| v.map(|v| v.to_os_string()));
            let user = explicit.unwrap_or_else(|| std::env::var_os("LD_PRELOAD"));
            for (k, v) in f.env(user.as_deref()) {
                cmd.env(k, v);
            }
        }
        sys::set_pre_exec(cmd, move || {
            if ptrace {
                sys::become_grandchild()?;
            }
            hook.install()
        });
        match cmd.spawn() {
            Ok(child) => Ok(TracedChild { child, session }),
            Err(source) => {
                session.abort();
                Err(Error::Spawn {
                    program: cmd.get_program().to_owned(),
                    source,
                })
            }
        }
    }
}

/// A supervisor not started yet (see [`Tracer::prepare`]).
#[derive(Debug)]
pub struct Pending {
    read: OwnedFd,
    stop: Arc<OwnedFd>,
    fast: Option<Arc<Fast>>,
    view: View,
    mode: Mode,
    grace: Duration,
}

impl Pending {
    /// Starts the supervisor thread.
    pub fn start(self) -> Result<Session, Error> {
        let Pending {
            read,
            stop,
            fast,
            view,
            mode,
            grace,
        } = self;
        let trace = Arc::new(Mutex::new(Trace::new()));
        let progress = Arc::new(Progress::default());
        let (done_tx, done) = mpsc::channel();
        let thread = {
            let (stop, trace) = (Arc::clone(&stop), Arc::clone(&trace));
            let progress = Arc::clone(&progress);
            let fast = fast.clone();
            std::thread::Builder::new()
                .name("hs-trace".into())
                .spawn(move || {
                    progress
                        .tid
                        .store(nix::unistd::gettid().as_raw(), Ordering::SeqCst);
                    let r = supervise(read, &stop, trace, progress, view, mode, fast);
                    let _ = done_tx.send(());
                    r
                })
                .map_err(|source| Error::Setup {
                    action: "start the supervisor thread",
                    source,
                })?
        };
        let reader = match &fast {
            Some(f) => {
                let (f, trace) = (Arc::clone(f), Arc::clone(&trace));
                Some(
                    std::thread::Builder::new()
                        .name("hs-trace-fast".into())
                        .spawn(move || f.read_until_stopped(&trace))
                        .map_err(|source| Error::Setup {
                            action: "start the fast path's reader thread",
                            source,
                        })?,
                )
            }
            None => None,
        };
        Ok(Session {
            thread: Some(thread),
            trace,
            progress,
            stop,
            done,
            grace,
            fast,
            reader,
        })
    }
}

/// The child's half of a trace: the compiled filter program and the fd to report the
/// listener on.
///
/// It can travel to another process (a sandbox's init, prepared before the command was
/// known): send [`ChildHook::program_bytes`] and the [`ChildHook::report_fd`] (by
/// `SCM_RIGHTS`), and rebuild it there with [`ChildHook::from_parts`].
#[derive(Debug)]
pub struct ChildHook {
    program: Arc<[libc::sock_filter]>,
    report: OwnedFd,
    /// The ptrace fallback: `program` stops with `SECCOMP_RET_TRACE`.
    ptrace: bool,
}

impl ChildHook {
    /// Installs the filter in the calling process and hands the listener to the supervisor
    /// (see [`Filter::install_in_child`]). Async-signal-safe; call it last before `exec`. Works
    /// in a new pid namespace: the supervisor learns the child's pid from the kernel.
    pub fn install(&self) -> io::Result<()> {
        if self.ptrace {
            crate::filter::install_trace_program(&self.program, self.report.as_raw_fd())
        } else {
            crate::filter::install_program(&self.program, self.report.as_raw_fd())
        }
    }

    /// The report fd (close-on-exec), for callers that need to keep it open across `clone`.
    pub fn report_fd(&self) -> RawFd {
        self.report.as_raw_fd()
    }

    /// A second handle on the same hook (the report fd duplicated, close-on-exec): for a
    /// caller that must hand one to a child it forks while keeping its own.
    pub fn try_clone(&self) -> io::Result<ChildHook> {
        Ok(ChildHook {
            program: Arc::clone(&self.program),
            report: self.report.try_clone()?,
            ptrace: self.ptrace,
        })
    }

    /// The compiled BPF program, serialized (8 bytes per instruction, native endian: the
    /// layout of `struct sock_filter`), for [`ChildHook::from_parts`] in another process.
    pub fn program_bytes(&self) -> Vec<u8> {
        crate::filter::program_to_bytes(&self.program)
    }

    /// Rebuilds a hook from [`ChildHook::program_bytes`] and a received copy of its
    /// [`ChildHook::report_fd`]. Allocates: call it before the fork that leads to `exec`.
    pub fn from_parts(program: &[u8], report: OwnedFd) -> Result<ChildHook, Error> {
        let program = crate::filter::program_from_bytes(program).ok_or(Error::InvalidRule {
            nr: -1,
            reason: "a serialized program is 1 to 4096 instructions of 8 bytes",
        })?;
        Ok(ChildHook {
            ptrace: crate::filter::is_trace_program(&program),
            program: program.into(),
            report,
        })
    }
}

/// A running supervisor.
#[derive(Debug)]
pub struct Session {
    thread: Option<JoinHandle<io::Result<()>>>,
    trace: Arc<Mutex<Trace>>,
    progress: Arc<Progress>,
    stop: Arc<OwnedFd>,
    done: mpsc::Receiver<()>,
    grace: Duration,
    fast: Option<Arc<Fast>>,
    reader: Option<JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(f) = &self.fast {
            f.stop();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Session {
    /// Stops a supervisor whose child never installed the filter.
    pub fn abort(mut self) {
        let _ = nix::unistd::write(self.stop.as_fd(), &1u64.to_ne_bytes());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Moves what the fast path's shim recorded so far into the trace.
    fn drain_fast(&self) {
        if let Some(f) = &self.fast {
            f.drain(&self.trace);
        }
    }

    /// The supervisor thread's id, once it runs (to change its scheduling with the traced
    /// processes').
    pub fn thread_id(&self) -> Option<i32> {
        Some(self.progress.tid.load(Ordering::SeqCst)).filter(|&t| t > 0)
    }

    /// A copy of what has been recorded so far.
    pub fn snapshot(&self) -> Trace {
        self.drain_fast();
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Returns everything recorded so far — accesses, flags, notes and counters — and starts
    /// afresh, so that a long-lived session (the real shell, traced for its whole life) can be
    /// cut into segments. The supervisor keeps running and keeps its caches (they describe the
    /// filesystem, not the trace).
    ///
    /// Exact at a point where the traced processes that matter are blocked (e.g. the shell
    /// waiting at a gate): every call they completed before that point is in the returned
    /// trace. A lookup is recorded just after its caller was let go, so `take` first waits
    /// (for at most a second) until every notification the supervisor had received when
    /// `take` was called is recorded. Calls of other processes still running land in
    /// whichever segment they are recorded in.
    pub fn take(&self) -> Trace {
        self.progress.settle(Duration::from_secs(1));
        self.drain_fast();
        let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *t)
    }

    /// Returns the trace once every traced process has exited, or after the grace period with
    /// [`Flags::OUTLIVED`] set (the supervisor then keeps serving the survivors in the
    /// background). Call it after the traced child exited.
    pub fn finish(mut self) -> Result<Trace, Error> {
        match self.done.recv_timeout(self.grace) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let thread = self.thread.take().expect("finish is called once");
                match thread.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(Error::Supervisor(e)),
                    Err(_) => return Err(Error::SupervisorPanicked),
                }
                self.drain_fast();
                let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
                Ok(std::mem::take(&mut *t))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let mut t = self.snapshot();
                t.flag(Flags::OUTLIVED, || {
                    "processes outlived the traced command".into()
                });
                Ok(t)
            }
        }
    }
}

/// How the supervisor is told about stopped calls.
#[derive(Clone, Copy, Debug)]
struct Mode {
    root_from_tracee: bool,
    sync: bool,
    stdin: bool,
    ptrace: bool,
}

/// Waits for the child's report, takes its listener (or, in the ptrace fallback, seizes it),
/// and serves it.
fn supervise(
    read: OwnedFd,
    stop: &OwnedFd,
    trace: Arc<Mutex<Trace>>,
    progress: Arc<Progress>,
    mut view: View,
    mode: Mode,
    fast: Option<Arc<Fast>>,
) -> io::Result<()> {
    let rev = sys::poll_in(&[read.as_fd(), stop.as_fd()], -1)?;
    if rev[0] == 0 {
        return Ok(()); // aborted
    }
    let (pid, fd) = recv_report(&read)?;
    let kill = || {
        // The child is about to stop in execve with nobody to answer: do not leave it hung.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    };
    let listener = if mode.ptrace {
        if let Err(e) = sys::ptrace_seize(pid, sys::PTRACE_OPTIONS) {
            let _ = sys::write_all_raw(read.as_raw_fd(), b"n");
            kill();
            return Err(e);
        }
        None
    } else {
        match sys::pidfd_open(pid).and_then(|pidfd| sys::pidfd_getfd(pidfd.as_fd(), fd)) {
            Ok(l) => Some(l),
            Err(e) => {
                kill();
                return Err(e);
            }
        }
    };
    // The tracee's mount namespace, held for as long as we serve it: lookups resolved after
    // the last tracee exited (a lookup is resolved after its caller continues; renames are
    // checked at the end) must still see its mounts, which the kernel detaches once nothing
    // holds the namespace — the sandbox's overlays would vanish from under the root fd.
    let mut _mnt_ns = None;
    if mode.root_from_tracee {
        _mnt_ns = nix::fcntl::open(
            format!("/proc/{pid}/ns/mnt").as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok();
        let flags = nix::fcntl::OFlag::O_PATH
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_CLOEXEC;
        match nix::fcntl::open(
            format!("/proc/{pid}/root").as_str(),
            flags,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(root) => view = View::under(root),
            Err(e) => {
                kill();
                return Err(e.into());
            }
        }
    }
    if let Some(f) = &fast {
        f.set_view(view.clone());
    }
    let sup = Supervisor::new(listener, trace, progress, view, pid)
        .watching_stdin(mode.stdin)
        .with_fast(fast);
    if mode.ptrace {
        // Seized: let the child go on to its exec, whose stop now reaches us.
        if let Err(e) = sys::write_all_raw(read.as_raw_fd(), b"k") {
            kill();
            return Err(e);
        }
        sup.run_ptrace()
    } else {
        sup.run(mode.sync)
    }
}

/// A command running under the tracer.
#[derive(Debug)]
pub struct TracedChild {
    child: Child,
    session: Session,
}

impl TracedChild {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The underlying child (for its stdio pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The supervisor session (for [`Session::snapshot`] and [`Session::take`] while the
    /// command runs).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Waits for the command to exit, then for the trace (see [`Session::finish`]).
    pub fn wait(mut self) -> Result<(ExitStatus, Trace), Error> {
        let status = self.child.wait().map_err(Error::Wait)?;
        let trace = self.session.finish()?;
        Ok((status, trace))
    }
}

/// Spawns `cmd` under a default [`Tracer`].
pub fn spawn_traced(cmd: &mut Command) -> Result<TracedChild, Error> {
    Tracer::new().spawn(cmd)
}

/// Reads the child's `(pid, fd)` report and the kernel's credentials for it; the credentials'
/// pid wins (it is in our pid namespace).
fn recv_report(sock: &OwnedFd) -> io::Result<(i32, i32)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, UnixCredentials, recvmsg};
    let mut msg = [0u8; 8];
    let mut got = 0;
    let mut cred_pid = None;
    while got < msg.len() {
        let mut cmsg = nix::cmsg_space!(UnixCredentials);
        let mut iov = [io::IoSliceMut::new(&mut msg[got..])];
        let r = recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        if r.bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the child exited before installing the filter",
            ));
        }
        for c in r.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmCredentials(cred) = c {
                cred_pid.get_or_insert(cred.pid());
            }
        }
        got += r.bytes;
    }
    let pid = i32::from_ne_bytes(msg[..4].try_into().expect("4 bytes"));
    let fd = i32::from_ne_bytes(msg[4..].try_into().expect("4 bytes"));
    Ok((cred_pid.filter(|&p| p > 0).unwrap_or(pid), fd))
}
