//! Commit: apply a sandbox's upper dirs to the live filesystem, transactionally.
//!
//! 1. **Prepare** (live filesystem untouched): walk each upper dir and build a list of
//!    operations — `Delete` (a whiteout: rename the live path into a trash directory), `Place`
//!    (move a new or changed entry, a whole new/opaque directory tree at once, into place) and
//!    `Meta` (directory mode/owner/times). Entries to move lose their overlay xattrs and the
//!    whiteouts inside them. When the upper dir is on another filesystem than the live path,
//!    the entry is first copied (reflink when possible) to a temporary name next to its
//!    destination, keeping mode, owner, times and xattrs; temporaries are listed in
//!    `journal.prep` beforehand, so a crash here only leaves temporaries that recovery deletes.
//! 2. **Journal**: the operations, each with the inode number of the entry it moves, are
//!    written to `journal` (write, fsync, rename, fsync dir) before anything live changes.
//! 3. **Apply**: deletions deepest-first, placements parents-first, directory metadata
//!    deepest-first. Each placement is one `renameat2` — `RENAME_EXCHANGE` when the live path
//!    exists — so every path is at all times either its old or its new version. Each operation
//!    is idempotent, judged by inode numbers, so recovery simply applies the journal again.
//! 4. **Finish**: write `committed`, remove the journal, delete the trash and the upper dirs.

use std::ffi::{CString, OsString};
use std::fs::Metadata;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::changes::{compare_leaf, is_opaque, is_whiteout};
use crate::error::Error;
use crate::plan::Layer;
use crate::sys;

/// File name of the commit journal inside the sandbox directory.
pub(crate) const JOURNAL: &str = "journal";
const JOURNAL_PREP: &str = "journal.prep";
const COMMITTED: &str = "committed";
/// Written when the sandbox first runs; its mtime dates the conflict check.
pub(crate) const STARTED: &str = "started";

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Entries moved into place by rename.
    pub renamed: u64,
    /// Entries copied (upper dir on another filesystem).
    pub copied: u64,
    /// Live paths deleted.
    pub deleted: u64,
    /// Directories whose metadata was applied.
    pub metadata: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Delete {
        live: PathBuf,
        trash: PathBuf,
        ino: u64,
    },
    Place {
        live: PathBuf,
        src: PathBuf,
        ino: u64,
    },
    Meta {
        live: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
        atime: (i64, i64),
        mtime: (i64, i64),
    },
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.overlay.") || name.starts_with(b"trusted.overlay.")
}

fn commit_err(
    phase: &'static str,
    path: &Path,
    applied: bool,
    e: impl Into<std::io::Error>,
) -> Error {
    Error::Commit {
        phase,
        path: path.to_path_buf(),
        applied,
        source: e.into(),
    }
}

/// Remove a tree, making directories writable first (overlay work dirs have mode 000).
pub(crate) fn remove_tree(path: &Path) -> Result<(), Error> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("remove", path, e)),
    };
    if md.is_dir() {
        if md.mode() & 0o700 != 0o700 {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
        }
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                remove_tree(&e.path())?;
            }
        }
        std::fs::remove_dir(path).map_err(|e| Error::io("remove", path, e))
    } else {
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }
}

/// Strip overlay xattrs from `path` and, for a directory, everything below it; delete the
/// whiteouts below it (they hide nothing once the tree moves as a whole).
fn sanitize(path: &Path, is_dir: bool) -> Result<(), Error> {
    let c = cpath(path);
    for name in sys::llistxattr(&c).map_err(|e| commit_err("reading xattrs of", path, false, e))? {
        if is_overlay_xattr(&name) {
            let n = CString::new(name).unwrap_or_default();
            sys::lremovexattr(&c, &n)
                .map_err(|e| commit_err("removing overlay xattrs from", path, false, e))?;
        }
    }
    if is_dir {
        let rd = std::fs::read_dir(path).map_err(|e| commit_err("reading", path, false, e))?;
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if is_whiteout(&p, &m) {
                std::fs::remove_file(&p)
                    .map_err(|e| commit_err("removing whiteout", &p, false, e))?;
            } else {
                sanitize(&p, m.is_dir())?;
            }
        }
    }
    Ok(())
}

