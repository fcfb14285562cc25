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

fn walk(
    upper: &Path,
    live: &Path,
    out: &mut Vec<Change>,
    hazards: &mut Vec<Hazard>,
) -> Result<(), Error> {
    let rd = match std::fs::read_dir(upper) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", upper, e)),
    };
    for e in rd {
        let e = e.map_err(|e| Error::io("read", upper, e))?;
        let u = e.path();
        let l = live.join(e.file_name());
        let um = std::fs::symlink_metadata(&u).map_err(|e| Error::io("stat", &u, e))?;
        let lm = std::fs::symlink_metadata(&l).ok();
        let uk = FileKind::of(&um);
        if is_whiteout(&u, &um) {
            if let Some(lm) = lm {
                let lk = FileKind::of(&lm);
                let (entries, bytes) = if lk == FileKind::Dir {
                    tree_stats(&l, false)
                } else {
                    (0, lm.len())
                };
                out.push(Change {
                    path: l,
                    kind: ChangeKind::Deleted,
                    file_kind: lk,
                    old_kind: None,
                    entries,
                    bytes,
                });
            }
            continue;
        }
        let bytes = if um.is_file() { um.len() } else { 0 };
        match (&lm, uk) {
            (None, FileKind::Dir) => {
                let (entries, bytes) = tree_stats(&u, true);
                out.push(Change {
                    path: l,
                    kind: ChangeKind::Created,
                    file_kind: uk,
                    old_kind: None,
                    entries,
                    bytes,
                });
            }
            (None, _) => out.push(Change {
                path: l,
                kind: ChangeKind::Created,
                file_kind: uk,
                old_kind: None,
                entries: 0,
                bytes,
            }),
            (Some(lm), FileKind::Dir) if lm.is_dir() => {
                if is_opaque(&u) {
                    let (entries, bytes) = tree_stats(&u, true);
                    out.push(Change {
                        path: l,
                        kind: ChangeKind::Replaced,
                        file_kind: uk,
                        old_kind: None,
                        entries,
                        bytes,
                    });
                } else {
                    if meta_differs(&um, lm, false) {
                        out.push(Change {
                            path: l.clone(),
                            kind: ChangeKind::MetadataOnly,
                            file_kind: uk,
                            old_kind: None,
                            entries: 0,
                            bytes: 0,
                        });
                    }
                    walk(&u, &l, out, hazards)?;
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
                    out.push(Change {
                        path: l,
                        kind: ChangeKind::TypeChanged,
                        file_kind: uk,
                        old_kind: Some(lk),
                        entries,
                        bytes,
                    });
                } else if let Some(kind) = compare_leaf(&u, &um, &l, lm) {
                    if splits_link(&um, lm) {
                        hazards.push(Hazard {
                            path: l.clone(),
                            reason: SPLIT_LINK,
                        });
                    }
                    out.push(Change {
                        path: l,
                        kind,
                        file_kind: uk,
                        old_kind: None,
                        entries: 0,
                        bytes,
                    });
                } else if um.nlink() > 1 {
                    // Same content and metadata, but now linked to other names in the upper
                    // layer (`ln f f2`): the commit places it too, so the link count changes.
                    if splits_link(&um, lm) {
                        hazards.push(Hazard {
                            path: l.clone(),
                            reason: SPLIT_LINK,
                        });
                    }
                    out.push(Change {
                        path: l,
                        kind: ChangeKind::MetadataOnly,
                        file_kind: uk,
                        old_kind: None,
                        entries: 0,
                        bytes,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Collect the change set of `layers` against the live filesystem.
pub(crate) fn collect(layers: &[Layer]) -> Result<ChangeSet, Error> {
    let mut changes = Vec::new();
    let mut hazards = Vec::new();
    for l in layers {
        walk(&l.upper, &l.target, &mut changes, &mut hazards)?;
    }
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
