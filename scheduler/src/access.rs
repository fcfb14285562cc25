//! File accesses, run flags and the read-after-write conflict rules of DESIGN §3.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// How a run touched a path.
///
/// Observations: `Read`, `Stat`, `Missing`, `List`, and every write kind except `Write`
/// (appending reads the old content, creating observes that the path was missing, deleting
/// and changing metadata observe that it existed). Writes: `Write`, `Append`, `Meta`,
/// `Create`, `Delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AccessKind {
    /// File content read (also `execve` and interpreters).
    Read,
    /// Metadata or existence checked (`stat`, `access`, `readlink`).
    Stat,
    /// Looked up and found (a path on the way, `chdir`, bash checking its working
    /// directory): its type, mode and identity were observed, not its entries, so changes
    /// below it do not count.
    Exists,
    /// Looked up and not found.
    Missing,
    /// Directory entries read (`getdents`, globbing).
    List,
    /// Content replaced (`O_TRUNC`); may create the file. The only write that reads nothing.
    Write,
    /// Content changed without truncation (append, in-place edit, copy-up); may create the
    /// file.
    Append,
    /// Metadata changed (`chmod`, `chown`, `utimes`, xattrs).
    Meta,
    /// A new directory entry that is not a plain file write (`mkdir`, `symlink`, `link`,
    /// `mknod`, rename target).
    Create,
    /// An entry removed (`unlink`, `rmdir`, rename source).
    Delete,
}

impl AccessKind {
    /// Whether the run's behaviour depended on the path's prior state.
    pub fn observes(self) -> bool {
        self != AccessKind::Write
    }

    /// Whether the access changes the path.
    pub fn writes(self) -> bool {
        matches!(
            self,
            AccessKind::Write
                | AccessKind::Append
                | AccessKind::Meta
                | AccessKind::Create
                | AccessKind::Delete
        )
    }

    /// Whether the access may change the entry list of the parent directory (writes and
    /// appends may create the file).
    fn changes_listing(self) -> bool {
        matches!(
            self,
            AccessKind::Write | AccessKind::Append | AccessKind::Create | AccessKind::Delete
        )
    }

    /// Whether the access may replace everything below the path.
    fn replaces_subtree(self) -> bool {
        matches!(self, AccessKind::Create | AccessKind::Delete)
    }
}

/// One path and how it was touched. Paths are absolute, normalized bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Access {
    /// The path.
    #[serde(serialize_with = "crate::access::lossy")]
    pub path: Vec<u8>,
    /// How it was touched.
    pub kind: AccessKind,
}

impl Access {
    /// Shorthand constructor.
    pub fn new(path: impl Into<Vec<u8>>, kind: AccessKind) -> Access {
        Access {
            path: path.into(),
            kind,
        }
    }
}

/// Things that make a speculative run impossible to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Flags(pub u32);

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);
    /// Used the network.
    pub const NETWORK: Flags = Flags(1);
    /// Read the script's stdin.
    pub const STDIN: Flags = Flags(1 << 1);
    /// Wrote to a terminal.
    pub const TTY: Flags = Flags(1 << 2);
    /// Touched a device.
    pub const DEVICE: Flags = Flags(1 << 3);
    /// Signalled a process outside its sandbox.
    pub const SIGNAL: Flags = Flags(1 << 4);
    /// Needed privileges it lacked.
    pub const PRIVILEGE: Flags = Flags(1 << 5);
    /// Tried to leave the sandbox (mount, setns, ...) or wrote where it is not captured.
    pub const ESCAPE: Flags = Flags(1 << 6);
    /// The trace is incomplete: accesses may be missing.
    pub const UNTRACED: Flags = Flags(1 << 7);
    /// The engine cannot re-create what the unit observes in a sandbox (e.g. it expands `$$`
    /// or writes to an inherited fd), or bash itself failed in it.
    pub const UNSUPPORTED: Flags = Flags(1 << 8);

    /// Names of the flags set.
    pub fn names(self) -> Vec<&'static str> {
        const NAMES: [&str; 9] = [
            "network",
            "stdin",
            "tty",
            "device",
            "signal",
            "privilege",
            "escape",
            "untraced",
            "unsupported",
        ];
        (0..NAMES.len())
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| NAMES[i])
            .collect()
    }

    /// Whether any flag is set.
    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// Whether all flags of `other` are set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// What one execution of a unit did to the file system.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Trace {
    /// Observations (from the tracer).
    pub reads: Vec<Access>,
    /// Changes (from the overlay's upper layer, or the tracer for direct runs).
    pub writes: Vec<Access>,
    /// Unsafe things the run did.
    pub flags: Flags,
}