fn copy_meta(src: &Path, dst: &Path, md: &Metadata) -> std::io::Result<()> {
    let (cs, cd) = (cpath(src), cpath(dst));
    if let Ok(names) = sys::llistxattr(&cs) {
        for name in names {
            if is_overlay_xattr(&name) {
                continue;
            }
            let n = CString::new(name).unwrap_or_default();
            if let Ok(Some(v)) = sys::lgetxattr(&cs, &n) {
                let _ = sys::lsetxattr(&cd, &n, &v);
            }
        }
    }
    let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
    if !md.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    sys::lutimens(
        &cd,
        (md.atime(), md.atime_nsec()),
        (md.mtime(), md.mtime_nsec()),
    )?;
    Ok(())
}

/// Copy an upper entry (recursively) to `dst`, which must not exist.
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    let t = md.file_type();
    if t.is_dir() {
        std::fs::create_dir(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            let p = e.path();
            let m = std::fs::symlink_metadata(&p)?;
            if !is_whiteout(&p, &m) {
                copy_tree(&p, &dst.join(e.file_name()))?;
            }
        }
    } else if t.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else if t.is_file() {
        let mut from = std::fs::File::open(src)?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)?;
        use std::os::fd::AsRawFd;
        if sys::ficlone(to.as_raw_fd(), from.as_raw_fd()).is_err() {
            std::io::copy(&mut from, &mut to)?;
        }
        to.flush()?;
    } else {
        let kind = if t.is_fifo() {
            nix::sys::stat::SFlag::S_IFIFO
        } else if t.is_socket() {
            nix::sys::stat::SFlag::S_IFSOCK
        } else if t.is_char_device() {
            nix::sys::stat::SFlag::S_IFCHR
        } else {
            nix::sys::stat::SFlag::S_IFBLK
        };
        nix::sys::stat::mknod(
            dst,
            kind,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            md.rdev(),
        )?;
    }
    copy_meta(src, dst, &md)
}

struct Planner<'a> {
    dir: &'a Path,
    id: String,
    n: u64,
    deletes: Vec<Op>,
    places: Vec<Op>,
    metas: Vec<Op>,
    temps: Vec<PathBuf>,
    copies: Vec<(PathBuf, PathBuf, PathBuf)>, // (upper src, temp, live)
    report: CommitReport,
    /// Conflict check: refuse to replace or delete a live entry changed (ctime) after this
    /// time, the start of the sandbox's first run (seconds, nanoseconds).
    since: Option<(i64, i64)>,
}

impl Planner<'_> {
    fn temp_next_to(&mut self, live: &Path, what: &str) -> PathBuf {
        self.n += 1;
        let parent = live.parent().unwrap_or(Path::new("/"));
        parent.join(format!(".hs-{what}-{}-{}", self.id, self.n))
    }

    fn walk(&mut self, upper: &Path, live: &Path, trash: Option<&Path>) -> Result<(), Error> {
        let rd = match std::fs::read_dir(upper) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(commit_err("reading", upper, false, e)),
        };
        use std::os::unix::fs::DirEntryExt;
        let mut entries: Vec<(OsString, Option<std::fs::FileType>, u64)> = rd
            .flatten()
            .map(|e| (e.file_name(), e.file_type().ok(), e.ino()))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, ft, ino) in entries {
            let u = upper.join(&name);
            let l = live.join(&name);
            let lm = std::fs::symlink_metadata(&l).ok();
            if let (Some(m), Some(since)) = (&lm, self.since)
                && (m.ctime(), m.ctime_nsec()) > since
                && !m.is_dir()
            {
                return Err(Error::Conflict { path: l });
            }
            // Fast path (most entries of a big commit): a new non-directory needs no stat;
            // the type and inode number come from readdir. Whiteouts are character devices.
            if lm.is_none() && ft.is_some_and(|t| !t.is_dir() && !t.is_char_device()) {
                if trash.is_some() {
                    sanitize(&u, false)?;
                    self.places.push(Op::Place {
                        live: l,
                        src: u,
                        ino,
                    });
                    self.report.renamed += 1;
                } else {
                    let tmp = self.temp_next_to(&l, "new");
                    self.temps.push(tmp.clone());
                    self.copies.push((u, tmp, l));
                    self.report.copied += 1;
                }
                continue;
            }
            let um =
                std::fs::symlink_metadata(&u).map_err(|e| commit_err("reading", &u, false, e))?;
            if is_whiteout(&u, &um) {
                if let Some(lm) = lm {
                    self.n += 1;
                    let t = match trash {
                        Some(t) => t.join(self.n.to_string()),
                        None => self.temp_next_to(&l, "trash"),
                    };
                    self.deletes.push(Op::Delete {
                        live: l,
                        trash: t,
                        ino: lm.ino(),
                    });
                }
                continue;
            }
            let both_dirs = um.is_dir() && lm.as_ref().is_some_and(Metadata::is_dir);
            if both_dirs && !is_opaque(&u) {
                self.walk(&u, &l, trash)?;
                self.metas.push(Op::Meta {
                    live: l,
                    mode: um.mode() & 0o7777,
                    uid: um.uid(),
                    gid: um.gid(),
                    atime: (um.atime(), um.atime_nsec()),
                    mtime: (um.mtime(), um.mtime_nsec()),
                });
                continue;
            }
            if !um.is_dir()
                && let Some(lm) = &lm
                && compare_leaf(&u, &um, &l, lm).is_none()
            {
                continue; // copied up but unchanged
            }
            if trash.is_some() {
                sanitize(&u, um.is_dir())?;
                self.places.push(Op::Place {
                    live: l,
                    src: u,
                    ino: um.ino(),
                });
                self.report.renamed += 1;
            } else {
                let tmp = self.temp_next_to(&l, "new");
                self.temps.push(tmp.clone());
                self.copies.push((u, tmp, l));
                self.report.copied += 1;
            }
        }
        Ok(())
    }
}

