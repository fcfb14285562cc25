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

use crate::changes::{
    SPLIT_LINK, compare_leaf, is_opaque, is_renamed_dir, is_whiteout, splits_link,
};
use crate::error::Error;
use crate::plan::Layer;
use crate::sys;

/// File name of the commit journal inside the sandbox directory.
pub(crate) const JOURNAL: &str = "journal";
pub(crate) const JOURNAL_PREP: &str = "journal.prep";
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

/// Removes everything inside the directory `path`, keeping the directory itself.
pub(crate) fn clear_dir(path: &Path) -> Result<(), Error> {
    let rd = std::fs::read_dir(path).map_err(|e| Error::io("read", path, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io("read", path, e))?;
        remove_tree(&e.path())?;
    }
    Ok(())
}

/// Removes the xattrs of `path` itself (overlayfs's markers, ACLs, user attributes), as on a
/// directory just made; `security.*` labels stay.
pub(crate) fn strip_xattrs(path: &Path) -> Result<(), Error> {
    remove_xattrs(path, |n| !n.starts_with(b"security.")).map_err(|(phase, e)| {
        Error::io(
            if phase == XattrPhase::List {
                "read the xattrs of"
            } else {
                "remove an xattr of"
            },
            path,
            e.into(),
        )
    })
}

/// Which step of [`remove_xattrs`] failed.
#[derive(PartialEq)]
enum XattrPhase {
    List,
    Remove,
}

/// Removes the xattrs of `path` itself (not following a symlink) whose names `which` selects.
fn remove_xattrs(
    path: &Path,
    which: impl Fn(&[u8]) -> bool,
) -> Result<(), (XattrPhase, sys::Errno)> {
    let c = cpath(path);
    let names = sys::llistxattr(&c).map_err(|e| (XattrPhase::List, e))?;
    for name in names.into_iter().filter(|n| which(n)) {
        let n = CString::new(name).unwrap_or_default();
        sys::lremovexattr(&c, &n).map_err(|e| (XattrPhase::Remove, e))?;
    }
    Ok(())
}

