//! The result of a traced run: a deduplicated set of (path, access kinds) plus flags.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

macro_rules! bitset {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $konst:ident = $bit:expr, $label:literal;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name($repr);

        impl $name {
            $($(#[$vm])* pub const $konst: $name = $name(1 << $bit);)*
            /// Every (constant, name) pair, in bit order.
            pub const ALL: &'static [($name, &'static str)] = &[$(($name::$konst, $label)),*];

            /// The empty set.
            pub const fn empty() -> $name { $name(0) }
            /// Raw bits.
            pub const fn bits(self) -> $repr { self.0 }
            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool { self.0 == 0 }
            /// Both sets together (usable in constants).
            pub const fn union(self, other: $name) -> $name { $name(self.0 | other.0) }
            /// Whether any bit of `other` is set in `self`.
            pub const fn intersects(self, other: $name) -> bool { self.0 & other.0 != 0 }
            /// Whether every bit of `other` is set in `self`.
            pub const fn contains(self, other: $name) -> bool { self.0 & other.0 == other.0 }
            /// Names of the set bits.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().filter(move |(k, _)| self.contains(*k)).map(|(_, n)| *n)
            }
            /// The constant with this name.
            pub fn from_name(name: &str) -> Option<$name> {
                Self::ALL.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
            }
        }
        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, o: $name) -> $name { $name(self.0 | o.0) }
        }
        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, o: $name) { self.0 |= o.0; }
        }
        impl std::ops::BitAnd for $name {
            type Output = $name;
            fn bitand(self, o: $name) -> $name { $name(self.0 & o.0) }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_set().entries(self.names()).finish()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut first = true;
                for n in self.names() {
                    if !first { f.write_str(",")?; }
                    first = false;
                    f.write_str(n)?;
                }
                Ok(())
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.names())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let names = Vec::<String>::deserialize(d)?;
                let mut out = $name::empty();
                for n in names {
                    out |= $name::from_name(&n)
                        .ok_or_else(|| de::Error::custom(format!("unknown name {n:?}")))?;
                }
                Ok(out)
            }
        }
    };
}

bitset! {
    /// How a path was accessed. A path usually carries several kinds.
    Kinds: u16 {
        /// File content was read (`open` for reading, `readlink`).
        READ = 0, "read";
        /// Metadata was read (`stat`, `access`, `getxattr`).
        STAT = 1, "stat";
        /// The path was looked up and existed (`open(O_PATH)`, `chdir`, a symlink on the way).
        EXISTS = 2, "exists";
        /// The path was looked up and did not exist: a failed lookup is an observation too.
        MISSING = 3, "missing";
        /// The directory's entries were listed (`getdents`).
        LIST = 4, "list";
        /// Opened for writing with `O_TRUNC` (or truncated to 0): old content not observed.
        WRITE_TRUNC = 5, "write-trunc";
        /// Opened for writing without `O_TRUNC`: an in-place write, which also reads.
        WRITE = 6, "write";
        /// Created (`O_CREAT` on a missing path, `mkdir`, `mknod`, `symlink`, `link`).
        CREATE = 7, "create";
        /// Removed (`unlink`, `rmdir`).
        DELETE = 8, "delete";
        /// Source of a rename.
        RENAME_FROM = 9, "rename-from";
        /// Target of a rename.
        RENAME_TO = 10, "rename-to";
        /// Metadata was changed (`chmod`, `chown`, `utimensat`, `setxattr`).
        SET_META = 11, "set-meta";
        /// Executed (or loaded as a `#!`/ELF interpreter).
        EXEC = 12, "exec";
    }
}

