//! The [`Sandbox`] type: a directory holding overlay layers, and the runs over it.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::changes::ChangeSet;
use crate::commit::{self, CommitReport};
use crate::error::Error;
use crate::exec::{self, Child, Command, Prepared, Ready};
use crate::plan::{self, Layer, Plan, PlanInput};

/// How to build a sandbox.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Share the host's network (default: a new network namespace with only loopback).
    pub net: bool,
    /// Root only: instead of a new network namespace per sandbox, join this one (from
    /// [`crate::shared_network`]; loopback only), which saves creating and destroying one
    /// per run. Sandboxes sharing it can reach each other's loopback and abstract sockets.
    pub shared_net: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    /// Unprivileged only: more directories the command will write below (the sandbox makes
    /// `/tmp`, `/var/tmp`, `$HOME` and the cwd writable already; see [`PlanInput`]).
    pub writable: Vec<PathBuf>,
}

/// A copy-on-write sandbox of the live filesystem, kept in a directory.
///
/// Layout of the directory: `sandbox.meta` (the layers), `layers/N/{upper,work}` (overlays on
/// the directory's own filesystem), `root/` (mount point of the new root), `committed` (once
/// committed), `journal` (while a commit is in flight).
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
    layers: Vec<Layer>,
    /// The shared network namespace its runs join, kept open while they may.
    _net: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    plan: Option<(Plan, Prepared)>,
    /// Whether a run has used the work dirs since they were last emptied.
    used: std::cell::Cell<bool>,
    /// The previous run's helper, reaped in the background.
    reaper: exec::Reaper,
}

const META: &str = "sandbox.meta";
/// Present when the sandbox's overlays use `trusted.overlay.*` xattrs (see [`Sandbox::create`]).
pub(crate) const TRUSTED_MARKER: &str = "xattrs-trusted";
const MAGIC: &[u8] = b"hs-sandbox 1\n";

pub(crate) fn read_meta(dir: &Path) -> Result<Vec<Layer>, Error> {
    let path = dir.join(META);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotASandbox {
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let Some(rest) = data.strip_prefix(MAGIC) else {
        return Err(Error::NotASandbox {
            dir: dir.to_path_buf(),
        });
    };
    let fields: Vec<&[u8]> = rest.split(|&b| b == 0).collect();
    let mut layers = Vec::new();
    for f in fields.chunks_exact(3) {
        let p = |b: &[u8]| PathBuf::from(OsString::from_vec(b.to_vec()));
        layers.push(Layer {
            target: p(f[0]),
            upper: p(f[1]),
            work: p(f[2]),
        });
    }
    Ok(layers)
}

fn write_meta(dir: &Path, layers: &[Layer]) -> Result<(), Error> {
    let mut data = MAGIC.to_vec();
    for l in layers {
        for p in [&l.target, &l.upper, &l.work] {
            data.extend(p.as_os_str().as_bytes());
            data.push(0);
        }
    }
    let tmp = dir.join("sandbox.meta.tmp");
    std::fs::write(&tmp, &data).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, dir.join(META)).map_err(|e| Error::io("write", &dir.join(META), e))
}

fn mkdir_p(p: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| Error::io("create", p, e))
}