fn push_path(out: &mut Vec<u8>, p: &Path) {
    out.extend(p.as_os_str().as_bytes());
    out.push(0);
}

fn push_num(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    out.extend(n.to_string().as_bytes());
    out.push(0);
}

fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = b"hs-journal 1\n".to_vec();
    for op in ops {
        match op {
            Op::Delete { live, trash, ino } => {
                out.extend(b"D\0");
                push_path(&mut out, live);
                push_path(&mut out, trash);
                push_num(&mut out, ino);
            }
            Op::Place { live, src, ino } => {
                out.extend(b"P\0");
                push_path(&mut out, live);
                push_path(&mut out, src);
                push_num(&mut out, ino);
            }
            Op::Meta {
                live,
                mode,
                uid,
                gid,
                atime,
                mtime,
            } => {
                out.extend(b"M\0");
                push_path(&mut out, live);
                for n in [
                    *mode as i64,
                    *uid as i64,
                    *gid as i64,
                    atime.0,
                    atime.1,
                    mtime.0,
                    mtime.1,
                ] {
                    push_num(&mut out, n);
                }
            }
        }
    }
    out
}

fn decode(data: &[u8]) -> Option<Vec<Op>> {
    let rest = data.strip_prefix(b"hs-journal 1\n")?;
    let mut it = rest.split(|&b| b == 0);
    let mut ops = Vec::new();
    let path = |b: &[u8]| PathBuf::from(OsString::from_vec(b.to_vec()));
    let num = |b: Option<&[u8]>| -> Option<i64> { std::str::from_utf8(b?).ok()?.parse().ok() };
    while let Some(tag) = it.next() {
        match tag {
            b"D" => ops.push(Op::Delete {
                live: path(it.next()?),
                trash: path(it.next()?),
                ino: num(it.next())? as u64,
            }),
            b"P" => ops.push(Op::Place {
                live: path(it.next()?),
                src: path(it.next()?),
                ino: num(it.next())? as u64,
            }),
            b"M" => {
                let live = path(it.next()?);
                let mut v = [0i64; 7];
                for x in &mut v {
                    *x = num(it.next())?;
                }
                ops.push(Op::Meta {
                    live,
                    mode: v[0] as u32,
                    uid: v[1] as u32,
                    gid: v[2] as u32,
                    atime: (v[3], v[4]),
                    mtime: (v[5], v[6]),
                });
            }
            b"" => {}
            _ => return None,
        }
    }
    Some(ops)
}

