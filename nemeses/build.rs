//! Builds the clock shim (clockshim/clockshim.c) into a shared library that `nemeses::clock`
//! embeds with `include_bytes!`, so the faultline binary carries it into node containers; on
//! x86_64 Linux also the vDSO clock patch (clockshim/vdsopatch.c) that `nemeses::vdso_clock`
//! copies into running processes.
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
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    build_shim(&out);
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch == "x86_64" && os == "linux" {
        build_vdso_patch(&out);
    }
}

/// The compiler `cc` finds for the target, as a command to add arguments to.
fn compiler() -> Command {
    cc::Build::new().opt_level(2).get_compiler().to_command()
}

fn build_shim(out: &std::path::Path) {
    println!("cargo:rerun-if-changed=build.rs");
    freestanding_so(out, "clockshim/clockshim.c", "libfaultline_clock.so", &[]);
}

/// The vDSO clock patch (clockshim/vdsopatch.c, x86_64 only) that `nemeses::vdso_clock` copies
/// into a running process. Built like the shim, plus: general-purpose registers only, no jump
/// tables, no CET notes and no RELRO, so that the image needs no relocation at all (checked by
/// the module's tests) and runs on whatever stack the vDSO's caller provides.
fn build_vdso_patch(out: &std::path::Path) {
    freestanding_so(
        out,
        "clockshim/vdsopatch.c",
        "libfaultline_vdso.so",
        &[
            "-mgeneral-regs-only",
            "-fno-jump-tables",
            "-fcf-protection=none",
            "-Wl,-z,norelro",
        ],
    );
}

/// Compiles `src` into the freestanding shared object `name` in `out` (see the module doc),
/// with `extra` flags added.
fn freestanding_so(out: &std::path::Path, src: &str, name: &str, extra: &[&str]) {
    println!("cargo:rerun-if-changed={src}");
    let so = out.join(name);
    let mut cmd = compiler();
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
        "-s",
    ])
    .args(extra)
    .arg(format!("-Wl,-soname,{name}"))
    .arg("-o")
    .arg(&so)
    .arg(src);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler for {src}: {e}"));
    assert!(status.success(), "compiling {src} failed: {status}");
}
