//! Running a command in a sandbox: the plan runner.
//!
//! Process tree: the caller forks a *helper*, which unshares the namespaces (and maps ids when
//! unprivileged) and forks the namespace's *init* (pid 1). Init runs the mount steps, pivots
//! into the new root and forks the *command*, then reaps until the command exits and exits
//! with its status. Setup failures travel back over a close-on-exec pipe as (step index,
//! errno); end of file on that pipe means the command was exec'd.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::c_ulong;

use crate::error::Error;
use crate::plan::{Layer, Plan, Step};
use crate::sys::{self, Errno, Fork};

/// The helper process of a run: a child of ours, or one the zygote forked for us.
#[derive(Debug)]
pub(crate) enum Helper {
    Own(libc::pid_t),
    /// Forked by the [`crate::zygote`]: its pidfd, and the pipe on which the zygote writes its
    /// exit code once it has reaped it.
    Zygote {
        pid: libc::pid_t,
        pidfd: OwnedFd,
        exit: OwnedFd,
    },
}

impl Helper {
    fn pid(&self) -> libc::pid_t {
        match self {
            Helper::Own(pid) | Helper::Zygote { pid, .. } => *pid,
        }
    }

    fn kill(&self) {
        let _ = match self {
            Helper::Own(pid) => sys::kill(*pid, libc::SIGKILL),
            Helper::Zygote { pidfd, .. } => sys::pidfd_kill(pidfd.as_raw_fd(), libc::SIGKILL),
        };
    }

    /// Waits until it is gone (its namespaces torn down); its exit code.
    fn wait(&self) -> Result<i32, Errno> {
        match self {
            Helper::Own(pid) => sys::waitpid(*pid, 0).map(|(_, st)| sys::status_code(st)),
            Helper::Zygote { exit, .. } => {
                let mut buf = [0u8; 4];
                if sys::read_full(exit.as_raw_fd(), &mut buf)? < 4 {
                    return Err(Errno::ECHILD);
                }
                Ok(i32::from_le_bytes(buf))
            }
        }
    }
}

/// The background reaping of a sandbox's helper: the next run of the same sandbox waits for
/// it, since the old overlays stay mounted (and their upper dirs busy) until the helper is gone.
pub(crate) type Reaper = std::sync::Arc<std::sync::Mutex<Option<Reaping>>>;

/// A helper being reaped: by a thread of ours, or by the zygote (which reports it).
#[derive(Debug)]
pub(crate) enum Reaping {
    Thread(std::thread::JoinHandle<()>),
    Zygote(Helper),
}

impl Reaping {
    fn finish(self) {
        match self {
            Reaping::Thread(h) => {
                let _ = h.join();
            }
            Reaping::Zygote(h) => {
                let _ = h.wait();
            }
        }
    }
}

/// Reap `helper` in the background, recorded in `slot` (inline if no thread can be made).
fn reap_in_background(helper: Helper, slot: &Reaper) {
    let pending = match helper {
        Helper::Own(pid) => match std::thread::Builder::new()
            .name("hs-sandbox-reaper".into())
            .spawn(move || {
                let _ = sys::waitpid(pid, 0);
            }) {
            Ok(h) => Reaping::Thread(h),
            Err(_) => {
                let _ = sys::waitpid(pid, 0);
                return;
            }
        },
        z @ Helper::Zygote { .. } => Reaping::Zygote(z),
    };
    if let Ok(mut g) = slot.lock()
        && let Some(old) = g.replace(pending)
    {
        old.finish();
    }
}

/// Wait for the previous run's helper (see [`Reaper`]).
pub(crate) fn wait_reaped(slot: &Reaper) {
    let pending = slot.lock().ok().and_then(|mut g| g.take());
    if let Some(p) = pending {
        p.finish();
    }
}

/// What to run in the sandbox.
#[derive(Debug)]
pub struct Command {
    argv: Vec<OsString>,
    env: Option<Vec<(OsString, OsString)>>,
    cwd: Option<PathBuf>,
    umask: Option<u32>,
    stdio: [Option<OwnedFd>; 3],
    trace: Option<trace::ChildHook>,
    idle: bool,
}

impl Command {
    /// Run exactly this argv (`argv[0]` searched in `PATH` unless it contains a `/`).
    pub fn new<I, S>(argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            env: None,
            cwd: None,
            umask: None,
            stdio: [None, None, None],
            trace: None,
            idle: false,
        }
    }

    /// Run `bash -c STRING`.
    pub fn shell(string: impl Into<OsString>) -> Command {
        Command::new([OsString::from("bash"), OsString::from("-c"), string.into()])
    }

    /// Replace the environment (default: inherit the caller's).
    pub fn env(mut self, env: Vec<(OsString, OsString)>) -> Command {
        self.env = Some(env);
        self
    }

    /// Working directory (default: the caller's).
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Command {
        self.cwd = Some(cwd.into());
        self
    }

    /// File mode creation mask (default: the caller's).
    pub fn umask(mut self, mask: u32) -> Command {
        self.umask = Some(mask);
        self
    }

    /// Use `fd` as the command's stdin (0), stdout (1) or stderr (2) (default: the caller's).
    pub fn fd(mut self, which: usize, fd: OwnedFd) -> Command {
        assert!(which < 3, "only fds 0, 1 and 2 can be redirected");
        self.stdio[which] = Some(fd);
        self
    }

    /// Trace the command and everything it starts: the command process calls
    /// [`trace::ChildHook::install`] as its very last step before `execve` (after stdio, cwd,
    /// umask, signals and [`Command::idle`]), so the sandbox's own setup is never traced.
    ///
    /// Start the hook's session with [`trace::Tracer::root_from_tracee`]: paths are then
    /// resolved in the sandbox and recorded as the command sees them (the same absolute paths
    /// as in the live filesystem). Works with [`crate::Sandbox::spawn`]/`run` and with
    /// prestarted sandboxes ([`Ready::exec`] sends the program and the report fd to the
    /// sandbox's init). The `Command` keeps the hook's report fd open until it is dropped; if
    /// the run fails to start, call [`trace::Session::abort`], else
    /// [`trace::Session::finish`] after [`Child::wait`].
    pub fn trace(mut self, hook: trace::ChildHook) -> Command {
        self.trace = Some(hook);
        self
    }

    /// Run the command (and everything it starts) with the `SCHED_IDLE` policy, set just
    /// before `execve` (before the tracer hook): speculative work then never takes CPU time
    /// from the real shell or anything else that wants it.
    pub fn idle(mut self, on: bool) -> Command {
        self.idle = on;
        self
    }
}

