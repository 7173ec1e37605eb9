//! Clock faults for any process, whatever its language or linking: the process's vDSO clock
//! functions are redirected, through ptrace, to code that adds an offset faultline controls.
//! x86_64 Linux only.
//!
//! Why. The LD_PRELOAD shim ([`crate::clock`]) changes what libc returns, but a Go program
//! (etcd, NATS) calls the kernel's vDSO directly and a static binary never loads a preload, so
//! neither sees the shim. Every one of them, however, reads the wall clock through the vDSO
//! that the kernel maps into each process. Patching that mapping in one process reaches every
//! caller in it, and nothing outside it: the host clock and other processes are never touched.
//! The design follows the idea of Chaos Mesh's TimeChaos (ptrace, an injected page, a jump at
//! the vDSO entry, real time read by system call); the code here is our own.
//!
//! How [`apply`] does it:
//! 1. Stop every thread: `PTRACE_SEIZE` + `PTRACE_INTERRUPT` on each entry of
//!    `/proc/P/task`, again until a listing finds no new thread (bounded). A stopped thread
//!    cannot create one, so when the listing is stable all threads are stopped.
//! 2. Find the vDSO in `/proc/P/maps`, read it from `/proc/P/mem` and look up
//!    `__vdso_clock_gettime`, `__vdso_gettimeofday` and `__vdso_time` in its dynamic symbol
//!    table (the vDSO is a complete ELF image; [`elf`] reads what we need of it).
//! 3. Map the patch ([`PATCH_SO`], built from `clockshim/vdsopatch.c`: relocation-free, so it
//!    runs wherever it is copied) into the process by making one thread execute `mmap` and
//!    `mprotect`: its registers are saved, pointed at a `syscall` instruction inside the vDSO
//!    (any `0f 05` byte pair executes as one), single-stepped over it, and restored. Setting
//!    `orig_rax` to -1 keeps the kernel from "restarting" the system call the thread was
//!    interrupted in with our registers. Signals that arrive meanwhile are sent again after.
//! 4. Write the setting into the patch's data page, then overwrite the first 12 bytes of each
//!    vDSO entry with `movabs rax, <patch function>; jmp rax` (rax is free at a function's
//!    entry). The original bytes are saved in the data page, so any later faultline process
//!    can undo the patch without state of its own. No thread may be stopped inside those 12
//!    bytes (checked; the attach is retried otherwise).
//! 5. Detach. Threads created later share the patched memory, and so does a forked child; a
//!    program started by `exec` gets a fresh vDSO (the controller re-applies to restarted
//!    servers).
//!
//! Changing the offset of a patched process needs no stop at all: [`apply`] sees the jump,
//! finds the data page behind it and rewrites it through `/proc/P/mem` (see `vdsopatch.c` for
//! the two-slot protocol that keeps a reader from seeing half a setting). [`reset`] restores the
//! original vDSO bytes; the injected pages (12 KiB) stay mapped, since a thread may still be
//! inside them, and are found and reused by the next [`apply`].
//!
//! Failure behaviour: every wait is bounded ([`STOP_WAIT`]); a process that cannot be stopped
//! (frozen by the cgroup freezer, traced by someone else, or no CAP_SYS_PTRACE) yields an error
//! and is left running untouched. The tracer detaches on drop, so an error or a panic half-way
//! leaves the process running with either the original or the complete patch.

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::clock::ClockSetting;

/// The patch image (x86_64), compiled by build.rs from `clockshim/vdsopatch.c`.
pub static PATCH_SO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libfaultline_vdso.so"));

/// The data page's first bytes.
pub const MAGIC: &[u8; 8] = b"FLVDSO01";
/// Offsets in `struct data` (vdsopatch.c).
const DATA_GEN: u64 = 8;
const DATA_ACK: u64 = 16;
const DATA_ACTIVE: u64 = 24;
const DATA_SLOTS: u64 = 32;
const SLOT_LEN: u64 = 24;
const DATA_SAVED_COUNT: u64 = 80;
const DATA_SAVED: u64 = 96;
const SAVED_LEN: u64 = 24;
const SAVED_MAX: u64 = 4;
const DATA_LEN: u64 = DATA_SAVED + SAVED_MAX * SAVED_LEN;

/// `movabs rax, imm64` + `jmp rax`.
const JUMP_LEN: usize = 12;
const PAGE: u64 = 4096;

/// How long one thread may take to reach a ptrace stop.
pub const STOP_WAIT: Duration = Duration::from_millis(2_000);
/// Listings of `/proc/P/task` before giving up on a process that keeps creating threads.
const THREAD_ROUNDS_MAX: usize = 50;
/// Attach attempts when a thread sits inside the bytes to be patched.
const PATCH_ATTEMPTS_MAX: usize = 20;
/// Single steps allowed to get one injected system call executed (signals may interleave).
const STEPS_MAX: usize = 32;

/// The vDSO functions redirected, with the patch function each jumps to.
const ENTRIES: [(&str, &str, &str); 3] = [
    ("clock_gettime", "__vdso_clock_gettime", "fl_clock_gettime"),
    ("gettimeofday", "__vdso_gettimeofday", "fl_gettimeofday"),
    ("time", "__vdso_time", "fl_time"),
];