impl Trace {
    /// Every access that observes prior state, from both lists.
    pub fn observations(&self) -> impl Iterator<Item = &Access> {
        self.reads
            .iter()
            .chain(self.writes.iter())
            .filter(|a| a.kind.observes())
    }

    /// Every access that changes a path, from both lists.
    pub fn changes(&self) -> impl Iterator<Item = &Access> {
        self.reads
            .iter()
            .chain(self.writes.iter())
            .filter(|a| a.kind.writes())
    }
}

/// Serializes bytes as (lossy) text, for reports.
pub(crate) fn lossy<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(bytes))
}

/// The parent directory of an absolute path (`/` for `/x`); `None` for `/` or a bare name.
pub(crate) fn parent(path: &[u8]) -> Option<&[u8]> {
    let i = path.iter().rposition(|&b| b == b'/')?;
    if i == 0 {
        if path.len() > 1 { Some(b"/") } else { None }
    } else {
        Some(&path[..i])
    }
}

/// Who last changed something, for conflict checks and DAG edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark<T: Copy> {
    pub(crate) seq: u64,
    pub(crate) kind: AccessKind,
    pub(crate) who: T,
}

/// A read-after-write hazard: `path`, observed as `observed`, was changed by `by` (as
/// `wrote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hazard<T> {
    pub(crate) path: Vec<u8>,
    pub(crate) observed: AccessKind,
    pub(crate) wrote: AccessKind,
    pub(crate) by: T,
}

/// One run's observations by path, to test new writes against it quickly.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    paths: BTreeMap<Vec<u8>, Vec<AccessKind>>,
}

impl Observed {
    pub(crate) fn new(trace: &Trace) -> Observed {
        let mut paths: BTreeMap<Vec<u8>, Vec<AccessKind>> = BTreeMap::new();
        for a in trace.observations() {
            let kinds = paths.entry(a.path.clone()).or_default();
            if !kinds.contains(&a.kind) {
                kinds.push(a.kind);
            }
        }
        Observed { paths }
    }

    /// The observation `w` invalidates, if any: (path, how it was observed). Same rules as
    /// [`WriteIndex`].
    pub(crate) fn hit_by(&self, w: &Access) -> Option<(Vec<u8>, AccessKind)> {
        if let Some(k) = self.paths.get(&w.path) {
            return Some((w.path.clone(), k[0]));
        }
        if w.kind.changes_listing()
            && let Some(p) = parent(&w.path)
            && let Some(ks) = self.paths.get(p)
            && let Some(k) = ks
                .iter()
                .find(|k| matches!(k, AccessKind::List | AccessKind::Stat | AccessKind::Delete))
        {
            return Some((p.to_vec(), *k));
        }
        if w.kind.replaces_subtree() {
            let mut below = w.path.clone();
            if below.last() != Some(&b'/') {
                below.push(b'/');
            }
            if let Some((p, ks)) = self
                .paths
                .range(below.clone()..)
                .next()
                .filter(|(p, _)| p.starts_with(&below))
            {
                return Some((p.clone(), ks[0]));
            }
        }
        None
    }
}

/// Latest change per path, per directory listing and per replaced subtree.
#[derive(Debug, Clone)]
pub(crate) struct WriteIndex<T: Copy> {
    path: HashMap<Vec<u8>, Mark<T>>,
    listing: HashMap<Vec<u8>, Mark<T>>,
    subtree: HashMap<Vec<u8>, Mark<T>>,
}

impl<T: Copy> Default for WriteIndex<T> {
    fn default() -> Self {
        WriteIndex {
            path: HashMap::new(),
            listing: HashMap::new(),
            subtree: HashMap::new(),
        }
    }
}