/// A running sandboxed command.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    /// `None` once handed to the reaper.
    helper: Option<Helper>,
    done: Option<i32>,
    status: Option<OwnedFd>,
    reaper: Reaper,
}

impl Child {
    /// Pid of the sandbox helper process (killing it tears the whole sandbox down).
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Wait for the command; its exit code, or 128 + signal number if it was killed.
    pub fn wait(&mut self) -> Result<i32, Error> {
        if let Some(c) = self.done {
            return Ok(c);
        }
        // Init reports the command's status as soon as the command and everything else in
        // the sandbox are gone; the namespaces are torn down by the kernel afterwards, so the
        // helper is reaped in the background instead of on the caller's critical path.
        if let Some(fd) = self.status.take() {
            let mut buf = [0u8; 4];
            if sys::read_full(fd.as_raw_fd(), &mut buf) == Ok(4) {
                let code = i32::from_le_bytes(buf);
                self.done = Some(code);
                if let Some(h) = self.helper.take() {
                    reap_in_background(h, &self.reaper);
                }
                return Ok(code);
            }
        }
        let code = match self.helper.take() {
            Some(h) => h
                .wait()
                .map_err(|e| Error::io("wait for", Path::new("sandbox"), e.into()))?,
            None => 125,
        };
        self.done = Some(code);
        Ok(code)
    }

    /// Kill the sandbox (every process in it).
    pub fn kill(&mut self) {
        if self.done.is_none()
            && let Some(h) = &self.helper
        {
            h.kill();
        }
    }
}