pub mod elf {
    //! The little of ELF64 (little-endian) that the patch needs: loadable segments, dynamic
    //! symbols, and whether relocations exist. Every read is bounds-checked, since the vDSO
    //! image comes from another process.

    use anyhow::{bail, ensure, Context, Result};

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Symbol {
        pub name: String,
        pub value: u64,
        pub size: u64,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Segment {
        pub offset: u64,
        pub vaddr: u64,
        pub filesz: u64,
        pub memsz: u64,
        /// PF_X = 1, PF_W = 2, PF_R = 4.
        pub flags: u32,
    }

    fn bytes(b: &[u8], off: u64, len: u64) -> Result<&[u8]> {
        let end = off.checked_add(len).context("ELF offset overflows")?;
        ensure!(
            end <= b.len() as u64,
            "ELF image truncated: needs {end} bytes, has {}",
            b.len()
        );
        Ok(&b[off as usize..end as usize])
    }
    fn u16_at(b: &[u8], off: u64) -> Result<u16> {
        Ok(u16::from_le_bytes(bytes(b, off, 2)?.try_into().expect("2")))
    }
    fn u32_at(b: &[u8], off: u64) -> Result<u32> {
        Ok(u32::from_le_bytes(bytes(b, off, 4)?.try_into().expect("4")))
    }
    fn u64_at(b: &[u8], off: u64) -> Result<u64> {
        Ok(u64::from_le_bytes(bytes(b, off, 8)?.try_into().expect("8")))
    }

    fn check_header(b: &[u8]) -> Result<()> {
        ensure!(bytes(b, 0, 4)? == b"\x7fELF", "not an ELF image");
        ensure!(
            b[4] == 2 && b[5] == 1,
            "not a little-endian 64-bit ELF image"
        );
        Ok(())
    }

    /// The fields of a section header that we use.
    #[derive(Debug, Clone, Copy)]
    struct Section {
        kind: u32,
        offset: u64,
        size: u64,
        link: u32,
        entsize: u64,
    }

    fn sections(b: &[u8]) -> Result<Vec<Section>> {
        check_header(b)?;
        let shoff = u64_at(b, 0x28)?;
        let shentsize = u64::from(u16_at(b, 0x3a)?);
        let shnum = u64::from(u16_at(b, 0x3c)?);
        ensure!(shentsize >= 0x40, "ELF section header size {shentsize}");
        (0..shnum)
            .map(|i| {
                let h = shoff + i * shentsize;
                Ok(Section {
                    kind: u32_at(b, h + 4)?,
                    offset: u64_at(b, h + 0x18)?,
                    size: u64_at(b, h + 0x20)?,
                    link: u32_at(b, h + 0x28)?,
                    entsize: u64_at(b, h + 0x38)?,
                })
            })
            .collect()
    }

    pub fn segments(b: &[u8]) -> Result<Vec<Segment>> {
        check_header(b)?;
        let phoff = u64_at(b, 0x20)?;
        let phentsize = u64::from(u16_at(b, 0x36)?);
        let phnum = u64::from(u16_at(b, 0x38)?);
        ensure!(phentsize >= 0x38, "ELF program header size {phentsize}");
        let mut out = Vec::new();
        for i in 0..phnum {
            let h = phoff + i * phentsize;
            if u32_at(b, h)? != 1 {
                continue; // not PT_LOAD
            }
            out.push(Segment {
                flags: u32_at(b, h + 4)?,
                offset: u64_at(b, h + 8)?,
                vaddr: u64_at(b, h + 0x10)?,
                filesz: u64_at(b, h + 0x20)?,
                memsz: u64_at(b, h + 0x28)?,
            });
        }
        ensure!(!out.is_empty(), "ELF image has no loadable segment");
        Ok(out)
    }

    /// Defined symbols of the dynamic symbol table.
    pub fn dynamic_symbols(b: &[u8]) -> Result<Vec<Symbol>> {
        let secs = sections(b)?;
        let Some(&Section {
            offset: off,
            size,
            link,
            entsize,
            ..
        }) = secs.iter().find(|s| s.kind == 11)
        else {
            bail!("ELF image has no dynamic symbol table");
        };
        ensure!(entsize >= 24, "ELF symbol size {entsize}");
        let &Section {
            offset: str_off,
            size: str_size,
            ..
        } = secs
            .get(link as usize)
            .context("ELF symbol table links to no string table")?;
        let strtab = bytes(b, str_off, str_size)?;
        let mut out = Vec::new();
        for i in 0..size / entsize {
            let s = off + i * entsize;
            let name_off = u64::from(u32_at(b, s)?);
            if u16_at(b, s + 6)? == 0 {
                continue; // undefined
            }
            let rest = strtab
                .get(name_off as usize..)
                .context("ELF symbol name out of range")?;
            let end = rest
                .iter()
                .position(|&c| c == 0)
                .context("ELF symbol name unterminated")?;
            out.push(Symbol {
                name: String::from_utf8_lossy(&rest[..end]).into_owned(),
                value: u64_at(b, s + 8)?,
                size: u64_at(b, s + 16)?,
            });
        }
        Ok(out)
    }

    /// Names of all sections (empty names for unnamed ones).
    pub fn section_names(b: &[u8]) -> Result<Vec<String>> {
        let secs = sections(b)?;
        let shstrndx = u16_at(b, 0x3e)? as usize;
        let names = secs
            .get(shstrndx)
            .context("ELF section-name table index out of range")?;
        let strtab = bytes(b, names.offset, names.size)?;
        let shoff = u64_at(b, 0x28)?;
        let shentsize = u64::from(u16_at(b, 0x3a)?);
        (0..secs.len() as u64)
            .map(|i| {
                let at = u32_at(b, shoff + i * shentsize)? as usize;
                let rest = strtab.get(at..).context("ELF section name out of range")?;
                let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
            })
            .collect()
    }

    /// Whether any relocation section has entries (SHT_RELA = 4, SHT_REL = 9).
    pub fn has_relocations(b: &[u8]) -> Result<bool> {
        Ok(sections(b)?
            .iter()
            .any(|s| (s.kind == 4 || s.kind == 9) && s.size > 0))
    }
}

/// Where the patch's parts lie, relative to the address it is mapped at.
#[derive(Debug, Clone)]
struct Layout {
    segments: Vec<elf::Segment>,
    /// Bytes to map (page multiple).
    span: u64,
    data: u64,
    /// Offsets of `fl_clock_gettime`, `fl_gettimeofday`, `fl_time` (ENTRIES order).
    functions: [u64; 3],
}

fn layout() -> Result<Layout> {
    let segments = elf::segments(PATCH_SO)?;
    ensure!(
        !elf::has_relocations(PATCH_SO)?,
        "the vDSO patch image has relocations"
    );
    ensure!(
        segments[0].vaddr == 0,
        "the vDSO patch image is not linked at 0"
    );
    let end = segments
        .iter()
        .map(|s| s.vaddr + s.memsz)
        .max()
        .expect("non-empty");
    let syms = elf::dynamic_symbols(PATCH_SO)?;
    let find = |name: &str| -> Result<&elf::Symbol> {
        syms.iter()
            .find(|s| s.name == name)
            .with_context(|| format!("the vDSO patch image lacks {name}"))
    };
    let data = find("fl_vdso_data")?;
    ensure!(
        data.size == DATA_LEN,
        "fl_vdso_data is {} bytes, expected {DATA_LEN}",
        data.size
    );
    let mut functions = [0; 3];
    for (i, (_, _, f)) in ENTRIES.iter().enumerate() {
        functions[i] = find(f)?.value;
    }
    Ok(Layout {
        segments,
        span: end.div_ceil(PAGE) * PAGE,
        data: data.value,
        functions,
    })
}

/// One vDSO function of the target.
#[derive(Debug, Clone)]
struct Entry {
    /// Index in [`ENTRIES`].
    index: usize,
    addr: u64,
    /// The first bytes now (patched or not).
    head: [u8; 16],
}

impl Entry {
    /// Where its jump leads, when it carries one.
    fn jump_target(&self) -> Option<u64> {
        (self.head[0] == 0x48
            && self.head[1] == 0xb8
            && self.head[10] == 0xff
            && self.head[11] == 0xe0)
            .then(|| u64::from_le_bytes(self.head[2..10].try_into().expect("8")))
    }
}

fn jump_to(target: u64) -> [u8; JUMP_LEN] {
    let mut j = [0u8; JUMP_LEN];
    j[0] = 0x48;
    j[1] = 0xb8;
    j[2..10].copy_from_slice(&target.to_le_bytes());
    j[10] = 0xff;
    j[11] = 0xe0;
    j
}

/// The target's vDSO: a syscall instruction in it, and the entries to patch.
#[derive(Debug)]
struct Vdso {
    syscall_insn: u64,
    entries: Vec<Entry>,
}

struct Mem {
    pid: i32,
    file: File,
}

impl Mem {
    fn open(pid: i32) -> Result<Mem> {
        let path = format!("/proc/{pid}/mem");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {path}"))?;
        Ok(Mem { pid, file })
    }
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, addr)
            .with_context(|| format!("reading {len} bytes at {addr:#x} in pid {}", self.pid))?;
        Ok(buf)
    }
    fn read_u64(&self, addr: u64) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.read(addr, 8)?.try_into().expect("8"),
        ))
    }
    fn write(&self, addr: u64, bytes: &[u8]) -> Result<()> {
        self.file.write_all_at(bytes, addr).with_context(|| {
            format!(
                "writing {} bytes at {addr:#x} in pid {}",
                bytes.len(),
                self.pid
            )
        })
    }
}

