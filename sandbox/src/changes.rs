//! The change set of a sandbox: what its upper dirs would change in the live filesystem.

use std::ffi::CString;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::Error;
use crate::plan::Layer;
use crate::sys;

/// What happened to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// The path did not exist and now does.
    Created,
    /// Same type, different content (file data or symlink target).
    Modified,
    /// The path existed and is gone.
    Deleted,
    /// The path exists with another type (file ↔ dir ↔ symlink …).
    TypeChanged,
    /// Same type and content; mode, owner or mtime differ.
    MetadataOnly,
    /// A directory removed and re-created: its old entries are gone (an opaque directory).
    Replaced,
    /// A directory renamed (moved) from [`Change::from`]; changes inside it follow, under
    /// the new name.
    Renamed,
}

impl ChangeKind {
    /// Lowercase name used in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::TypeChanged => "type-changed",
            ChangeKind::MetadataOnly => "metadata",
            ChangeKind::Replaced => "replaced",
            ChangeKind::Renamed => "renamed",
        }
    }
}

/// File type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
}

impl FileKind {
    pub(crate) fn of(md: &Metadata) -> FileKind {
        let t = md.file_type();
        if t.is_dir() {
            FileKind::Dir
        } else if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDev
        } else if t.is_block_device() {
            FileKind::BlockDev
        } else {
            FileKind::File
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDev => "char-device",
            FileKind::BlockDev => "block-device",
        }
    }
}

/// One entry of a change set. A created, deleted or replaced directory is one entry for the
/// whole tree, with `entries` and `bytes` counting what is below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Live path.
    pub path: PathBuf,
    /// What happened.
    pub kind: ChangeKind,
    /// Type after the change (before, for deletions).
    pub file_kind: FileKind,
    /// Type before, for type changes.
    pub old_kind: Option<FileKind>,
    /// Entries below a collapsed directory.
    pub entries: u64,
    /// Bytes of regular files (for a collapsed directory: below it).
    pub bytes: u64,
    /// For [`ChangeKind::Renamed`]: the live path it was renamed from.
    pub from: Option<PathBuf>,
}

/// All changes of a sandbox, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// The changes.
    pub changes: Vec<Change>,
    /// Why committing these changes would not give what the command would have done live;
    /// [`crate::Sandbox::commit`] refuses while there is any (sorted by path).
    pub hazards: Vec<Hazard>,
}

/// A change the commit cannot reproduce faithfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hazard {
    /// Live path.
    pub path: PathBuf,
    /// Why (a sentence fragment after the path).
    pub reason: &'static str,
}

/// The hazard of a changed live file that has other hard links: overlayfs copied it up to a
/// new inode, so its other names kept the old version in the sandbox and would keep it after
/// the commit, where the live run changes every name. (Also raised, conservatively, when the
/// name was replaced by another file, e.g. `sed -i`, which the live run does not propagate
/// either: the upper layer cannot tell the two apart; a trace can — `write` or `set-meta`
/// versus only `rename-to`.)
pub(crate) const SPLIT_LINK: &str =
    "has other hard links, which the sandbox's copy-up split off (they keep the old version)";

fn escape(path: &Path) -> String {
    let mut s = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

fn human(bytes: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

impl ChangeSet {
    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Human-readable text: one line per change, `KIND PATH`, directories with a trailing `/`
    /// and, when collapsed, `(N entries, SIZE)`. Control characters and non-UTF-8 bytes in
    /// paths are escaped (`\n`, `\xff`).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let slash = if c.file_kind == FileKind::Dir {
                "/"
            } else {
                ""
            };
            out.push_str(&format!(
                "{:<12} {}{}",
                c.kind.name(),
                escape(&c.path),
                slash
            ));
            if let Some(old) = c.old_kind {
                out.push_str(&format!(" ({} -> {})", old.name(), c.file_kind.name()));
            }
            if let Some(from) = &c.from {
                out.push_str(&format!(" (from {})", escape(from)));
            }
            if c.file_kind == FileKind::Dir
                && matches!(
                    c.kind,
                    ChangeKind::Created
                        | ChangeKind::Deleted
                        | ChangeKind::Replaced
                        | ChangeKind::TypeChanged
                )
            {
                out.push_str(&format!(" ({} entries, {})", c.entries, human(c.bytes)));
            }
            out.push('\n');
        }
        for h in &self.hazards {
            out.push_str(&format!(
                "{:<12} {}: {}\n",
                "hazard",
                escape(&h.path),
                h.reason
            ));
        }
        out
    }

    /// JSON: `{"changes": [{"path", "kind", "type", "old_type"?, "entries", "bytes"}]}`; a
    /// path that is not UTF-8 also gets `"path_bytes"`, an array of byte values.
    pub fn to_json(&self) -> Value {
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|c| {
                let bytes = c.path.as_os_str().as_bytes();
                let mut v = json!({
                    "path": String::from_utf8_lossy(bytes),
                    "kind": c.kind.name(),
                    "type": c.file_kind.name(),
                    "entries": c.entries,
                    "bytes": c.bytes,
                });
                if let Some(old) = c.old_kind {
                    v["old_type"] = json!(old.name());
                }
                if let Some(from) = &c.from {
                    let fb = from.as_os_str().as_bytes();
                    v["from"] = json!(String::from_utf8_lossy(fb));
                    if std::str::from_utf8(fb).is_err() {
                        v["from_bytes"] = json!(fb);
                    }
                }
                if std::str::from_utf8(bytes).is_err() {
                    v["path_bytes"] = json!(bytes);
                }
                v
            })
            .collect();
        let hazards: Vec<Value> = self
            .hazards
            .iter()
            .map(|h| {
                let bytes = h.path.as_os_str().as_bytes();
                let mut v = json!({"path": String::from_utf8_lossy(bytes), "reason": h.reason});
                if std::str::from_utf8(bytes).is_err() {
                    v["path_bytes"] = json!(bytes);
                }
                v
            })
            .collect();
        json!({ "changes": changes, "hazards": hazards })
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