/// Whether the caller is root in the initial user namespace.
pub(crate) fn privileged() -> bool {
    let (_, _, euid) = crate::sys::ids();
    euid == 0
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// Default parent directory for temporary sandboxes: one on the root filesystem, so that
/// commits of files under `/` rename instead of copying.
pub fn default_base() -> PathBuf {
    let root_dev = std::fs::metadata("/").map(|m| m.dev()).ok();
    for cand in ["/var/tmp", "/tmp"] {
        let p = Path::new(cand);
        if std::fs::metadata(p).map(|m| m.dev()).ok() == root_dev
            && nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
        {
            return p.to_path_buf();
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cache/hs");
        if std::fs::create_dir_all(&p).is_ok() {
            return p;
        }
    }
    std::env::temp_dir()
}

/// Refuse upper dirs on filesystems overlayfs cannot use as upper layer, with a hint.
fn check_upper_fs(upper: &Path) -> Result<(), Error> {
    const OVERLAYFS_MAGIC: i64 = 0x794c_7630;
    let mut p = upper;
    while !p.exists() {
        match p.parent() {
            Some(q) => p = q,
            None => return Ok(()),
        }
    }
    if let Ok(st) = nix::sys::statfs::statfs(p)
        && st.filesystem_type().0 == OVERLAYFS_MAGIC
    {
        return Err(Error::UnsupportedUpper {
            path: upper.to_path_buf(),
            reason: "it is on an overlayfs (e.g. a container's root)",
        });
    }
    Ok(())
}

/// Give a new upper dir the attributes of the live directory it covers: the overlay's root
/// shows the upper dir's owner, mode and times. An unprivileged caller cannot give away
/// ownership, so where it cannot write the live directory the owner-write bit is dropped
/// instead: permission checks then match the live directory's.
fn init_upper_root(upper: &Path, target: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::metadata(target).map_err(|e| Error::io("stat", target, e))?;
    let mut mode = md.mode() & 0o7777;
    if std::os::unix::fs::chown(upper, Some(md.uid()), Some(md.gid())).is_err()
        && nix::unistd::access(target, nix::unistd::AccessFlags::W_OK).is_err()
    {
        mode &= !0o200;
    }
    std::fs::set_permissions(upper, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set the mode of", upper, e))?;
    let c =
        crate::sys::cstr(upper.as_os_str()).map_err(|e| Error::io("convert", upper, e.into()))?;
    crate::sys::lutimens(
        &c,
        (md.atime(), md.atime_nsec()),
        (md.mtime(), md.mtime_nsec()),
    )
    .map_err(|e| Error::io("set the times of", upper, e.into()))
}

impl Sandbox {
    /// Create a sandbox in `dir` (created if missing; an existing sandbox there is reused, so
    /// successive runs see each other's changes). Computes the setup plan; no namespace is
    /// entered until [`Sandbox::spawn`].
    pub fn create(dir: &Path, opts: &Options) -> Result<Sandbox, Error> {
        mkdir_p(dir)?;
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolve", dir, e))?;
        if dir.join("committed").exists() {
            return Err(Error::AlreadyCommitted { dir });
        }
        if dir.join(commit::JOURNAL).exists() {
            return Err(Error::CommitPending { dir });
        }
        let existing = match read_meta(&dir) {
            Ok(l) => l,
            Err(Error::NotASandbox { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let reused = !existing.is_empty();
        let (uid, gid, _) = crate::sys::ids();
        let privileged = privileged();
        let writable_roots = if privileged {
            Vec::new()
        } else {
            let mut cands: Vec<PathBuf> = vec!["/tmp".into(), "/var/tmp".into(), dir.clone()];
            cands.extend(std::env::var_os("HOME").map(PathBuf::from));
            cands.extend(std::env::current_dir().ok());
            cands.extend(opts.writable.iter().cloned());
            plan::writable_roots(&cands)
        };
        let input = PlanInput {
            dir: dir.clone(),
            uid,
            gid,
            privileged,
            net: opts.net,
            shared_net: opts.shared_net.is_some(),
            existing: existing.clone(),
            writable_roots,
            upper_in_dir: std::env::var_os("HS_SANDBOX_UPPER_IN_DIR").is_some(),
        };
        let plan = plan::build(&input, &plan::read_mountinfo()?)?;
        // Keep layers of earlier runs that this plan does not mount, so their changes survive.
        let mut layers = plan.layers.clone();
        for l in &existing {
            if !layers.iter().any(|x| x.target == l.target) {
                layers.push(l.clone());
            }
        }
        for l in &plan.layers {
            check_upper_fs(&l.upper)?;
            if !l.upper.exists() {
                mkdir_p(&l.upper)?;
                init_upper_root(&l.upper, &l.target)?;
            }
            // Overlays are mounted `volatile` (no syncfs of the whole upper filesystem at
            // unmount; commit syncs what it needs), which leaves a marker in the work dir
            // that refuses the next mount: start each run with an empty work dir.
            if l.work.exists() {
                commit::clear_dir(&l.work)?;
            } else {
                mkdir_p(&l.work)?;
            }
        }
        mkdir_p(&dir.join("root"))?;
        if layers != existing {
            write_meta(&dir, &layers)?;
        }
        // Root mounts its overlays with trusted xattrs and `redirect_dir=on` (directory renames
        // as live). A sandbox whose layers were first used in `userxattr` mode (unprivileged,
        // or an older hs) keeps that mode: overlayfs would not see its user.* markers.
        let marker = dir.join(TRUSTED_MARKER);
        let trusted = privileged && (!reused || marker.exists());
        if trusted && !marker.exists() {
            std::fs::write(&marker, b"").map_err(|e| Error::io("write", &marker, e))?;
        }
        let net = opts.shared_net.clone();
        let prepared = exec::prepare(&plan, trusted, net.as_ref().map(|f| f.as_raw_fd()))?;
        Ok(Sandbox {
            dir,
            layers,
            _net: net,
            plan: Some((plan, prepared)),
            used: Default::default(),
            reaper: Default::default(),
        })
    }

    /// Create a sandbox in a new temporary directory under [`default_base`].
    pub fn create_temp(opts: &Options) -> Result<Sandbox, Error> {
        let base = default_base();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let dir = base.join(format!(
            "hs-sandbox-{}-{}",
            std::process::id(),
            now.as_nanos()
        ));
        Sandbox::create(&dir, opts)
    }

    /// Open an existing sandbox directory to inspect or commit it (cannot run commands).
    pub fn open(dir: &Path) -> Result<Sandbox, Error> {
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolve", dir, e))?;
        let layers = read_meta(&dir)?;
        Ok(Sandbox {
            dir,
            layers,
            _net: None,
            plan: None,
            used: Default::default(),
            reaper: Default::default(),
        })
    }

    /// The sandbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The overlay layers.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The setup plan (`None` for a sandbox opened with [`Sandbox::open`]).
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref().map(|(p, _)| p)
    }

    /// Start `cmd` in the sandbox. Returns when the command has been exec'd.
    pub fn spawn(&self, cmd: &Command) -> Result<Child, Error> {
        let (plan, prep) = self.begin_run()?;
        exec::spawn(plan, prep, cmd, &self.reaper)
    }

    /// Start setting up the sandbox's namespaces and mounts now, in the background, and return
    /// a handle that runs a command later ([`Ready::exec`]) without the setup latency. One
    /// prestarted run per sandbox at a time (they would share the upper dirs); a pool is a set
    /// of sandboxes, each prestarted.
    pub fn prestart(&self) -> Result<Ready, Error> {
        let (plan, prep) = self.begin_run()?;
        exec::prestart(plan, prep, &self.reaper)
    }

    /// What every run does first: wait for the previous run's teardown, empty the work dirs
    /// if a run used them (it left overlayfs's `volatile` marker), and mark the sandbox
    /// started.
    fn begin_run(&self) -> Result<(&Plan, &Prepared), Error> {
        let (plan, prep) = self
            .plan
            .as_ref()
            .ok_or(Error::InvalidCommand("sandbox opened read-only"))?;
        exec::wait_reaped(&self.reaper);
        if self.used.replace(true) {
            for l in &plan.layers {
                commit::clear_dir(&l.work)?;
            }
        }
        self.mark_started();
        Ok((plan, prep))
    }

    /// Run `cmd` in the sandbox and wait for it: its exit code (128 + signal if killed).
    pub fn run(&self, cmd: &Command) -> Result<i32, Error> {
        let t0 = std::time::Instant::now();
        let mut child = self.spawn(cmd)?;
        let t1 = std::time::Instant::now();
        let r = child.wait();
        if std::env::var_os("HS_SANDBOX_TIMING").is_some() {
            eprintln!(
                "hs sandbox: spawn {} us, wait {} us",
                (t1 - t0).as_micros(),
                t1.elapsed().as_micros()
            );
        }
        r
    }

    /// What the sandbox changed, compared with the live filesystem now.
    pub fn changes(&self) -> Result<ChangeSet, Error> {
        crate::changes::collect(&self.layers)
    }

    /// Commit the changes into the live filesystem (once; journaled, see README.md). Refuses
    /// ([`Error::Conflict`]) to replace or delete a live file whose ctime is later than the
    /// start of the sandbox's first run — someone else changed it meanwhile.
    pub fn commit(&self) -> Result<CommitReport, Error> {
        exec::wait_reaped(&self.reaper);
        commit::commit(&self.dir, &self.layers, true, true)
    }

    /// [`Sandbox::commit`] without the conflict check (the caller validated the run, as the
    /// engine's scheduler does).
    pub fn commit_unchecked(&self) -> Result<CommitReport, Error> {
        exec::wait_reaped(&self.reaper);
        commit::commit(&self.dir, &self.layers, false, true)
    }

    /// [`Sandbox::commit_unchecked`] for a sandbox that is discarded next: what the commit
    /// displaced inside the sandbox directory (old versions, the upper dirs) is left for
    /// [`Sandbox::discard`] to remove, off the caller's path.
    pub fn commit_before_discard(&self) -> Result<CommitReport, Error> {
        exec::wait_reaped(&self.reaper);
        commit::commit(&self.dir, &self.layers, false, false)
    }

    fn mark_started(&self) {
        let p = self.dir.join(commit::STARTED);
        if !p.exists() {
            let _ = std::fs::write(&p, b"");
        }
    }

    /// Empty a finished sandbox so that [`Sandbox::create`] on its directory starts afresh,
    /// keeping the directories themselves: the upper and work dirs are emptied, the upper
    /// roots lose their xattrs (overlayfs's, and any a run set on a layer's root) and get the
    /// live directories' mode, owner and times again, and the
    /// last run's markers go. Creating and removing a sandbox's directories costs a dozen
    /// inodes per run; on ext4 every inode deleted in the last 30 s slows later allocations
    /// (`recently_deleted`), which made them most of a pooled sandbox's setup. Fails, leaving
    /// it for [`Sandbox::discard`], on a sandbox with an unfinished commit.
    pub fn recycle(&self) -> Result<(), Error> {
        exec::wait_reaped(&self.reaper);
        if self.dir.join(commit::JOURNAL).exists() || self.dir.join(commit::JOURNAL_PREP).exists() {
            return Err(Error::CommitPending {
                dir: self.dir.clone(),
            });
        }
        for l in &self.layers {
            // A tidy commit ([`Sandbox::commit`]) has removed them.
            for d in [&l.upper, &l.work] {
                if d.exists() {
                    commit::clear_dir(d)?;
                } else {
                    mkdir_p(d)?;
                }
            }
            commit::strip_xattrs(&l.upper)?;
            init_upper_root(&l.upper, &l.target)?;
        }
        let rd = std::fs::read_dir(&self.dir).map_err(|e| Error::io("read", &self.dir, e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io("read", &self.dir, e))?;
            let name = e.file_name();
            if ![META, TRUSTED_MARKER, "layers", "root"]
                .iter()
                .any(|keep| name == *keep)
            {
                commit::remove_tree(&e.path())?;
            }
        }
        Ok(())
    }

    /// Throw the sandbox away: remove its directory and upper dirs.
    pub fn discard(self) -> Result<(), Error> {
        exec::wait_reaped(&self.reaper);
        for l in &self.layers {
            if !l.upper.starts_with(&self.dir)
                && let Some(parent) = l.upper.parent()
            {
                commit::remove_tree(parent)?;
                // `<mountpoint>/.hs-sandboxes-<uid>/<id>/<n>`: drop `<id>` once empty.
                if let Some(id_dir) = parent.parent() {
                    let _ = std::fs::remove_dir(id_dir);
                }
            }
        }
        commit::remove_tree(&self.dir)
    }
}
