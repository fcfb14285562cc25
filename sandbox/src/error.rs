//! The crate's error type.

use std::path::{Path, PathBuf};

use crate::plan::Step;
use crate::sys::Errno;

/// Everything that can go wrong creating, running, inspecting or committing a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation outside the sandbox failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A setup step failed inside the sandbox's namespaces.
    #[error("sandbox setup failed at step {index} ({step}): {errno}{}", hint.map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Setup {
        /// Index of the step in the plan.
        index: usize,
        /// The step, printed.
        step: String,
        /// The path the step acted on.
        path: Option<PathBuf>,
        /// The error number.
        errno: Errno,
        /// How to fix it, when known.
        hint: Option<&'static str>,
    },
    /// The directory holds no sandbox.
    #[error("{} is not a sandbox directory (no sandbox.meta)", dir.display())]
    NotASandbox {
        /// The directory.
        dir: PathBuf,
    },
    /// The sandbox was committed before.
    #[error("sandbox {} was already committed", dir.display())]
    AlreadyCommitted {
        /// The sandbox directory.
        dir: PathBuf,
    },
    /// A commit was interrupted and must be finished first.
    #[error("an interrupted commit of {} is pending (hint: run `hs recover`)", dir.display())]
    CommitPending {
        /// The sandbox directory.
        dir: PathBuf,
    },
    /// Commit failed; `applied` says whether the live filesystem was touched.
    #[error("commit failed while {phase} {}: {source}{}", path.display(),
        if *applied { " (the journal is kept; run `hs recover` to finish)" } else { "; the live filesystem was not changed" })]
    Commit {
        /// What commit was doing.
        phase: &'static str,
        /// On which path.
        path: PathBuf,
        /// Whether live files had already been changed.
        applied: bool,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A live path changed after the sandbox started; committing would overwrite that change.
    #[error("{} changed in the live filesystem after the sandbox started; not committing over it (hint: look at it, then run the command again with `hs try` on the current state)", path.display())]
    Conflict {
        /// The live path.
        path: PathBuf,
    },
    /// Committing would not give what the command would have done live (see
    /// [`crate::Hazard`]); nothing was changed.
    #[error("not committing: {} {reason}; the live filesystem was not changed (hint: run the command directly instead)", path.display())]
    Unfaithful {
        /// The live path.
        path: PathBuf,
        /// Why, e.g. "has other hard links, which the sandbox's copy-up split off".
        reason: &'static str,
    },
    /// An upper dir cannot live where it was placed.
    #[error("cannot keep sandbox changes in {}: {reason} (hint: put the sandbox directory on a real filesystem with -D, e.g. a volume or tmpfs)", path.display())]
    UnsupportedUpper {
        /// The upper dir.
        path: PathBuf,
        /// Why not.
        reason: &'static str,
    },
    /// The command to run is empty or invalid.
    #[error("invalid command: {0}")]
    InvalidCommand(&'static str),
    /// A namespace for views could not be created.
    #[error("cannot create a {what} namespace: {errno}{}", hint.map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Namespace {
        /// Which namespaces.
        what: &'static str,
        /// The error number.
        errno: Errno,
        /// How to fix it, when known.
        hint: Option<&'static str>,
    },
    /// A view's source and destination are not both directories or both non-directories.
    #[error("{} is {} but {} is {}; a view needs two directories or two files", src.display(),
        if *src_is_dir { "a directory" } else { "not a directory" }, dst.display(),
        if *src_is_dir { "not" } else { "a directory" })]
    ViewKind {
        /// The source.
        src: PathBuf,
        /// The destination.
        dst: PathBuf,
        /// Whether the source is the directory.
        src_is_dir: bool,
    },
    /// The path shows no view made here.
    #[error("{} is not a view of this hs shell (hint: views of an outer shell can be replaced with hs bind, not removed)", path.display())]
    NotAView {
        /// The path.
        path: PathBuf,
    },
}

/// Why unprivileged user namespaces fail, and how to allow them.
pub(crate) const USERNS_HINT: &str = "unprivileged user namespaces are disabled: set sysctl kernel.unprivileged_userns_clone=1 \
     and user.max_user_namespaces>0, or kernel.apparmor_restrict_unprivileged_userns=0 under AppArmor";

impl Error {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn setup(index: usize, step: &Step, errno: Errno) -> Error {
        let hint = match (step, errno) {
            (
                Step::Unshare { user: true, .. },
                Errno::EPERM | Errno::ENOSPC | Errno::EINVAL | Errno::EACCES,
            ) => Some(USERNS_HINT),
            (Step::MapIds { .. }, _) => Some(
                "writing /proc/self/uid_map failed; user namespaces may be restricted (AppArmor: \
                 kernel.apparmor_restrict_unprivileged_userns=0)",
            ),
            (Step::MountOverlay { .. }, Errno::EINVAL) => Some(
                "overlayfs refused the layer: the upper dir may sit on an overlay or a filesystem without \
                 xattrs, a submount may be locked, or the kernel is older than 5.11 (see dmesg)",
            ),
            (Step::MountOverlay { .. }, Errno::ENODEV) => {
                Some("overlayfs is not available: modprobe overlay")
            }
            (Step::MountOverlay { .. }, Errno::EPERM) => {
                Some("unprivileged overlay mounts need Linux >= 5.11 (or root)")
            }
            _ => None,
        };
        Error::Setup {
            index,
            step: step.to_string(),
            path: step.path().map(Path::to_path_buf),
            errno,
            hint,
        }
    }
}