/// Mappings of a process: (start, end, perms, path).
fn maps(pid: i32) -> Result<Vec<(u64, u64, String, String)>> {
    let path = format!("/proc/{pid}/maps");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(range), Some(perms)) = (it.next(), it.next()) else {
            continue;
        };
        let path = it.nth(3).unwrap_or("").to_string();
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            bail!("/proc/{pid}/maps: unreadable line {line:?}");
        };
        out.push((a, b, perms.to_string(), path));
    }
    Ok(out)
}

fn read_vdso(pid: i32, mem: &Mem) -> Result<Vdso> {
    let maps = maps(pid)?;
    let Some((start, end, _, _)) = maps.iter().find(|m| m.3 == "[vdso]") else {
        bail!("pid {pid} has no vDSO mapped");
    };
    let (start, end) = (*start, *end);
    ensure!(
        end > start && end - start <= 64 * PAGE,
        "pid {pid}: vDSO of {} bytes",
        end - start
    );
    let image = mem.read(start, (end - start) as usize)?;
    let base_vaddr = elf::segments(&image)
        .context("parsing the vDSO")?
        .iter()
        .map(|s| s.vaddr)
        .min()
        .expect("non-empty");
    let syms = elf::dynamic_symbols(&image).context("parsing the vDSO")?;
    let mut entries = Vec::new();
    for (index, (plain, vdso_name, _)) in ENTRIES.iter().enumerate() {
        let Some(sym) = syms
            .iter()
            .find(|s| s.name == *vdso_name)
            .or_else(|| syms.iter().find(|s| s.name == *plain))
        else {
            continue;
        };
        if sym.size < JUMP_LEN as u64 {
            continue; // too short to hold the jump
        }
        let off = sym
            .value
            .checked_sub(base_vaddr)
            .context("vDSO symbol below its base")?;
        ensure!(
            off + 16 <= image.len() as u64,
            "vDSO symbol {vdso_name} out of range"
        );
        let head: [u8; 16] = image[off as usize..off as usize + 16]
            .try_into()
            .expect("16");
        entries.push(Entry {
            index,
            addr: start + off,
            head,
        });
    }
    ensure!(
        entries.iter().any(|e| e.index == 0),
        "pid {pid}: the vDSO has no usable __vdso_clock_gettime"
    );
    // Executable bytes of the vDSO only: its text lies after the headers; any 0f 05 pair will do.
    let text_from = 64;
    let syscall_off = image[text_from..]
        .windows(2)
        .position(|w| w == [0x0f, 0x05])
        .context("no syscall instruction in the vDSO")?;
    Ok(Vdso {
        syscall_insn: start + (text_from + syscall_off) as u64,
        entries,
    })
}

