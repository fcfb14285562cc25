//! The LD_PRELOAD fast path (see README.md, "Fast path"): a preloaded shim (`shim/hs_fast.c`)
//! records pure lookups made through libc in a ring shared with us and makes them from a
//! trampoline page the filter lets through; here the ring is created, named to the command,
//! and drained into the trace with the same resolution as a trapped lookup.
//!
//! The ring is a file `ring-PID-N` in the tracer's private directory (with the shim; see
//! [`fast_dir`]), removed when the session ends; every traced process maps it by path and
//! closes it again, so programs see exactly their own fds.
//!
//! Ring layout (must match the shim):
//! - header, 4096 bytes: `magic, version, nslots, slot_size: u32`, then `next` (slot
//!   allocation), `count` (records started), `gen` (bumped whenever paths may have changed):
//!   u64, then `inflight` (creates/deletes/renames let go, not known complete), `sleeping`,
//!   `wake` (futex word), padding: u32, then `drained` (records taken out), `created` (bumped
//!   when a new entry may make cached missing paths stale): u64;
//! - `nslots` u32 slot states (free, writing, committed), padded to a page;
//! - `nslots` slots of `slot_size` bytes: `kind: u16, flags: u8` (follow, simple),
//!   `result: u8` (unknown, exists, missing), `len: u32`, path.
//!
//! A writer claims a free slot and fills it, makes the call, then stores the call's outcome,
//! increments `count` and marks the slot committed before the wrapper returns; it wakes the
//! reader only when a backlog of an eighth of the ring built up (the reader drains every 8 ms
//! while records come in). A "simple" record (a canonical directory from `getcwd`,
//! `/proc/self/fd` or realpath's own walk, and one plain name) that does not follow its last
//! component and has a known outcome needs no resolution here. Records are lookups only, so
//! their order among themselves does not matter; the supervisor drains the ring before it lets
//! any create, delete or rename go, which orders them before every later change of a path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::model::{Kinds, Trace};
use crate::supervisor::{Resolver, symlink_lookup};
use crate::sys::SharedMap;
use crate::view::View;

/// The shim, built from shim/hs_fast.c by build.rs.
static SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hs_fast.so"));

/// Where the shim maps its trampoline, and the address right after its `syscall` instruction
/// (what the filter compares `instruction_pointer` with).
pub(crate) const TRAMPOLINE_IP: u64 = 0x4853_0000_0000 + 25;

const MAGIC: u32 = 0x4853_4652;
const VERSION: u32 = 1;
const HDR: usize = 4096;
const SLOT: usize = 512;
const SLOT_HEAD: usize = 8;
const NSLOTS: usize = 4096;
const OFF_NEXT: usize = 16;
const OFF_COUNT: usize = 24;
const OFF_GEN: usize = 32;
const OFF_INFLIGHT: usize = 40;
const OFF_SLEEPING: usize = 44;
const OFF_WAKE: usize = 48;
const OFF_DRAINED: usize = 56;
const OFF_CREATED: usize = 64;
/// The slot states, padded to a page.
const STATES: usize = (NSLOTS * 4).div_ceil(4096) * 4096;
const FREE: u32 = 0;
const WRITING: u32 = 1;
const COMMITTED: u32 = 2;
const F_FOLLOW: u8 = 1;
const F_SIMPLE: u8 = 2;
const R_UNKNOWN: u8 = 0;
const R_EXISTS: u8 = 1;

/// One record taken out of the ring.
struct Taken {
    kind: u16,
    follow: bool,
    simple: bool,
    result: u8,
    path: Vec<u8>,
}

/// The shared ring, its reader state, and the shim's file.
pub(crate) struct Fast {
    map: SharedMap,
    ring: PathBuf,
    dev: u64,
    ino: u64,
    shim: PathBuf,
    /// The shim's path and its canonical path: the loader's opens of it are not the command's.
    shim_paths: [Vec<u8>; 2],
    /// Set once the tracee's view is known (see [`Fast::set_view`]).
    drainer: Mutex<Option<Drainer>>,
    /// Stops the reader thread.
    stop: AtomicBool,
}

impl std::fmt::Debug for Fast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fast").field("shim", &self.shim).finish()
    }
}

