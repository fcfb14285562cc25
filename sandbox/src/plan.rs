//! The sandbox setup plan: a list of [`Step`]s computed from `/proc/self/mountinfo` with no
//! side effects, printable, and executed in one loop by [`crate::exec`].

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// One mount of the host, from `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// Mount id.
    pub id: u32,
    /// Parent mount id.
    pub parent: u32,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Filesystem type (`ext4`, `tmpfs`, ...).
    pub fstype: OsString,
    /// Whether the mount (and its superblock) is writable.
    pub writable: bool,
}

fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (field[i + 1] - b'0') * 64 + (field[i + 2] - b'0') * 8 + (field[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// Parse the text of `/proc/self/mountinfo`.
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountInfo> {
    let mut mounts = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if fields.len() < 6 || fields.len() < sep + 3 {
            continue;
        }
        let num = |f: &[u8]| {
            std::str::from_utf8(f)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        let opts_rw = fields[5].split(|&b| b == b',').any(|o| o == b"rw");
        let super_rw = fields
            .get(sep + 3)
            .is_none_or(|s| s.split(|&b| b == b',').any(|o| o == b"rw"));
        mounts.push(MountInfo {
            id: num(fields[0]),
            parent: num(fields[1]),
            mountpoint: PathBuf::from(OsString::from_vec(unescape(fields[4]))),
            fstype: OsString::from_vec(fields[sep + 1].to_vec()),
            writable: opts_rw && super_rw,
        });
    }
    mounts
}

/// Read and parse `/proc/self/mountinfo`.
pub fn read_mountinfo() -> Result<Vec<MountInfo>, Error> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    Ok(parse_mountinfo(&text))
}

/// Filesystems whose writable mounts get an overlay (their changes are captured and can be
/// committed); every other mount is bound read-only.
const REAL_FS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs", "bcachefs", "zfs", "jfs", "nilfs2",
    "reiserfs", "vfat", "exfat",
];

/// One overlay of the sandbox: the live directory it covers and where its changes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The live directory the overlay covers (also its lower dir).
    pub target: PathBuf,
    /// The overlay upper dir: what the sandbox changed below `target`.
    pub upper: PathBuf,
    /// The overlay work dir (same filesystem as `upper`).
    pub work: PathBuf,
}

/// One step of the sandbox setup, run in order by one loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `unshare(2)` the listed namespaces (in the first child).
    Unshare {
        /// New user namespace (unprivileged callers).
        user: bool,
        /// New mount namespace.
        mount: bool,
        /// New pid and ipc namespaces.
        pid_ipc: bool,
        /// New network namespace (unless `--net`).
        net: bool,
    },
    /// Enter the network namespace the caller shares between its sandboxes (root only:
    /// [`crate::shared_network`]) instead of creating one.
    JoinNet,
    /// Map the caller's uid and gid to themselves in the new user namespace.
    MapIds {
        /// Caller's uid.
        uid: u32,
        /// Caller's gid.
        gid: u32,
    },
    /// Fork the namespace's init (pid 1); the remaining steps run there.
    ForkInit,
    /// Make every mount private so nothing propagates to or from the host.
    MakePrivate,
    /// Mount an empty tmpfs (a skeleton directory, `/dev`).
    MountTmpfs {
        /// Mount point.
        target: PathBuf,
    },
    /// Mount an overlay of a live directory.
    MountOverlay {
        /// Index into [`Plan::layers`].
        layer: usize,
        /// Mount point.
        target: PathBuf,
    },
    /// Create a directory in a skeleton tmpfs.
    Mkdir {
        /// Path.
        path: PathBuf,
    },
    /// Create a symlink in a skeleton tmpfs.
    Symlink {
        /// What the link points to.
        target: PathBuf,
        /// Link path.
        link: PathBuf,
    },
    /// Create an empty file as a bind-mount target.
    CreateFile {
        /// Path.
        path: PathBuf,
    },
    /// Bind-mount `source` on `target` and make it read-only.
    BindRo {
        /// Source.
        source: PathBuf,
        /// Mount point.
        target: PathBuf,
        /// Include submounts (`MS_REC`).
        recursive: bool,
    },
    /// Bind-mount a device node (read-write, as on the host).
    BindDev {
        /// Host device path.
        source: PathBuf,
        /// Mount point.
        target: PathBuf,
    },
    /// Mount a new devpts instance.
    MountDevpts {
        /// Mount point.
        target: PathBuf,
    },
    /// Mount a fresh procfs for the new pid namespace.
    MountProc {
        /// Mount point.
        target: PathBuf,
    },
    /// Make one mount read-only.
    ReadOnly {
        /// Mount point.
        target: PathBuf,
    },
    /// Bring up the loopback interface.
    LoopbackUp,
    /// `pivot_root(2)` into the new root and detach the old one.
    PivotRoot {
        /// The new root.
        new_root: PathBuf,
    },
    /// Enter a new user namespace with the identity map (privileged callers, after the mounts,
    /// so the sandboxed root cannot unmount the overlays).
    EnterUserNs,
    /// Fork the command, set its cwd, umask and fds, and exec it.
    Exec,
}