const WHITEOUT_XATTRS: [&std::ffi::CStr; 2] =
    [c"user.overlay.whiteout", c"trusted.overlay.whiteout"];
const OPAQUE_XATTRS: [&std::ffi::CStr; 2] = [c"user.overlay.opaque", c"trusted.overlay.opaque"];

/// Whether an upper-dir entry is a whiteout (char device 0/0, or an xattr whiteout).
pub(crate) fn is_whiteout(path: &Path, md: &Metadata) -> bool {
    let t = md.file_type();
    if t.is_char_device() && md.rdev() == 0 {
        return true;
    }
    t.is_file()
        && md.len() == 0
        && WHITEOUT_XATTRS
            .iter()
            .any(|x| sys::lgetxattr(&cpath(path), x).ok().flatten().is_some())
}

/// Whether an upper-dir directory is opaque (hides everything below it in the lower dir).
pub(crate) fn is_opaque(path: &Path) -> bool {
    let c = cpath(path);
    OPAQUE_XATTRS
        .iter()
        .any(|x| matches!(sys::lgetxattr(&c, x), Ok(Some(v)) if v.as_slice() == b"y"))
}

const REDIRECT_XATTRS: [&std::ffi::CStr; 2] =
    [c"user.overlay.redirect", c"trusted.overlay.redirect"];

/// The overlayfs `redirect` of an upper-dir directory renamed in the sandbox (`redirect_dir`):
/// the path of the lower directory it came from, absolute from the layer root (`/a/b`) or a
/// name in its parent's lower directory. `None` for an opaque directory (it hides its lower
/// directory, so a redirect means nothing).
pub(crate) fn redirect_of(path: &Path) -> Option<Vec<u8>> {
    let c = cpath(path);
    let r = REDIRECT_XATTRS
        .iter()
        .find_map(|x| sys::lgetxattr(&c, x).ok().flatten())?;
    (!is_opaque(path)).then_some(r)
}

/// Whether `path` (a directory of an upper dir) was renamed in the sandbox.
pub(crate) fn is_renamed_dir(path: &Path) -> bool {
    redirect_of(path).is_some()
}

/// Every renamed directory below `upper` (see [`redirect_of`]), by path.
pub(crate) fn renamed_dirs(
    upper: &Path,
) -> Result<std::collections::BTreeMap<PathBuf, Vec<u8>>, Error> {
    fn walk(
        dir: &Path,
        out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>,
    ) -> Result<(), Error> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("read", dir, e)),
        };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if let Some(r) = redirect_of(&p) {
                out.insert(p.clone(), r);
            }
            walk(&p, out)?;
        }
        Ok(())
    }
    let mut out = std::collections::BTreeMap::new();
    walk(upper, &mut out)?;
    Ok(out)
}

/// Count entries and regular-file bytes below `dir` (skipping whiteouts when `upper`).
pub(crate) fn tree_stats(dir: &Path, upper: bool) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if upper && is_whiteout(&p, &md) {
            continue;
        }
        n += 1;
        if md.is_dir() {
            let (a, b) = tree_stats(&p, upper);
            n += a;
            bytes += b;
        } else if md.is_file() {
            bytes += md.len();
        }
    }
    (n, bytes)
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let Ok(na) = fa.read(&mut ba) else {
            return false;
        };
        if na == 0 {
            return fb.read(&mut bb[..1]).is_ok_and(|n| n == 0);
        }
        let mut got = 0;
        while got < na {
            match fb.read(&mut bb[got..na]) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got += n,
            }
        }
        if ba[..na] != bb[..na] {
            return false;
        }
    }
}

