//! The `hs` binary as an unprivileged user can run it.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A copy of the `hs` under test in a world-readable temporary directory, so that a user
/// switched to with `setpriv` can run it even when the checkout (and `target/`) sits where it
/// cannot enter, such as under `/root`.
pub fn hs_for_anyone() -> PathBuf {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hs-unpriv-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let hs = dir.join("hs");
        std::fs::copy(env!("CARGO_BIN_EXE_hs"), &hs).unwrap();
        std::fs::set_permissions(&hs, std::fs::Permissions::from_mode(0o755)).unwrap();
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