struct Drainer {
    resolver: Resolver,
    generation: u64,
    /// The ring's `created` counter when the resolver's answers were last cleared.
    created: u64,
    /// Where the next scan starts (a value of `next`): writers claim slots in `next` order,
    /// so new records are found between here and `next` (with a whole-ring scan when some
    /// counted record was not).
    scan_from: u64,
}

/// What the shim's `kind` field means (the class a trapped call of the same kind gets).
fn kinds_of(kind: u16) -> Option<Kinds> {
    match kind {
        1 => Some(Kinds::STAT),
        2 => Some(Kinds::READ),
        3 => Some(Kinds::EXISTS),
        _ => None,
    }
}

impl Fast {
    /// A new ring and the shim's file, or why not.
    pub(crate) fn new() -> std::io::Result<Fast> {
        static RINGS: AtomicU64 = AtomicU64::new(0);
        let dir = fast_dir()?;
        let shim = shim_file(&dir)?;
        let ring = dir.join(format!(
            "ring-{}-{}",
            std::process::id(),
            RINGS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&ring); // left by a process that had our pid
        let (fd, map) = SharedMap::create(&ring, HDR + STATES + NSLOTS * SLOT)?;
        let mut head = Vec::with_capacity(16);
        for v in [MAGIC, VERSION, NSLOTS as u32, SLOT as u32] {
            head.extend_from_slice(&v.to_ne_bytes());
        }
        map.write(0, &head);
        let st = nix::sys::stat::fstat(&fd)?;
        drop(fd);
        let raw = shim.as_os_str().as_encoded_bytes().to_vec();
        let canon = std::fs::canonicalize(&shim)
            .map(|p| p.into_os_string().into_encoded_bytes())
            .unwrap_or_else(|_| raw.clone());
        Ok(Fast {
            map,
            ring,
            dev: st.st_dev,
            ino: st.st_ino,
            shim,
            shim_paths: [raw, canon],
            drainer: Mutex::new(None),
            stop: AtomicBool::new(false),
        })
    }

    /// The variables that load the shim into a command whose environment has `user_preload`
    /// as `LD_PRELOAD`.
    pub(crate) fn env(
        &self,
        user_preload: Option<&std::ffi::OsStr>,
    ) -> Vec<(String, std::ffi::OsString)> {
        let shim = self.shim.as_os_str();
        // After the user's own preloads, which keep their place (a sanitizer's runtime must
        // come first).
        let mut preload = std::ffi::OsString::new();
        let mut orig = std::ffi::OsString::from(if user_preload.is_some() { "1" } else { "0" });
        if let Some(u) = user_preload {
            preload.push(u);
            preload.push(" ");
            orig.push(u);
        }
        preload.push(shim);
        let mut fast = std::ffi::OsString::from(format!("{}:{}:", self.dev, self.ino));
        fast.push(&self.ring);
        fast.push(":");
        fast.push(shim);
        vec![
            ("LD_PRELOAD".into(), preload),
            ("__HS_FAST".into(), fast),
            ("__HS_FAST_LD".into(), orig),
        ]
    }

    /// Whether `path` is the shim's own file (opened by the loader, not by the command).
    pub(crate) fn is_shim(&self, path: &[u8]) -> bool {
        self.shim_paths.iter().any(|p| p == path)
    }

    /// Starts draining: records are resolved in `view`, the tracee's.
    pub(crate) fn set_view(&self, view: View) {
        let mut d = self.drainer.lock().unwrap_or_else(|e| e.into_inner());
        *d = Some(Drainer {
            resolver: Resolver::new(view),
            generation: u64::MAX,
            created: u64::MAX,
            scan_from: 0,
        });
    }

    /// The supervisor's caches changed: a delete or rename (`all`) makes cached directory
    /// paths (the shim's and the drainer's) stale, a create only the drainer's answers;
    /// `unsettled` says whether such a call may still be in flight (nothing is cached
    /// meanwhile).
    pub(crate) fn caches_changed(&self, all: bool, unsettled: bool) {
        self.map
            .u32_at(OFF_INFLIGHT)
            .store(unsettled as u32, Ordering::SeqCst);
        let which = if all { OFF_GEN } else { OFF_CREATED };
        self.map.u64_at(which).fetch_add(1, Ordering::SeqCst);
    }

    fn pending(&self) -> bool {
        self.map.u64_at(OFF_COUNT).load(Ordering::SeqCst)
            != self.map.u64_at(OFF_DRAINED).load(Ordering::SeqCst)
    }

    /// Moves every committed record into `trace`; returns how many there were.
    pub(crate) fn drain(&self, trace: &Mutex<Trace>) -> usize {
        if !self.pending() {
            return 0;
        }
        let mut guard = self.drainer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(d) = guard.as_mut() else {
            return 0;
        };
        let counted = self.map.u64_at(OFF_COUNT).load(Ordering::SeqCst);
        let next = self.map.u64_at(OFF_NEXT).load(Ordering::SeqCst);
        let mut taken = Vec::new();
        let from = d.scan_from.min(next);
        let mut whole = next - from >= NSLOTS as u64;
        if !whole {
            d.scan_from = next;
            for abs in from..next {
                let i = (abs % NSLOTS as u64) as usize;
                if !self.take_slot(i, &mut taken)
                    && self.state(i).load(Ordering::SeqCst) == WRITING
                    && abs < d.scan_from
                {
                    d.scan_from = abs; // not committed yet: look again next time
                }
            }
        }
        let done = self.map.u64_at(OFF_DRAINED).load(Ordering::SeqCst);
        whole |= done + (taken.len() as u64) < counted;
        if whole {
            for i in 0..NSLOTS {
                self.take_slot(i, &mut taken);
            }
            d.scan_from = next;
        }
        if taken.is_empty() {
            return 0;
        }
        let now = self.map.u64_at(OFF_GEN).load(Ordering::SeqCst);
        let created = self.map.u64_at(OFF_CREATED).load(Ordering::SeqCst);
        if now != d.generation {
            d.resolver.invalidate();
            d.generation = now;
            d.created = created;
        } else if created != d.created {
            d.resolver.forget_answers();
            d.created = created;
        }
        let n = taken.len();
        let mut records = Vec::with_capacity(n);
        for Taken {
            kind,
            follow,
            simple,
            result,
            path,
        } in taken
        {
            let Some(if_exists) = kinds_of(kind) else {
                continue;
            };
            if simple && !follow && result != R_UNKNOWN {
                // What resolution would find: the path itself, as the call saw it.
                let kinds = if result == R_EXISTS {
                    if_exists
                } else {
                    Kinds::MISSING
                };
                records.push((path, kinds));
                continue;
            }
            d.resolver.caching = self.map.u32_at(OFF_INFLIGHT).load(Ordering::SeqCst) == 0
                && self.map.u64_at(OFF_GEN).load(Ordering::SeqCst) == d.generation
                && self.map.u64_at(OFF_CREATED).load(Ordering::SeqCst) == d.created;
            let (canon, exists) = d.resolver.resolve(&path, follow);
            records.extend(symlink_lookup(&path, &canon, exists));
            records.push((canon, if exists { if_exists } else { Kinds::MISSING }));
        }
        let mut t = trace.lock().unwrap_or_else(|e| e.into_inner());
        t.stats.fast += n as u64;
        for (path, kinds) in records {
            if !self.is_shim(&path) {
                t.record(&path, kinds);
            }
        }
        drop(t);
        // Counted as processed only once in the trace, with the drainer still locked: a
        // concurrent `drain` (Session::take, finish) must wait for this one, not return early.
        self.map
            .u64_at(OFF_DRAINED)
            .fetch_add(n as u64, Ordering::SeqCst);
        drop(guard);
        n
    }

    fn state(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        self.map.u32_at(HDR + 4 * i)
    }

    /// Takes slot `i` if it holds a committed record; returns whether it did.
    fn take_slot(&self, i: usize, taken: &mut Vec<Taken>) -> bool {
        let state = self.state(i);
        if state.load(Ordering::Acquire) != COMMITTED {
            return false;
        }
        let at = HDR + STATES + i * SLOT;
        let mut head = [0u8; SLOT_HEAD];
        self.map.read(at, &mut head);
        let len = (u32::from_ne_bytes(head[4..8].try_into().expect("4 bytes")) as usize)
            .min(SLOT - SLOT_HEAD);
        let mut path = vec![0u8; len];
        self.map.read(at + SLOT_HEAD, &mut path);
        state.store(FREE, Ordering::Release);
        taken.push(Taken {
            kind: u16::from_ne_bytes([head[0], head[1]]),
            follow: head[2] & F_FOLLOW != 0,
            simple: head[2] & F_SIMPLE != 0,
            result: head[3],
            path,
        });
        true
    }

    /// The reader thread's loop until [`Fast::stop`]: drain, then sleep 8 ms while records
    /// come in, up to 64 ms when none do, or until a writer wakes us (a backlog of an eighth
    /// of the ring). Waking more often fought the supervisor for its locks and its CPU on
    /// exec-heavy work (fork/exec loop: 1.87x -> 1.78x against 1.68x without the fast path).
    pub(crate) fn read_until_stopped(&self, trace: &Mutex<Trace>) {
        let sleeping = self.map.u32_at(OFF_SLEEPING);
        let wake = self.map.u32_at(OFF_WAKE);
        let mut nap = Duration::from_millis(8);
        while !self.stop.load(Ordering::SeqCst) {
            let w0 = wake.load(Ordering::SeqCst);
            nap = if self.drain(trace) > 0 {
                Duration::from_millis(8)
            } else {
                (nap * 2).min(Duration::from_millis(64))
            };
            sleeping.store(1, Ordering::SeqCst);
            if !self.stop.load(Ordering::SeqCst) {
                self.map.wait(OFF_WAKE, w0, nap);
            }
            sleeping.store(0, Ordering::SeqCst);
        }
    }

    /// Ends [`Fast::read_until_stopped`].
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.map.u32_at(OFF_WAKE).fetch_add(1, Ordering::SeqCst);
        self.map.wake(OFF_WAKE);
    }
}