fn meta_differs(u: &Metadata, l: &Metadata, times: bool) -> bool {
    u.mode() != l.mode()
        || u.uid() != l.uid()
        || u.gid() != l.gid()
        || (times && (u.mtime() != l.mtime() || u.mtime_nsec() != l.mtime_nsec()))
}

/// Compare a non-directory upper entry with the live one: `None` if they are the same.
pub(crate) fn compare_leaf(
    upper: &Path,
    um: &Metadata,
    live: &Path,
    lm: &Metadata,
) -> Option<ChangeKind> {
    let (uk, lk) = (FileKind::of(um), FileKind::of(lm));
    if uk != lk {
        return Some(ChangeKind::TypeChanged);
    }
    let content_differs = match uk {
        FileKind::File => um.len() != lm.len() || !same_content(upper, live),
        FileKind::Symlink => std::fs::read_link(upper).ok() != std::fs::read_link(live).ok(),
        FileKind::CharDev | FileKind::BlockDev => um.rdev() != lm.rdev(),
        _ => false,
    };
    if content_differs {
        Some(ChangeKind::Modified)
    } else if meta_differs(um, lm, uk != FileKind::Symlink) {
        Some(ChangeKind::MetadataOnly)
    } else {
        None
    }
}

/// Whether placing upper entry `um` over live entry `lm` (both non-directories) splits a live
/// hard link: the live inode has other names, which would keep the old version.
pub(crate) fn splits_link(um: &Metadata, lm: &Metadata) -> bool {
    !um.is_dir() && !lm.is_dir() && lm.nlink() > 1 && um.ino() != lm.ino()
}

/// Walks upper dirs against the live filesystem (see [`collect`]).
struct Collector {
    out: Vec<Change>,
    hazards: Vec<Hazard>,
    /// Deletions, with the lower path they delete: a renamed directory's source is not
    /// reported as deleted.
    deleted: Vec<(PathBuf, Change)>,
    /// Sources of renamed directories (lower paths).
    sources: Vec<PathBuf>,
    /// Renamed directories of the current layer not reached yet, by upper path.
    redirects: std::collections::BTreeMap<PathBuf, Vec<u8>>,
    /// Renamed directories handled: upper path → final live path.
    handled: Vec<(PathBuf, PathBuf)>,
    layer_root: PathBuf,
}

fn change(path: PathBuf, kind: ChangeKind, file_kind: FileKind) -> Change {
    Change {
        path,
        kind,
        file_kind,
        old_kind: None,
        entries: 0,
        bytes: 0,
        from: None,
    }
}

