//! The seccomp filter: a declarative table (syscall → action), validated, compiled to BPF.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::error::Error;
use crate::sys;

/// What the filter does with one syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let the call run untraced.
    Allow,
    /// Stop the caller and notify the supervisor, which lets the call continue afterwards.
    Notify,
    /// Notify unless the low 32 bits of argument `arg` have any bit of `mask` set (used to let
    /// `fstat`-like `newfstatat(fd, "", AT_EMPTY_PATH)` through without a round trip).
    NotifyUnlessFlag {
        /// Argument index (0–5).
        arg: u8,
        /// Flag bits that make the call pass.
        mask: u32,
    },
    /// Notify only when the low 32 bits of argument `arg` have a bit of `mask` set (e.g. an
    /// `open` with any of the flags that write: a filter that only wants changes).
    NotifyIfFlag {
        /// Argument index (0–5).
        arg: u8,
        /// Flag bits that make the call stop.
        mask: u32,
    },
    /// Notify only when argument `arg` is not zero (e.g. `sendto` with a destination address).
    NotifyIfNonZero {
        /// Argument index (0–5).
        arg: u8,
    },
    /// Notify only when the low 32 bits of argument `arg` equal one of `values` (e.g. the
    /// `PTRACE_ATTACH`/`PTRACE_SEIZE` requests of `ptrace`; at most 8 values).
    NotifyIfArgIn {
        /// Argument index (0–5).
        arg: u8,
        /// Values that trap.
        values: &'static [u32],
    },
    /// Fail the call with this errno without running it.
    Errno(i32),
}

/// One row of the filter table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// x86_64 syscall number.
    pub nr: i64,
    /// What to do with it.
    pub action: Action,
}

/// Syscalls the filter must never stop or fail: the child uses them between loading the filter
/// and `exec` (to hand over the listener fd and report errors), and stopping them could
/// deadlock a process against its own supervisor (youki's `check_seccomp` rule, extended).
const NEVER_TRAP: &[i64] = &[
    libc::SYS_write,
    libc::SYS_close,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_futex,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_ioctl,
    libc::SYS_seccomp,
    libc::SYS_prctl,
    libc::SYS_getpid,
];

/// The rules of the tracer: path syscalls of DESIGN §7, escape hatches and network calls
/// notify; `io_uring_setup` fails with ENOSYS because no syscall tracer sees io_uring's work.
pub fn default_rules(fstat_fast_path: bool) -> Vec<Rule> {
    use libc::*;
    let n = |nr| Rule {
        nr,
        action: Action::Notify,
    };
    let mut rules: Vec<Rule> = [
        SYS_open,
        SYS_openat,
        SYS_openat2,
        SYS_creat,
        SYS_stat,
        SYS_lstat,
        SYS_statfs,
        SYS_access,
        SYS_faccessat,
        SYS_faccessat2,
        SYS_readlink,
        SYS_readlinkat,
        SYS_getdents,
        SYS_getdents64,
        SYS_execve,
        SYS_execveat,
        SYS_rename,
        SYS_renameat,
        SYS_renameat2,
        SYS_unlink,
        SYS_unlinkat,
        SYS_mkdir,
        SYS_mkdirat,
        SYS_rmdir,
        SYS_link,
        SYS_linkat,
        SYS_symlink,
        SYS_symlinkat,
        SYS_mknod,
        SYS_mknodat,
        SYS_truncate,
        SYS_chmod,
        SYS_fchmod,
        SYS_fchmodat,
        SYS_fchmodat2,
        SYS_chown,
        SYS_lchown,
        SYS_fchown,
        SYS_fchownat,
        SYS_utime,
        SYS_utimes,
        SYS_utimensat,
        SYS_futimesat,
        SYS_getxattr,
        SYS_lgetxattr,
        SYS_listxattr,
        SYS_llistxattr,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
        SYS_GETXATTRAT,
        SYS_SETXATTRAT,
        SYS_LISTXATTRAT,
        SYS_REMOVEXATTRAT,
        SYS_chdir,
        SYS_fchdir,
        SYS_chroot,
        SYS_name_to_handle_at,
        SYS_open_by_handle_at,
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_unshare,
        SYS_setns,
        SYS_connect,
        SYS_bind,
        SYS_sendmsg,
        SYS_sendmmsg,
        SYS_fsopen,
        SYS_fsmount,
        SYS_move_mount,
        SYS_open_tree,
    ]
    .into_iter()
    .map(n)
    .collect();
    rules.push(Rule {
        nr: SYS_sendto,
        action: Action::NotifyIfNonZero { arg: 4 },
    });
    let stat_action = |arg| {
        if fstat_fast_path {
            Action::NotifyUnlessFlag {
                arg,
                mask: AT_EMPTY_PATH as u32,
            }
        } else {
            Action::Notify
        }
    };
    rules.push(Rule {
        nr: SYS_newfstatat,
        action: stat_action(3),
    });
    rules.push(Rule {
        nr: SYS_statx,
        action: stat_action(2),
    });
    // Attaching to a process: flagged when the target is outside the traced tree.
    const ATTACH: &[u32] = &[PTRACE_ATTACH, PTRACE_SEIZE];
    rules.push(Rule {
        nr: SYS_ptrace,
        action: Action::NotifyIfArgIn {
            arg: 0,
            values: ATTACH,
        },
    });
    rules.push(Rule {
        nr: SYS_io_uring_setup,
        action: Action::Errno(ENOSYS),
    });
    rules
}

