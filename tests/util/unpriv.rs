//! The `hs` binary as an unprivileged user can run it.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A copy of the `hs` under test in a world-readable temporary directory, so that a user
/// switched to with `setpriv` can run it even when the checkout (and `target/`) sits where it
/// cannot enter, such as under `/root`.
pub fn hs_for_anyone() -> PathBuf {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // One shared directory, one copy per build of hs (named by its size and mtime), so
        // that test processes neither copy it again nor leave a copy each behind.
        let dir = std::env::temp_dir().join("hs-unpriv-bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let src = std::path::Path::new(env!("CARGO_BIN_EXE_hs"));
        let md = std::fs::metadata(src).unwrap();
        let name = format!("hs-{}-{}-{}", md.len(), md.mtime(), md.mtime_nsec());
        let hs = dir.join(&name);
        if !hs.exists() {
            // Copies made over a day ago (older builds) go.
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let old = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 86_400);
                if old {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let tmp = dir.join(format!("{name}.{}", std::process::id()));
            std::fs::copy(src, &tmp).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&tmp, &hs).unwrap();
        }
        hs
    })
    .clone()
}

/// Whether the tests run as root (only root can switch to another user with `setpriv`).
#[allow(dead_code)] // not every test file that includes this module needs it
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