fn ovl_escape(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p.as_os_str().as_bytes() {
        if matches!(b, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// A step with every string converted ahead of the fork.
#[derive(Debug)]
enum Prep {
    /// `setns` into the shared network namespace (its fd).
    JoinNet(RawFd),
    Unshare(libc::c_int),
    MapIds {
        uid: u32,
        gid: u32,
    },
    ForkInit,
    Mount {
        src: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
        ro: Option<bool>,
    },
    Mkdir(CString),
    Symlink(CString, CString),
    CreateFile(CString),
    ReadOnly(CString),
    /// A step on a path of the live filesystem that may vanish between planning and running
    /// (another process's transient mount): `ENOENT` skips it, as the live filesystem no longer
    /// has anything there to show.
    Optional(Box<Prep>),
    LoopbackUp,
    PivotRoot(CString),
    EnterUserNs,
    Exec,
}

/// A plan converted for execution (done once per sandbox, reused by every run).
#[derive(Debug)]
pub(crate) struct Prepared {
    steps: Vec<Prep>,
    privileged: bool,
    /// The shared network namespace, for [`Step::JoinNet`].
    pub(crate) net: Option<RawFd>,
}

/// Byte encoding of [`Prepared`] for the zygote ([`crate::zygote`]): tagged steps, strings
/// as (u32 length, bytes). The shared network namespace travels as a descriptor, not here.
impl Prepared {
    pub(crate) fn encode(&self) -> Vec<u8> {
        fn cstr(out: &mut Vec<u8>, s: &CStr) {
            out.extend((s.to_bytes().len() as u32).to_le_bytes());
            out.extend(s.to_bytes());
        }
        fn opt(out: &mut Vec<u8>, s: &Option<CString>) {
            out.push(s.is_some() as u8);
            if let Some(s) = s {
                cstr(out, s);
            }
        }
        fn step(out: &mut Vec<u8>, p: &Prep) {
            match p {
                Prep::JoinNet(_) => out.push(0),
                Prep::Unshare(f) => {
                    out.push(1);
                    out.extend(f.to_le_bytes());
                }
                Prep::MapIds { uid, gid } => {
                    out.push(2);
                    out.extend(uid.to_le_bytes());
                    out.extend(gid.to_le_bytes());
                }
                Prep::ForkInit => out.push(3),
                Prep::Mount {
                    src,
                    target,
                    fstype,
                    flags,
                    data,
                    ro,
                } => {
                    out.push(4);
                    opt(out, src);
                    cstr(out, target);
                    opt(out, fstype);
                    out.extend(flags.to_le_bytes());
                    opt(out, data);
                    out.push(match ro {
                        None => 0,
                        Some(false) => 1,
                        Some(true) => 2,
                    });
                }
                Prep::Mkdir(p) => {
                    out.push(5);
                    cstr(out, p);
                }
                Prep::Symlink(t, l) => {
                    out.push(6);
                    cstr(out, t);
                    cstr(out, l);
                }
                Prep::CreateFile(p) => {
                    out.push(7);
                    cstr(out, p);
                }
                Prep::ReadOnly(p) => {
                    out.push(8);
                    cstr(out, p);
                }
                Prep::Optional(inner) => {
                    out.push(9);
                    step(out, inner);
                }
                Prep::LoopbackUp => out.push(10),
                Prep::PivotRoot(p) => {
                    out.push(11);
                    cstr(out, p);
                }
                Prep::EnterUserNs => out.push(12),
                Prep::Exec => out.push(13),
            }
        }
        let mut out = vec![self.privileged as u8];
        for p in &self.steps {
            step(&mut out, p);
        }
        out
    }

    /// Inverse of [`Prepared::encode`]; `net` replaces the caller's network namespace fd.
    pub(crate) fn decode(data: &[u8], net: Option<RawFd>) -> Option<Prepared> {
        struct Reader<'a>(&'a [u8]);
        impl Reader<'_> {
            fn take(&mut self, n: usize) -> Option<&[u8]> {
                let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
                self.0 = b;
                Some(a)
            }
            fn u8(&mut self) -> Option<u8> {
                Some(self.take(1)?[0])
            }
            fn u32(&mut self) -> Option<u32> {
                Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
            }
            fn cstr(&mut self) -> Option<CString> {
                let n = self.u32()? as usize;
                CString::new(self.take(n)?).ok()
            }
            fn opt(&mut self) -> Option<Option<CString>> {
                match self.u8()? {
                    0 => Some(None),
                    _ => Some(Some(self.cstr()?)),
                }
            }
            fn step(&mut self, net: Option<RawFd>) -> Option<Prep> {
                Some(match self.u8()? {
                    0 => Prep::JoinNet(net?),
                    1 => Prep::Unshare(self.u32()? as libc::c_int),
                    2 => Prep::MapIds {
                        uid: self.u32()?,
                        gid: self.u32()?,
                    },
                    3 => Prep::ForkInit,
                    4 => Prep::Mount {
                        src: self.opt()?,
                        target: self.cstr()?,
                        fstype: self.opt()?,
                        flags: c_ulong::from_le_bytes(self.take(8)?.try_into().ok()?),
                        data: self.opt()?,
                        ro: match self.u8()? {
                            0 => None,
                            1 => Some(false),
                            _ => Some(true),
                        },
                    },
                    5 => Prep::Mkdir(self.cstr()?),
                    6 => Prep::Symlink(self.cstr()?, self.cstr()?),
                    7 => Prep::CreateFile(self.cstr()?),
                    8 => Prep::ReadOnly(self.cstr()?),
                    9 => Prep::Optional(Box::new(self.step(net)?)),
                    10 => Prep::LoopbackUp,
                    11 => Prep::PivotRoot(self.cstr()?),
                    12 => Prep::EnterUserNs,
                    13 => Prep::Exec,
                    _ => return None,
                })
            }
        }
        let mut r = Reader(data);
        let privileged = r.u8()? != 0;
        let mut steps = Vec::new();
        while !r.0.is_empty() {
            steps.push(r.step(net)?);
        }
        Some(Prepared {
            steps,
            privileged,
            net,
        })
    }
}

fn c(p: &Path) -> Result<CString, Error> {
    sys::cstr(p.as_os_str()).map_err(|e| Error::io("convert", p, e.into()))
}

fn c_os(s: &OsStr) -> CString {
    CString::new(s.as_bytes()).unwrap_or_default()
}

/// Convert `plan` for execution. `trusted_xattrs`: mount the overlays with overlayfs's
/// `trusted.overlay.*` xattrs and `redirect_dir=on` (root in the initial user namespace only),
/// so that a directory with lower content can be renamed in the sandbox as it can live;
/// otherwise `userxattr`, where overlayfs refuses such renames with `EXDEV`.
pub(crate) fn prepare(
    plan: &Plan,
    trusted_xattrs: bool,
    net: Option<RawFd>,
) -> Result<Prepared, Error> {
    let mut steps = Vec::with_capacity(plan.steps.len());
    let mut privileged = false;
    let new_root = plan.steps.iter().find_map(|s| match s {
        Step::PivotRoot { new_root } => Some(new_root.clone()),
        _ => None,
    });
    for step in &plan.steps {
        let optional = match step {
            Step::MountOverlay { target, .. }
            | Step::BindRo { target, .. }
            | Step::ReadOnly { target } => new_root.as_ref() != Some(target),
            _ => false,
        };
        let prep = match step {
            Step::Unshare {
                user,
                mount,
                pid_ipc,
                net,
            } => {
                let mut f = 0;
                if *user {
                    f |= libc::CLONE_NEWUSER;
                }
                if *mount {
                    f |= libc::CLONE_NEWNS;
                }
                if *pid_ipc {
                    f |= libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
                }
                if *net {
                    f |= libc::CLONE_NEWNET;
                }
                Prep::Unshare(f)
            }
            Step::JoinNet => Prep::JoinNet(net.ok_or(Error::InvalidCommand(
                "the plan joins a shared network namespace, but none was given",
            ))?),
            Step::MapIds { uid, gid } => Prep::MapIds {
                uid: *uid,
                gid: *gid,
            },
            Step::ForkInit => Prep::ForkInit,
            Step::MakePrivate => Prep::Mount {
                src: None,
                target: c(Path::new("/"))?,
                fstype: None,
                flags: libc::MS_REC | libc::MS_PRIVATE,
                data: None,
                ro: None,
            },
            Step::MountTmpfs { target } => Prep::Mount {
                src: Some(c_os("tmpfs".as_ref())),
                target: c(target)?,
                fstype: Some(c_os("tmpfs".as_ref())),
                flags: libc::MS_NOSUID,
                data: Some(c_os("mode=755".as_ref())),
                ro: None,
            },
            Step::MountOverlay { layer, target } => {
                let Layer {
                    target: lower,
                    upper,
                    work,
                } = &plan.layers[*layer];
                let mut data = b"lowerdir=".to_vec();
                data.extend(ovl_escape(lower));
                data.extend(b",upperdir=");
                data.extend(ovl_escape(upper));
                data.extend(b",workdir=");
                data.extend(ovl_escape(work));
                data.extend(if trusted_xattrs {
                    &b",redirect_dir=on,volatile"[..]
                } else {
                    &b",userxattr,volatile"[..]
                });
                Prep::Mount {
                    src: Some(c_os("overlay".as_ref())),
                    target: c(target)?,
                    fstype: Some(c_os("overlay".as_ref())),
                    flags: 0,
                    data: Some(
                        CString::new(data).map_err(|_| Error::InvalidCommand("NUL in path"))?,
                    ),
                    ro: None,
                }
            }
            Step::Mkdir { path } => Prep::Mkdir(c(path)?),
            Step::Symlink { target, link } => Prep::Symlink(c(target)?, c(link)?),
            Step::CreateFile { path } => Prep::CreateFile(c(path)?),
            Step::BindRo {
                source,
                target,
                recursive,
            } => Prep::Mount {
                src: Some(c(source)?),
                target: c(target)?,
                fstype: None,
                flags: libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 },
                data: None,
                ro: Some(*recursive),
            },
            Step::BindDev { source, target } => Prep::Mount {
                src: Some(c(source)?),
                target: c(target)?,
                fstype: None,
                flags: libc::MS_BIND,
                data: None,
                ro: None,
            },
            Step::MountDevpts { target } => Prep::Mount {
                src: Some(c_os("devpts".as_ref())),
                target: c(target)?,
                fstype: Some(c_os("devpts".as_ref())),
                flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                data: Some(c_os("newinstance,ptmxmode=0666,mode=620".as_ref())),
                ro: None,
            },
            Step::MountProc { target } => Prep::Mount {
                src: Some(c_os("proc".as_ref())),
                target: c(target)?,
                fstype: Some(c_os("proc".as_ref())),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: None,
                ro: None,
            },
            Step::ReadOnly { target } => Prep::ReadOnly(c(target)?),
            Step::LoopbackUp => Prep::LoopbackUp,
            Step::PivotRoot { new_root } => Prep::PivotRoot(c(new_root)?),
            Step::EnterUserNs => {
                privileged = true;
                Prep::EnterUserNs
            }
            Step::Exec => Prep::Exec,
        };
        steps.push(if optional {
            Prep::Optional(Box::new(prep))
        } else {
            prep
        });
    }
    Ok(Prepared {
        steps,
        privileged,
        net,
    })
}