bitset! {
    /// Conditions that make a run unsafe to commit speculatively (DESIGN §3).
    Flags: u16 {
        /// Network use: `connect`/`bind`/`sendto`/`sendmsg` outside `AF_UNIX`.
        NETWORK = 0, "network";
        /// Escape hatches: `mount`, `umount2`, `pivot_root`, `unshare`, `setns`, `chroot`,
        /// `open_by_handle_at`, the new mount API.
        ESCAPE = 1, "escape";
        /// An event could not be decoded (unreadable memory, unresolvable fd): the sets may be
        /// incomplete.
        UNTRACEABLE = 2, "untraceable";
        /// Processes of the tree were still running when the trace was taken.
        OUTLIVED = 3, "outlived";
        /// A device was opened for writing (a terminal, a disk): an effect outside the sandbox.
        DEVICE = 4, "device";
        /// The standard input hs itself received was read (with [`crate::Tracer::watch_stdin`]).
        STDIN = 5, "stdin";
        /// The filesystem refused a call the live system would have allowed and the command
        /// did not work around it: a `rename(2)` of a directory on overlayfs failed (`EXDEV`
        /// for a directory with lower content when the overlay has no `redirect_dir`, as in an
        /// unprivileged sandbox) and the command did not then create the target and delete
        /// the source (`mv`'s copy fallback). The run may differ from the live one.
        REFUSED = 6, "refused";
    }
}

impl Kinds {
    /// Kinds that observe the state of a path (its content, metadata, existence or entries).
    pub const OBSERVE: Kinds = Kinds(
        Kinds::READ.0
            | Kinds::STAT.0
            | Kinds::EXISTS.0
            | Kinds::MISSING.0
            | Kinds::LIST.0
            | Kinds::WRITE.0
            | Kinds::RENAME_FROM.0
            | Kinds::EXEC.0,
    );
    /// Kinds that change a path.
    pub const MODIFY: Kinds = Kinds(
        Kinds::WRITE_TRUNC.0
            | Kinds::WRITE.0
            | Kinds::CREATE.0
            | Kinds::DELETE.0
            | Kinds::RENAME_FROM.0
            | Kinds::RENAME_TO.0
            | Kinds::SET_META.0,
    );
    /// Kinds that add or remove a directory entry (they change the parent's listing and every
    /// lookup below the path).
    pub const NAMESPACE: Kinds =
        Kinds(Kinds::CREATE.0 | Kinds::DELETE.0 | Kinds::RENAME_FROM.0 | Kinds::RENAME_TO.0);
}

/// A path as raw bytes. Serialized as a string when it is UTF-8, else as an array of bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathBytes(pub Vec<u8>);