/// Strip overlay xattrs from `path` and, for a directory, everything below it; delete the
/// whiteouts below it (they hide nothing once the tree moves as a whole). Renamed directories
/// below it (`renamed`) are left alone: they leave the tree before it moves.
fn sanitize(
    path: &Path,
    is_dir: bool,
    renamed: &std::collections::BTreeMap<PathBuf, Vec<u8>>,
) -> Result<(), Error> {
    remove_xattrs(path, is_overlay_xattr).map_err(|(phase, e)| {
        let what = if phase == XattrPhase::List {
            "reading xattrs of"
        } else {
            "removing overlay xattrs from"
        };
        commit_err(what, path, false, e)
    })?;
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
            } else if !(m.is_dir() && renamed.contains_key(&p)) {
                sanitize(&p, m.is_dir(), renamed)?;
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

/// Copies already made of upper inodes with several names: (dev, ino) → the first copy.
type LinkMap = std::collections::HashMap<(u64, u64), PathBuf>;

/// Copy an upper entry (recursively) to `dst`, which must not exist. An upper inode with
/// several names (hard links) is copied once: its other names become hard links to that copy.
fn copy_tree(src: &Path, dst: &Path, links: &mut LinkMap) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    let t = md.file_type();
    if !t.is_dir() && md.nlink() > 1 {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            return std::fs::hard_link(first, dst);
        }
        links.insert((md.dev(), md.ino()), dst.to_path_buf());
    }
    if t.is_dir() {
        std::fs::create_dir(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            let p = e.path();
            let m = std::fs::symlink_metadata(&p)?;
            // A renamed directory is committed on its own (merged with its live source).
            if !(is_whiteout(&p, &m) || m.is_dir() && is_renamed_dir(&p)) {
                copy_tree(&p, &dst.join(e.file_name()), links)?;
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

/// Where one directory level of the walk is: the upper dir (now, at planning, and when the
/// operations run — a redirected directory's upper part is first moved to the trash), and the
/// live directory it overlays (`read`: its lower directory now; `at`: where that directory is
/// while deletions and placements run — a renamed directory waits in the trash; `fin`: where it
/// ends up).
#[derive(Clone, Debug)]
struct Here {
    upper: PathBuf,
    upper_at: PathBuf,
    read: PathBuf,
    at: PathBuf,
    fin: PathBuf,
}

impl Here {
    fn same(upper: &Path, live: &Path) -> Here {
        Here {
            upper: upper.to_path_buf(),
            upper_at: upper.to_path_buf(),
            read: live.to_path_buf(),
            at: live.to_path_buf(),
            fin: live.to_path_buf(),
        }
    }

    fn child(&self, name: &std::ffi::OsStr) -> Here {
        Here {
            upper: self.upper.join(name),
            upper_at: self.upper_at.join(name),
            read: self.read.join(name),
            at: self.at.join(name),
            fin: self.fin.join(name),
        }
    }
}

struct Planner<'a> {
    dir: &'a Path,
    id: String,
    n: u64,
    /// Phase 0: upper parts of renamed directories out of the upper tree (into the trash).
    shellouts: Vec<Op>,
    /// Phase 1: the live sources of renamed directories out of the way (into the trash).
    moveouts: Vec<Op>,
    deletes: Vec<Op>,
    places: Vec<Op>,
    /// Phase 4: renamed directories, merged, into their final places.
    moveins: Vec<Op>,
    metas: Vec<Op>,
    temps: Vec<PathBuf>,
    /// (upper src, temp now, temp when placing, live when placing).
    copies: Vec<(PathBuf, PathBuf, PathBuf, PathBuf)>,
    report: CommitReport,
    /// Conflict check: refuse to replace or delete a live entry changed (ctime) after this
    /// time, the start of the sandbox's first run (seconds, nanoseconds).
    since: Option<(i64, i64)>,
    /// Redirected (renamed) upper directories of the current layer not yet handled, by upper
    /// path: the `redirect` xattr (overlayfs `redirect_dir`).
    redirects: std::collections::BTreeMap<PathBuf, Vec<u8>>,
    /// Handled redirected directories: upper path → final live path.
    handled: Vec<(PathBuf, PathBuf)>,
    /// The current layer's live root.
    layer_root: PathBuf,
}

impl Planner<'_> {
    fn temp_next_to(&mut self, live: &Path, what: &str) -> PathBuf {
        self.n += 1;
        let parent = live.parent().unwrap_or(Path::new("/"));
        parent.join(format!(".hs-{what}-{}-{}", self.id, self.n))
    }

    /// A temporary name for copies and deletions of the entry at `h`: next to it, or in the
    /// layer root when `h` is inside a renamed directory (which moves, temporaries and all).
    fn temp_for(&mut self, h: &Here, what: &str) -> PathBuf {
        if h.at == h.read {
            self.temp_next_to(&h.at, what)
        } else {
            self.n += 1;
            self.layer_root
                .join(format!(".hs-{what}-{}-{}", self.id, self.n))
        }
    }

    /// A new entry (or a whole new tree) from the upper dir into `h.at`.
    fn place(
        &mut self,
        h: &Here,
        ino: u64,
        is_dir: bool,
        trash: Option<&Path>,
    ) -> Result<(), Error> {
        if trash.is_some() {
            sanitize(&h.upper, is_dir, &self.redirects)?;
            self.places.push(Op::Place {
                live: h.at.clone(),
                src: h.upper_at.clone(),
                ino,
            });
            self.report.renamed += 1;
        } else {
            let tmp = self.temp_for(h, "new");
            self.temps.push(tmp.clone());
            self.copies
                .push((h.upper.clone(), tmp.clone(), tmp, h.at.clone()));
            self.report.copied += 1;
        }
        Ok(())
    }

    fn walk(&mut self, here: &Here, trash: Option<&Path>) -> Result<(), Error> {
        let rd = match std::fs::read_dir(&here.upper) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(commit_err("reading", &here.upper, false, e)),
        };
        use std::os::unix::fs::DirEntryExt;
        let mut entries: Vec<(OsString, Option<std::fs::FileType>, u64)> = rd
            .flatten()
            .map(|e| (e.file_name(), e.file_type().ok(), e.ino()))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, ft, ino) in entries {
            let h = here.child(&name);
            let lm = std::fs::symlink_metadata(&h.read).ok();
            if let (Some(m), Some(since)) = (&lm, self.since)
                && (m.ctime(), m.ctime_nsec()) > since
                && !m.is_dir()
            {
                return Err(Error::Conflict { path: h.read });
            }
            // Fast path (most entries of a big commit): a new non-directory needs no stat;
            // the type and inode number come from readdir. Whiteouts are character devices.
            if lm.is_none() && ft.is_some_and(|t| !t.is_dir() && !t.is_char_device()) {
                self.place(&h, ino, false, trash)?;
                continue;
            }
            let um = std::fs::symlink_metadata(&h.upper)
                .map_err(|e| commit_err("reading", &h.upper, false, e))?;
            if is_whiteout(&h.upper, &um) {
                if let Some(lm) = lm {
                    self.n += 1;
                    let t = match trash {
                        Some(t) => t.join(self.n.to_string()),
                        None => self.temp_for(&h, "trash"),
                    };
                    self.deletes.push(Op::Delete {
                        live: h.at,
                        trash: t,
                        ino: lm.ino(),
                    });
                }
                continue;
            }
            if um.is_dir()
                && let Some(redirect) = self.redirects.remove(&h.upper)
            {
                self.renamed_dir(&h, &um, &redirect, lm.as_ref(), Some(&here.read), trash)?;
                continue;
            }
            let both_dirs = um.is_dir() && lm.as_ref().is_some_and(Metadata::is_dir);
            if both_dirs && !is_opaque(&h.upper) {
                self.walk(&h, trash)?;
                self.metas.push(meta_op(&h.fin, &um));
                continue;
            }
            if !um.is_dir()
                && let Some(lm) = &lm
                && compare_leaf(&h.upper, &um, &h.read, lm).is_none()
                && um.nlink() <= 1
            {
                continue; // copied up but unchanged (and not linked to other upper names)
            }
            if let Some(lm) = &lm
                && splits_link(&um, lm)
            {
                return Err(Error::Unfaithful {
                    path: h.read,
                    reason: SPLIT_LINK,
                });
            }
            self.place(&h, um.ino(), um.is_dir(), trash)?;
        }
        Ok(())
    }

    /// A directory renamed in the sandbox (overlayfs `redirect_dir`): its upper part holds only
    /// what changed inside; the rest is the live directory it was renamed from. The live
    /// source moves to the trash (phase 1), the upper part is applied to it there, and it moves
    /// to its final place (phase 4). `parent_read` is the lower directory of the upper dir's
    /// parent (`None` inside a new tree, where only absolute redirects can occur); `lm` the
    /// live entry the renamed directory replaces, if any.
    fn renamed_dir(
        &mut self,
        h: &Here,
        um: &Metadata,
        redirect: &[u8],
        lm: Option<&Metadata>,
        parent_read: Option<&Path>,
        trash: Option<&Path>,
    ) -> Result<(), Error> {
        let src = match (redirect.strip_prefix(b"/"), parent_read) {
            (Some(abs), _) => self.layer_root.join(std::ffi::OsStr::from_bytes(abs)),
            (None, Some(parent)) if !redirect.contains(&b'/') => {
                parent.join(std::ffi::OsStr::from_bytes(redirect))
            }
            _ => {
                return Err(Error::Unfaithful {
                    path: h.fin.clone(),
                    reason: "is a renamed directory whose origin cannot be found (relative overlayfs redirect inside a new directory)",
                });
            }
        };
        let sm = match std::fs::symlink_metadata(&src) {
            Ok(m) if m.is_dir() => m,
            // The directory it was renamed from changed in the live filesystem meanwhile.
            _ => return Err(Error::Conflict { path: src }),
        };
        self.n += 1;
        let k = self.n;
        let t = match trash {
            Some(t) => t.join(format!("r{k}")),
            None => self
                .layer_root
                .join(format!(".hs-redirect-{}-{k}", self.id)),
        };
        // What the renamed directory replaces at its new name goes (unless that is its own
        // source: renamed there and back).
        if let Some(lm) = lm
            && h.read != src
        {
            self.n += 1;
            let del = match trash {
                Some(tr) => tr.join(self.n.to_string()),
                None => self.temp_for(h, "trash"),
            };
            self.deletes.push(Op::Delete {
                live: h.at.clone(),
                trash: del,
                ino: lm.ino(),
            });
        }
        // With renames, the upper part leaves the upper tree first, so that a new tree around
        // it moves without it.
        let upper_at = match trash {
            Some(tr) => {
                let stage = tr.join(format!("s{k}"));
                self.shellouts.push(Op::Delete {
                    live: h.upper_at.clone(),
                    trash: stage.clone(),
                    ino: um.ino(),
                });
                stage
            }
            None => h.upper.clone(),
        };
        self.moveouts.push(Op::Delete {
            live: src.clone(),
            trash: t.clone(),
            ino: sm.ino(),
        });
        self.moveins.push(Op::Place {
            live: h.fin.clone(),
            src: t.clone(),
            ino: sm.ino(),
        });
        self.handled.push((h.upper.clone(), h.fin.clone()));
        self.report.renamed += 1;
        let inner = Here {
            upper: h.upper.clone(),
            upper_at,
            read: src.clone(),
            at: t,
            fin: h.fin.clone(),
        };
        self.walk(&inner, trash)?;
        self.metas.push(meta_op(&h.fin, um));
        Ok(())
    }

    /// Renamed directories the walk did not reach: inside new (or replaced) trees, which move
    /// as a whole. Their final place is below the nearest handled ancestor, or the layer root.
    fn leftover_redirects(&mut self, upper_root: &Path, trash: Option<&Path>) -> Result<(), Error> {
        while let Some((upper, redirect)) = self.redirects.pop_first() {
            let um = std::fs::symlink_metadata(&upper)
                .map_err(|e| commit_err("reading", &upper, false, e))?;
            let fin = self
                .handled
                .iter()
                .filter(|(u, _)| upper.starts_with(u))
                .max_by_key(|(u, _)| u.components().count())
                .and_then(|(u, f)| upper.strip_prefix(u).ok().map(|rest| f.join(rest)))
                .or_else(|| {
                    upper
                        .strip_prefix(upper_root)
                        .ok()
                        .map(|rest| self.layer_root.join(rest))
                })
                .unwrap_or_else(|| upper.clone());
            let h = Here {
                upper: upper.clone(),
                upper_at: upper.clone(),
                read: fin.clone(),
                at: fin.clone(),
                fin,
            };
            self.renamed_dir(&h, &um, &redirect, None, None, trash)?;
        }
        Ok(())
    }
}