/// Whether the executable of `pid` is a Go program (it carries Go's build-information header).
/// A Go program reads the clock from the vDSO without libc even when a preloaded shim is mapped,
/// so only the vDSO patch reaches it.
pub fn is_go_binary(pid: i32) -> Result<bool> {
    let path = format!("/proc/{pid}/exe");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    // By section name: the header's bytes also occur in programs that search for them (this one).
    let names = elf::section_names(&bytes).with_context(|| format!("parsing {path}"))?;
    Ok(names.iter().any(|n| n == ".go.buildinfo"))
}

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT in the calling thread (and threads it starts), so
/// that Ctrl-C cannot end a process half-way through a patch; for `faultline clock-attach`.
pub fn block_termination_signals() {
    // SAFETY: plain signal-mask calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Where an already injected patch lies: from an entry's jump, or by scanning anonymous
/// mappings for the data page's magic.
fn find_patch(pid: i32, mem: &Mem, lay: &Layout, vdso: &Vdso) -> Result<Option<u64>> {
    for e in &vdso.entries {
        if let Some(t) = e.jump_target() {
            let base = t.wrapping_sub(lay.functions[e.index]);
            if mem.read(base + lay.data, 8).ok().as_deref() == Some(&MAGIC[..]) {
                return Ok(Some(base));
            }
            bail!("pid {pid}: the vDSO entry at {:#x} jumps to {t:#x}, which is not faultline's patch", e.addr);
        }
    }
    // The patch's code is an anonymous executable mapping: rare (JIT compilers), so few reads.
    let text = lay
        .segments
        .iter()
        .find(|s| s.flags & 1 == 1)
        .context("the vDSO patch image has no code segment")?
        .vaddr
        / PAGE
        * PAGE;
    for (start, _, perms, path) in maps(pid)? {
        if path.is_empty() && perms.starts_with("r-x") && start >= text {
            let base = start - text;
            if mem.read(base + lay.data, 8).ok().as_deref() == Some(&MAGIC[..]) {
                return Ok(Some(base));
            }
        }
    }
    Ok(None)
}

/// What [`status`] found in a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Names of the vDSO functions now redirected.
    pub patched: Vec<&'static str>,
    /// Where the patch is mapped, if it ever was.
    pub base: Option<u64>,
    pub gen: u64,
    /// The last generation under which the process read the clock through the patch.
    pub ack: u64,
    pub setting: ClockSetting,
}