/// Everything the command child needs, converted before the first fork.
pub(crate) struct ExecSpec {
    argv: Vec<CString>,
    candidates: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    umask: Option<u32>,
    stdio: [Option<RawFd>; 3],
    restore_int: bool,
    restore_quit: bool,
    /// `SCHED_IDLE` before exec.
    idle: bool,
    /// The tracer's hook, installed last before exec (this process's own copy).
    hook: Option<trace::ChildHook>,
    /// Prestarted sandboxes: the serialized filter program, until the report fd arrives.
    program: Vec<u8>,
    pub(crate) timing: bool,
    /// Write end of the status pipe: init reports the command's exit code there.
    pub(crate) status_fd: RawFd,
    /// Prestarted sandboxes: init's end of the socket the command arrives on, else -1.
    pub(crate) go_fd: RawFd,
}

impl ExecSpec {
    pub(crate) fn placeholder() -> ExecSpec {
        ExecSpec {
            argv: Vec::new(),
            candidates: Vec::new(),
            envp: Vec::new(),
            cwd: CString::default(),
            umask: None,
            stdio: [None; 3],
            restore_int: true,
            restore_quit: true,
            idle: false,
            hook: None,
            program: Vec::new(),
            timing: std::env::var_os("HS_SANDBOX_TIMING").is_some(),
            status_fd: -1,
            go_fd: -1,
        }
    }

    /// Serialise for a prestarted sandbox: records of (tag, u32 length, bytes).
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rec = |tag: u8, b: &[u8]| {
            out.push(tag);
            out.extend((b.len() as u32).to_le_bytes());
            out.extend(b);
        };
        for a in &self.argv {
            rec(b'a', a.as_bytes());
        }
        for e in &self.envp {
            rec(b'e', e.as_bytes());
        }
        for c in &self.candidates {
            rec(b'p', c.as_bytes());
        }
        rec(b'c', self.cwd.as_bytes());
        if let Some(m) = self.umask {
            rec(b'u', &m.to_le_bytes());
        }
        rec(
            b'f',
            &[self.restore_int as u8 | (self.restore_quit as u8) << 1 | (self.idle as u8) << 2],
        );
        if let Some(h) = &self.hook {
            rec(b'b', &h.program_bytes());
        }
        out
    }

    /// Inverse of [`ExecSpec::encode`], into `self` (keeps the status and timing fields).
    fn decode_into(&mut self, mut data: &[u8]) -> Option<()> {
        while !data.is_empty() {
            let tag = data[0];
            let len = u32::from_le_bytes(data.get(1..5)?.try_into().ok()?) as usize;
            let b = data.get(5..5 + len)?;
            data = &data[5 + len..];
            let c = || CString::new(b).ok();
            match tag {
                b'a' => self.argv.push(c()?),
                b'e' => self.envp.push(c()?),
                b'p' => self.candidates.push(c()?),
                b'c' => self.cwd = c()?,
                b'u' => self.umask = Some(u32::from_le_bytes(b.try_into().ok()?)),
                b'f' => {
                    self.restore_int = b.first()? & 1 != 0;
                    self.restore_quit = b.first()? & 2 != 0;
                    self.idle = b.first()? & 4 != 0;
                }
                b'b' => self.program = b.to_vec(),
                _ => return None,
            }
        }
        (!self.argv.is_empty()).then_some(())
    }
}

/// Receive the command of a prestarted sandbox: a 8-byte header (payload length, fd mask:
/// bits 0–2 stdio, bit 3 the tracer's report fd) carrying those fds as SCM_RIGHTS, then the
/// payload.
fn receive_spec(spec: &ExecSpec) -> Result<ExecSpec, Errno> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut header = [0u8; 8];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let (got, fds) = {
        let mut iov = [std::io::IoSliceMut::new(&mut header)];
        let msg = recvmsg::<()>(
            spec.go_fd,
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(|_| Errno::EINVAL)? {
            if let ControlMessageOwned::ScmRights(f) = c {
                fds.extend(f);
            }
        }
        (msg.bytes, fds)
    };
    if got != 8 {
        return Err(Errno::EPIPE);
    }
    let len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
    let mask = u32::from_le_bytes(header[4..].try_into().unwrap_or_default());
    let mut payload = vec![0u8; len];
    if sys::read_full(spec.go_fd, &mut payload)? < len {
        return Err(Errno::EPIPE);
    }
    let mut out = ExecSpec::placeholder();
    out.status_fd = spec.status_fd;
    out.timing = spec.timing;
    out.decode_into(&payload).ok_or(Errno::EINVAL)?;
    let mut fds = fds.into_iter();
    for i in 0..3 {
        if mask & (1 << i) != 0 {
            out.stdio[i] = fds.next();
        }
    }
    if mask & (1 << 3) != 0 {
        let report = sys::own_received(fds.next().ok_or(Errno::EINVAL)?);
        let program = std::mem::take(&mut out.program);
        out.hook = Some(trace::ChildHook::from_parts(&program, report).map_err(|_| Errno::EINVAL)?);
    }
    Ok(out)
}