impl<T: Copy> WriteIndex<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.path.is_empty()
    }

    /// Records the changes of `trace`, made by `who` as effect number `seq`.
    pub(crate) fn add(&mut self, trace: &Trace, seq: u64, who: T) {
        for a in trace.changes() {
            let mark = Mark {
                seq,
                kind: a.kind,
                who,
            };
            self.path.insert(a.path.clone(), mark);
            if a.kind.changes_listing()
                && let Some(p) = parent(&a.path)
            {
                self.listing.insert(p.to_vec(), mark);
            }
            if a.kind.replaces_subtree() {
                self.subtree.insert(a.path.clone(), mark);
            }
        }
    }

    /// Every change newer than `seen` that one observation depends on.
    fn hits(&self, a: &Access, seen: u64, out: &mut Vec<(AccessKind, Mark<T>)>) {
        if let Some(m) = self.path.get(&a.path)
            && m.seq > seen
        {
            out.push((a.kind, *m));
        }
        // rmdir succeeds only on an empty directory: deleting observes the listing too.
        if matches!(
            a.kind,
            AccessKind::List | AccessKind::Stat | AccessKind::Delete
        ) && let Some(m) = self.listing.get(&a.path)
            && m.seq > seen
        {
            out.push((a.kind, *m));
        }
        if !self.subtree.is_empty() {
            let mut p: &[u8] = &a.path;
            while let Some(up) = parent(p) {
                if let Some(m) = self.subtree.get(up)
                    && m.seq > seen
                {
                    out.push((a.kind, *m));
                }
                p = up;
            }
        }
    }

    /// The first hazard for `trace`'s observations among changes newer than `seen`.
    pub(crate) fn first_hazard(&self, trace: &Trace, seen: u64) -> Option<Hazard<T>> {
        let mut hits = Vec::new();
        for a in trace.observations() {
            self.hits(a, seen, &mut hits);
            if let Some((observed, m)) = hits.first() {
                return Some(Hazard {
                    path: a.path.clone(),
                    observed: *observed,
                    wrote: m.kind,
                    by: m.who,
                });
            }
        }
        None
    }

    /// Every hazard for `trace`'s observations among changes newer than `seen`.
    pub(crate) fn all_hazards(&self, trace: &Trace, seen: u64) -> Vec<Hazard<T>> {
        let mut out = Vec::new();
        let mut hits = Vec::new();
        for a in trace.observations() {
            hits.clear();
            self.hits(a, seen, &mut hits);
            for (observed, m) in &hits {
                out.push(Hazard {
                    path: a.path.clone(),
                    observed: *observed,
                    wrote: m.kind,
                    by: m.who,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessKind::*;

    fn trace(reads: &[(&str, AccessKind)], writes: &[(&str, AccessKind)]) -> Trace {
        let f = |v: &[(&str, AccessKind)]| v.iter().map(|(p, k)| Access::new(*p, *k)).collect();
        Trace {
            reads: f(reads),
            writes: f(writes),
            flags: Flags::NONE,
        }
    }

    fn hazard(w: &[(&str, AccessKind)], r: &[(&str, AccessKind)]) -> bool {
        let mut idx = WriteIndex::default();
        let wt = trace(&[], w);
        let rt = trace(r, &[]);
        idx.add(&wt, 1, ());
        let by_index = idx.first_hazard(&rt, 0).is_some();
        let observed = Observed::new(&rt);
        let by_observed = wt.changes().any(|a| observed.hit_by(a).is_some());
        assert_eq!(by_index, by_observed, "{w:?} {r:?}");
        by_index
    }

    #[test]
    fn parent_of_paths() {
        assert_eq!(parent(b"/a/b"), Some(&b"/a"[..]));
        assert_eq!(parent(b"/a"), Some(&b"/"[..]));
        assert_eq!(parent(b"/"), None);
    }

    #[test]
    fn rules() {
        assert!(hazard(&[("/f", Write)], &[("/f", Read)]));
        assert!(!hazard(&[("/f", Write)], &[("/g", Read)]));
        // write after write is no hazard
        assert!(!hazard(&[("/f", Write)], &[("/f", Write)]));
        // append reads the old content
        assert!(hazard(&[("/f", Write)], &[("/f", Append)]));
        // a created file changes the listing and a failed lookup
        assert!(hazard(&[("/d/f", Write)], &[("/d", List)]));
        assert!(hazard(&[("/d/f", Write)], &[("/d/f", Missing)]));
        assert!(hazard(&[("/d/f", Append)], &[("/d", List)]));
        assert!(!hazard(&[("/d/f", Meta)], &[("/d", List)]));
        // a deleted directory takes its subtree with it
        assert!(hazard(&[("/d", Delete)], &[("/d/x/y", Read)]));
        assert!(hazard(&[("/d", Create)], &[("/d/x", Missing)]));
        assert!(!hazard(&[("/d", Delete)], &[("/dx", Read)]));
        // metadata
        assert!(hazard(&[("/f", Meta)], &[("/f", Stat)]));
        // removing a directory observes that it is empty
        assert!(hazard(&[("/d/new", Write)], &[("/d", Delete)]));
    }
}