/// What [`apply`] or [`reset`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub pid: i32,
    /// Threads stopped (0 when only the data page was rewritten).
    pub threads: usize,
    pub base: u64,
    /// The patch was mapped into the process by this call.
    pub injected: bool,
    /// Entries whose bytes this call changed.
    pub changed: Vec<&'static str>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} threads_stopped {} patch {:#x} injected {} changed [{}]",
            self.pid,
            self.threads,
            self.base,
            self.injected,
            self.changed.join(",")
        )
    }
}

/// Reads the patch state of `pid`.
pub fn status(pid: i32) -> Result<Status> {
    let lay = layout()?;
    let mem = Mem::open(pid)?;
    let vdso = read_vdso(pid, &mem)?;
    let base = find_patch(pid, &mem, &lay, &vdso)?;
    let patched = vdso
        .entries
        .iter()
        .filter(|e| e.jump_target().is_some())
        .map(|e| ENTRIES[e.index].0)
        .collect();
    let Some(b) = base else {
        return Ok(Status {
            patched,
            base,
            gen: 0,
            ack: 0,
            setting: ClockSetting::real(),
        });
    };
    let d = b + lay.data;
    let active = mem.read_u64(d + DATA_ACTIVE)? & 1;
    let slot = d + DATA_SLOTS + active * SLOT_LEN;
    Ok(Status {
        patched,
        base,
        gen: mem.read_u64(d + DATA_GEN)?,
        ack: mem.read_u64(d + DATA_ACK)?,
        setting: ClockSetting {
            offset_ns: mem.read_u64(slot)? as i64,
            strobe_amplitude_ns: mem.read_u64(slot + 8)? as i64,
            strobe_period_ns: mem.read_u64(slot + 16)?,
        },
    })
}

/// Fills the inactive slot, flips `active`, raises `gen` (see vdsopatch.c).
fn write_setting(mem: &Mem, data: u64, setting: &ClockSetting, gen: u64) -> Result<()> {
    assert!(
        setting.strobe_period_ns <= i64::MAX as u64,
        "strobe period too large"
    );
    let active = mem.read_u64(data + DATA_ACTIVE)? & 1;
    let next = 1 - active;
    let mut slot = Vec::with_capacity(SLOT_LEN as usize);
    slot.extend_from_slice(&setting.offset_ns.to_le_bytes());
    slot.extend_from_slice(&setting.strobe_amplitude_ns.to_le_bytes());
    slot.extend_from_slice(&setting.strobe_period_ns.to_le_bytes());
    mem.write(data + DATA_SLOTS + next * SLOT_LEN, &slot)?;
    mem.write(data + DATA_ACTIVE, &next.to_le_bytes())?;
    mem.write(data + DATA_GEN, &gen.to_le_bytes())?;
    Ok(())
}

/// Redirects the vDSO clock functions of `pid` to the patch with `setting` in force under
/// generation `gen`, injecting the patch first if needed. See the module docs.
pub fn apply(pid: i32, setting: &ClockSetting, gen: u64) -> Result<Report> {
    let lay = layout()?;
    let mem = Mem::open(pid)?;
    let vdso = read_vdso(pid, &mem)?;
    if let Some(base) = find_patch(pid, &mem, &lay, &vdso)? {
        if vdso.entries.iter().all(|e| e.jump_target().is_some()) {
            write_setting(&mem, base + lay.data, setting, gen)?;
            return Ok(Report {
                pid,
                threads: 0,
                base,
                injected: false,
                changed: vec![],
            });
        }
    }
    with_stopped(pid, |tracer| {
        let vdso = read_vdso(pid, &mem)?;
        let (base, injected) = match find_patch(pid, &mem, &lay, &vdso)? {
            Some(b) => (b, false),
            None => (inject(tracer, &mem, &lay, &vdso)?, true),
        };
        let data = base + lay.data;
        write_setting(&mem, data, setting, gen)?;
        let mut changed = Vec::new();
        for e in vdso.entries.iter().filter(|e| e.jump_target().is_none()) {
            save_original(&mem, data, e)?;
            let target = base + lay.functions[e.index];
            let mut head = e.head;
            head[..JUMP_LEN].copy_from_slice(&jump_to(target));
            tracer.poke(e.addr, &head)?;
            changed.push(ENTRIES[e.index].0);
        }
        let after = read_vdso(pid, &mem)?;
        for e in &after.entries {
            ensure!(
                e.jump_target() == Some(base + lay.functions[e.index]),
                "pid {pid}: {} does not jump to the patch after writing it",
                ENTRIES[e.index].0
            );
        }
        Ok(Report {
            pid,
            threads: tracer.tids.len(),
            base,
            injected,
            changed,
        })
    })
}