fn exec_spec(cmd: &Command) -> Result<ExecSpec, Error> {
    if cmd.argv.is_empty() {
        return Err(Error::InvalidCommand("empty argv"));
    }
    let env: Vec<(OsString, OsString)> = match &cmd.env {
        Some(e) => e.clone(),
        None => std::env::vars_os().collect(),
    };
    let envp = env
        .iter()
        .map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend(v.as_bytes());
            CString::new(b).map_err(|_| Error::InvalidCommand("NUL byte in the environment"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let argv = cmd
        .argv
        .iter()
        .map(|a| {
            CString::new(a.as_bytes()).map_err(|_| Error::InvalidCommand("NUL byte in an argument"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let prog = cmd.argv[0].as_bytes();
    let candidates = if prog.contains(&b'/') {
        vec![argv[0].clone()]
    } else {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_bytes().to_vec())
            .unwrap_or_else(|| b"/usr/local/bin:/usr/bin:/bin".to_vec());
        path.split(|&b| b == b':')
            .map(|d| {
                let mut p = if d.is_empty() {
                    b".".to_vec()
                } else {
                    d.to_vec()
                };
                p.push(b'/');
                p.extend(prog);
                CString::new(p).unwrap_or_default()
            })
            .collect()
    };
    let cwd = match &cmd.cwd {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| Error::io("get", Path::new("cwd"), e))?,
    };
    Ok(ExecSpec {
        argv,
        candidates,
        envp,
        cwd: c(&cwd)?,
        umask: cmd.umask,
        stdio: [0, 1, 2].map(|i| cmd.stdio[i].as_ref().map(AsRawFd::as_raw_fd)),
        restore_int: !sys::signal_ignored(libc::SIGINT),
        restore_quit: !sys::signal_ignored(libc::SIGQUIT),
        idle: cmd.idle,
        hook: match &cmd.trace {
            Some(h) => Some(
                h.try_clone()
                    .map_err(|e| Error::io("duplicate", Path::new("the tracer's report fd"), e))?,
            ),
            None => None,
        },
        program: Vec::new(),
        timing: std::env::var_os("HS_SANDBOX_TIMING").is_some(),
        status_fd: -1,
        go_fd: -1,
    })
}

/// With `HS_SANDBOX_TIMING` set: print a timestamped mark on stderr (setup profiling).
pub(crate) fn mark(on: bool, label: &str) {
    if on {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let msg = format!(
            "hs sandbox: {:>10} us {label}\n",
            t.as_micros() % 100_000_000
        );
        let _ = sys::write_all(2, msg.as_bytes());
    }
}

/// Report a failed step to the parent and exit.
fn fail(err_fd: RawFd, index: usize, errno: Errno) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(index as u32).to_le_bytes());
    buf[4..].copy_from_slice(&(errno as i32).to_le_bytes());
    let _ = sys::write_all(err_fd, &buf);
    sys::exit(125)
}

/// Start `cmd` in a sandbox set up by `prep`. Returns once the command was exec'd (or setup
/// failed).
pub(crate) fn spawn(
    plan: &Plan,
    prep: &Prepared,
    cmd: &Command,
    reaper: &Reaper,
) -> Result<Child, Error> {
    let spec = exec_spec(cmd)?;
    let (helper, err_r, status_r) = start(prep, spec)?;
    finish_spawn(plan, helper, err_r, status_r, reaper.clone())
}

/// A sandbox whose namespaces and mounts are being set up in the background, waiting for its
/// command ([`crate::Sandbox::prestart`]).
#[derive(Debug)]
pub struct Ready {
    /// `None` once used.
    helper: Option<Helper>,
    /// (error pipe, status pipe, go socket); `None` once used.
    fds: Option<(OwnedFd, OwnedFd, OwnedFd)>,
    plan: Plan,
    reaper: Reaper,
}

impl Drop for Ready {
    /// An unused prestarted sandbox: closing the socket makes its init exit; reap it.
    fn drop(&mut self) {
        if let Some(fds) = self.fds.take() {
            drop(fds);
            if let Some(h) = self.helper.take() {
                reap_in_background(h, &self.reaper);
            }
        }
    }
}

impl Ready {
    /// Run `cmd` in the prestarted sandbox. Returns once it has been exec'd.
    pub fn exec(mut self, cmd: &Command) -> Result<Child, Error> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let spec = exec_spec(cmd)?;
        let (Some((err_r, status_r, go)), Some(helper)) = (self.fds.take(), self.helper.take())
        else {
            return Err(Error::InvalidCommand("prestarted sandbox already used"));
        };
        let payload = spec.encode();
        let mut header = (payload.len() as u32).to_le_bytes().to_vec();
        let mut mask = 0u32;
        let mut fds = Vec::new();
        for (i, fd) in spec.stdio.iter().enumerate() {
            if let Some(fd) = fd {
                mask |= 1 << i;
                fds.push(*fd);
            }
        }
        if let Some(h) = &spec.hook {
            mask |= 1 << 3;
            fds.push(h.report_fd());
        }
        header.extend(mask.to_le_bytes());
        let iov = [std::io::IoSlice::new(&header)];
        let cmsgs = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
        // A failed send means init died during setup; its error is on the error pipe.
        if sendmsg::<()>(go.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).is_ok() {
            let mut off = 0;
            while off < payload.len() {
                match nix::sys::socket::send(
                    go.as_raw_fd(),
                    &payload[off..],
                    MsgFlags::MSG_NOSIGNAL,
                ) {
                    Ok(n) => off += n,
                    Err(Errno::EINTR) => {}
                    Err(_) => break,
                }
            }
        }
        drop(go);
        finish_spawn(&self.plan, helper, err_r, status_r, self.reaper.clone())
    }
}

pub(crate) fn prestart(plan: &Plan, prep: &Prepared, reaper: &Reaper) -> Result<Ready, Error> {
    let (go, init_end) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::io("create", Path::new("socketpair"), e.into()))?;
    let mut spec = ExecSpec::placeholder();
    spec.go_fd = init_end.as_raw_fd();
    let (helper, err_r, status_r) = start(prep, spec)?;
    drop(init_end);
    Ok(Ready {
        helper: Some(helper),
        fds: Some((err_r, status_r, go)),
        plan: plan.clone(),
        reaper: reaper.clone(),
    })
}

/// Fork the helper (through the zygote, for a prestarted sandbox, where there is one); returns
/// it and the read ends of the error and status pipes.
fn start(prep: &Prepared, mut spec: ExecSpec) -> Result<(Helper, OwnedFd, OwnedFd), Error> {
    mark(spec.timing, "spawn");
    let (status_r, status_w) =
        sys::pipe().map_err(|e| Error::io("create", Path::new("pipe"), e.into()))?;
    spec.status_fd = status_w.as_raw_fd();
    let (err_r, err_w) =
        sys::pipe().map_err(|e| Error::io("create", Path::new("pipe"), e.into()))?;
    if spec.go_fd >= 0
        && let Some(helper) = crate::zygote::fork_helper(prep, &spec, err_w.as_raw_fd())
    {
        return Ok((helper, err_r, status_r));
    }
    let pid =
        match sys::fork().map_err(|e| Error::io("fork", Path::new("sandbox helper"), e.into()))? {
            Fork::Child => {
                drop(err_r);
                helper(prep, &spec, err_w.as_raw_fd())
            }
            Fork::Parent(pid) => pid,
        };
    drop(err_w);
    drop(status_w);
    Ok((Helper::Own(pid), err_r, status_r))
}

/// Wait until the command is exec'd (end of file on the error pipe) or setup failed.
fn finish_spawn(
    plan: &Plan,
    helper: Helper,
    err_r: OwnedFd,
    status_r: OwnedFd,
    reaper: Reaper,
) -> Result<Child, Error> {
    let mut buf = [0u8; 8];
    let got = sys::read_full(err_r.as_raw_fd(), &mut buf).unwrap_or(0);
    mark(std::env::var_os("HS_SANDBOX_TIMING").is_some(), "exec'd");
    let mut child = Child {
        pid: helper.pid(),
        helper: Some(helper),
        done: None,
        status: Some(status_r),
        reaper,
    };
    if got == 8 {
        let _ = child.wait();
        let index = u32::from_le_bytes(buf[..4].try_into().unwrap_or_default()) as usize;
        let errno = Errno::from_raw(i32::from_le_bytes(buf[4..].try_into().unwrap_or_default()));
        let step = plan.steps.get(index).cloned().unwrap_or(Step::Exec);
        return Err(Error::setup(index, &step, errno));
    }
    Ok(child)
}

