//! Which mechanism a clock change takes, against a scripted node: a Go server goes through the
//! vDSO patch (`faultline clock-attach`) with the shim left at zero, a restarted one is patched
//! again, a C server stays on the shim, and a patched node whose server is down is never moved
//! to the shim. No Docker: the real mechanisms are tested in tests/vdso_clock.rs and in the
//! controller's tests/nemesis_clock_vdso.rs.

use anyhow::{bail, Result};
use async_trait::async_trait;
use nemeses::clock::{ClockSetting, Clocks, Verification};
use nemeses::control::{ClockReading, ExecOutput, NodeControl};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HELPER: &str = "/usr/local/bin/faultline";

/// One node whose server is `go` or not; its clock follows the vDSO patch of the current pid,
/// or the shim's control file when the server is not Go.
struct FakeNode {
    go: bool,
    /// The server's pid; None while it is down.
    pid: Mutex<Option<u32>>,
    /// (pid patched, offset ns, gen) from the last clock-attach.
    patch: Mutex<Option<(u32, i64, u64)>>,
    shim_offset_ns: Mutex<i64>,
    log: Mutex<Vec<String>>,
}

impl FakeNode {
    fn new(go: bool) -> Arc<FakeNode> {
        Arc::new(FakeNode {
            go,
            pid: Mutex::new(Some(100)),
            patch: Mutex::new(None),
            shim_offset_ns: Mutex::new(0),
            log: Mutex::new(vec![]),
        })
    }
    fn offset_ns(&self) -> i64 {
        if !self.go {
            return *self.shim_offset_ns.lock().unwrap();
        }
        match (*self.patch.lock().unwrap(), *self.pid.lock().unwrap()) {
            (Some((p, off, _)), Some(pid)) if p == pid => off,
            _ => 0,
        }
    }
    fn attaches(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn arg<'a>(argv: &[&'a str], flag: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| *a == flag)
        .and_then(|i| argv.get(i + 1).copied())
}

#[async_trait]
impl NodeControl for FakeNode {
    fn nodes(&self) -> Vec<String> {
        vec!["n1".into()]
    }
    async fn ip(&self, _node: &str) -> Result<IpAddr> {
        Ok("10.1.0.1".parse()?)
    }
    async fn exec(&self, _node: &str, argv: &[&str]) -> Result<ExecOutput> {
        let ok = |output: String| Ok(ExecOutput { code: 0, output });
        if argv[0] == HELPER {
            let pid: u32 = arg(argv, "--pid").unwrap().parse()?;
            if argv.contains(&"--status") {
                let (patched, off, gen) = match *self.patch.lock().unwrap() {
                    Some((p, off, gen)) if p == pid && off != 0 => ("[clock_gettime]", off, gen),
                    Some((_, _, gen)) => ("[]", 0, gen),
                    None => ("[]", 0, 0),
                };
                return ok(format!(
                    "status pid {pid} go {} patched {patched} gen {gen} ack {gen} offset_ns {off} strobe_amplitude_ns 0 strobe_period_ns 0\n",
                    self.go
                ));
            }
            let gen: u64 = arg(argv, "--gen").unwrap().parse()?;
            let off: i64 = arg(argv, "--offset-ns").map_or(Ok(0), str::parse)?;
            self.log
                .lock()
                .unwrap()
                .push(format!("attach pid {pid} offset_ns {off}"));
            *self.patch.lock().unwrap() = Some((pid, off, gen));
            return ok("ok\n".into());
        }
        let script = argv.get(2).copied().unwrap_or("");
        if script.contains("/proc/$p/maps") {
            return ok(if self.pid.lock().unwrap().is_some() {
                "ok 1 1 server".into()
            } else {
                "gone".into()
            });
        }
        if script.contains("dd of=") {
            *self.shim_offset_ns.lock().unwrap() = argv[4][29..49].parse().unwrap();
        }
        ok(String::new())
    }
    async fn kill(&self, _node: &str) -> Result<()> {
        *self.pid.lock().unwrap() = None;
        Ok(())
    }
    async fn start(&self, _node: &str) -> Result<()> {
        *self.pid.lock().unwrap() = Some(101);
        Ok(())
    }
    async fn pause(&self, _node: &str) -> Result<()> {
        bail!("not scripted")
    }
    async fn unpause(&self, _node: &str) -> Result<()> {
        Ok(())
    }
    async fn wait_ready(&self, _node: &str, _timeout: Duration) -> Result<()> {
        Ok(())
    }
    async fn leader(&self) -> Result<Option<String>> {
        Ok(None)
    }
    async fn server_pid(&self, _node: &str) -> Result<Option<u32>> {
        Ok(*self.pid.lock().unwrap())
    }
    async fn clock_probe(&self, _node: &str) -> Result<Option<ClockReading>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        Ok(Some(ClockReading {
            unix_ns: now + i128::from(self.offset_ns()),
            resolution_ns: 1_000,
            source: "fake TIME".into(),
        }))
    }
}