fn meta_op(live: &Path, um: &Metadata) -> Op {
    Op::Meta {
        live: live.to_path_buf(),
        mode: um.mode() & 0o7777,
        uid: um.uid(),
        gid: um.gid(),
        atime: (um.atime(), um.atime_nsec()),
        mtime: (um.mtime(), um.mtime_nsec()),
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

/// `tidy`: also remove what the commit displaced inside the sandbox directory (old versions,
/// the upper and work dirs) now, rather than leaving it to a discard that follows.
fn finish(dir: &Path, layers: &[Layer], ops: &[Op], tidy: bool) -> Result<(), Error> {
    std::fs::write(dir.join(COMMITTED), b"")
        .map_err(|e| commit_err("marking committed", dir, true, e))?;
    if tidy {
        let _ = sys::fsync_path(&cpath(dir));
    }
    std::fs::remove_file(dir.join(JOURNAL))
        .map_err(|e| commit_err("removing journal", dir, true, e))?;
    let _ = std::fs::remove_file(pending_link(dir));
    // Old versions now sit where the new ones came from; temporaries and trash go too.
    for op in ops {
        match op {
            Op::Delete { trash, .. } if tidy || !trash.starts_with(dir) => remove_tree(trash)?,
            // Copies' temporaries (next to their live path, or in the layer root) and renamed
            // directories' temporary names: empty, or the old version a placement exchanged.
            Op::Place { src, .. }
                if !src.starts_with(dir)
                    && src
                        .file_name()
                        .is_some_and(|n| n.as_bytes().starts_with(b".hs-")) =>
            {
                remove_tree(src)?
            }
            _ => {}
        }
    }
    if !tidy {
        return Ok(());
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
pub(crate) fn commit(
    dir: &Path,
    layers: &[Layer],
    check: bool,
    tidy: bool,
) -> Result<CommitReport, Error> {
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
        shellouts: Vec::new(),
        moveouts: Vec::new(),
        deletes: Vec::new(),
        places: Vec::new(),
        moveins: Vec::new(),
        metas: Vec::new(),
        temps: Vec::new(),
        copies: Vec::new(),
        report: CommitReport::default(),
        redirects: Default::default(),
        handled: Vec::new(),
        layer_root: PathBuf::new(),
        since: if check {
            std::fs::metadata(dir.join(STARTED))
                .ok()
                .map(|m| (m.mtime(), m.mtime_nsec()))
        } else {
            None
        },
    };
    let _ = p.dir;
    // Only overlays with trusted xattrs and `redirect_dir=on` (root) rename directories.
    let renames = dir.join(crate::sandbox::TRUSTED_MARKER).exists();
    for l in layers {
        let same_fs = match (std::fs::metadata(&l.upper), std::fs::metadata(&l.target)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => false,
        };
        let trash = l.upper.parent().map(|d| d.join("trash"));
        if same_fs && let Some(t) = &trash {
            std::fs::create_dir_all(t).map_err(|e| commit_err("creating", t, false, e))?;
        }
        let trash = if same_fs { trash.as_deref() } else { None };
        p.layer_root = l.target.clone();
        p.handled.clear();
        p.redirects = if renames {
            crate::changes::renamed_dirs(&l.upper)?
        } else {
            Default::default()
        };
        p.walk(&Here::same(&l.upper, &l.target), trash)?;
        p.leftover_redirects(&l.upper, trash)?;
    }

    // Preflight: every directory the commit changes must be writable by the caller, so that
    // a permission problem aborts here rather than half-way through applying.
    // (Directories the commit itself creates — new trees, renamed directories waiting in the
    // trash — do not exist yet; their own parents are checked.)
    let mut parents: Vec<&Path> = p
        .moveouts
        .iter()
        .chain(&p.deletes)
        .chain(&p.places)
        .chain(&p.moveins)
        .filter_map(|op| match op {
            Op::Delete { live, .. } | Op::Place { live, .. } => live.parent(),
            Op::Meta { .. } => None,
        })
        .chain(p.copies.iter().filter_map(|(_, _, _, live)| live.parent()))
        .collect();
    parents.sort();
    parents.dedup();
    for parent in parents.into_iter().filter(|p| p.exists()) {
        if let Err(e) = nix::unistd::access(parent, nix::unistd::AccessFlags::W_OK) {
            return Err(commit_err("checking write permission on", parent, false, e));
        }
    }
    crate::exec::mark(timing, "commit: planned");
    // Nothing to apply: no journal either.
    if p.copies.is_empty()
        && p.shellouts.is_empty()
        && p.moveouts.is_empty()
        && p.deletes.is_empty()
        && p.places.is_empty()
        && p.moveins.is_empty()
        && p.metas.is_empty()
    {
        std::fs::write(dir.join(COMMITTED), b"")
            .map_err(|e| commit_err("marking committed", dir, false, e))?;
        return Ok(p.report);
    }
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
        let mut links = LinkMap::new();
        for (src, tmp, tmp_at, live) in std::mem::take(&mut p.copies) {
            if let Err(e) = copy_tree(&src, &tmp, &mut links) {
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
                src: tmp_at,
                ino,
            });
        }
    }

    // Renamed directories' upper parts out of the upper tree and their live sources out of the
    // way (deepest first, so that every path is still valid when its turn comes), deletions
    // deepest-first, placements parents-first, renamed directories into their final places
    // (parents first), directory metadata deepest-first.
    let depth = |op: &Op| match op {
        Op::Delete { live, .. } | Op::Place { live, .. } | Op::Meta { live, .. } => {
            live.components().count()
        }
    };
    p.shellouts.sort_by_key(|op| std::cmp::Reverse(depth(op)));
    p.moveouts.sort_by_key(|op| std::cmp::Reverse(depth(op)));
    p.deletes.sort_by_key(|op| std::cmp::Reverse(depth(op)));
    p.moveins.sort_by_key(depth);
    let mut ops = std::mem::take(&mut p.shellouts);
    ops.append(&mut p.moveouts);
    p.report.deleted = p.deletes.len() as u64;
    ops.append(&mut p.deletes);
    p.places.sort_by(|a, b| match (a, b) {
        (Op::Place { live: x, .. }, Op::Place { live: y, .. }) => {
            x.as_os_str().as_bytes().cmp(y.as_os_str().as_bytes())
        }
        _ => std::cmp::Ordering::Equal,
    });
    ops.append(&mut p.places);
    ops.append(&mut p.moveins);
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
    finish(dir, layers, &ops, tidy)?;
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
            finish(dir, &layers, &ops, true)?;
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

/// Removes the temporary sandboxes (`hs-sandbox-PID-…` under [`crate::default_base`]) of
/// this user whose process is gone (killed hs runs), after finishing their interrupted
/// commits, and empty per-sandbox upper directories left on other filesystems
/// (`<mount>/.hs-sandboxes-<uid>/<id>`). Returns the sandbox directories removed.
pub fn remove_stale() -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let (uid, _, _) = crate::sys::ids();
    let base = crate::default_base();
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("hs-sandbox-"))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let dir = e.path();
            let mine = std::fs::symlink_metadata(&dir)
                .is_ok_and(|m| m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == uid);
            // A live process of that pid (ours or a recycled one): leave it alone.
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                .map_or_else(|e| e != nix::errno::Errno::ESRCH, |()| true);
            if !mine || alive || pid <= 0 {
                continue;
            }
            if dir.join(JOURNAL).exists() {
                let _ = recover(&dir);
            }
            match crate::Sandbox::open(&dir) {
                Ok(sb) => {
                    if sb.discard().is_ok() {
                        removed.push(dir);
                    }
                }
                Err(Error::NotASandbox { .. }) => {
                    if remove_tree(&dir).is_ok() {
                        removed.push(dir);
                    }
                }
                Err(_) => {}
            }
        }
    }
    if let Ok(mounts) = crate::plan::read_mountinfo() {
        for m in mounts.iter().filter(|m| m.writable) {
            let top = m.mountpoint.join(format!(".hs-sandboxes-{uid}"));
            let Ok(rd) = std::fs::read_dir(&top) else {
                continue;
            };
            for e in rd.flatten() {
                // Only empty ones: a sandbox being set up fills its own right away.
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
    Ok(removed)
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