/// Puts `pid` back on the real clock: offset zero, original vDSO bytes restored.
pub fn reset(pid: i32, gen: u64) -> Result<Report> {
    let lay = layout()?;
    let mem = Mem::open(pid)?;
    let vdso = read_vdso(pid, &mem)?;
    let Some(base) = find_patch(pid, &mem, &lay, &vdso)? else {
        return Ok(Report {
            pid,
            threads: 0,
            base: 0,
            injected: false,
            changed: vec![],
        });
    };
    let data = base + lay.data;
    write_setting(&mem, data, &ClockSetting::real(), gen)?;
    if vdso.entries.iter().all(|e| e.jump_target().is_none()) {
        return Ok(Report {
            pid,
            threads: 0,
            base,
            injected: false,
            changed: vec![],
        });
    }
    with_stopped(pid, |tracer| {
        let vdso = read_vdso(pid, &mem)?;
        let mut changed = Vec::new();
        for e in vdso.entries.iter().filter(|e| e.jump_target().is_some()) {
            let original = saved_original(&mem, data, e.addr)?;
            let mut head = e.head;
            head[..JUMP_LEN].copy_from_slice(&original[..JUMP_LEN]);
            tracer.poke(e.addr, &head)?;
            changed.push(ENTRIES[e.index].0);
        }
        let after = read_vdso(pid, &mem)?;
        ensure!(
            after.entries.iter().all(|e| e.jump_target().is_none()),
            "pid {pid}: a vDSO entry still jumps after the reset"
        );
        Ok(Report {
            pid,
            threads: tracer.tids.len(),
            base,
            injected: false,
            changed,
        })
    })
}

fn save_original(mem: &Mem, data: u64, e: &Entry) -> Result<()> {
    let count = mem.read_u64(data + DATA_SAVED_COUNT)?;
    for i in 0..count.min(SAVED_MAX) {
        if mem.read_u64(data + DATA_SAVED + i * SAVED_LEN)? == e.addr {
            return Ok(()); // saved by an earlier apply; the bytes are the same vDSO's
        }
    }
    ensure!(count < SAVED_MAX, "the patch's saved-entry table is full");
    let mut rec = e.addr.to_le_bytes().to_vec();
    rec.extend_from_slice(&e.head);
    mem.write(data + DATA_SAVED + count * SAVED_LEN, &rec)?;
    mem.write(data + DATA_SAVED_COUNT, &(count + 1).to_le_bytes())
}

fn saved_original(mem: &Mem, data: u64, addr: u64) -> Result<[u8; 16]> {
    let count = mem.read_u64(data + DATA_SAVED_COUNT)?.min(SAVED_MAX);
    for i in 0..count {
        let rec = data + DATA_SAVED + i * SAVED_LEN;
        if mem.read_u64(rec)? == addr {
            let b: [u8; 16] = mem.read(rec + 8, 16)?.try_into().expect("16");
            ensure!(
                Entry {
                    index: 0,
                    addr,
                    head: b
                }
                .jump_target()
                .is_none(),
                "the saved bytes of {addr:#x} are a jump, not the original"
            );
            return Ok(b);
        }
    }
    bail!("no original bytes saved for the vDSO entry at {addr:#x}")
}

/// Maps the patch into the process (mmap + copy + mprotect, executed by one stopped thread).
fn inject(tracer: &mut Tracer, mem: &Mem, lay: &Layout, vdso: &Vdso) -> Result<u64> {
    const PROT_R: u64 = 1;
    const PROT_W: u64 = 2;
    const PROT_X: u64 = 4;
    const MAP_PRIVATE_ANON: u64 = 0x02 | 0x20;
    let tid = tracer.injector();
    let insn = vdso.syscall_insn;
    let base = tracer.syscall(
        tid,
        insn,
        libc::SYS_mmap as u64,
        [0, lay.span, PROT_R | PROT_W, MAP_PRIVATE_ANON, u64::MAX, 0],
    )?;
    for seg in &lay.segments {
        if seg.filesz > 0 {
            let bytes = &PATCH_SO[seg.offset as usize..(seg.offset + seg.filesz) as usize];
            mem.write(base + seg.vaddr, bytes)?;
        }
    }
    for seg in lay.segments.iter().filter(|s| s.memsz > 0) {
        let start = seg.vaddr / PAGE * PAGE;
        let end = (seg.vaddr + seg.memsz).div_ceil(PAGE) * PAGE;
        let prot = (if seg.flags & 4 != 0 { PROT_R } else { 0 })
            | (if seg.flags & 2 != 0 { PROT_W } else { 0 })
            | (if seg.flags & 1 != 0 { PROT_X } else { 0 });
        tracer.syscall(
            tid,
            insn,
            libc::SYS_mprotect as u64,
            [base + start, end - start, prot, 0, 0, 0],
        )?;
    }
    ensure!(
        mem.read(base + lay.data, 8)? == MAGIC,
        "the patch's data page does not read back after injection"
    );
    Ok(base)
}

