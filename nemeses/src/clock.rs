//! Clock faults: per-node wall-clock offsets, bumps and strobes, through our own clock shim, with
//! proof that each change reached the server process.
//!
//! Mechanism. `clockshim/clockshim.c` is built by build.rs into a freestanding shared library
//! ([`SHIM_SO`], embedded in the binary) that overrides `clock_gettime`, `gettimeofday`, `time`
//! and `timespec_get` for CLOCK_REALTIME only and adds an offset read from a small control file
//! it maps shared ([`CLOCK_DIR`]`/offset`). [`Clocks::install`] copies the shim into a node, lists
//! it in `/etc/ld.so.preload` (so every dynamically linked process started afterwards loads it)
//! and creates the control file with offset zero; a process already running keeps its clock
//! until it is restarted, which [`Clocks::prepare`] can do. Changing a node's offset is then one
//! in-place rewrite of the control file, seen by its processes at their next clock read. The
//! host clock is never touched: the offset exists only inside the node's processes.
//!
//! We do not use libfaketime: its start-up calls dlsym, which may allocate, and redis-server's
//! jemalloc reads the clock while allocating, so Debian's redis-server aborts under it
//! ("unexpected recursive calls to clock_gettime"). The shim has no libc dependency at all.
//!
//! Verification, never assumption. After every change [`Clocks::set`] checks the node's server
//! process (the pid comes from [`NodeControl::server_pid`]):
//! 1. the shim must be mapped in `/proc/<pid>/maps` (a statically linked binary never loads it);
//! 2. if the system reports its own time ([`NodeControl::clock_probe`]: Redis `TIME`,
//!    PostgreSQL `now()`, an HTTP `Date` header), the reported time must differ from real time by
//!    the requested offset, within the reading's resolution and the probe's round trip;
//! 3. without a probe, the process itself must acknowledge the change: the shim writes the
//!    control generation to `ack.<pid>` the first time it returns a shifted time under it.
//!
//! A change that fails any check is reported as [`Verification::Unverified`] with the reason; the
//! driver records it as `clock-unverified`, never as skew.
//!
//! Servers the shim cannot reach. A Go program reads the clock from the vDSO without libc (the
//! shim may be mapped and still never called), and a static binary never loads it. With a helper
//! configured ([`Clocks::with_vdso_helper`]: faultline's binary inside the nodes), such a server
//! gets its offset by `faultline clock-attach`, which patches the running process's vDSO
//! ([`crate::vdso_clock`]). The choice is per node and sticky: the vDSO patch when the server
//! does not have the shim loaded or is a Go program, else the shim. A node on the patch keeps
//! its shim control file at zero, so a call that passes through both adds the offset once. The
//! same probes verify it; without a probe, the patch's own acknowledgement (the generation
//! under which the process last read the clock through it) stands in for the shim's. A patched
//! server that is restarted starts with a fresh vDSO, so [`Clocks::reapply`] patches it again
//! while its fault is active.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::control::{sh_ok, NodeControl};
use crate::process::bounded;

/// The clock shim, compiled for the architecture this binary was built for.
pub static SHIM_SO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libfaultline_clock.so"));

/// Where the shim goes inside a node.
pub const SHIM_PATH: &str = "/usr/local/lib/faultline/libfaultline_clock.so";
/// The shim's control directory: `offset` (written by us), `ack.<pid>` (written by processes).
pub const CLOCK_DIR: &str = "/run/faultline/clock";
/// The dynamic loader's system-wide preload list.
pub const PRELOAD_LIST: &str = "/etc/ld.so.preload";
/// Length of the control line (the whole control file).
pub const LINE_LEN: usize = 111;

/// What a node's clock should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockSetting {
    /// Added to CLOCK_REALTIME, in nanoseconds (negative: behind).
    pub offset_ns: i64,
    /// With a strobe period: added on top of the offset during every other period.
    pub strobe_amplitude_ns: i64,
    /// Strobe period in nanoseconds; 0 = no strobe.
    pub strobe_period_ns: u64,
}

impl ClockSetting {
    /// The real clock.
    pub fn real() -> ClockSetting {
        ClockSetting::default()
    }

    /// A constant offset.
    pub fn offset_ms(offset_ms: i64) -> ClockSetting {
        ClockSetting {
            offset_ns: offset_ms * 1_000_000,
            ..ClockSetting::default()
        }
    }

    /// Jumps between `offset_ms` and `offset_ms + amplitude_ms` every `period_ms`.
    pub fn strobe_ms(offset_ms: i64, amplitude_ms: i64, period_ms: u64) -> ClockSetting {
        assert!(period_ms > 0, "a strobe needs a period");
        ClockSetting {
            offset_ns: offset_ms * 1_000_000,
            strobe_amplitude_ns: amplitude_ms * 1_000_000,
            strobe_period_ns: period_ms * 1_000_000,
        }
    }

    pub fn is_real(&self) -> bool {
        self.offset_ns == 0 && (self.strobe_period_ns == 0 || self.strobe_amplitude_ns == 0)
    }