fn write_durably(dir: &Path, name: &str, data: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f =
        std::fs::File::create(&tmp).map_err(|e| commit_err("writing journal", &tmp, false, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| commit_err("writing journal", &tmp, false, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| commit_err("writing journal", &path, false, e))?;
    sys::fsync_path(&cpath(dir)).map_err(|e| commit_err("syncing", dir, false, e))
}

fn ino_of(p: &Path) -> Option<u64> {
    std::fs::symlink_metadata(p).ok().map(|m| m.ino())
}

/// Test hook: `HS_COMMIT_CRASH_AFTER=N` kills the process (SIGKILL) after N applied
/// operations, to test recovery.
fn crash_point() -> Option<u64> {
    std::env::var("HS_COMMIT_CRASH_AFTER").ok()?.parse().ok()
}

/// Apply one operation, right after planning it: the state is known, so no checks.
fn apply_fresh(op: &Op) -> Result<(), Error> {
    match op {
        Op::Delete { live, trash, .. } => {
            match sys::renameat2(&cpath(live), &cpath(trash), libc::RENAME_NOREPLACE) {
                Ok(()) | Err(sys::Errno::ENOENT) => Ok(()),
                Err(e) => Err(commit_err("deleting", live, true, e)),
            }
        }
        Op::Place { live, src, .. } => {
            let (cs, cl) = (cpath(src), cpath(live));
            match sys::renameat2(&cs, &cl, libc::RENAME_NOREPLACE) {
                Ok(()) => Ok(()),
                Err(sys::Errno::EEXIST) => sys::renameat2(&cs, &cl, libc::RENAME_EXCHANGE)
                    .map_err(|e| commit_err("replacing", live, true, e)),
                Err(e) => Err(commit_err("creating", live, true, e)),
            }
        }
        Op::Meta { .. } => apply(op),
    }
}

/// Apply one operation, idempotently (recovery: the operation may have been applied).
fn apply(op: &Op) -> Result<(), Error> {
    match op {
        Op::Delete { live, trash, ino } => {
            if ino_of(live) == Some(*ino) {
                sys::renameat2(&cpath(live), &cpath(trash), libc::RENAME_NOREPLACE)
                    .map_err(|e| commit_err("deleting", live, true, e))?;
            }
        }
        Op::Place { live, src, ino } => {
            if ino_of(live) == Some(*ino) || ino_of(src) != Some(*ino) {
                return Ok(());
            }
            let (cs, cl) = (cpath(src), cpath(live));
            match sys::renameat2(&cs, &cl, libc::RENAME_NOREPLACE) {
                Ok(()) => {}
                Err(sys::Errno::EEXIST) => sys::renameat2(&cs, &cl, libc::RENAME_EXCHANGE)
                    .map_err(|e| commit_err("replacing", live, true, e))?,
                Err(e) => return Err(commit_err("creating", live, true, e)),
            }
        }
        Op::Meta {
            live,
            mode,
            uid,
            gid,
            atime,
            mtime,
        } => {
            let _ = std::os::unix::fs::lchown(live, Some(*uid), Some(*gid));
            std::fs::set_permissions(live, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| commit_err("setting mode of", live, true, e))?;
            sys::lutimens(&cpath(live), *atime, *mtime)
                .map_err(|e| commit_err("setting times of", live, true, e))?;
        }
    }
    Ok(())
}

fn pending_dir() -> PathBuf {
    let (uid, _, _) = sys::ids();
    crate::sandbox::default_base().join(format!("hs-pending-{uid}"))
}

fn pending_link(dir: &Path) -> PathBuf {
    let ino = std::fs::metadata(dir).map(|m| m.ino()).unwrap_or(0);
    pending_dir().join(format!("{ino:x}"))
}

fn finish(dir: &Path, layers: &[Layer], ops: &[Op]) -> Result<(), Error> {
    std::fs::write(dir.join(COMMITTED), b"")
        .map_err(|e| commit_err("marking committed", dir, true, e))?;
    let _ = sys::fsync_path(&cpath(dir));
    std::fs::remove_file(dir.join(JOURNAL))
        .map_err(|e| commit_err("removing journal", dir, true, e))?;
    let _ = std::fs::remove_file(pending_link(dir));
    // Old versions now sit where the new ones came from; temporaries and trash go too.
    for op in ops {
        match op {
            Op::Delete { trash, .. } => remove_tree(trash)?,
            Op::Place { live, src, .. }
                if !src.starts_with(dir) && src.parent() == live.parent() =>
            {
                remove_tree(src)?
            }
            _ => {}
        }
    }
    for l in layers {
        remove_tree(&l.upper)?;
        remove_tree(&l.work)?;
        if let Some(p) = l.upper.parent() {
            remove_tree(&p.join("trash"))?;
            let _ = std::fs::remove_dir(p);
        }
    }
    Ok(())
}

fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Error> {
    let path = dir.join("sandbox.meta");
    let f = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io("lock", &path, e.into()))
}

/// Commit the sandbox in `dir` with the given layers.
pub(crate) fn commit(dir: &Path, layers: &[Layer], check: bool) -> Result<CommitReport, Error> {
    let _lock = lock(dir)?;
    if dir.join(COMMITTED).exists() {
        return Err(Error::AlreadyCommitted {
            dir: dir.to_path_buf(),
        });
    }
    if dir.join(JOURNAL).exists() || dir.join(JOURNAL_PREP).exists() {
        return Err(Error::CommitPending {
            dir: dir.to_path_buf(),
        });
    }
    let timing = std::env::var_os("HS_SANDBOX_TIMING").is_some();
    crate::exec::mark(timing, "commit: start");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut p = Planner {
        dir,
        id: format!("{}-{}", std::process::id(), now.as_nanos()),
        n: 0,
        deletes: Vec::new(),
        places: Vec::new(),
        metas: Vec::new(),
        temps: Vec::new(),
        copies: Vec::new(),
        report: CommitReport::default(),
        since: if check {
            std::fs::metadata(dir.join(STARTED))
                .ok()
                .map(|m| (m.mtime(), m.mtime_nsec()))
        } else {
            None
        },
    };
    let _ = p.dir;
    for l in layers {
        let same_fs = match (std::fs::metadata(&l.upper), std::fs::metadata(&l.target)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => false,
        };
        let trash = l.upper.parent().map(|d| d.join("trash"));
        if same_fs && let Some(t) = &trash {
            std::fs::create_dir_all(t).map_err(|e| commit_err("creating", t, false, e))?;
        }
        p.walk(
            &l.upper,
            &l.target,
            if same_fs { trash.as_deref() } else { None },
        )?;
    }

    // Preflight: every directory the commit changes must be writable by the caller, so that
    // a permission problem aborts here rather than half-way through applying.
    let mut parents: Vec<&Path> = p
        .deletes
        .iter()
        .chain(&p.places)
        .filter_map(|op| match op {
            Op::Delete { live, .. } | Op::Place { live, .. } => live.parent(),
            Op::Meta { .. } => None,
        })
        .chain(p.copies.iter().filter_map(|(_, _, live)| live.parent()))
        .collect();
    parents.sort();
    parents.dedup();
    for parent in parents {
        if let Err(e) = nix::unistd::access(parent, nix::unistd::AccessFlags::W_OK) {
            return Err(commit_err("checking write permission on", parent, false, e));
        }
    }
    crate::exec::mark(timing, "commit: planned");
    // Register so that `hs recover` finds this directory after a crash.
    let link = pending_link(dir);
    let _ = std::fs::create_dir_all(pending_dir());
    let _ = std::fs::remove_file(&link);
    let _ = std::os::unix::fs::symlink(dir, &link);

    // Copies (another filesystem): list the temporaries first, then create them.
    if !p.copies.is_empty() {
        let mut prep = b"hs-prep 1\n".to_vec();
        for t in &p.temps {
            push_path(&mut prep, t);
        }
        write_durably(dir, JOURNAL_PREP, &prep)?;
        for (src, tmp, live) in std::mem::take(&mut p.copies) {
            if let Err(e) = copy_tree(&src, &tmp) {
                for t in &p.temps {
                    let _ = remove_tree(t);
                }
                let _ = std::fs::remove_file(dir.join(JOURNAL_PREP));
                let _ = std::fs::remove_file(&link);
                let e = if e.raw_os_error() == Some(libc::ENOSPC) {
                    std::io::Error::new(
                        e.kind(),
                        "no space left on device (hint: free space on the target filesystem, or keep the sandbox dir on the same filesystem so commit renames)",
                    )
                } else {
                    e
                };
                return Err(commit_err("copying", &live, false, e));
            }
            let ino = ino_of(&tmp).unwrap_or(0);
            p.places.push(Op::Place {
                live,
                src: tmp,
                ino,
            });
        }
    }

    // Deletions deepest-first, placements parents-first, directory metadata deepest-first.
    let depth = |op: &Op| match op {
        Op::Delete { live, .. } => live.components().count(),
        _ => 0,
    };
    p.deletes.sort_by_key(|op| std::cmp::Reverse(depth(op)));
    let mut ops = std::mem::take(&mut p.deletes);
    p.report.deleted = ops.len() as u64;
    p.places.sort_by(|a, b| match (a, b) {
        (Op::Place { live: x, .. }, Op::Place { live: y, .. }) => {
            x.as_os_str().as_bytes().cmp(y.as_os_str().as_bytes())
        }
        _ => std::cmp::Ordering::Equal,
    });
    ops.append(&mut p.places);
    p.report.metadata = p.metas.len() as u64;
    ops.append(&mut p.metas);

    crate::exec::mark(timing, "commit: prepared");
    write_durably(dir, JOURNAL, &encode(&ops))?;
    crate::exec::mark(timing, "commit: journal written");
    let _ = std::fs::remove_file(dir.join(JOURNAL_PREP));
    let crash = crash_point();
    for (i, op) in ops.iter().enumerate() {
        if crash == Some(i as u64) {
            let _ = sys::kill(std::process::id() as i32, libc::SIGKILL);
        }
        apply_fresh(op)?;
    }
    crate::exec::mark(timing, "commit: applied");
    finish(dir, layers, &ops)?;
    crate::exec::mark(timing, "commit: finished");
    Ok(p.report)
}

/// Finish or roll back an interrupted commit of the sandbox in `dir`. Returns whether there
/// was anything to recover.
pub fn recover(dir: &Path) -> Result<bool, Error> {
    let layers = crate::sandbox::read_meta(dir)?;
    let _lock = lock(dir)?;
    let mut did = false;
    let prep = dir.join(JOURNAL_PREP);
    if let Ok(data) = std::fs::read(&prep) {
        // Crashed while copying: nothing live changed; drop the temporaries.
        if let Some(rest) = data.strip_prefix(b"hs-prep 1\n") {
            for t in rest.split(|&b| b == 0).filter(|t| !t.is_empty()) {
                remove_tree(Path::new(std::ffi::OsStr::from_bytes(t)))?;
            }
        }
        let _ = std::fs::remove_file(&prep);
        did = true;
    }
    let journal = dir.join(JOURNAL);
    match std::fs::read(&journal) {
        Ok(data) => {
            let ops = decode(&data).ok_or_else(|| {
                commit_err(
                    "reading journal",
                    &journal,
                    true,
                    std::io::Error::other("corrupt journal"),
                )
            })?;
            for op in &ops {
                apply(op)?;
            }
            finish(dir, &layers, &ops)?;
            did = true;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = std::fs::remove_file(pending_link(dir));
        }
        Err(e) => return Err(Error::io("read", &journal, e)),
    }
    Ok(did)
}

/// Recover every interrupted commit registered by this user (see [`recover`]). Returns the
/// directories recovered.
pub fn recover_all() -> Result<Vec<PathBuf>, Error> {
    let mut done = Vec::new();
    let Ok(rd) = std::fs::read_dir(pending_dir()) else {
        return Ok(done);
    };
    for e in rd.flatten() {
        let link = e.path();
        let Ok(dir) = std::fs::read_link(&link) else {
            continue;
        };
        if !dir.join("sandbox.meta").exists() {
            let _ = std::fs::remove_file(&link);
            continue;
        }
        match recover(&dir) {
            Ok(true) => done.push(dir),
            Ok(false) => {}
            // Its commit finished and the sandbox was removed meanwhile, by another hs.
            Err(_) if !dir.join("sandbox.meta").exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_byte_paths() {
        let ops = vec![
            Op::Delete {
                live: PathBuf::from(OsString::from_vec(b"/a\nb\xff".to_vec())),
                trash: "/t/1".into(),
                ino: 7,
            },
            Op::Place {
                live: "/x".into(),
                src: "/u/x".into(),
                ino: 9,
            },
            Op::Meta {
                live: "/d".into(),
                mode: 0o755,
                uid: 1,
                gid: 2,
                atime: (3, 4),
                mtime: (5, 6),
            },
        ];
        assert_eq!(decode(&encode(&ops)), Some(ops));
    }
}
