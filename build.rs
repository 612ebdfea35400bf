//! Links the `weir` binary as a position-dependent executable on Linux.
//!
//! A PIE binary of this size carries ~22,000 relative relocations that the
//! dynamic loader applies at every start, writing to ~90 pages: measured
//! 0.5 ms of a ~4 ms start-up on the 2-core VMs we run on (`fork`, `exec`
//! and exit of `weir --version`: 2.29 ms PIE, 1.72 ms non-PIE, 1.50 ms for
//! `/bin/true`). Start-up in milliseconds is part of what Weir is for (CI
//! starts a broker per job). The shared libraries keep their address-space
//! randomisation; only the executable's own addresses are fixed.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