impl Drop for Fast {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ring);
    }
}

/// The private directory of the shim and the rings: `hs-fast-UID` (mode 0700, ours) in
/// `/dev/shm` when it is a tmpfs (rings in memory), else in `$TMPDIR`; never on a filesystem
/// mounted `noexec`, from which the loader could not map the shim. Rings left by processes
/// that no longer exist are removed the first time.
fn fast_dir() -> std::io::Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut why = Vec::new();
        let shm = Path::new("/dev/shm");
        let tmpfs = nix::sys::statfs::statfs(shm)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        let bases = if tmpfs {
            vec![shm.to_path_buf(), std::env::temp_dir()]
        } else {
            vec![std::env::temp_dir()]
        };
        for base in bases {
            match private_dir(&base) {
                Ok(d) => {
                    remove_stale_rings(&d);
                    return Ok(d);
                }
                Err(e) => why.push(format!("{}: {e}", base.display())),
            }
        }
        Err(why.join("; "))
    })
    .clone()
    .map_err(std::io::Error::other)
}

fn private_dir(base: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = nix::unistd::geteuid().as_raw();
    let dir = base.join(format!("hs-fast-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not a private directory of uid {uid}",
            dir.display()
        )));
    }
    if crate::sys::mounted_noexec(&dir)? {
        return Err(std::io::Error::other("mounted noexec"));
    }
    // LD_PRELOAD splits on spaces and colons, $__HS_FAST on colons.
    let bytes = dir.as_os_str().as_encoded_bytes();
    if bytes.iter().any(|&b| b == b' ' || b == b':') || bytes.len() > 180 {
        return Err(std::io::Error::other("cannot be named in LD_PRELOAD"));
    }
    Ok(dir)
}

/// Removes `ring-PID-N` files of processes that no longer exist (a tracer that was killed).
fn remove_stale_rings(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ring-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes the shim to `DIR/HASH.so` (once per content) and returns its path. The loader needs
/// a path that stays valid whatever the command does with its fds.
fn shim_file(dir: &Path) -> std::io::Result<PathBuf> {
    // FNV-1a of the content names the file: a changed shim never replaces one in use.
    let hash = SHIM.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{hash:016x}.so"));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == SHIM.len() as u64) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{hash:016x}.{}", std::process::id()));
    std::fs::write(&tmp, SHIM)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