/// Runs `f` with every thread of `pid` stopped and none of them inside the first bytes of a
/// vDSO entry; detaches afterwards whatever happens.
fn with_stopped<T>(pid: i32, mut f: impl FnMut(&mut Tracer) -> Result<T>) -> Result<T> {
    for _ in 0..PATCH_ATTEMPTS_MAX {
        let mut tracer = Tracer::attach(pid)?;
        let mem = Mem::open(pid)?;
        let vdso = read_vdso(pid, &mem)?;
        if tracer.any_thread_inside(&vdso)? {
            drop(tracer);
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        return f(&mut tracer);
    }
    bail!("pid {pid}: a thread was inside a vDSO clock entry at each of {PATCH_ATTEMPTS_MAX} attempts")
}

/// Every thread of one process, stopped under ptrace; detached on drop.
struct Tracer {
    pid: i32,
    tids: Vec<i32>,
    /// A thread's current stop is a signal-delivery stop for this signal (given back on detach).
    stop_signal: Vec<Option<i32>>,
    /// Signals consumed while single-stepping, sent again after the detach.
    resend: Vec<(i32, i32)>,
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn ptrace(
    req: libc::c_uint,
    tid: i32,
    addr: u64,
    data: u64,
) -> Result<libc::c_long, std::io::Error> {
    // SAFETY: ptrace with integer arguments; the kernel validates them.
    let r = unsafe {
        libc::ptrace(
            req,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// Waits until `tid` reaches a ptrace stop; returns its wait status.
fn wait_stop(tid: i32) -> Result<i32> {
    let deadline = Instant::now() + STOP_WAIT;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
        if r == tid {
            if libc::WIFSTOPPED(status) {
                return Ok(status);
            }
            bail!("thread {tid} ended while being stopped (status {status:#x})");
        }
        if r < 0 {
            bail!("waiting for thread {tid}: {}", errno());
        }
        if Instant::now() >= deadline {
            bail!(
                "thread {tid} did not stop within {} ms (is the process frozen?)",
                STOP_WAIT.as_millis()
            );
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn task_ids(pid: i32) -> Result<BTreeSet<i32>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let e = e.with_context(|| format!("listing {dir}"))?;
        if let Ok(t) = e.file_name().to_string_lossy().parse() {
            out.insert(t);
        }
    }
    Ok(out)
}

impl Tracer {
    fn attach(pid: i32) -> Result<Tracer> {
        let mut t = Tracer {
            pid,
            tids: Vec::new(),
            stop_signal: Vec::new(),
            resend: Vec::new(),
        };
        for _ in 0..THREAD_ROUNDS_MAX {
            let fresh: Vec<i32> = task_ids(pid)?
                .into_iter()
                .filter(|x| !t.tids.contains(x))
                .collect();
            if fresh.is_empty() {
                ensure!(!t.tids.is_empty(), "pid {pid} has no threads");
                return Ok(t);
            }
            for tid in fresh {
                match ptrace(libc::PTRACE_SEIZE, tid, 0, 0) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
                    Err(e) => bail!(
                        "cannot attach to thread {tid} of pid {pid}: {e} (needs CAP_SYS_PTRACE and no other tracer)"
                    ),
                }
                t.tids.push(tid);
                t.stop_signal.push(None);
                ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0)
                    .with_context(|| format!("interrupting thread {tid}"))?;
                let status = wait_stop(tid)?;
                let sig = libc::WSTOPSIG(status);
                if status >> 16 == 0 && sig != libc::SIGTRAP {
                    *t.stop_signal.last_mut().expect("pushed") = Some(sig);
                }
            }
        }
        bail!("pid {pid} kept creating threads through {THREAD_ROUNDS_MAX} listings")
    }

    /// The thread to run injected system calls: one not stopped for a signal, if any.
    fn injector(&self) -> i32 {
        let i = self
            .stop_signal
            .iter()
            .position(Option::is_none)
            .unwrap_or(0);
        self.tids[i]
    }

    fn regs(&self, tid: i32) -> Result<libc::user_regs_struct> {
        // SAFETY: user_regs_struct is plain old data; the kernel fills it.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        ptrace(libc::PTRACE_GETREGS, tid, 0, &mut r as *mut _ as u64)
            .with_context(|| format!("reading the registers of thread {tid}"))?;
        Ok(r)
    }

    fn set_regs(&self, tid: i32, r: &libc::user_regs_struct) -> Result<()> {
        ptrace(libc::PTRACE_SETREGS, tid, 0, r as *const _ as u64)
            .with_context(|| format!("writing the registers of thread {tid}"))?;
        Ok(())
    }

    fn any_thread_inside(&self, vdso: &Vdso) -> Result<bool> {
        for &tid in &self.tids {
            let rip = self.regs(tid)?.rip;
            if vdso
                .entries
                .iter()
                .any(|e| rip > e.addr && rip < e.addr + JUMP_LEN as u64)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes `bytes` (a multiple of 8) at `addr` with PTRACE_POKEDATA, which may write to
    /// read-only text such as the vDSO (the page is copied for this process only).
    fn poke(&self, addr: u64, bytes: &[u8]) -> Result<()> {
        assert!(bytes.len().is_multiple_of(8), "poke whole words");
        let tid = self.tids[0];
        for (i, w) in bytes.chunks(8).enumerate() {
            let word = u64::from_le_bytes(w.try_into().expect("8"));
            let at = addr + 8 * i as u64;
            ptrace(libc::PTRACE_POKEDATA, tid, at, word)
                .with_context(|| format!("writing at {at:#x} in pid {}", self.pid))?;
        }
        Ok(())
    }

    /// Makes stopped thread `tid` execute system call `nr` through the `syscall` instruction at
    /// `insn`, then puts its registers back. Returns the call's result (errors as Err).
    fn syscall(&mut self, tid: i32, insn: u64, nr: u64, args: [u64; 6]) -> Result<u64> {
        let saved = self.regs(tid)?;
        let mut r = saved;
        r.rax = nr;
        r.rdi = args[0];
        r.rsi = args[1];
        r.rdx = args[2];
        r.r10 = args[3];
        r.r8 = args[4];
        r.r9 = args[5];
        r.rip = insn;
        r.orig_rax = u64::MAX; // no system-call restart with these registers
        self.set_regs(tid, &r)?;
        let i = self.tids.iter().position(|&t| t == tid).expect("ours");
        if let Some(sig) = self.stop_signal[i].take() {
            self.resend.push((tid, sig));
        }
        let result = self.step_over(tid, insn);
        let restored = self.set_regs(tid, &saved);
        let rax = result?;
        restored?;
        if rax > -4096i64 as u64 {
            bail!(
                "system call {nr} in pid {} failed: {}",
                self.pid,
                std::io::Error::from_raw_os_error(-(rax as i64) as i32)
            );
        }
        Ok(rax)
    }

    fn step_over(&mut self, tid: i32, insn: u64) -> Result<u64> {
        for _ in 0..STEPS_MAX {
            ptrace(libc::PTRACE_SINGLESTEP, tid, 0, 0)
                .with_context(|| format!("single-stepping thread {tid}"))?;
            let status = wait_stop(tid)?;
            let r = self.regs(tid)?;
            if r.rip == insn + 2 {
                return Ok(r.rax);
            }
            let sig = libc::WSTOPSIG(status);
            if status >> 16 == 0 && sig != libc::SIGTRAP {
                self.resend.push((tid, sig));
            }
        }
        bail!("thread {tid} did not complete an injected system call in {STEPS_MAX} steps")
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        for (i, &tid) in self.tids.iter().enumerate() {
            let sig = self.stop_signal[i].unwrap_or(0);
            let _ = ptrace(libc::PTRACE_DETACH, tid, 0, sig as u64);
        }
        for &(tid, sig) in &self.resend {
            // SAFETY: tgkill with integer arguments.
            unsafe {
                libc::syscall(libc::SYS_tgkill, self.pid, tid, sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_image_needs_no_relocation_and_exports_its_parts() {
        assert!(!elf::has_relocations(PATCH_SO).unwrap());
        let lay = layout().unwrap();
        assert_eq!(lay.span % PAGE, 0);
        assert!(lay.functions.iter().all(|&f| f > 0 && f < lay.span));
        // The data page is writable and holds the magic at the symbol's address.
        let data_seg = lay
            .segments
            .iter()
            .find(|s| s.vaddr <= lay.data && lay.data < s.vaddr + s.memsz)
            .unwrap();
        assert_eq!(data_seg.flags & 2, 2, "data segment writable");
        let at = (data_seg.offset + lay.data - data_seg.vaddr) as usize;
        assert_eq!(&PATCH_SO[at..at + 8], MAGIC);
        // The code does not share a page with the data.
        let text = lay.segments.iter().find(|s| s.flags & 1 == 1).unwrap();
        assert!(text.vaddr + text.memsz <= lay.data / PAGE * PAGE);
    }

    #[test]
    fn jumps_encode_and_decode_an_absolute_target() {
        let mut head = [0x90u8; 16];
        head[..JUMP_LEN].copy_from_slice(&jump_to(0x7f00_1234_5678));
        let e = Entry {
            index: 0,
            addr: 0,
            head,
        };
        assert_eq!(e.jump_target(), Some(0x7f00_1234_5678));
        let plain = Entry {
            index: 0,
            addr: 0,
            head: [0x55; 16],
        };
        assert_eq!(plain.jump_target(), None);
    }

    #[test]
    fn this_program_is_not_taken_for_a_go_program() {
        // Its code holds the name of Go's section, but it has no such section.
        assert!(!is_go_binary(std::process::id() as i32).unwrap());
        let names = elf::section_names(PATCH_SO).unwrap();
        assert!(names.iter().any(|n| n == ".text"), "{names:?}");
    }

    #[test]
    fn the_elf_reader_rejects_truncated_and_foreign_images() {
        assert!(elf::segments(b"not an elf").is_err());
        assert!(elf::dynamic_symbols(&PATCH_SO[..100]).is_err());
        let mut be = PATCH_SO.to_vec();
        be[5] = 2;
        assert!(elf::segments(&be).is_err());
    }

    #[test]
    fn our_own_vdso_exports_the_clock_entries() {
        let pid = std::process::id() as i32;
        let mem = Mem::open(pid).unwrap();
        let vdso = read_vdso(pid, &mem).unwrap();
        assert!(vdso.entries.iter().any(|e| e.index == 0));
        assert!(vdso.entries.iter().all(|e| e.jump_target().is_none()));
        let insn = mem.read(vdso.syscall_insn, 2).unwrap();
        assert_eq!(insn, [0x0f, 0x05]);
    }
}