impl Step {
    /// The main path the step acts on, if any (for error messages).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Step::MountTmpfs { target }
            | Step::MountOverlay { target, .. }
            | Step::BindRo { target, .. }
            | Step::BindDev { target, .. }
            | Step::MountDevpts { target }
            | Step::MountProc { target }
            | Step::ReadOnly { target }
            | Step::PivotRoot { new_root: target } => Some(target),
            Step::Mkdir { path } | Step::CreateFile { path } => Some(path),
            Step::Symlink { link, .. } => Some(link),
            _ => None,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Unshare {
                user,
                mount,
                pid_ipc,
                net,
            } => {
                write!(f, "unshare")?;
                for (on, name) in [
                    (user, " user"),
                    (mount, " mnt"),
                    (pid_ipc, " pid ipc"),
                    (net, " net"),
                ] {
                    if *on {
                        write!(f, "{name}")?;
                    }
                }
                Ok(())
            }
            Step::JoinNet => write!(f, "join-net (shared, loopback only)"),
            Step::MapIds { uid, gid } => write!(f, "map-ids uid {uid} gid {gid}"),
            Step::ForkInit => write!(f, "fork-init"),
            Step::MakePrivate => write!(f, "make-private /"),
            Step::MountTmpfs { target } => write!(f, "mount-tmpfs {}", target.display()),
            Step::MountOverlay { layer, target } => {
                write!(f, "mount-overlay layer {layer} on {}", target.display())
            }
            Step::Mkdir { path } => write!(f, "mkdir {}", path.display()),
            Step::Symlink { target, link } => {
                write!(f, "symlink {} -> {}", link.display(), target.display())
            }
            Step::CreateFile { path } => write!(f, "create-file {}", path.display()),
            Step::BindRo {
                source,
                target,
                recursive,
            } => write!(
                f,
                "bind-ro{} {} on {}",
                if *recursive { " -r" } else { "" },
                source.display(),
                target.display()
            ),
            Step::BindDev { source, target } => {
                write!(f, "bind-dev {} on {}", source.display(), target.display())
            }
            Step::MountDevpts { target } => write!(f, "mount-devpts {}", target.display()),
            Step::MountProc { target } => write!(f, "mount-proc {}", target.display()),
            Step::ReadOnly { target } => write!(f, "read-only {}", target.display()),
            Step::LoopbackUp => write!(f, "loopback-up"),
            Step::PivotRoot { new_root } => write!(f, "pivot-root {}", new_root.display()),
            Step::EnterUserNs => write!(f, "enter-userns (identity map)"),
            Step::Exec => write!(f, "exec"),
        }
    }
}

/// The complete setup of one sandbox.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The overlays; `Step::MountOverlay::layer` indexes this.
    pub layers: Vec<Layer>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.layers.iter().enumerate() {
            writeln!(
                f,
                "# layer {i}: {} (upper {}, work {})",
                l.target.display(),
                l.upper.display(),
                l.work.display()
            )?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "{i:3} {s}")?;
        }
        Ok(())
    }
}

/// What the plan depends on besides the mount table.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The sandbox directory (holds layers whose filesystem it shares, and the new root).
    pub dir: PathBuf,
    /// Caller's uid, gid.
    pub uid: u32,
    /// Caller's gid.
    pub gid: u32,
    /// Whether the caller is root in the initial user namespace (one overlay for `/`, no
    /// locked mounts).
    pub privileged: bool,
    /// Keep the host network.
    pub net: bool,
    /// Root only: join a network namespace shared between sandboxes (loopback only, set up
    /// once) rather than creating one per sandbox.
    pub shared_net: bool,
    /// Layers already allocated (reused sandbox dir): same target → same upper dir.
    pub existing: Vec<Layer>,
    /// Unprivileged only: directories that must be layer roots because their ancestors
    /// belong to users outside the sandbox's id map (overlayfs cannot copy those up, so a
    /// write below them would fail with EOVERFLOW). See [`writable_roots`].
    pub writable_roots: Vec<PathBuf>,
    /// Keep every upper dir in the sandbox directory, even on another filesystem than its
    /// live data (commit then copies); for tests of the copy path.
    pub upper_in_dir: bool,
}

