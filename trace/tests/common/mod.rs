//! Shared by the tracer's integration tests.

use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir, canonical (so it matches traced paths), removed
/// when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hs-trace-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir.canonicalize().unwrap())
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Spawns `cmd` under `tracer` with its stdout piped; waits; returns the exit status, the
/// stdout and the trace.
#[allow(dead_code)] // not every test binary uses it
pub fn run_capturing(
    tracer: &trace::Tracer,
    cmd: &mut std::process::Command,
) -> (std::process::ExitStatus, String, trace::Trace) {
    use std::io::Read;
    cmd.stdout(std::process::Stdio::piped());
    let mut child = tracer.spawn(cmd).unwrap();
    let mut out = String::new();
    child
        .child_mut()
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let (status, t) = child.wait().unwrap();
    (status, out, t)
}