/// Extra rules for [`crate::Tracer::watch_stdin`]: the read family traps when it reads fd 0.
pub fn stdin_rules() -> Vec<Rule> {
    use libc::*;
    const FD0: &[u32] = &[0];
    [SYS_read, SYS_readv, SYS_pread64, SYS_preadv, SYS_preadv2]
        .into_iter()
        .map(|nr| Rule {
            nr,
            action: Action::NotifyIfArgIn {
                arg: 0,
                values: FD0,
            },
        })
        .collect()
}

/// `getxattrat` and friends (Linux 6.13); not yet in the libc crate.
pub(crate) const SYS_SETXATTRAT: i64 = 463;
/// See [`SYS_SETXATTRAT`].
pub(crate) const SYS_GETXATTRAT: i64 = 464;
/// See [`SYS_SETXATTRAT`].
pub(crate) const SYS_LISTXATTRAT: i64 = 465;
/// See [`SYS_SETXATTRAT`].
pub(crate) const SYS_REMOVEXATTRAT: i64 = 466;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// Syscall numbers at or above this are the x32 ABI, which the table does not describe.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_IP: u32 = 8;
const fn off_arg_lo(i: u8) -> u32 {
    16 + 8 * i as u32
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A validated, compiled seccomp program.
///
/// Build it in the parent (allocation is not allowed after `fork`), then call
/// [`Filter::install_in_child`] in the child just before `exec`.
#[derive(Clone, Debug)]
pub struct Filter {
    rules: Vec<Rule>,
    prog: Arc<[libc::sock_filter]>,
    /// The same program with `SECCOMP_RET_TRACE` instead of `SECCOMP_RET_USER_NOTIF`, for the
    /// ptrace fallback.
    trace_prog: Arc<[libc::sock_filter]>,
}

impl Filter {
    /// The tracer's filter ([`default_rules`]), with the `fstat` fast path on.
    pub fn tracing() -> Filter {
        Filter::from_rules(default_rules(true)).expect("the default rule table is valid")
    }

    /// Validates `rules` and compiles them. Syscalls not in the table are allowed.
    pub fn from_rules(mut rules: Vec<Rule>) -> Result<Filter, Error> {
        let mut seen = BTreeSet::new();
        for r in &rules {
            if !(0..X32_SYSCALL_BIT as i64).contains(&r.nr) {
                return Err(Error::InvalidRule {
                    nr: r.nr,
                    reason: "not an x86_64 syscall number",
                });
            }
            if !seen.insert(r.nr) {
                return Err(Error::InvalidRule {
                    nr: r.nr,
                    reason: "listed twice",
                });
            }
            if r.action != Action::Allow && NEVER_TRAP.contains(&r.nr) {
                return Err(Error::InvalidRule {
                    nr: r.nr,
                    reason: "the child needs it to hand over the listener fd before exec",
                });
            }
            match r.action {
                Action::NotifyUnlessFlag { arg, .. }
                | Action::NotifyIfFlag { arg, .. }
                | Action::NotifyIfNonZero { arg }
                | Action::NotifyIfArgIn { arg, .. }
                    if arg > 5 =>
                {
                    return Err(Error::InvalidRule {
                        nr: r.nr,
                        reason: "argument index above 5",
                    });
                }
                Action::NotifyIfArgIn { values, .. } if values.is_empty() || values.len() > 8 => {
                    return Err(Error::InvalidRule {
                        nr: r.nr,
                        reason: "between 1 and 8 values",
                    });
                }
                Action::Errno(e) if !(1..4096).contains(&e) => {
                    return Err(Error::InvalidRule {
                        nr: r.nr,
                        reason: "errno out of range",
                    });
                }
                _ => {}
            }
        }
        rules.sort_by_key(|r| r.nr);
        let prog = compile(&rules)?;
        let trace_prog = prog
            .iter()
            .map(|&i| {
                if i.code == BPF_RET_K && i.k == libc::SECCOMP_RET_USER_NOTIF {
                    stmt(BPF_RET_K, libc::SECCOMP_RET_TRACE)
                } else {
                    i
                }
            })
            .collect();
        Ok(Filter {
            rules,
            prog: prog.into(),
            trace_prog,
        })
    }

    /// The rules, sorted by syscall number.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The compiled BPF program (for inspection and tests).
    pub fn program(&self) -> &[libc::sock_filter] {
        &self.prog
    }

    /// Installs the filter in the calling process (with `no_new_privs`) and hands the listener
    /// to the supervisor by writing `(pid: i32, fd: i32)` (native endian) to `report_fd`, a unix
    /// socket whose peer has `SO_PASSCRED`, so that the kernel also tells the supervisor the
    /// pid as it sees it (`getpid()` is wrong in a new pid namespace); the supervisor then takes
    /// the fd with `pidfd_getfd`. The listener stays open (close-on-exec) until `exec`, and
    /// `execve` itself is trapped, so the supervisor always gets it in time.
    ///
    /// Async-signal-safe: call it from a `pre_exec` closure or after `clone`, as the last step
    /// before `exec`.
    pub fn install_in_child(&self, report_fd: RawFd) -> io::Result<()> {
        install_program(&self.prog, report_fd)
    }

    /// The compiled program, shared: the user-notification one, or with `ptrace` the one
    /// whose stops are `SECCOMP_RET_TRACE`.
    pub(crate) fn shared_program(&self, ptrace: bool) -> Arc<[libc::sock_filter]> {
        Arc::clone(if ptrace { &self.trace_prog } else { &self.prog })
    }
}

/// Whether `prog` stops calls for a ptrace tracer (`SECCOMP_RET_TRACE`) rather than a
/// user-notification listener.
pub(crate) fn is_trace_program(prog: &[libc::sock_filter]) -> bool {
    prog.iter().any(|i| {
        i.code == BPF_RET_K && i.k & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_TRACE
    })
}

/// The ptrace fallback's [`install_program`]: loads `prog` (no listener), reports `(pid, -1)`
/// on `report_fd`, and waits for the supervisor's one-byte answer, sent once it has seized
/// the caller: every stop after that reaches it. Async-signal-safe.
pub(crate) fn install_trace_program(
    prog: &[libc::sock_filter],
    report_fd: RawFd,
) -> io::Result<()> {
    sys::install_trace_filter(prog)?;
    let pid = sys::getpid_raw();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&pid.to_ne_bytes());
    msg[4..].copy_from_slice(&(-1i32).to_ne_bytes());
    sys::write_all_raw(report_fd, &msg)?;
    match sys::read_byte_raw(report_fd)? {
        b'k' => Ok(()),
        _ => Err(io::Error::other("the tracer could not attach")),
    }
}

