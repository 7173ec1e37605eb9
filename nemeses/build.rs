//! Builds the clock shim (clockshim/clockshim.c) into a shared library that `nemeses::clock`
//! embeds with `include_bytes!`, so the faultline binary carries it into node containers.
//!
//! The `cc` crate finds the C compiler (honouring CC and the target); it builds static archives
//! only, so the compiler it found is run directly with the flags of a freestanding shared object:
//! no libc, no start files, no stack protector (which would need libc), hidden symbols except the
//! four overrides, and `-z defs` so that any accidental libc reference fails the build here rather
//! than at load time inside a container.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "clockshim/clockshim.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let so = out.join("libfaultline_clock.so");

    let compiler = cc::Build::new().opt_level(2).get_compiler();
    let mut cmd: Command = compiler.to_command();
    cmd.args([
        "-shared",
        "-fPIC",
        "-O2",
        "-nostdlib",
        "-ffreestanding",
        "-fno-builtin",
        "-fno-stack-protector",
        "-fvisibility=hidden",
        "-fno-asynchronous-unwind-tables",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wl,-z,defs",
        "-Wl,--hash-style=both",
        "-Wl,-soname,libfaultline_clock.so",
        "-s",
        "-o",
    ])
    .arg(&so)
    .arg(src);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler for {src}: {e}"));
    assert!(status.success(), "compiling {src} failed: {status}");
}