impl fmt::Debug for PathBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl Serialize for PathBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for b in &self.0 {
                    seq.serialize_element(b)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for PathBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PathBytes, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path as a string or an array of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PathBytes, E> {
                Ok(PathBytes(v.as_bytes().to_vec()))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<PathBytes, E> {
                Ok(PathBytes(v.to_vec()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<PathBytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(PathBytes(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of a [`Trace`], as serialized.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Access {
    /// The path: absolute, with symlinks resolved (a symlink met on the way is recorded
    /// separately as `exists`).
    pub path: PathBytes,
    /// Every way the path was accessed.
    pub kinds: Kinds,
}

/// Counters about a traced run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Notifications handled.
    pub notifications: u64,
    /// Notifications whose caller vanished before it could be decoded.
    pub vanished: u64,
    /// Lookups recorded by the preload shim without a notification ([`crate::Tracer::fast_path`]).
    #[serde(default)]
    pub fast: u64,
}

/// The read/write sets of a traced process tree, deduplicated per path.
///
/// Kept sorted by path so that two traces intersect in one merge pass, and so that every
/// path below a directory is one range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    #[serde(with = "access_list")]
    accesses: BTreeMap<Vec<u8>, Kinds>,
    /// Conditions that make the run unsafe to commit.
    pub flags: Flags,
    /// Why each flag was raised (the first few occurrences).
    pub notes: Vec<String>,
    /// Counters.
    pub stats: Stats,
}

mod access_list {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        m: &BTreeMap<Vec<u8>, Kinds>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(m.len()))?;
        for (path, kinds) in m {
            seq.serialize_element(&Access {
                path: PathBytes(path.clone()),
                kinds: *kinds,
            })?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Vec<u8>, Kinds>, D::Error> {
        let list = Vec::<Access>::deserialize(d)?;
        let mut m = BTreeMap::new();
        for a in list {
            *m.entry(a.path.0).or_insert(Kinds::empty()) |= a.kinds;
        }
        Ok(m)
    }
}

const MAX_NOTES: usize = 32;

impl Trace {
    /// An empty trace.
    pub fn new() -> Trace {
        Trace::default()
    }

    /// Records `kinds` on `path`.
    pub fn record(&mut self, path: &[u8], kinds: Kinds) {
        if let Some(k) = self.accesses.get_mut(path) {
            *k |= kinds;
        } else {
            self.accesses.insert(path.to_vec(), kinds);
        }
    }

    /// Raises `flag`, keeping `note` as the reason if there is room.
    pub fn flag(&mut self, flag: Flags, note: impl FnOnce() -> String) {
        self.flags |= flag;
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note());
        }
    }

    /// The kinds recorded on `path`, if any.
    pub fn get(&self, path: &[u8]) -> Option<Kinds> {
        self.accesses.get(path).copied()
    }

    /// Every (path, kinds), sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Kinds)> {
        self.accesses.iter().map(|(p, k)| (p.as_slice(), *k))
    }

    /// Paths whose state the run observed (kinds in [`Kinds::OBSERVE`]).
    pub fn reads(&self) -> impl Iterator<Item = &[u8]> {
        self.iter()
            .filter(|(_, k)| k.intersects(Kinds::OBSERVE))
            .map(|(p, _)| p)
    }

    /// Paths the run changed (kinds in [`Kinds::MODIFY`]).
    pub fn writes(&self) -> impl Iterator<Item = &[u8]> {
        self.iter()
            .filter(|(_, k)| k.intersects(Kinds::MODIFY))
            .map(|(p, _)| p)
    }

    /// Whether the run may be committed speculatively as far as the tracer can tell: no
    /// [`Flags`] raised.
    pub fn is_clean(&self) -> bool {
        self.flags.is_empty()
    }

    /// Number of distinct paths.
    pub fn len(&self) -> usize {
        self.accesses.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.accesses.is_empty()
    }

    /// Merges `other` into `self`.
    pub fn merge(&mut self, other: &Trace) {
        for (p, k) in other.iter() {
            self.record(p, k);
        }
        self.flags |= other.flags;
        self.stats.notifications += other.stats.notifications;
        self.stats.fast += other.stats.fast;
        self.stats.vanished += other.stats.vanished;
    }

    /// Paths whose state `later` observed and `earlier` changed: the read-after-write conflicts
    /// of DESIGN §3. Also counts a change to a directory entry as changing the parent's listing
    /// and every path below it (a lookup under a deleted or created directory).
    pub fn conflicts(earlier: &Trace, later: &Trace) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (path, wk) in earlier.iter() {
            if !wk.intersects(Kinds::MODIFY) {
                continue;
            }
            if let Some(rk) = later.get(path)
                && rk.intersects(Kinds::OBSERVE)
            {
                out.push(path.to_vec());
                continue;
            }
            if wk.intersects(Kinds::NAMESPACE) {
                if let Some(parent) = parent(path)
                    && later.get(parent).is_some_and(|rk| rk.contains(Kinds::LIST))
                {
                    out.push(path.to_vec());
                    continue;
                }
                let mut prefix = path.to_vec();
                prefix.push(b'/');
                let below = later
                    .accesses
                    .range::<[u8], _>((
                        std::ops::Bound::Included(&prefix[..]),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .any(|(_, k)| k.intersects(Kinds::OBSERVE));
                if below {
                    out.push(path.to_vec());
                }
            }
        }
        out
    }
}

/// The parent directory of an absolute path (`/` for `/a`).
pub(crate) fn parent(path: &[u8]) -> Option<&[u8]> {
    let i = path.iter().rposition(|&b| b == b'/')?;
    if path.len() <= 1 {
        return None;
    }
    Some(if i == 0 { b"/" } else { &path[..i] })
}