/// [`Filter::install_in_child`] for a bare program. Async-signal-safe.
pub(crate) fn install_program(prog: &[libc::sock_filter], report_fd: RawFd) -> io::Result<()> {
    let fd = sys::install_filter(prog)?;
    let pid = sys::getpid_raw();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&pid.to_ne_bytes());
    msg[4..].copy_from_slice(&fd.to_ne_bytes());
    sys::write_all_raw(report_fd, &msg)
}

/// Size of one serialized BPF instruction ([`program_to_bytes`]).
const INSN_BYTES: usize = 8;

/// Serializes a program: per instruction `code` (u16), `jt`, `jf` (u8 each), `k` (u32), native
/// endian — the layout of `struct sock_filter`.
pub(crate) fn program_to_bytes(prog: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * INSN_BYTES);
    for f in prog {
        out.extend(f.code.to_ne_bytes());
        out.extend([f.jt, f.jf]);
        out.extend(f.k.to_ne_bytes());
    }
    out
}

/// Inverse of [`program_to_bytes`]; `None` unless the length is a multiple of 8 and the
/// program has 1 to 4096 instructions (the kernel's limit).
pub(crate) fn program_from_bytes(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.is_empty()
        || !bytes.len().is_multiple_of(INSN_BYTES)
        || bytes.len() / INSN_BYTES > 4096
    {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSN_BYTES)
            .map(|b| libc::sock_filter {
                code: u16::from_ne_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect(),
    )
}

fn ret(action: Action) -> u32 {
    match action {
        Action::Allow => libc::SECCOMP_RET_ALLOW,
        Action::Errno(e) => libc::SECCOMP_RET_ERRNO | (e as u32 & 0xffff),
        _ => libc::SECCOMP_RET_USER_NOTIF,
    }
}

/// Emits the code for one rule, assuming the accumulator holds the syscall number; falls
/// through (to the next rule) when the number does not match.
fn emit_rule(out: &mut Vec<libc::sock_filter>, r: &Rule) {
    let nr = r.nr as u32;
    match r.action {
        Action::Allow | Action::Notify | Action::Errno(_) => {
            out.push(jump(BPF_JEQ_K, nr, 0, 1));
            out.push(stmt(BPF_RET_K, ret(r.action)));
        }
        Action::NotifyUnlessFlag { arg, mask } => {
            out.push(jump(BPF_JEQ_K, nr, 0, 4));
            out.push(stmt(BPF_LD_W_ABS, off_arg_lo(arg)));
            out.push(jump(BPF_JSET_K, mask, 0, 1));
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
        }
        Action::NotifyIfFlag { arg, mask } => {
            out.push(jump(BPF_JEQ_K, nr, 0, 4));
            out.push(stmt(BPF_LD_W_ABS, off_arg_lo(arg)));
            out.push(jump(BPF_JSET_K, mask, 1, 0));
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
        }
        Action::NotifyIfNonZero { arg } => {
            out.push(jump(BPF_JEQ_K, nr, 0, 7));
            out.push(stmt(BPF_LD_W_ABS, off_arg_lo(arg)));
            out.push(jump(BPF_JEQ_K, 0, 1, 0));
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
            out.push(stmt(BPF_LD_W_ABS, off_arg_lo(arg) + 4));
            out.push(jump(BPF_JEQ_K, 0, 1, 0));
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
        }
        Action::NotifyIfArgIn { arg, values } => {
            let n = values.len();
            out.push(jump(BPF_JEQ_K, nr, 0, (n + 3) as u8));
            out.push(stmt(BPF_LD_W_ABS, off_arg_lo(arg)));
            for (i, v) in values.iter().enumerate() {
                // Jump over the remaining comparisons and the ALLOW to the NOTIFY.
                out.push(jump(BPF_JEQ_K, *v, (n - i) as u8, 0));
            }
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
            out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
        }
    }
}

/// Emits a binary search over `rules` (sorted), ending every leaf with `RET ALLOW`.
fn emit_tree(out: &mut Vec<libc::sock_filter>, rules: &[Rule]) -> Result<(), Error> {
    if rules.len() <= 6 {
        for r in rules {
            emit_rule(out, r);
        }
        out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
        return Ok(());
    }
    let mid = rules.len() / 2;
    let mut left = Vec::new();
    emit_tree(&mut left, &rules[..mid])?;
    let skip = u8::try_from(left.len()).map_err(|_| Error::InvalidRule {
        nr: rules[mid].nr,
        reason: "filter too large for BPF jumps",
    })?;
    out.push(jump(BPF_JGE_K, rules[mid].nr as u32, skip, 0));
    out.extend(left);
    emit_tree(out, &rules[mid..])
}

fn compile(rules: &[Rule]) -> Result<Vec<libc::sock_filter>, Error> {
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        // Another ABI (i386 via int 0x80) would bypass the table: kill rather than miss events.
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        // Calls from the fast path's trampoline were recorded by the shim (crate::fast).
        stmt(BPF_LD_W_ABS, OFF_IP),
        jump(BPF_JEQ_K, crate::fast::TRAMPOLINE_IP as u32, 0, 3),
        stmt(BPF_LD_W_ABS, OFF_IP + 4),
        jump(BPF_JEQ_K, (crate::fast::TRAMPOLINE_IP >> 32) as u32, 0, 1),
        stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW),
        stmt(BPF_LD_W_ABS, OFF_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ];
    emit_tree(&mut prog, rules)?;
    if prog.len() > 4096 {
        return Err(Error::InvalidRule {
            nr: -1,
            reason: "filter longer than 4096 instructions",
        });
    }
    Ok(prog)
}

/// Evaluates the compiled program on a syscall, as the kernel would (for tests).
pub fn simulate(prog: &[libc::sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    simulate_at(prog, arch, 0, nr, args)
}

/// [`simulate`] for a call made from instruction pointer `ip`.
pub fn simulate_at(prog: &[libc::sock_filter], arch: u32, ip: u64, nr: i64, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as i32).to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    data[8..16].copy_from_slice(&ip.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let ins = prog[pc];
        match ins.code {
            BPF_LD_W_ABS => {
                let k = ins.k as usize;
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().expect("4 bytes"));
                pc += 1;
            }
            BPF_RET_K => return ins.k,
            BPF_JEQ_K | BPF_JGE_K | BPF_JSET_K => {
                let taken = match ins.code {
                    BPF_JEQ_K => acc == ins.k,
                    BPF_JGE_K => acc >= ins.k,
                    _ => acc & ins.k != 0,
                };
                pc += 1 + if taken {
                    ins.jt as usize
                } else {
                    ins.jf as usize
                };
            }
            other => panic!("unexpected BPF opcode {other:#x}"),
        }
    }
}

/// The architecture value the filter accepts.
pub const ARCH: u32 = AUDIT_ARCH_X86_64;
