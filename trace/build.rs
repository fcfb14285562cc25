//! Builds the fast path's preload shim (shim/hs_fast.c), which the crate embeds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let so = out.join("hs_fast.so");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    println!("cargo:rerun-if-changed=shim/hs_fast.c");
    println!("cargo:rerun-if-env-changed=CC");
    let status = Command::new(&cc)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-nonnull-compare",
            "-fno-delete-null-pointer-checks",
            // Two loadable segments instead of four: two mmaps less in every traced exec.
            "-Wl,-z,noseparate-code",
            "-o",
        ])
        .arg(&so)
        .arg("shim/hs_fast.c")
        .arg("-ldl")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?} for shim/hs_fast.c: {e}"));
    assert!(status.success(), "compiling shim/hs_fast.c failed");
}