    /// The offsets a process may observe under this setting.
    pub fn possible_offsets_ns(&self) -> Vec<i64> {
        if self.strobe_period_ns > 0 && self.strobe_amplitude_ns != 0 {
            vec![self.offset_ns, self.offset_ns + self.strobe_amplitude_ns]
        } else {
            vec![self.offset_ns]
        }
    }

    pub fn to_json(&self) -> Value {
        if self.strobe_period_ns > 0 {
            json!({"offset_ms": self.offset_ns / 1_000_000,
                   "strobe_amplitude_ms": self.strobe_amplitude_ns / 1_000_000,
                   "strobe_period_ms": self.strobe_period_ns / 1_000_000})
        } else {
            json!({"offset_ms": self.offset_ns / 1_000_000})
        }
    }
}

/// 64-bit FNV-1a, the control line's check against torn reads.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The control file's content: one line the shim parses, ending in a hash of the rest.
pub fn control_file(gen: u64, setting: &ClockSetting) -> String {
    assert!(gen < 10u64.pow(19), "generation {gen} too large");
    assert!(
        setting.strobe_period_ns < 10u64.pow(19),
        "strobe period too large"
    );
    let body = format!(
        "FLCLK2 G{:019} O{:+020} A{:+020} P{:019}",
        gen, setting.offset_ns, setting.strobe_amplitude_ns, setting.strobe_period_ns
    );
    let line = format!("{body} C{:016x}\n", fnv1a(body.as_bytes()));
    assert_eq!(line.len(), LINE_LEN, "control line {line:?}");
    line
}

/// A file to bake into a node image so that the shim is in place before any server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub path: &'static str,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Files an image recipe can add so that every node process starts with the shim loaded (at
/// offset zero the shim only adds a memory read to each clock call): the shim, the preload list,
/// and a zero control file. The directory must be writable by every user (mode 1777) for acks.
pub fn image_files() -> Vec<ImageFile> {
    vec![
        ImageFile {
            path: SHIM_PATH,
            bytes: SHIM_SO.to_vec(),
            mode: 0o755,
        },
        ImageFile {
            path: PRELOAD_LIST,
            bytes: format!("{SHIM_PATH}\n").into_bytes(),
            mode: 0o644,
        },
        ImageFile {
            path: "/run/faultline/clock/offset",
            bytes: control_file(0, &ClockSetting::real()).into_bytes(),
            mode: 0o644,
        },
    ]
}

/// Whether a clock change reached the server process.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    Verified {
        /// How it was shown: `probe: redis TIME`, `shim ack from pid 17`.
        method: String,
        /// The offset the probe observed, when there was a probe.
        observed_offset_ms: Option<i64>,
    },
    Unverified {
        reason: String,
    },
}

impl Verification {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verification::Verified { .. })
    }
}

/// Whether the shim is loaded in a node's server process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimStatus {
    pub pid: u32,
    /// The process's command name.
    pub comm: String,
    /// The shim is mapped in the process.
    pub loaded: bool,
    /// The process runs under the dynamic loader (so a preload can apply after a restart).
    pub dynamic: bool,
    /// Why its memory map could not be read (then `loaded` and `dynamic` say nothing).
    pub maps_error: Option<String>,
}

/// Does `expected_ns` fit a probe reading? The system read its clock at a true time within
/// `[before_ns, after_ns]` and truncated the value to `resolution_ns`; `slack_ns` covers the
/// system's own delay between reading and answering.
pub fn probe_matches(
    reading_ns: i128,
    resolution_ns: u64,
    before_ns: i128,
    after_ns: i128,
    expected_ns: i64,
    slack_ns: i128,
) -> bool {
    let lo = reading_ns - after_ns - slack_ns;
    let hi = reading_ns + i128::from(resolution_ns) - before_ns + slack_ns;
    (lo..=hi).contains(&i128::from(expected_ns))
}

/// The offset a probe reading suggests (midpoint of the possible interval), in milliseconds.
fn observed_offset_ms(
    reading_ns: i128,
    resolution_ns: u64,
    before_ns: i128,
    after_ns: i128,
) -> i64 {
    let mid_true = (before_ns + after_ns) / 2;
    let mid_reading = reading_ns + i128::from(resolution_ns) / 2;
    ((mid_reading - mid_true) / 1_000_000) as i64
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_ns(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, ns: u32) -> Option<i128> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + i64::from(h) * 3_600 + i64::from(mi) * 60 + i64::from(s);
    Some(i128::from(secs) * 1_000_000_000 + i128::from(ns))
}

/// Parses an HTTP `Date` header value (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) into
/// nanoseconds since the Unix epoch.
pub fn parse_http_date(s: &str) -> Option<i128> {
    let mut it = s.split_whitespace();
    let _weekday = it.next()?;
    let d: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let mo = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == mon)? as u32
        + 1;
    let y: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<u32>().ok());
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" {
        return None;
    }
    unix_ns(y, mo, d, h, mi, sec, 0)
}

