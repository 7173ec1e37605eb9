//! Clock faults on Go servers through the vDSO patch (`faultline clock-attach` inside the node,
//! CAP_SYS_PTRACE on the containers): the shim cannot reach etcd or NATS, the patch does, and
//! each change counts only when the server's own clock shows it (etcd: the `Date` header of its
//! HTTP answers; NATS: `now` in its `/varz`). A server killed and restarted while the fault is
//! active gets it back; heal restores the vDSO. The host clock and the other nodes stay real.

mod nemesis_support;

use faultline::nemesis::ClusterControl;
use nemeses::clock::ClockSetting;
use nemeses::control::NodeControl;
use nemeses::schedule::{Fault, FaultKind, Targets};
use nemesis_support::{image_or_skip, nemesis_with_vdso, start_for_clock, teardown};
use serde_json::Value;

fn host_now_ms() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i128
}

/// The server's clock on `node` minus the host's, in ms (within the probe's resolution).
async fn server_offset_ms(ctl: &ClusterControl, node: &str) -> i128 {
    let before = host_now_ms();
    let r = ctl.clock_probe(node).await.unwrap().expect("a clock probe");
    r.unix_ns / 1_000_000 - before
}

fn event<'a>(events: &'a [nemeses::record::NemesisEvent], f: &str) -> &'a Value {
    &events
        .iter()
        .rfind(|e| e.f == f)
        .unwrap_or_else(|| panic!("no {f} in {events:?}"))
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_follows_a_vdso_clock_bump_keeps_it_across_a_restart_and_heals() {
    let Some(image) = image_or_skip("clock-vdso-etcd").await else {
        return;
    };
    let c = start_for_clock("etcd", &image).await;
    let ctl = ClusterControl::new(c.clone());
    let (n, rec) = nemesis_with_vdso(&c);
    n.prepare(&[FaultKind::Clock]).await.expect("clock setup");

    let bump = Fault::Clock {
        nodes: vec!["n2".into()],
        setting: ClockSetting::offset_ms(40_000),
    };
    assert!(n.start(&bump).await, "{:?}", rec.events());
    let ev = rec.events();
    let n2 = &event(&ev, "start-clock")["nodes"]["n2"];
    assert_eq!(
        n2["verified_by"], "probe: etcd HTTP Date header (vDSO patch)",
        "{n2}"
    );
    let observed = n2["observed_offset_ms"].as_i64().unwrap();
    assert!((observed - 40_000).abs() <= 1_500, "observed {observed} ms");
    assert!(
        server_offset_ms(&ctl, "n1").await.abs() <= 2_000,
        "n1 stays real"
    );

    // Killed and restarted while the fault is active: the new process gets the offset again.
    assert!(
        n.start(&Fault::Kill(Targets::Nodes(vec!["n2".into()])))
            .await
    );
    n.stop(FaultKind::Kill).await;
    let ev = rec.events();
    let again = event(&ev, "clock-reapplied");
    assert_eq!(again["node"], "n2");
    assert_eq!(
        again["verified_by"], "probe: etcd HTTP Date header (vDSO patch)",
        "{again}"
    );
    let off = server_offset_ms(&ctl, "n2").await;
    assert!(
        (off - 40_000).abs() <= 2_000,
        "after the restart n2 is {off} ms off"
    );

    n.stop(FaultKind::Clock).await;
    let ev = rec.events();
    let stop = &event(&ev, "stop-clock")["nodes"]["n2"];
    assert_eq!(
        stop["verified_by"], "probe: etcd HTTP Date header (vDSO patch)",
        "{stop}"
    );
    assert!(server_offset_ms(&ctl, "n2").await.abs() <= 2_000);
    assert!(n.clocks().skewed().is_empty());
    assert_eq!(
        rec.fs().iter().filter(|f| *f == "clock-unverified").count(),
        0
    );

    drop(n);
    teardown(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_follows_a_vdso_clock_strobe_and_a_bump_and_heal_resets_it() {
    let Some(image) = image_or_skip("clock-vdso-nats").await else {
        return;
    };
    let c = start_for_clock("nats", &image).await;
    let ctl = ClusterControl::new(c.clone());
    let (n, rec) = nemesis_with_vdso(&c);
    n.prepare(&[FaultKind::Clock]).await.expect("clock setup");

    let bump = Fault::Clock {
        nodes: vec!["n1".into()],
        setting: ClockSetting::offset_ms(-25_000),
    };
    assert!(n.start(&bump).await, "{:?}", rec.events());
    let ev = rec.events();
    let n1 = &event(&ev, "start-clock")["nodes"]["n1"];
    assert_eq!(
        n1["verified_by"], "probe: nats /varz now (vDSO patch)",
        "{n1}"
    );
    let observed = n1["observed_offset_ms"].as_i64().unwrap();
    assert!((observed + 25_000).abs() <= 500, "observed {observed} ms");
    n.stop(FaultKind::Clock).await;

    let strobe = Fault::Clock {
        nodes: vec!["n1".into()],
        setting: ClockSetting::strobe_ms(0, 8_000, 50),
    };
    assert!(n.start(&strobe).await, "{:?}", rec.events());
    let ev = rec.events();
    let n1 = &event(&ev, "start-clock")["nodes"]["n1"];
    let observed = n1["observed_offset_ms"].as_i64().unwrap();
    assert!(
        (observed - 8_000).abs() <= 500,
        "the strobe's shifted phase: {observed} ms"
    );

    // Heal (as on Ctrl-C or at the end of a run) puts the vDSO back.
    n.heal_all().await;
    assert!(n.clocks().skewed().is_empty());
    assert!(server_offset_ms(&ctl, "n1").await.abs() <= 500);
    let pid = ctl.server_pid("n1").await.unwrap().unwrap().to_string();
    let status = c
        .exec(
            "n1",
            &[
                faultline::nemesis::CLOCK_VDSO_HELPER,
                "clock-attach",
                "--pid",
                &pid,
                "--status",
            ],
        )
        .await
        .unwrap()
        .output;
    assert!(status.contains(" go true patched []"), "{status}");

    drop(n);
    teardown(c).await;
}
