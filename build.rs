//! Build script of the `faultline` package. One job: in release builds for Linux, the linker
//! compresses the binary's debug sections with zlib (`--compress-debug-sections=zlib`), so the
//! installed binary keeps its line tables (file:line in panic backtraces; std's symbolizer reads
//! zlib-compressed sections, not zstd ones) at a fraction of their size. A link argument for this
//! package's binaries only: the dependencies' builds and the dev profile are untouched. The
//! measured sizes are in ARCHITECTURE.md ("Release binary").

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if release && linux {
        println!("cargo:rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}