/// Whether the sandbox joins the shared network namespace (root, no `--net`).
fn joins_net(input: &PlanInput) -> bool {
    input.shared_net && input.privileged && !input.net
}

/// For an unprivileged caller: the topmost writable directory on the way to each of `paths`
/// (e.g. `/tmp` for `/tmp/a/b`, `/home/me` for `/home/me/src`).
pub fn writable_roots(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    for p in paths {
        let mut acc = PathBuf::from("/");
        for comp in p.components().skip(1) {
            acc.push(comp);
            if writable(&acc) {
                if acc.is_dir() && !roots.contains(&acc) {
                    roots.push(acc.clone());
                }
                break;
            }
        }
    }
    roots
}

fn under(path: &Path, root: &Path) -> bool {
    path.starts_with(root) && path != root
}

fn join(root: &Path, abs: &Path) -> PathBuf {
    let rel = abs.strip_prefix("/").unwrap_or(abs);
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

struct Builder<'a> {
    input: &'a PlanInput,
    new_root: PathBuf,
    dir_dev: u64,
    steps: Vec<Step>,
    layers: Vec<Layer>,
    next_index: usize,
    read_only_after: Vec<PathBuf>,
}

impl Builder<'_> {
    /// Where the upper/work dirs of an overlay of `target` (on filesystem `dev`, mounted at
    /// `mountpoint`) go: in the sandbox dir if it is the same filesystem (commit renames),
    /// else in `<mountpoint>/.hs-sandboxes/<id>/` if writable, else the sandbox dir (commit
    /// copies).
    fn layer(&mut self, target: &Path, mountpoint: &Path, dev: u64) -> usize {
        if let Some(l) = self.input.existing.iter().find(|l| l.target == target) {
            self.layers.push(l.clone());
            return self.layers.len() - 1;
        }
        let index = self.next_index;
        self.next_index += 1;
        let base = if self.input.upper_in_dir
            || dev == self.dir_dev
            || !writable(mountpoint)
            || is_overlayfs(mountpoint)
        {
            self.input.dir.join("layers")
        } else {
            let id = std::fs::metadata(&self.input.dir)
                .map(|m| m.ino())
                .unwrap_or(0);
            mountpoint
                .join(format!(".hs-sandboxes-{}", self.input.uid))
                .join(format!("{id:x}"))
        };
        let d = base.join(index.to_string());
        self.layers.push(Layer {
            target: target.to_path_buf(),
            upper: d.join("upper"),
            work: d.join("work"),
        });
        self.layers.len() - 1
    }

    fn overlay(&mut self, target: &Path, mountpoint: &Path, dev: u64) {
        let layer = self.layer(target, mountpoint, dev);
        let t = join(&self.new_root, target);
        self.steps.push(Step::MountOverlay { layer, target: t });
    }

    /// Overlay `path` (a directory on the mount at `mountpoint`) split around the mount points
    /// in `children`: directories free of them get one overlay each, the others become
    /// read-only skeleton directories holding their entries.
    fn split(&mut self, path: &Path, mountpoint: &Path, dev: u64, children: &[PathBuf]) {
        let point_below = self.input.writable_roots.iter().any(|w| under(w, path));
        if !point_below && !children.iter().any(|c| c.starts_with(path)) {
            let target = join(&self.new_root, path);
            if path != mountpoint {
                self.steps.push(Step::Mkdir {
                    path: target.clone(),
                });
            }
            // Unprivileged, a directory the caller cannot write is bound read-only instead
            // of overlaid: overlayfs could not copy up its root-owned subdirectories anyway,
            // so the overlay would capture nothing and cost a mount (~1 ms or more on ext4).
            // Writes there fail with EROFS where the live system would say EACCES.
            if self.input.privileged
                || self.input.writable_roots.iter().any(|w| w == path)
                || writable(path)
            {
                self.overlay(path, mountpoint, dev);
            } else {
                self.steps.push(Step::BindRo {
                    source: path.to_path_buf(),
                    target,
                    recursive: false,
                });
            }
            return;
        }
        let target = join(&self.new_root, path);
        if path == mountpoint {
            self.steps.push(Step::MountTmpfs {
                target: target.clone(),
            });
            self.read_only_after.push(target.clone());
        } else {
            self.steps.push(Step::Mkdir {
                path: target.clone(),
            });
        }
        if children.iter().any(|c| c == path) && path != mountpoint {
            return; // a mount point: its own mount fills it
        }
        let Ok(rd) = std::fs::read_dir(path) else {
            return;
        };
        let mut names: Vec<OsString> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        names.sort();
        for name in names {
            let p = path.join(&name);
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_dir() {
                if md.dev() != dev || children.iter().any(|c| c == &p) {
                    self.steps.push(Step::Mkdir {
                        path: join(&self.new_root, &p),
                    });
                } else {
                    self.split(&p, mountpoint, dev, children);
                }
            } else if ft.is_symlink() {
                if let Ok(t) = std::fs::read_link(&p) {
                    self.steps.push(Step::Symlink {
                        target: t,
                        link: join(&self.new_root, &p),
                    });
                }
            } else if ft.is_file() {
                let t = join(&self.new_root, &p);
                self.steps.push(Step::CreateFile { path: t.clone() });
                self.steps.push(Step::BindRo {
                    source: p,
                    target: t,
                    recursive: false,
                });
            }
        }
    }
}