/// Parses an RFC 3339 UTC time with optional fraction (`2026-11-22T02:54:43.123456789Z`).
pub fn parse_rfc3339_utc(s: &str) -> Option<i128> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let mo: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut tp = hms.split(':');
    let h: u32 = tp.next()?.parse().ok()?;
    let mi: u32 = tp.next()?.parse().ok()?;
    let sec: u32 = tp.next()?.parse().ok()?;
    if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ns: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    unix_ns(y, mo, d, h, mi, sec, ns)
}

fn expected_ms(setting: &ClockSetting) -> Vec<i64> {
    setting
        .possible_offsets_ns()
        .iter()
        .map(|e| e / 1_000_000)
        .collect()
}

fn unix_now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// `faultline clock-attach --status`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HelperStatus {
    go: bool,
    /// Number of patched vDSO entries.
    patched: usize,
    gen: u64,
    ack: u64,
    offset_ns: i64,
}

impl HelperStatus {
    /// `status pid P go BOOL patched [a,b] gen G ack A offset_ns O ...` (last such line).
    fn parse(out: &str) -> Result<HelperStatus> {
        let line = out
            .lines()
            .rfind(|l| l.starts_with("status "))
            .with_context(|| format!("no status line in {:?}", out.trim()))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |k: &str| -> Result<&str> {
            let i = words
                .iter()
                .position(|w| *w == k)
                .with_context(|| format!("no {k} in {line:?}"))?;
            words
                .get(i + 1)
                .copied()
                .with_context(|| format!("no value for {k} in {line:?}"))
        };
        let patched = field("patched")?.trim_matches(|c| c == '[' || c == ']');
        Ok(HelperStatus {
            go: field("go")? == "true",
            patched: patched.split(',').filter(|p| !p.is_empty()).count(),
            gen: field("gen")?.parse().context("gen")?,
            ack: field("ack")?.parse().context("ack")?,
            offset_ns: field("offset_ns")?.parse().context("offset_ns")?,
        })
    }
}

/// Clock state and actions for one cluster.
pub struct Clocks {
    ctl: Arc<dyn NodeControl>,
    state: Mutex<ClockState>,
    op_timeout: Duration,
    ack_wait: Duration,
    probe_slack: Duration,
    settle: Duration,
    /// faultline's binary inside the nodes, for the vDSO patch (`faultline clock-attach`);
    /// `None`: the shim only.
    vdso_helper: Option<String>,
}

#[derive(Default)]
struct ClockState {
    installed: BTreeSet<String>,
    /// Nodes whose control file holds a non-real setting (or may, after an interrupted write).
    skewed: BTreeSet<String>,
    last_gen: u64,
    /// Nodes whose server is reached through the vDSO patch, by the server pid last patched.
    vdso: BTreeMap<String, u32>,
    /// Server processes found to be reached by the shim (pid per node), so that the check is
    /// not repeated for every change.
    shim_ok: BTreeMap<String, u32>,
    /// The setting in force per skewed node, to apply again to a restarted server.
    settings: BTreeMap<String, ClockSetting>,
}

/// How a clock change reaches a node's server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The preloaded shim's control file.
    Shim,
    /// The process's patched vDSO (`faultline clock-attach`).
    Vdso,
}

const INSTALL_SCRIPT: &str = r#"set -e
mkdir -p "$3"
chmod 1777 "$3"
f="$3/offset"
if [ "$(wc -c < "$f" 2>/dev/null || echo 0)" != "$4" ]; then
  printf '%s' "$1" > "$f.tmp"; chmod 644 "$f.tmp"; mv -f "$f.tmp" "$f"
fi
grep -qxF "$2" /etc/ld.so.preload 2>/dev/null || echo "$2" >> /etc/ld.so.preload
"#;

/// Rewrites the control file in place: never truncated, never replaced, because processes have
/// it mapped.
const WRITE_SCRIPT: &str = r#"set -e
[ "$(wc -c < "$2")" = "$3" ] || { echo "$2 is missing or has the wrong size"; exit 1; }
printf '%s' "$1" | dd of="$2" bs="$3" count=1 iflag=fullblock conv=notrunc status=none
"#;

/// Reports on the server process: `gone`, `unreadable <why>`, or `ok <shim> <loader> <comm>`
/// (counts of mappings). The maps are read as the process's own user: root in a container lacks
/// CAP_SYS_PTRACE, which reading another user's maps needs.
const STATUS_SCRIPT: &str = r#"p=$1
[ -d /proc/$p ] || { echo gone; exit 0; }
c=$(cat /proc/$p/comm 2>/dev/null || echo '?')
u=$(stat -c %u /proc/$p) && g=$(stat -c %g /proc/$p) || { echo gone; exit 0; }
if [ "$u" != 0 ] && command -v setpriv >/dev/null; then
  m=$(setpriv --reuid="$u" --regid="$g" --clear-groups cat /proc/$p/maps 2>&1) || { echo "unreadable $m" | tr '\n' ' '; echo; exit 0; }