impl Collector {
    /// `upper` overlays the lower directory `read`; its entries end up below `fin`.
    fn walk(&mut self, upper: &Path, read: &Path, fin: &Path) -> Result<(), Error> {
        let rd = match std::fs::read_dir(upper) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("read", upper, e)),
        };
        for e in rd {
            let e = e.map_err(|e| Error::io("read", upper, e))?;
            let u = e.path();
            let r = read.join(e.file_name());
            let l = fin.join(e.file_name());
            let um = std::fs::symlink_metadata(&u).map_err(|e| Error::io("stat", &u, e))?;
            let lm = std::fs::symlink_metadata(&r).ok();
            let uk = FileKind::of(&um);
            if is_whiteout(&u, &um) {
                if let Some(lm) = lm {
                    let lk = FileKind::of(&lm);
                    let (entries, bytes) = if lk == FileKind::Dir {
                        tree_stats(&r, false)
                    } else {
                        (0, lm.len())
                    };
                    let c = Change {
                        entries,
                        bytes,
                        ..change(l, ChangeKind::Deleted, lk)
                    };
                    self.deleted.push((r, c));
                }
                continue;
            }
            if uk == FileKind::Dir
                && let Some(redirect) = self.redirects.remove(&u)
            {
                self.renamed(&u, &redirect, Some(read), lm.as_ref().map(|m| (&r, m)), &l)?;
                continue;
            }
            let bytes = if um.is_file() { um.len() } else { 0 };
            match (&lm, uk) {
                (None, FileKind::Dir) => {
                    let (entries, bytes) = tree_stats(&u, true);
                    self.out.push(Change {
                        entries,
                        bytes,
                        ..change(l, ChangeKind::Created, uk)
                    });
                }
                (None, _) => self.out.push(Change {
                    bytes,
                    ..change(l, ChangeKind::Created, uk)
                }),
                (Some(lm), FileKind::Dir) if lm.is_dir() => {
                    if is_opaque(&u) {
                        let (entries, bytes) = tree_stats(&u, true);
                        self.out.push(Change {
                            entries,
                            bytes,
                            ..change(l, ChangeKind::Replaced, uk)
                        });
                    } else {
                        if meta_differs(&um, lm, false) {
                            self.out
                                .push(change(l.clone(), ChangeKind::MetadataOnly, uk));
                        }
                        self.walk(&u, &r, &l)?;
                    }
                }
                (Some(lm), _) => {
                    let lk = FileKind::of(lm);
                    if lk != uk {
                        let (entries, bytes) = if uk == FileKind::Dir {
                            tree_stats(&u, true)
                        } else {
                            (0, bytes)
                        };
                        self.out.push(Change {
                            old_kind: Some(lk),
                            entries,
                            bytes,
                            ..change(l, ChangeKind::TypeChanged, uk)
                        });
                    } else if let Some(kind) = compare_leaf(&u, &um, &r, lm) {
                        if splits_link(&um, lm) {
                            self.hazards.push(Hazard {
                                path: l.clone(),
                                reason: SPLIT_LINK,
                            });
                        }
                        self.out.push(Change {
                            bytes,
                            ..change(l, kind, uk)
                        });
                    } else if um.nlink() > 1 {
                        // Same content and metadata, but now linked to other names in the upper
                        // layer (`ln f f2`): the commit places it too, so the link count changes.
                        if splits_link(&um, lm) {
                            self.hazards.push(Hazard {
                                path: l.clone(),
                                reason: SPLIT_LINK,
                            });
                        }
                        self.out.push(Change {
                            bytes,
                            ..change(l, ChangeKind::MetadataOnly, uk)
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// A directory renamed in the sandbox, to `fin`, from the lower directory its redirect
    /// names (relative to `parent_read`, or to the layer root); `replaced` is the live entry at
    /// its new name, if any.
    fn renamed(
        &mut self,
        u: &Path,
        redirect: &[u8],
        parent_read: Option<&Path>,
        replaced: Option<(&PathBuf, &Metadata)>,
        fin: &Path,
    ) -> Result<(), Error> {
        let src = match (redirect.strip_prefix(b"/"), parent_read) {
            (Some(abs), _) => self.layer_root.join(std::ffi::OsStr::from_bytes(abs)),
            (None, Some(parent)) => parent.join(std::ffi::OsStr::from_bytes(redirect)),
            (None, None) => fin.to_path_buf(),
        };
        if let Some((r, lm)) = replaced
            && *r != src
        {
            let lk = FileKind::of(lm);
            let (entries, bytes) = if lk == FileKind::Dir {
                tree_stats(r, false)
            } else {
                (0, lm.len())
            };
            self.deleted.push((
                r.clone(),
                Change {
                    entries,
                    bytes,
                    ..change(fin.to_path_buf(), ChangeKind::Deleted, lk)
                },
            ));
        }
        if src != fin {
            let (entries, bytes) = tree_stats(&src, false);
            self.out.push(Change {
                entries,
                bytes,
                from: Some(src.clone()),
                ..change(fin.to_path_buf(), ChangeKind::Renamed, FileKind::Dir)
            });
        }
        self.sources.push(src.clone());
        self.handled.push((u.to_path_buf(), fin.to_path_buf()));
        self.walk(u, &src, fin)
    }

    /// Renamed directories inside new trees (see the commit's planner).
    fn leftovers(&mut self, upper_root: &Path) -> Result<(), Error> {
        while let Some((u, redirect)) = self.redirects.pop_first() {
            let fin = self
                .handled
                .iter()
                .filter(|(h, _)| u.starts_with(h))
                .max_by_key(|(h, _)| h.components().count())
                .and_then(|(h, f)| u.strip_prefix(h).ok().map(|rest| f.join(rest)))
                .or_else(|| {
                    u.strip_prefix(upper_root)
                        .ok()
                        .map(|rest| self.layer_root.join(rest))
                })
                .unwrap_or_else(|| u.clone());
            self.renamed(&u, &redirect, None, None, &fin)?;
        }
        Ok(())
    }
}

/// Collect the change set of `layers` against the live filesystem.
pub(crate) fn collect(layers: &[Layer]) -> Result<ChangeSet, Error> {
    let mut c = Collector {
        out: Vec::new(),
        hazards: Vec::new(),
        deleted: Vec::new(),
        sources: Vec::new(),
        redirects: Default::default(),
        handled: Vec::new(),
        layer_root: PathBuf::new(),
    };
    for l in layers {
        c.layer_root = l.target.clone();
        c.handled.clear();
        c.redirects = renamed_dirs(&l.upper)?;
        c.walk(&l.upper, &l.target, &l.target)?;
        c.leftovers(&l.upper)?;
    }
    let Collector {
        out: mut changes,
        mut hazards,
        deleted,
        sources,
        ..
    } = c;
    changes.extend(
        deleted
            .into_iter()
            .filter(|(read, _)| !sources.contains(read))
            .map(|(_, c)| c),
    );
    hazards.sort_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    changes.sort_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    Ok(ChangeSet { changes, hazards })
}