/// Whether `p` is on an overlayfs (which cannot hold an upper dir, e.g. a container's root).
#[allow(clippy::unnecessary_cast)] // f_type is i64 on x86_64, narrower elsewhere
pub(crate) fn is_overlayfs(p: &Path) -> bool {
    const OVERLAYFS_MAGIC: i64 = 0x794c_7630;
    nix::sys::statfs::statfs(p).is_ok_and(|st| st.filesystem_type().0 as i64 == OVERLAYFS_MAGIC)
}

fn writable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
}

fn is_real_writable(m: &MountInfo) -> bool {
    m.writable && REAL_FS.iter().any(|f| OsStr::new(f) == m.fstype)
}

/// Build the setup plan for `input` over the host mounts `mounts` (no side effects beyond
/// reading directories and `stat`).
pub fn build(input: &PlanInput, mounts: &[MountInfo]) -> Result<Plan, Error> {
    // The visible mount per mount point is the last one listed.
    let mut visible: Vec<MountInfo> = Vec::new();
    for m in mounts {
        visible.retain(|v| v.mountpoint != m.mountpoint);
        visible.push(m.clone());
    }
    visible.sort_by_key(|m| m.mountpoint.components().count());
    let dir_dev = std::fs::metadata(&input.dir)
        .map_err(|e| Error::io("stat", &input.dir, e))?
        .dev();
    let next_index = input.existing.len();
    let new_root = input.dir.join("root");
    let mut b = Builder {
        input,
        new_root: new_root.clone(),
        dir_dev,
        steps: Vec::new(),
        layers: Vec::new(),
        next_index,
        read_only_after: Vec::new(),
    };
    // Unprivileged: the helper enters every namespace and maps ids before forking init.
    // Privileged: init makes its own mount namespace, so that its pivot_root does not move the
    // helper's root (the helper must still see the host's /proc to map init's ids).
    let p = input.privileged;
    if joins_net(input) {
        b.steps.push(Step::JoinNet);
    }
    b.steps.push(Step::Unshare {
        user: !p,
        mount: !p,
        pid_ipc: true,
        net: !input.net && !joins_net(input),
    });
    if !p {
        b.steps.push(Step::MapIds {
            uid: input.uid,
            gid: input.gid,
        });
    }
    b.steps.push(Step::ForkInit);
    if p {
        b.steps.push(Step::Unshare {
            user: false,
            mount: true,
            pid_ipc: false,
            net: false,
        });
    }
    b.steps.push(Step::MakePrivate);

    let all_points: Vec<PathBuf> = visible.iter().map(|m| m.mountpoint.clone()).collect();
    let special =
        |p: &Path| p.starts_with("/proc") || p.starts_with("/sys") || p.starts_with("/dev");
    let dev_of = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).unwrap_or(u64::MAX);

    // The root filesystem.
    let root = visible.iter().find(|m| m.mountpoint == Path::new("/"));
    let root_rw = root.is_some_and(is_real_writable);
    if root_rw && input.privileged {
        b.overlay(Path::new("/"), Path::new("/"), dev_of(Path::new("/")));
    } else if root_rw {
        let children: Vec<PathBuf> = all_points
            .iter()
            .filter(|p| under(p, Path::new("/")))
            .cloned()
            .collect();
        b.split(
            Path::new("/"),
            Path::new("/"),
            dev_of(Path::new("/")),
            &children,
        );
    } else {
        b.steps.push(Step::BindRo {
            source: "/".into(),
            target: new_root.clone(),
            recursive: false,
        });
    }

    // /dev, built from scratch.
    let dev = join(&new_root, Path::new("/dev"));
    b.steps.push(Step::MountTmpfs {
        target: dev.clone(),
    });
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let t = dev.join(name);
        b.steps.push(Step::CreateFile { path: t.clone() });
        b.steps.push(Step::BindDev {
            source: Path::new("/dev").join(name),
            target: t,
        });
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        b.steps.push(Step::Symlink {
            target: target.into(),
            link: dev.join(link),
        });
    }
    b.steps.push(Step::Mkdir {
        path: dev.join("pts"),
    });
    b.steps.push(Step::Mkdir {
        path: dev.join("shm"),
    });
    b.steps.push(Step::MountDevpts {
        target: dev.join("pts"),
    });
    match visible
        .iter()
        .find(|m| m.mountpoint == Path::new("/dev/shm"))
    {
        Some(m) if is_real_writable(m) => {
            let p = Path::new("/dev/shm");
            b.overlay(p, p, dev_of(p));
        }
        _ => b.steps.push(Step::MountTmpfs {
            target: dev.join("shm"),
        }),
    }
    b.read_only_after.push(dev);

    // /sys: the host's, read-only.
    if visible.iter().any(|m| m.mountpoint == Path::new("/sys")) {
        b.steps.push(Step::BindRo {
            source: "/sys".into(),
            target: join(&new_root, Path::new("/sys")),
            recursive: true,
        });
    }

    // Every other mount: an overlay if it is a writable real filesystem, else read-only.
    let mut bound: Vec<PathBuf> = Vec::new();
    for m in &visible {
        let p = m.mountpoint.as_path();
        if p == Path::new("/") || special(p) || bound.iter().any(|b| p.starts_with(b)) {
            continue;
        }
        // Skip mounts hidden under the sandbox's own directory.
        if p.starts_with(&input.dir) {
            continue;
        }
        if is_real_writable(m) {
            if input.privileged {
                b.overlay(p, p, dev_of(p));
            } else {
                let children: Vec<PathBuf> =
                    all_points.iter().filter(|c| under(c, p)).cloned().collect();
                b.split(p, p, dev_of(p), &children);
            }
        } else {
            b.steps.push(Step::BindRo {
                source: p.to_path_buf(),
                target: join(&new_root, p),
                recursive: true,
            });
            bound.push(p.to_path_buf());
        }
    }

    // Hide the sandbox's own storage (its directory and upper dirs kept elsewhere) behind
    // empty read-only tmpfs mounts: the command cannot see or delete what holds its changes.
    let mut hidden: Vec<PathBuf> = vec![input.dir.clone()];
    for l in &b.layers {
        if let Some(store) = l.upper.parent().and_then(Path::parent)
            && !store.starts_with(&input.dir)
            && !hidden.iter().any(|h| h == store)
        {
            hidden.push(store.to_path_buf());
        }
    }
    for h in hidden {
        let target = join(&new_root, &h);
        b.steps.push(Step::MountTmpfs {
            target: target.clone(),
        });
        b.read_only_after.push(target);
    }

    let proc_ = join(&new_root, Path::new("/proc"));
    b.steps.push(Step::MountProc {
        target: proc_.clone(),
    });
    b.steps.push(Step::BindRo {
        source: proc_.join("sys"),
        target: proc_.join("sys"),
        recursive: false,
    });
    for t in std::mem::take(&mut b.read_only_after) {
        b.steps.push(Step::ReadOnly { target: t });
    }
    if !input.net && !joins_net(input) {
        b.steps.push(Step::LoopbackUp);
    }
    b.steps.push(Step::PivotRoot { new_root });
    if input.privileged {
        b.steps.push(Step::EnterUserNs);
    }
    b.steps.push(Step::Exec);
    let _ = OsStr::as_bytes; // keep the import used on all cfgs
    Ok(Plan {
        steps: b.steps,
        layers: b.layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(privileged: bool, roots: Vec<PathBuf>) -> PlanInput {
        PlanInput {
            dir: std::env::temp_dir(),
            uid: 1000,
            gid: 1000,
            privileged,
            net: false,
            shared_net: false,
            existing: Vec::new(),
            writable_roots: roots,
            upper_in_dir: true,
        }
    }

    const MOUNTS: &[u8] = b"27 1 254:0 / / rw - ext4 /dev/vda rw\n\
        22 27 0:21 / /proc rw - proc proc rw\n\
        24 27 0:6 / /dev rw - devtmpfs devtmpfs rw\n\
        25 24 0:23 / /dev/shm rw - tmpfs tmpfs rw\n\
        23 27 0:22 / /sys rw - sysfs sysfs rw\n\
        28 27 0:25 / /usr/share ro - tmpfs x ro\n";

    #[test]
    fn privileged_plan_overlays_root_once() {
        let plan = build(&input(true, Vec::new()), &parse_mountinfo(MOUNTS)).unwrap();
        let targets: Vec<&Path> = plan.layers.iter().map(|l| l.target.as_path()).collect();
        assert_eq!(targets, [Path::new("/"), Path::new("/dev/shm")]);
        let s = &plan.steps;
        assert!(matches!(
            s[0],
            Step::Unshare {
                user: false,
                mount: false,
                pid_ipc: true,
                net: true
            }
        ));
        assert!(s.iter().any(|x| matches!(x, Step::BindRo { source, recursive: true, .. } if source == Path::new("/usr/share"))));
        assert!(matches!(s[s.len() - 2], Step::EnterUserNs));
        assert!(matches!(s[s.len() - 1], Step::Exec));
        let text = plan.to_string();
        assert!(
            text.contains("mount-proc")
                && text.contains("loopback-up")
                && text.contains("pivot-root")
        );
    }

    #[test]
    fn a_shared_network_is_joined_not_created() {
        let mut i = input(true, Vec::new());
        i.shared_net = true;
        let plan = build(&i, &parse_mountinfo(MOUNTS)).unwrap();
        assert!(matches!(plan.steps[0], Step::JoinNet));
        assert!(matches!(plan.steps[1], Step::Unshare { net: false, .. }));
        assert!(!plan.steps.iter().any(|s| matches!(s, Step::LoopbackUp)));
        // Unprivileged callers make their own.
        let mut i = input(false, vec!["/tmp".into()]);
        i.shared_net = true;
        let plan = build(&i, &parse_mountinfo(MOUNTS)).unwrap();
        assert!(!plan.steps.iter().any(|s| matches!(s, Step::JoinNet)));
        assert!(plan.steps.iter().any(|s| matches!(s, Step::LoopbackUp)));
    }

    #[test]
    fn unprivileged_plan_splits_root_around_mounts_and_writable_roots() {
        let plan = build(&input(false, vec!["/tmp".into()]), &parse_mountinfo(MOUNTS)).unwrap();
        let s = &plan.steps;
        assert!(matches!(
            s[0],
            Step::Unshare {
                user: true,
                mount: true,
                ..
            }
        ));
        assert!(matches!(
            s[1],
            Step::MapIds {
                uid: 1000,
                gid: 1000
            }
        ));
        // The root is a tmpfs skeleton; /tmp is an overlay; /usr (holding a mount) is split.
        assert!(matches!(&s[4], Step::MountTmpfs { .. }));
        assert!(plan.layers.iter().any(|l| l.target == Path::new("/tmp")));
        assert!(!plan.layers.iter().any(|l| l.target == Path::new("/")));
        assert!(
            !s.iter()
                .any(|x| matches!(x, Step::MountOverlay { target, .. } if target.ends_with("usr")))
        );
        assert!(s.iter().any(|x| matches!(x, Step::ReadOnly { target } if target == &std::env::temp_dir().join("root"))));
    }

    #[test]
    fn parses_mountinfo_with_escapes() {
        let text = b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                     28 27 0:25 / /mnt/a\\040b ro,nosuid - tmpfs x ro,size=4k\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mountpoint, Path::new("/"));
        assert!(m[0].writable);
        assert_eq!(m[1].mountpoint, Path::new("/mnt/a b"));
        assert!(!m[1].writable);
        assert_eq!(m[1].fstype, "tmpfs");
    }
}