/// The helper: unshare, map ids, fork init, wait for it.
pub(crate) fn helper(prep: &Prepared, spec: &ExecSpec, err: RawFd) -> ! {
    // Other threads of the caller may have pipes and sockets open (other sandboxes' error,
    // status and command channels); a copy kept here would hold their ends open for as long
    // as this sandbox lives. Keep only what this sandbox uses. (No locks may be taken in this
    // child either: std's environment lock, for one, may be held by a thread that no longer
    // exists here — hence `spec.timing` instead of reading the environment.)
    let mut keep = vec![0, 1, 2, err, spec.status_fd, spec.go_fd];
    keep.extend(prep.net);
    keep.extend(spec.stdio.iter().flatten());
    keep.extend(spec.hook.as_ref().map(trace::ChildHook::report_fd));
    sys::close_all_except(&keep);
    mark(spec.timing, "helper");
    sys::set_signal(libc::SIGINT, true);
    sys::set_signal(libc::SIGQUIT, true);
    let mut i = 0;
    while i < prep.steps.len() {
        match &prep.steps[i] {
            Prep::JoinNet(fd) => {
                if let Err(e) = sys::setns(*fd, libc::CLONE_NEWNET) {
                    fail(err, i, e)
                }
                sys::close(*fd);
            }
            Prep::Unshare(flags) => {
                let t0 = std::time::Instant::now();
                if let Err(e) = sys::unshare(*flags) {
                    fail(err, i, e)
                }
                if spec.timing {
                    let msg = format!(
                        "hs sandbox: helper unshare took {} us\n",
                        t0.elapsed().as_micros()
                    );
                    let _ = sys::write_all(2, msg.as_bytes());
                }
            }
            Prep::MapIds { uid, gid } => {
                let r = std::fs::write("/proc/self/setgroups", b"deny")
                    .and_then(|_| std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n")))
                    .and_then(|_| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n")));
                if let Err(e) = r {
                    fail(
                        err,
                        i,
                        Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM)),
                    )
                }
            }
            Prep::ForkInit => break,
            _ => {}
        }
        i += 1;
    }
    // Handshake pipes for EnterUserNs: init → helper "unshared", helper → init "mapped".
    let hs = if prep.privileged {
        match (sys::pipe(), sys::pipe()) {
            (Ok(a), Ok(b)) => Some((a, b)),
            (Err(e), _) | (_, Err(e)) => fail(err, i, e),
        }
    } else {
        None
    };
    let init = match sys::fork() {
        Err(e) => fail(err, i, e),
        Ok(Fork::Child) => {
            let hs = hs.as_ref().map(|(a, b)| {
                // Keep only our ends, so that a dead helper gives EOF.
                sys::close(a.0.as_raw_fd());
                sys::close(b.1.as_raw_fd());
                (a.1.as_raw_fd(), b.0.as_raw_fd())
            });
            init(prep, spec, err, i + 1, hs)
        }
        Ok(Fork::Parent(pid)) => pid,
    };
    if let Some((a, b)) = &hs {
        let mut byte = [0u8; 1];
        // Close our copies of init's ends so a dead init gives EOF.
        let (a_r, b_w) = (a.0.as_raw_fd(), b.1.as_raw_fd());
        sys::close(a.1.as_raw_fd());
        sys::close(b.0.as_raw_fd());
        if sys::read(a_r, &mut byte) == Ok(1) {
            let map = "0 0 4294967295\n";
            let r = std::fs::write(format!("/proc/{init}/uid_map"), map)
                .and_then(|_| std::fs::write(format!("/proc/{init}/gid_map"), map));
            match r {
                Ok(()) => {
                    let _ = sys::write_all(b_w, b"k");
                }
                Err(e) => {
                    let msg = format!(
                        "hs: sandbox: failed to write the uid/gid map of pid {init}: {e}\n"
                    );
                    let _ = sys::write_all(2, msg.as_bytes());
                }
            }
        }
        sys::close(b_w);
    }
    sys::close(err);
    sys::close(spec.status_fd);
    if spec.go_fd >= 0 {
        sys::close(spec.go_fd);
    }
    // Only init's line leads to the command: a copy of the report fd here would keep the
    // supervisor waiting if the command died before installing the filter.
    if let Some(h) = &spec.hook {
        sys::close(h.report_fd());
    }
    match sys::waitpid(init, 0) {
        Ok((_, status)) => sys::exit(sys::status_code(status)),
        Err(_) => sys::exit(125),
    }
}