else
  m=$(cat /proc/$p/maps 2>&1) || { echo "unreadable $m" | tr '\n' ' '; echo; exit 0; }
fi
s=$(printf '%s\n' "$m" | grep -c libfaultline_clock)
l=$(printf '%s\n' "$m" | grep -c -e '/ld-linux' -e '/ld-[0-9.]*\.so')
echo "ok $s $l $c"
"#;

/// Samples of a strobe's probe before concluding that the shifted phase never shows.
const STROBE_SAMPLES: usize = 8;

impl Clocks {
    pub fn new(ctl: Arc<dyn NodeControl>, op_timeout: Duration) -> Clocks {
        Clocks {
            ctl,
            state: Mutex::new(ClockState::default()),
            op_timeout,
            ack_wait: Duration::from_secs(3),
            probe_slack: Duration::from_millis(250),
            settle: Duration::ZERO,
            vdso_helper: None,
        }
    }

    /// Reaches servers that the shim cannot (Go programs, static binaries) by patching their
    /// vDSO with `<helper> clock-attach`, where `helper` is faultline's binary inside the nodes.
    /// The node containers need CAP_SYS_PTRACE. See [`crate::vdso_clock`].
    pub fn with_vdso_helper(mut self, helper: &str) -> Clocks {
        self.vdso_helper = Some(helper.to_string());
        self
    }

