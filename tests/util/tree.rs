//! Snapshots of a directory tree (paths as bytes) and their comparison, shared by the diff,
//! fuzz and kill tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// One entry of a directory tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    File { mode: u32, content: Vec<u8> },
    Dir { mode: u32 },
    Symlink { target: Vec<u8> },
    Other { kind: &'static str, mode: u32 },
    Unreadable { error: String },
}

impl Entry {
    pub fn describe(&self) -> String {
        match self {
            Entry::File { mode, content } => format!(
                "file {mode:04o} {} bytes: {}",
                content.len(),
                preview(content, 200)
            ),
            Entry::Dir { mode } => format!("dir {mode:04o}"),
            Entry::Symlink { target } => format!("symlink -> {}", show_bytes(target)),
            Entry::Other { kind, mode } => format!("{kind} {mode:04o}"),
            Entry::Unreadable { error } => format!("unreadable ({error})"),
        }
    }
}

/// Relative path (raw bytes) → entry, for every entry below a root. A directory that cannot
/// be listed appears as `DIR/<listing>`, unreadable.
pub type Tree = BTreeMap<Vec<u8>, Entry>;

pub fn snapshot(root: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        let rel = |p: &Path| {
            p.strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        };
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                let mut key = rel(dir);
                key.extend_from_slice(b"/<listing>");
                let error = e.kind().to_string();
                out.insert(key, Entry::Unreadable { error });
                return;
            }
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            let mode = md.mode() & 0o7777;
            let entry = if ft.is_symlink() {
                let t = fs::read_link(&p).unwrap_or_default();
                Entry::Symlink {
                    target: t.as_os_str().as_bytes().to_vec(),
                }
            } else if ft.is_dir() {
                walk(root, &p, out);
                Entry::Dir { mode }
            } else if ft.is_file() {
                match fs::read(&p) {
                    Ok(content) => Entry::File { mode, content },
                    Err(e) => Entry::Unreadable {
                        error: e.kind().to_string(),
                    },
                }
            } else {
                let kind = if ft.is_fifo() {
                    "fifo"
                } else if ft.is_socket() {
                    "socket"
                } else {
                    "device"
                };
                Entry::Other { kind, mode }
            };
            out.insert(rel(&p), entry);
        }
    }
    let mut out = Tree::new();
    walk(root, root, &mut out);
    out
}

/// Gives the owner rwx on every directory below `p`, so that scripts that `chmod` a directory
/// do not stop a clean-up or a snapshot.
pub fn make_writable(p: &Path) {
    if let Ok(md) = fs::symlink_metadata(p)
        && md.is_dir()
    {
        let _ = fs::set_permissions(p, fs::Permissions::from_mode(md.mode() | 0o700));
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// The entries that differ between `a` and `b`, one per line: `~ path` (both sides shown),
/// `- path` (only after `a_name`), `+ path` (only after `b_name`).
pub fn diff(a: &Tree, b: &Tree, a_name: &str, b_name: &str) -> String {
    let mut out = String::new();
    let mut keys: Vec<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let w = a_name.len().max(b_name.len()) + 1;
    for k in keys {
        let p = show_bytes(k);
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let _ = writeln!(
                    out,
                    "~ {p}\n    {:w$} {}\n    {:w$} {}",
                    format!("{a_name}:"),
                    x.describe(),
                    format!("{b_name}:"),
                    y.describe()
                );
            }
            (Some(x), None) => {
                let _ = writeln!(out, "- {p} (only after {a_name}: {})", x.describe());
            }
            (None, Some(y)) => {
                let _ = writeln!(out, "+ {p} (only after {b_name}: {})", y.describe());
            }
            (None, None) => unreachable!(),
        }
    }
    out
}

/// Bytes as text, with non-printable bytes escaped as `\xHH`.
pub fn show_bytes(b: &[u8]) -> String {
    let mut s = String::new();
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\n' || c == '\t' || !c.is_control() {
                s.push(c);
            } else {
                let _ = write!(s, "\\x{:02x}", c as u32);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(s, "\\x{byte:02x}");
        }
    }
    s
}

/// At most `max` bytes of `b`, escaped, on one line.
pub fn preview(b: &[u8], max: usize) -> String {
    let cut = &b[..b.len().min(max)];
    let s = show_bytes(cut).replace('\n', "\\n");
    if b.len() > max { format!("{s}...") } else { s }
}