/// Pid 1 of the sandbox: run the mount steps from `start`, then fork the command and reap.
fn init(
    prep: &Prepared,
    spec: &ExecSpec,
    err: RawFd,
    start: usize,
    hs: Option<(RawFd, RawFd)>,
) -> ! {
    mark(spec.timing, "init");
    let _ = sys::die_with_parent();
    let timing = spec.timing;
    for (i, step) in prep.steps.iter().enumerate().skip(start) {
        let t0 = std::time::Instant::now();
        let r = match step {
            Prep::Mount { .. }
            | Prep::Mkdir(_)
            | Prep::Symlink(..)
            | Prep::CreateFile(_)
            | Prep::ReadOnly(_)
            | Prep::LoopbackUp
            | Prep::PivotRoot(_) => run_fs_step(&mut LinuxSys, step),
            Prep::Optional(inner) => match run_fs_step(&mut LinuxSys, inner) {
                Err(Errno::ENOENT) => {
                    if timing {
                        let msg = format!("hs sandbox: step {i} skipped (path gone)\n");
                        let _ = sys::write_all(2, msg.as_bytes());
                    }
                    Ok(())
                }
                r => r,
            },
            Prep::EnterUserNs => (|| {
                let (to_helper, from_helper) = hs.ok_or(Errno::EINVAL)?;
                sys::unshare(libc::CLONE_NEWUSER)?;
                sys::write_all(to_helper, b"u")?;
                let mut b = [0u8; 1];
                if sys::read(from_helper, &mut b)? != 1 {
                    return Err(Errno::EPERM);
                }
                Ok(())
            })(),
            Prep::Exec => {
                if let Some((a, b)) = hs {
                    sys::close(a);
                    sys::close(b);
                }
                let _ = sys::no_new_privs();
                if spec.go_fd >= 0 {
                    match receive_spec(spec) {
                        Ok(received) => {
                            sys::close(spec.go_fd);
                            exec_and_reap(&received, err, i)
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    exec_and_reap(spec, err, i)
                }
            }
            Prep::Unshare(flags) => sys::unshare(*flags),
            Prep::MapIds { .. } | Prep::ForkInit | Prep::JoinNet(_) => Ok(()),
        };
        if timing {
            let msg = format!(
                "hs sandbox: step {i} took {} us\n",
                t0.elapsed().as_micros()
            );
            let _ = sys::write_all(2, msg.as_bytes());
        }
        if let Err(e) = r {
            fail(err, i, e)
        }
    }
    fail(err, prep.steps.len(), Errno::EINVAL)
}

fn exec_and_reap(spec: &ExecSpec, err: RawFd, index: usize) -> ! {
    let cmd = match sys::fork() {
        Err(e) => fail(err, index, e),
        Ok(Fork::Child) => command(spec, err, index),
        Ok(Fork::Parent(pid)) => pid,
    };
    sys::close(err);
    if let Some(h) = &spec.hook {
        sys::close(h.report_fd());
    }
    // Close the caller's stdio copies in init so pipes see EOF when the command exits.
    for fd in spec.stdio.iter().flatten() {
        sys::close(*fd);
    }
    let mut code = 125;
    loop {
        match sys::waitpid(-1, 0) {
            Ok((pid, status)) if pid == cmd => {
                code = sys::status_code(status);
                // Nothing may outlive the command (it could still write to the upper dir).
                let _ = sys::kill(-1, libc::SIGKILL);
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    let _ = sys::write_all(spec.status_fd, &code.to_le_bytes());
    sys::exit(code)
}

/// The kernel operations of the filesystem steps, so that the step runner can be checked
/// against a recording fake without privileges (youki's `Syscall` trait, reduced).
pub(crate) trait Sys {
    /// `mount(2)`.
    fn mount(
        &mut self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), Errno>;
    /// `mount_setattr(2)` setting `set`.
    fn mount_setattr(&mut self, path: &CStr, recursive: bool, set: u64) -> Result<(), Errno>;
    /// `mkdir(2)`, existing is fine.
    fn mkdir(&mut self, path: &CStr) -> Result<(), Errno>;
    /// `symlink(2)`.
    fn symlink(&mut self, target: &CStr, link: &CStr) -> Result<(), Errno>;
    /// Create an empty file.
    fn create_file(&mut self, path: &CStr) -> Result<(), Errno>;
    /// Bring `lo` up.
    fn loopback_up(&mut self) -> Result<(), Errno>;
    /// chdir + pivot_root(".", ".") + detach the old root + chdir("/").
    fn pivot_root(&mut self, new_root: &CStr) -> Result<(), Errno>;
}

/// The real kernel.
pub(crate) struct LinuxSys;

impl Sys for LinuxSys {
    fn mount(
        &mut self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), Errno> {
        sys::mount(src, target, fstype, flags, data)
    }
    fn mount_setattr(&mut self, path: &CStr, recursive: bool, set: u64) -> Result<(), Errno> {
        sys::mount_setattr(path, recursive, set, 0)
    }
    fn mkdir(&mut self, path: &CStr) -> Result<(), Errno> {
        sys::mkdir(path, 0o755)
    }
    fn symlink(&mut self, target: &CStr, link: &CStr) -> Result<(), Errno> {
        sys::symlink(target, link)
    }
    fn create_file(&mut self, path: &CStr) -> Result<(), Errno> {
        sys::create_file(path, 0o644)
    }
    fn loopback_up(&mut self) -> Result<(), Errno> {
        sys::loopback_up()
    }
    fn pivot_root(&mut self, root: &CStr) -> Result<(), Errno> {
        sys::chdir(root)?;
        sys::pivot_root(c".", c".")?;
        sys::umount2(c".", libc::MNT_DETACH)?;
        sys::chdir(c"/")
    }
}

/// Run one filesystem step (mounts, skeleton entries, pivot); other steps are a no-op here.
fn run_fs_step(sys: &mut impl Sys, step: &Prep) -> Result<(), Errno> {
    match step {
        Prep::Mount {
            src,
            target,
            fstype,
            flags,
            data,
            ro,
        } => {
            sys.mount(
                src.as_deref(),
                target,
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            )?;
            match ro {
                Some(rec) => sys.mount_setattr(
                    target,
                    *rec,
                    sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
                ),
                None => Ok(()),
            }
        }
        Prep::Mkdir(p) => sys.mkdir(p),
        Prep::Symlink(t, l) => sys.symlink(t, l),
        Prep::CreateFile(p) => sys.create_file(p),
        Prep::ReadOnly(p) => sys.mount_setattr(p, false, sys::MOUNT_ATTR_RDONLY),
        Prep::LoopbackUp => sys.loopback_up(),
        Prep::PivotRoot(root) => sys.pivot_root(root),
        Prep::Optional(inner) => run_fs_step(sys, inner),
        _ => Ok(()),
    }
}

/// The command child: fds, cwd, umask, signals, priority, tracer, exec. A failure to install
/// the tracer is reported as a failure of step `index` (the exec step) on `err`.
fn command(spec: &ExecSpec, err: RawFd, index: usize) -> ! {
    // Move the requested fds out of the way first, then onto 0, 1, 2.
    let mut moved = [None; 3];
    for (i, fd) in spec.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            moved[i] = sys::dup_above(*fd, 10).ok();
        }
    }
    for (i, fd) in moved.iter().enumerate() {
        if let Some(fd) = fd {
            let _ = sys::dup2(*fd, i as RawFd);
        }
    }
    if spec.restore_int {
        sys::set_signal(libc::SIGINT, false);
    }
    if spec.restore_quit {
        sys::set_signal(libc::SIGQUIT, false);
    }
    // As std::process::Command does: the Rust runtime ignores SIGPIPE, a command must not.
    sys::set_signal(libc::SIGPIPE, false);
    sys::unblock_all_signals();
    if let Some(m) = spec.umask {
        sys::umask(m);
    }
    if sys::chdir(&spec.cwd).is_err() {
        let msg = format!(
            "hs: cannot enter {} in the sandbox\n",
            spec.cwd.to_string_lossy()
        );
        let _ = sys::write_all(2, msg.as_bytes());
        let _ = sys::chdir(c"/");
    }
    mark(spec.timing, "exec");
    if spec.idle {
        // Best effort: lowering the policy needs no privilege, and a failure only costs speed.
        let _ = sys::sched_idle();
    }
    // Last: everything from here on (the PATH search included) is the command's own doing.
    if let Some(hook) = &spec.hook
        && let Err(e) = hook.install()
    {
        fail(
            err,
            index,
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM)),
        )
    }
    let mut last = Errno::ENOENT;
    for cand in &spec.candidates {
        let e = sys::execve(cand, &spec.argv, &spec.envp);
        let exists =
            || std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(cand.as_bytes())).is_ok();
        if e != Errno::ENOENT && e != Errno::ENOTDIR && (e != Errno::EACCES || exists()) {
            last = e;
        }
    }
    let name = spec.argv[0].to_string_lossy();
    let (msg, code) = if last == Errno::ENOENT {
        (format!("hs: {name}: command not found\n"), 127)
    } else {
        (format!("hs: {name}: {}\n", last.desc()), 126)
    };
    let _ = sys::write_all(2, msg.as_bytes());
    sys::exit(code)
}