fn clocks(node: &Arc<FakeNode>) -> Clocks {
    Clocks::new(node.clone(), Duration::from_secs(5)).with_vdso_helper(HELPER)
}

fn method(v: Verification) -> String {
    match v {
        Verification::Verified { method, .. } => method,
        Verification::Unverified { reason } => panic!("unverified: {reason}"),
    }
}

#[tokio::test]
async fn a_go_server_is_patched_keeps_the_shim_at_zero_and_is_patched_again_after_a_restart() {
    let node = FakeNode::new(true);
    let c = clocks(&node);
    let v = c.set("n1", ClockSetting::offset_ms(30_000)).await.unwrap();
    assert_eq!(method(v), "probe: fake TIME (vDSO patch)");
    assert_eq!(node.attaches(), ["attach pid 100 offset_ns 30000000000"]);
    assert_eq!(
        *node.shim_offset_ns.lock().unwrap(),
        0,
        "the offset is added once"
    );

    // Killed and started: the new process (pid 101) runs on the real clock until re-applied.
    node.kill("n1").await.unwrap();
    node.start("n1").await.unwrap();
    assert_eq!(node.offset_ns(), 0);
    let v = c.reapply("n1").await.expect("a fault to re-apply").unwrap();
    assert_eq!(method(v), "probe: fake TIME (vDSO patch)");
    assert_eq!(node.offset_ns(), 30_000_000_000);

    let v = c.reset("n1").await.unwrap();
    assert_eq!(method(v), "probe: fake TIME (vDSO patch)");
    assert_eq!(
        node.attaches().last().unwrap(),
        "attach pid 101 offset_ns 0"
    );
    assert!(c.skewed().is_empty());
    assert!(
        c.reapply("n1").await.is_none(),
        "nothing active, nothing to re-apply"
    );
}

#[tokio::test]
async fn a_patched_node_whose_server_is_down_is_not_moved_to_the_shim() {
    let node = FakeNode::new(true);
    let c = clocks(&node);
    c.set("n1", ClockSetting::offset_ms(-5_000)).await.unwrap();
    node.kill("n1").await.unwrap();
    match c.set("n1", ClockSetting::offset_ms(9_000)).await.unwrap() {
        Verification::Unverified { reason } => assert!(reason.contains("no server"), "{reason}"),
        v => panic!("{v:?}"),
    }
    assert_eq!(*node.shim_offset_ns.lock().unwrap(), 0);
    // The latest setting is what a restart brings back.
    node.start("n1").await.unwrap();
    c.reapply("n1").await.unwrap().unwrap();
    assert_eq!(node.offset_ns(), 9_000_000_000);
}

#[tokio::test]
async fn a_server_the_shim_reaches_stays_on_the_shim() {
    let node = FakeNode::new(false);
    let c = clocks(&node);
    let v = c.set("n1", ClockSetting::offset_ms(4_000)).await.unwrap();
    assert_eq!(method(v), "probe: fake TIME");
    assert_eq!(*node.shim_offset_ns.lock().unwrap(), 4_000_000_000);
    assert!(
        node.attaches().is_empty(),
        "no ptrace for a server the shim reaches"
    );
    assert!(
        c.reapply("n1").await.is_none(),
        "a new process reads the control file itself"
    );
    c.reset("n1").await.unwrap();
    assert_eq!(*node.shim_offset_ns.lock().unwrap(), 0);
}