    /// How long to wait for a process's acknowledgement when the system has no probe.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Clocks {
        self.ack_wait = ack_wait;
        self
    }

    /// Keeps probing for up to `settle` while a server still reads real time after a change:
    /// for systems that adopt OS clock changes late (an Erlang VM in multi_time_warp mode checks
    /// the OS clock every few seconds). Zero (the default) judges on the first reading.
    pub fn with_settle(mut self, settle: Duration) -> Clocks {
        self.settle = settle;
        self
    }

    /// Copies the shim into `node`, adds it to the preload list and creates the control file
    /// (offset zero). Processes started afterwards load the shim.
    pub async fn install(&self, node: &str) -> Result<()> {
        bounded(
            self.op_timeout,
            &format!("copying the clock shim to {node}"),
            self.ctl.write_file(node, SHIM_PATH, SHIM_SO, 0o755),
        )
        .await?;
        let zero = control_file(0, &ClockSetting::real());
        let len = zero.len().to_string();
        bounded(
            self.op_timeout,
            &format!("installing the clock shim on {node}"),
            sh_ok(
                &*self.ctl,
                node,
                INSTALL_SCRIPT,
                &[&zero, SHIM_PATH, CLOCK_DIR, &len],
            ),
        )
        .await?;
        self.state
            .lock()
            .expect("lock")
            .installed
            .insert(node.to_string());
        Ok(())
    }

    /// Whether the shim is loaded in the node's server process (`None`: no server process known).
    pub async fn shim_status(&self, node: &str) -> Result<Option<ShimStatus>> {
        let Some(pid) = self.ctl.server_pid(node).await? else {
            return Ok(None);
        };
        let pid_s = pid.to_string();
        let out = bounded(
            self.op_timeout,
            &format!("reading /proc/{pid}/maps on {node}"),
            sh_ok(&*self.ctl, node, STATUS_SCRIPT, &[&pid_s]),
        )
        .await?;
        let line = out.lines().last().unwrap_or("").trim();
        if line == "gone" {
            return Ok(None);
        }
        if let Some(why) = line.strip_prefix("unreadable") {
            return Ok(Some(ShimStatus {
                pid,
                comm: "?".into(),
                loaded: false,
                dynamic: false,
                maps_error: Some(why.trim().to_string()),
            }));
        }
        let Some(rest) = line.strip_prefix("ok ") else {
            bail!("unexpected answer about pid {pid} on {node}: {line:?}");
        };
        let mut it = rest.splitn(3, ' ');
        let shim: u64 = it.next().unwrap_or("").parse().unwrap_or(0);
        let ld: u64 = it.next().unwrap_or("").parse().unwrap_or(0);
        let comm = it.next().unwrap_or("?").to_string();
        Ok(Some(ShimStatus {
            pid,
            comm,
            loaded: shim > 0,
            dynamic: ld > 0,
            maps_error: None,
        }))
    }

    /// Installs the shim on every node and restarts (kill, start, wait ready) the nodes whose
    /// dynamically linked server process does not have it loaded yet. Returns per node what was
    /// found and done, for the record. Statically linked servers are left alone: no restart can
    /// make them load the shim, and their clock faults will be reported unverified.
    pub async fn prepare(&self, restart: bool, ready_timeout: Duration) -> Result<Value> {
        let mut report = serde_json::Map::new();
        for node in self.ctl.nodes() {
            self.install(&node).await?;
            let status = self.shim_status(&node).await?;
            let entry = match status {
                None => json!({"shim": "installed", "server": "unknown"}),
                Some(s) if s.maps_error.is_some() => {
                    json!({"shim": "unknown", "pid": s.pid, "reason": s.maps_error})
                }
                Some(s) if s.loaded => json!({"shim": "loaded", "pid": s.pid, "comm": s.comm}),
                Some(s) if !s.dynamic => {
                    json!({"shim": "not loadable", "pid": s.pid, "comm": s.comm,
                           "reason": "statically linked"})
                }
                Some(s) if restart => {
                    bounded(
                        self.op_timeout,
                        &format!("kill {node}"),
                        self.ctl.kill(&node),
                    )
                    .await?;
                    bounded(
                        self.op_timeout,
                        &format!("start {node}"),
                        self.ctl.start(&node),
                    )
                    .await?;
                    bounded(
                        ready_timeout + Duration::from_secs(1),
                        &format!("waiting for {node}"),
                        self.ctl.wait_ready(&node, ready_timeout),
                    )
                    .await?;
                    let after = self.shim_status(&node).await?;
                    json!({"shim": if after.as_ref().is_some_and(|a| a.loaded) { "loaded after restart" } else { "not loaded after restart" },
                           "pid_before": s.pid, "pid": after.map(|a| a.pid), "comm": s.comm})
                }
                Some(s) => json!({"shim": "not loaded (server started before install)",
                                  "pid": s.pid, "comm": s.comm}),
            };
            report.insert(node, entry);
        }
        Ok(Value::Object(report))
    }

    fn next_gen(&self) -> u64 {
        let mut st = self.state.lock().expect("lock");
        let now_ms = (unix_now_ns() / 1_000_000) as u64;
        st.last_gen = (st.last_gen + 1).max(now_ms);
        st.last_gen
    }

    async fn write(&self, node: &str, gen: u64, setting: &ClockSetting) -> Result<()> {
        if !self.state.lock().expect("lock").installed.contains(node) {
            self.install(node).await?;
        }
        let content = control_file(gen, setting);
        let len = content.len().to_string();
        let path = format!("{CLOCK_DIR}/offset");
        bounded(
            self.op_timeout,
            &format!("writing the clock offset on {node}"),
            sh_ok(&*self.ctl, node, WRITE_SCRIPT, &[&content, &path, &len]),
        )
        .await?;
        Ok(())
    }

    /// Applies `setting` to `node` and checks that its server process follows it. An error means
    /// the change could not even be written; `Unverified` means it was written but not shown to
    /// take effect.
    pub async fn set(&self, node: &str, setting: ClockSetting) -> Result<Verification> {
        let gen = self.next_gen();
        {
            let mut st = self.state.lock().expect("lock");
            if !setting.is_real() {
                st.skewed.insert(node.to_string());
                st.settings.insert(node.to_string(), setting);
            }
        }
        let status = match &self.vdso_helper {
            Some(_) => self.shim_status(node).await?,
            None => None,
        };
        let on_patch = self.state.lock().expect("lock").vdso.contains_key(node);
        if status.is_none() && on_patch && self.vdso_helper.is_some() {
            // The patched server is down: nothing to patch now (a restart re-applies), and the
            // shim must stay at zero so that no call ever gets the offset twice.
            if setting.is_real() {
                let mut st = self.state.lock().expect("lock");
                st.skewed.remove(node);
                st.settings.remove(node);
            }
            return Ok(Verification::Unverified {
                reason: format!("no server process found on {node}"),
            });
        }
        if let Some(status) = status {
            if self.via(node, &status).await? == Via::Vdso {
                self.attach(node, status.pid, gen, &setting).await?;
                if setting.is_real() {
                    let mut st = self.state.lock().expect("lock");
                    st.skewed.remove(node);
                    st.settings.remove(node);
                }
                return self.judge(node, gen, &setting, &status, Via::Vdso).await;
            }
        }
        self.write(node, gen, &setting).await?;
        if setting.is_real() {
            let mut st = self.state.lock().expect("lock");
            st.skewed.remove(node);
            st.settings.remove(node);
        }
        self.verify(node, gen, &setting).await
    }

    /// The mechanism for the server of `node`: the vDSO patch when a helper is configured and
    /// the server is a Go program or does not have the shim loaded (a static binary); else the
    /// shim. A Go program's libc calls would still pass through a loaded shim, so for it the
    /// shim stays at offset zero and the offset is added once, by the patch.
    async fn via(&self, node: &str, status: &ShimStatus) -> Result<Via> {
        if self.vdso_helper.is_none() || status.maps_error.is_some() {
            return Ok(Via::Shim);
        }
        {
            let st = self.state.lock().expect("lock");
            if st.vdso.contains_key(node) {
                return Ok(Via::Vdso);
            }
            if st.shim_ok.get(node) == Some(&status.pid) {
                return Ok(Via::Shim);
            }
        }
        if !status.loaded {
            return Ok(Via::Vdso);
        }
        if self.helper_status(node, status.pid).await?.go {
            return Ok(Via::Vdso);
        }
        self.state
            .lock()
            .expect("lock")
            .shim_ok
            .insert(node.to_string(), status.pid);
        Ok(Via::Shim)
    }

    /// Runs `faultline clock-attach` in `node` on process `pid`.
    async fn attach(&self, node: &str, pid: u32, gen: u64, setting: &ClockSetting) -> Result<()> {
        let helper = self.vdso_helper.as_deref().expect("a vDSO helper");
        let (pid_s, gen_s) = (pid.to_string(), gen.to_string());
        let (off, amp, per) = (
            setting.offset_ns.to_string(),
            setting.strobe_amplitude_ns.to_string(),
            setting.strobe_period_ns.to_string(),
        );
        let mut argv = vec![helper, "clock-attach", "--pid", &pid_s, "--gen", &gen_s];
        if setting.is_real() {
            argv.push("--reset");
        } else {
            argv.extend([
                "--offset-ns",
                &off,
                "--strobe-amplitude-ns",
                &amp,
                "--strobe-period-ns",
                &per,
            ]);
        }
        bounded(
            self.op_timeout,
            &format!("patching the vDSO of pid {pid} on {node}"),
            crate::control::exec_ok(&*self.ctl, node, &argv),
        )
        .await?;
        self.state
            .lock()
            .expect("lock")
            .vdso
            .insert(node.to_string(), pid);
        Ok(())
    }

    /// `faultline clock-attach --status` for process `pid` in `node`.
    async fn helper_status(&self, node: &str, pid: u32) -> Result<HelperStatus> {
        let helper = self.vdso_helper.as_deref().expect("a vDSO helper");
        let pid_s = pid.to_string();
        let out = bounded(
            self.op_timeout,
            &format!("reading the vDSO patch state of pid {pid} on {node}"),
            crate::control::exec_ok(
                &*self.ctl,
                node,
                &[helper, "clock-attach", "--pid", &pid_s, "--status"],
            ),
        )
        .await?;
        HelperStatus::parse(&out).with_context(|| format!("clock-attach --status on {node}"))
    }

    /// After `node`'s server was restarted: applies its clock setting again when the vDSO patch
    /// carries it (a new process starts with a fresh vDSO; the shim needs nothing, since every
    /// new process reads its control file). `None` when there was nothing to re-apply.
    pub async fn reapply(&self, node: &str) -> Option<Result<Verification>> {
        let setting = {
            let st = self.state.lock().expect("lock");
            if !st.vdso.contains_key(node) {
                return None;
            }
            *st.settings.get(node)?
        };
        Some(self.set(node, setting).await)
    }

    /// Puts `node` back on the real clock.
    pub async fn reset(&self, node: &str) -> Result<Verification> {
        self.set(node, ClockSetting::real()).await
    }

    /// Checks that the server process of `node` runs on `setting` (see the module docs). A
    /// probe reading proves a change only when it matches the expected offset and could not be
    /// real time; a strobe is sampled until its shifted phase shows (or [`STROBE_SAMPLES`] tries
    /// pass); a reset is proven by a reading of real time.
    pub async fn verify(
        &self,
        node: &str,
        gen: u64,
        setting: &ClockSetting,
    ) -> Result<Verification> {
        self.verify_shim(node, gen, setting).await
    }

    async fn verify_shim(
        &self,
        node: &str,
        gen: u64,
        setting: &ClockSetting,
    ) -> Result<Verification> {
        let status = match self.shim_status(node).await? {
            None => {
                return Ok(Verification::Unverified {
                    reason: format!("no server process found on {node}"),
                })
            }
            Some(s) => s,
        };
        if let Some(why) = &status.maps_error {
            return Ok(Verification::Unverified {
                reason: format!(
                    "cannot read the memory map of server process {} on {node}: {why}",
                    status.pid
                ),
            });
        }
        if !status.loaded {
            let reason = if status.dynamic {
                format!(
                    "server process {} ({}) does not have the clock shim loaded: it started before the shim was installed",
                    status.pid, status.comm
                )
            } else {
                format!(
                    "server process {} ({}) is statically linked: the dynamic loader never runs, so no preloaded library can change its clock",
                    status.pid, status.comm
                )
            };
            return Ok(Verification::Unverified { reason });
        }
        self.judge(node, gen, setting, &status, Via::Shim).await
    }

    /// Probes the server's own clock (sampling a strobe, settling if configured) and judges
    /// whether it follows `setting`; without a probe, the process's acknowledgement decides.
    async fn judge(
        &self,
        node: &str,
        gen: u64,
        setting: &ClockSetting,
        status: &ShimStatus,
        via: Via,
    ) -> Result<Verification> {
        let samples = if setting.possible_offsets_ns().len() > 1 {
            STROBE_SAMPLES
        } else {
            1
        };
        let slack = self.probe_slack.as_nanos() as i128;
        let mut last_observed = 0;
        let mut source = String::new();
        let settle_until = tokio::time::Instant::now() + self.settle;
        let mut taken = 0;
        while taken < samples || tokio::time::Instant::now() < settle_until {
            taken += 1;
            let before = unix_now_ns();
            let probe = bounded(
                self.op_timeout,
                &format!("clock probe on {node}"),
                self.ctl.clock_probe(node),
            )
            .await;
            let after = unix_now_ns();
            let r = match probe {
                Ok(Some(r)) => r,
                Ok(None) => return self.verify_by_ack(node, gen, status, via, None).await,
                // Fall back to the acknowledgement, keeping the probe's failure in the reason.
                Err(e) => {
                    return self
                        .verify_by_ack(node, gen, status, via, Some(format!("{e:#}")))
                        .await
                }
            };
            let fits = |e: i64| probe_matches(r.unix_ns, r.resolution_ns, before, after, e, slack);
            let observed = observed_offset_ms(r.unix_ns, r.resolution_ns, before, after);
            let verified = if setting.is_real() {
                fits(0)
            } else {
                setting
                    .possible_offsets_ns()
                    .iter()
                    .any(|&e| e != 0 && fits(e) && !fits(0))
            };
            if verified {
                let how = match via {
                    Via::Shim => String::new(),
                    Via::Vdso => " (vDSO patch)".to_string(),
                };
                return Ok(Verification::Verified {
                    method: format!("probe: {}{how}", r.source),
                    observed_offset_ms: Some(observed),
                });
            }
            let expected_phase = setting.possible_offsets_ns().iter().any(|&e| fits(e));
            if !expected_phase && !fits(0) {
                // Neither the setting nor real time: something else is going on; say what.
                return Ok(Verification::Unverified {
                    reason: format!(
                        "{} on {node} is {observed} ms from real time, expected {:?} ms",
                        r.source,
                        expected_ms(setting)
                    ),
                });
            }
            last_observed = observed;
            source = r.source;
            if taken >= samples && tokio::time::Instant::now() < settle_until {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(Verification::Unverified {
            reason: format!(
                "{source} on {node} is {last_observed} ms from real time, expected {:?} ms{}: server process {} ({}) does not follow the shifted clock",
                expected_ms(setting),
                if taken > 1 { format!(" ({taken} readings)") } else { String::new() },
                status.pid,
                status.comm
            ),
        })
    }

    async fn verify_by_ack(
        &self,
        node: &str,
        gen: u64,
        status: &ShimStatus,
        via: Via,
        probe_error: Option<String>,
    ) -> Result<Verification> {
        if via == Via::Vdso {
            return self
                .verify_by_patch_ack(node, gen, status, probe_error)
                .await;
        }
        let path = format!("{CLOCK_DIR}/ack.{}", status.pid);
        let deadline = tokio::time::Instant::now() + self.ack_wait;
        loop {
            let out = bounded(
                self.op_timeout,
                &format!("reading {path} on {node}"),
                self.ctl.exec(node, &["cat", &path]),
            )
            .await?;
            let acked: u64 = if out.success() {
                out.output.trim().parse().unwrap_or(0)
            } else {
                0
            };
            if acked >= gen {
                return Ok(Verification::Verified {
                    method: format!("shim ack from pid {} ({})", status.pid, status.comm),
                    observed_offset_ms: None,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                let mut reason = format!(
                    "server process {} ({}) has the shim loaded but read no shifted realtime clock within {} ms (a Go binary reads the vDSO directly)",
                    status.pid,
                    status.comm,
                    self.ack_wait.as_millis()
                );
                if let Some(e) = probe_error {
                    reason.push_str(&format!("; the clock probe failed: {e}"));
                }
                return Ok(Verification::Unverified { reason });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Without a probe, a vDSO-patched process proves a change by reading its clock through the
    /// patch under the new generation (the patch's `ack`); a reset, by its vDSO being restored.
    async fn verify_by_patch_ack(
        &self,
        node: &str,
        gen: u64,
        status: &ShimStatus,
        probe_error: Option<String>,
    ) -> Result<Verification> {
        let deadline = tokio::time::Instant::now() + self.ack_wait;
        loop {
            let h = self.helper_status(node, status.pid).await?;
            if h.gen == gen && h.patched == 0 && h.offset_ns == 0 {
                return Ok(Verification::Verified {
                    method: format!("vDSO restored in pid {} ({})", status.pid, status.comm),
                    observed_offset_ms: None,
                });
            }
            if h.gen == gen && h.ack >= gen && h.patched > 0 {
                return Ok(Verification::Verified {
                    method: format!("vDSO patch ack from pid {} ({})", status.pid, status.comm),
                    observed_offset_ms: None,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                let mut reason = format!(
                    "server process {} ({}) has its vDSO patched but read no clock through it within {} ms",
                    status.pid,
                    status.comm,
                    self.ack_wait.as_millis()
                );
                if let Some(e) = probe_error {
                    reason.push_str(&format!("; the clock probe failed: {e}"));
                }
                return Ok(Verification::Unverified { reason });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Nodes whose clock may be off.
    pub fn skewed(&self) -> BTreeSet<String> {
        self.state.lock().expect("lock").skewed.clone()
    }

    /// Resets every node that may be skewed. Returns per node the verification or the error.
    pub async fn heal(&self) -> BTreeMap<String, Result<Verification>> {
        let mut out = BTreeMap::new();
        for node in self.skewed() {
            let r = self.reset(&node).await;
            out.insert(node, r);
        }
        out
    }

    /// Fails unless `node` has the shim installed and its server loaded it.
    pub async fn check_loaded(&self, node: &str) -> Result<ShimStatus> {
        match self
            .shim_status(node)
            .await
            .context("checking the clock shim")?
        {
            Some(s) if s.loaded => Ok(s),
            Some(s) => bail!(
                "the clock shim is not loaded in pid {} ({}) on {node}",
                s.pid,
                s.comm
            ),
            None => bail!("no server process found on {node}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_have_the_fixed_layout_the_shim_parses() {
        let line = control_file(7, &ClockSetting::strobe_ms(-5_000, 2_000, 100));
        assert_eq!(
            line,
            "FLCLK2 G0000000000000000007 O-0000000005000000000 A+0000000002000000000 P0000000000100000000 C"
                .to_string()
                + &format!("{:016x}\n", fnv1a(&line.as_bytes()[..92]))
        );
        assert_eq!(line.len(), LINE_LEN);
        // Field offsets used by clockshim.c: G at 8, O at 29, A at 51, P at 73, C at 94.
        assert_eq!(&line[7..8], "G");
        assert_eq!(&line[28..29], "O");
        assert_eq!(&line[50..51], "A");
        assert_eq!(&line[72..73], "P");
        assert_eq!(&line[93..94], "C");
        // FNV-1a reference: the empty input hashes to the offset basis, "a" to af63dc4c8601ec8c.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_probe_within_resolution_and_round_trip_matches() {
        let s = 1_000_000_000i128;
        let real = 1_700_000_000 * s;
        // Redis TIME (1 µs resolution) read 5 s ahead during a 20 ms round trip.
        let reading = real + 5 * s + 10_000_000;
        assert!(probe_matches(
            reading,
            1_000,
            real,
            real + 20_000_000,
            5_000_000_000,
            0
        ));
        assert!(!probe_matches(
            reading,
            1_000,
            real,
            real + 20_000_000,
            0,
            250_000_000
        ));
        // An HTTP Date header truncates to the second: real time 0.9 s into a second reads as .0.
        let reading = real;
        let before = real + 900_000_000;
        assert!(probe_matches(
            reading,
            1_000_000_000,
            before,
            before + 10_000_000,
            0,
            0
        ));
        assert!(!probe_matches(
            reading,
            1_000_000_000,
            before,
            before,
            3_000_000_000,
            250_000_000
        ));
    }

    #[test]
    fn http_dates_and_rfc3339_times_parse_to_unix_nanoseconds() {
        let s = 1_000_000_000i128;
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777 * s)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(
            parse_rfc3339_utc("1994-11-06T08:49:37.5Z"),
            Some(784_111_777 * s + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339_utc("2000-02-29T00:00:00Z"),
            Some(951_782_400 * s)
        );
        assert_eq!(parse_rfc3339_utc("2000-02-29T00:00:00+01:00"), None);
    }

    #[test]
    fn the_helper_status_line_parses_and_bad_lines_are_errors() {
        let s = HelperStatus::parse(
            "status pid 7 go true patched [clock_gettime,gettimeofday,time] gen 12 ack 11 offset_ns -5000 strobe_amplitude_ns 0 strobe_period_ns 0\n",
        )
        .unwrap();
        assert_eq!(
            s,
            HelperStatus {
                go: true,
                patched: 3,
                gen: 12,
                ack: 11,
                offset_ns: -5000
            }
        );
        let s = HelperStatus::parse("status pid 7 go false patched [] gen 0 ack 0 offset_ns 0")
            .unwrap();
        assert_eq!((s.go, s.patched), (false, 0));
        assert!(HelperStatus::parse("faultline: error: no such process").is_err());
        assert!(HelperStatus::parse("status pid 7 go true patched []").is_err());
    }

    #[test]
    fn strobes_allow_either_phase_and_real_means_no_skew() {
        let s = ClockSetting::strobe_ms(0, 3_000, 50);
        assert_eq!(s.possible_offsets_ns(), vec![0, 3_000_000_000]);
        assert!(!s.is_real());
        assert!(ClockSetting::real().is_real());
        assert_eq!(
            ClockSetting::offset_ms(-2_000).to_json(),
            json!({"offset_ms": -2000})
        );
    }

    #[test]
    fn the_embedded_shim_is_a_shared_object_exporting_the_overrides() {
        assert_eq!(&SHIM_SO[..4], b"\x7fELF");
        for sym in ["clock_gettime", "gettimeofday", "timespec_get"] {
            assert!(
                SHIM_SO.windows(sym.len()).any(|w| w == sym.as_bytes()),
                "{sym} is exported"
            );
        }
        let files = image_files();
        assert_eq!(files.len(), 3);
        assert_eq!(files[2].bytes.len(), LINE_LEN);
    }
}