impl Child {
    /// Like [`Child::wait`], with SIGINT and SIGQUIT ignored in the caller meanwhile (as
    /// `system(3)` does), so that ^C at a terminal stops the command, not its caller.
    pub fn wait_interactive(&mut self) -> Result<i32, Error> {
        let int = sys::signal_ignored(libc::SIGINT);
        let quit = sys::signal_ignored(libc::SIGQUIT);
        sys::set_signal(libc::SIGINT, true);
        sys::set_signal(libc::SIGQUIT, true);
        let r = self.wait();
        sys::set_signal(libc::SIGINT, int);
        sys::set_signal(libc::SIGQUIT, quit);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanInput, build, parse_mountinfo};

    /// Records every call as a line of text.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    fn s(c: Option<&CStr>) -> String {
        c.map_or("-".into(), |c| c.to_string_lossy().into_owned())
    }

    impl Sys for Recorder {
        fn mount(
            &mut self,
            src: Option<&CStr>,
            target: &CStr,
            fstype: Option<&CStr>,
            flags: c_ulong,
            data: Option<&CStr>,
        ) -> Result<(), Errno> {
            self.0.push(format!(
                "mount {} {} {} {flags:#x} {}",
                s(src),
                s(Some(target)),
                s(fstype),
                s(data)
            ));
            Ok(())
        }
        fn mount_setattr(&mut self, path: &CStr, recursive: bool, set: u64) -> Result<(), Errno> {
            self.0.push(format!(
                "setattr {} rec={recursive} {set:#x}",
                s(Some(path))
            ));
            Ok(())
        }
        fn mkdir(&mut self, path: &CStr) -> Result<(), Errno> {
            self.0.push(format!("mkdir {}", s(Some(path))));
            Ok(())
        }
        fn symlink(&mut self, target: &CStr, link: &CStr) -> Result<(), Errno> {
            self.0
                .push(format!("symlink {} {}", s(Some(target)), s(Some(link))));
            Ok(())
        }
        fn create_file(&mut self, path: &CStr) -> Result<(), Errno> {
            self.0.push(format!("create {}", s(Some(path))));
            Ok(())
        }
        fn loopback_up(&mut self) -> Result<(), Errno> {
            self.0.push("lo up".into());
            Ok(())
        }
        fn pivot_root(&mut self, root: &CStr) -> Result<(), Errno> {
            self.0.push(format!("pivot {}", s(Some(root))));
            Ok(())
        }
    }

    /// What the zygote receives is what the caller prepared, for plans of both kinds (as root:
    /// overlays, `EnterUserNs`; unprivileged: a skeleton with optional binds, id maps, a
    /// shared network namespace's fd replaced by the receiver's).
    #[test]
    fn prepared_steps_survive_the_trip_to_the_zygote() {
        let mounts = parse_mountinfo(
            b"1 0 8:1 / / rw - ext4 /dev/sda rw\n2 1 0:5 / /opt ro - squashfs x ro\n\
              3 1 0:6 / /tmp rw - tmpfs t rw\n",
        );
        let dir = std::env::temp_dir().join(format!("hs-zyg,\n{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for privileged in [true, false] {
            let input = PlanInput {
                dir: dir.clone(),
                uid: 1000,
                gid: 100,
                privileged,
                net: false,
                shared_net: privileged,
                existing: Vec::new(),
                writable_roots: vec!["/tmp".into(), dir.clone()],
                upper_in_dir: false,
            };
            let plan = build(&input, &mounts).unwrap();
            let prep = prepare(&plan, privileged, privileged.then_some(7)).unwrap();
            assert!(prep.steps.len() > 5);
            let back = Prepared::decode(&prep.encode(), privileged.then_some(9)).unwrap();
            let want = format!("{prep:?}").replace("JoinNet(7)", "JoinNet(9)");
            assert_eq!(
                format!("{back:?}"),
                want.replace("net: Some(7)", "net: Some(9)")
            );
            assert!(Prepared::decode(&prep.encode()[..prep.encode().len() - 3], None).is_none());
        }
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn runner_issues_the_planned_mounts() {
        let dir = std::env::temp_dir().join("a,b:c");
        let input = PlanInput {
            dir: std::env::temp_dir(),
            uid: 0,
            gid: 0,
            privileged: true,
            net: false,
            shared_net: false,
            existing: vec![Layer {
                target: "/".into(),
                upper: dir.join("u"),
                work: dir.join("w"),
            }],
            writable_roots: Vec::new(),
            upper_in_dir: true,
        };
        let mounts = parse_mountinfo(
            b"1 0 8:1 / / rw - ext4 /dev/sda rw\n2 1 0:5 / /opt ro - squashfs x ro\n",
        );
        let plan = build(&input, &mounts).unwrap();
        let prep = prepare(&plan, true, None).unwrap();
        let mut rec = Recorder::default();
        for step in &prep.steps {
            run_fs_step(&mut rec, step).unwrap();
        }
        let calls = rec.0.join("\n");
        let t = std::env::temp_dir();
        let d = t.to_string_lossy();
        assert!(calls.starts_with("mount - / - 0x44000 -\n"), "{calls}");
        let u = dir
            .join("u")
            .to_string_lossy()
            .replace(',', "\\,")
            .replace(':', "\\:");
        assert!(
            calls.contains(&format!(
                "mount overlay {d}/root overlay 0x0 lowerdir=/,upperdir={u},"
            )),
            "{calls}"
        );
        assert!(
            calls.contains(&format!(
                "mount /opt {d}/root/opt - 0x5000 -\nsetattr {d}/root/opt rec=true 0x7"
            )),
            "{calls}"
        );
        assert!(
            calls.contains(&format!("mount proc {d}/root/proc proc")),
            "{calls}"
        );
        assert!(
            calls.ends_with(&format!("lo up\npivot {d}/root")),
            "{calls}"
        );
    }
}
