//! Exact read/write sets of any command tree, unprivileged and cheap.
//!
//! `trace` runs a command under a seccomp filter that stops only path syscalls (DESIGN §7) and
//! hands each one to a supervisor thread through seccomp user notification. The supervisor
//! reads the path from the tracee's memory, makes it absolute, decides whether it exists,
//! records what kind of access it is, and lets the call continue unchanged. The result is a
//! [`Trace`]: a deduplicated, sorted set of (path bytes, [`Kinds`]) plus [`Flags`] for what
//! makes a run unsafe to commit (network use, mount/namespace escapes, lost events).
//!
//! Main types:
//! - [`Filter`]: a declarative table of [`Rule`]s (syscall → [`Action`]), validated (x86_64
//!   only, never trapping what the child needs to hand over the listener) and compiled to a
//!   binary-search BPF program;
//! - [`Tracer`]: spawns a traced [`std::process::Command`] ([`Tracer::spawn`] →
//!   [`TracedChild`] → [`TracedChild::wait`]), or, for callers that create the child themselves
//!   (the sandbox), [`Tracer::start`] → ([`Session`], [`ChildHook`]): call
//!   [`ChildHook::install`] in the child right before `exec` and [`Session::finish`] after it;
//! - [`Trace`]: the result, with [`Trace::conflicts`] to intersect two runs.
//!
//! ```no_run
//! use std::process::Command;
//! let child = trace::spawn_traced(Command::new("make").arg("-C").arg("proj"))?;
//! let (status, trace) = child.wait()?;
//! for (path, kinds) in trace.iter() {
//!     println!("{kinds:>12} {}", String::from_utf8_lossy(path));
//! }
//! # Ok::<(), trace::Error>(())
//! ```
//!
//! # Design decisions
//!
//! - **User notification with `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`**, not ptrace or strace:
//!   measured at 1.36× on a C build against 9× for strace (DESIGN §7). Only path syscalls trap;
//!   `fstat`-like `newfstatat`/`statx` with `AT_EMPTY_PATH` pass in BPF (their file was
//!   recorded when it was opened).
//! - **Listener hand-over by `pidfd_getfd`**, not SCM_RIGHTS: the child writes `(pid, fd)` with
//!   plain `write(2)` to a unix socket whose peer has `SO_PASSCRED` (the kernel adds the pid as
//!   the supervisor sees it, across pid namespaces) and the supervisor copies the fd out of it.
//!   The child's `execve` is itself trapped, so the listener is still open when the supervisor
//!   takes it, and `sendmsg` stays free to trap (network detection).
//! - **Existence is decided by the supervisor**, because with `CONTINUE` the result of the call
//!   is never seen: before the call for calls that change existence (`O_CREAT`, `mkdir`,
//!   `unlink`, `rename`, …), just after letting it continue for pure lookups. Both are exact
//!   within the traced tree, since any call that could change the answer is itself trapped and
//!   waits for the supervisor. Paths are recorded canonical (symlinks resolved), and the path as
//!   written is recorded too (`exists`/`missing`) when it differs, so symlink changes are
//!   conflicts.
//! - **Caches, invalidated by the tree's own changes**: canonical directories, missing
//!   directories and lookup answers are cached and dropped whenever a traced process creates,
//!   deletes or renames an entry (nothing is cached again until that call has completed). A
//!   change made by a process *outside* the tree during the trace can be missed; inside a
//!   sandbox there is none.
//! - Relative paths resolve through the caller's cwd (`/proc/TID/cwd`, cached per thread until
//!   a `chdir`) and dirfds (copied with `pidfd_getfd`, cached and re-validated with `kcmp`),
//!   read while the caller is stopped. A tracee in another mount namespace (the sandbox) is
//!   resolved under its own root with `openat2(RESOLVE_IN_ROOT)`: [`Tracer::root`],
//!   [`Tracer::root_from_tracee`].
//! - **Ptrace fallback** where user notification is unavailable (or `HS_TRACE_FORCE_PTRACE=1`,
//!   [`Tracer::ptrace`]): the same table compiled with `SECCOMP_RET_TRACE`, the supervisor
//!   thread seizes the command and serves seccomp stops with the same decoding. See README.md.
//! - **LD_PRELOAD fast path** ([`Tracer::fast_path`], off by default): a preloaded shim records
//!   the lookups dynamic programs make through libc in a ring shared with the supervisor and
//!   makes them from a trampoline page the filter lets through; anything else still traps, and
//!   the ring is drained before every trapped call, so the trace is the same (README.md).
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(unreachable_pub)]

mod error;
mod fast;
mod filter;
mod model;
mod procs;
mod spawn;
mod supervisor;
mod sys;
mod view;

pub use crate::error::Error;
pub use crate::filter::{
    ARCH, Action, Filter, Rule, default_rules, simulate, simulate_at, stdin_rules,
};
pub use crate::model::{Access, Flags, Kinds, PathBytes, Stats, Trace};
pub use crate::procs::stat_field;
pub use crate::spawn::{ChildHook, Pending, Session, TracedChild, Tracer, spawn_traced};
