//! Clock faults on real servers, with the evidence the nemesis records.
//!
//! Redis (linked against glibc, with jemalloc, which libfaketime cannot start) follows a bump:
//! its own `TIME` shows the offset, and the fault is recorded as `start-clock` with that proof.
//! etcd (Go: reads the vDSO directly) has the shim mapped but ignores it: its HTTP `Date` stays
//! on real time, and the nemesis records `clock-unverified` with the reason instead of skew.
//! RabbitMQ's Erlang VM shows a bump at once in `os:system_time` and, in multi-time-warp mode,
//! in `erlang:system_time` at its next time-correction check.
//!
//! `clock_fault_table` (ignored by default: it starts all six systems and the testbed, a few minutes) prints
//! which clock faults take effect per system, set up as `faultline run` does (shim, plus the vDSO
//! patch for Go servers; see tests/nemesis_clock_vdso.rs), and fails unless every bump shows:
//! `cargo test --test nemesis_clock -- --ignored --nocapture clock_fault_table`.

mod nemesis_support;

use nemeses::clock::{ClockSetting, Verification};
use std::time::Duration;

use nemeses::schedule::{Fault, FaultKind, Targets};
use nemesis_support::{
    image_or_skip, nemesis, nemesis_with_vdso, start, start_for_clock, start_with, teardown,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_follows_a_clock_bump_and_the_record_says_how_we_know() {
    let Some(image) = image_or_skip("clock-redis").await else {
        return;
    };
    let c = start("redis", &image).await;
    let (n, rec) = nemesis(&c);
    n.prepare(&[FaultKind::Clock]).await.expect("clock setup");
    assert_eq!(
        rec.events()[0].value["n1"]["shim"],
        "loaded",
        "{:?}",
        rec.events()
    );

    let bump = Fault::Clock {
        nodes: vec!["n1".into()],
        setting: ClockSetting::offset_ms(-45_000),
    };
    assert!(n.start(&bump).await, "{:?}", rec.events());
    let ev = rec.events().last().cloned().unwrap();
    assert_eq!(ev.f, "start-clock");
    let n1 = &ev.value["nodes"]["n1"];
    assert_eq!(n1["verified_by"], "probe: redis TIME");
    let observed = n1["observed_offset_ms"].as_i64().unwrap();
    assert!((observed + 45_000).abs() < 1_000, "observed {observed} ms");

    // Another node of the same container image is untouched, and the host clock too.
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let n2 = c.exec("n2", &["redis-cli", "TIME"]).await.unwrap().output;
    let n2_s: i64 = n2.split_whitespace().next().unwrap().parse().unwrap();
    assert!((n2_s - host).abs() <= 2, "n2 {n2_s} vs host {host}");

    n.stop(FaultKind::Clock).await;
    let stop = rec.events().last().cloned().unwrap();
    assert_eq!(stop.f, "stop-clock");
    assert_eq!(
        stop.value["nodes"]["n1"]["verified_by"],
        "probe: redis TIME"
    );
    assert!(n.clocks().skewed().is_empty());

    drop(n);
    teardown(c).await;
}

/// The testbed server reports its own clock (`now_us` in `GET /status`), so its clock faults are
/// verified by a reading of the server, not by the shim's acknowledgement alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testbed_follows_a_clock_bump_and_a_strobe_as_its_own_status_shows() {
    let Some(image) = image_or_skip("clock-testbed").await else {
        return;
    };
    let c = start("testbed", &image).await;
    let (n, rec) = nemesis(&c);
    n.prepare(&[FaultKind::Clock]).await.expect("clock setup");
    let bump = Fault::Clock {
        nodes: vec!["n1".into()],
        setting: ClockSetting::offset_ms(30_000),
    };
    assert!(n.start(&bump).await, "{:?}", rec.events());
    let ev = rec.events().last().cloned().unwrap();
    let n1 = &ev.value["nodes"]["n1"];
    assert_eq!(n1["verified_by"], "probe: testbed /status now_us", "{ev:?}");
    let observed = n1["observed_offset_ms"].as_i64().unwrap();
    assert!((observed - 30_000).abs() < 1_000, "observed {observed} ms");
    // n2's server runs the same binary with the shim loaded, and its clock is untouched.
    let status = c
        .exec("n2", &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7000 && printf 'GET /status HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"])
        .await
        .unwrap()
        .output;
    let body = status.split("\r\n\r\n").nth(1).unwrap_or("");
    let n2_us = serde_json::from_str::<serde_json::Value>(body).unwrap()["now_us"]
        .as_u64()
        .unwrap_or_else(|| panic!("no now_us in {status:?}"));
    let host_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(
        n2_us.abs_diff(host_us) < 2_000_000,
        "n2 {n2_us} vs host {host_us}"
    );

    let strobe = Fault::Clock {
        nodes: vec!["n1".into()],
        setting: ClockSetting::strobe_ms(0, 5_000, 20),
    };
    assert!(n.start(&strobe).await, "{:?}", rec.events());
    let ev = rec.events().last().cloned().unwrap();
    assert_eq!(
        ev.value["nodes"]["n1"]["verified_by"], "probe: testbed /status now_us",
        "{ev:?}"
    );
    n.stop(FaultKind::Clock).await;
    let stop = rec.events().last().cloned().unwrap();
    assert_eq!(stop.f, "stop-clock");
    assert_eq!(
        stop.value["nodes"]["n1"]["verified_by"], "probe: testbed /status now_us",
        "{stop:?}"
    );
    drop(n);
    teardown(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_ignores_the_shim_and_the_nemesis_says_so_instead_of_claiming_skew() {
    let Some(image) = image_or_skip("clock-etcd").await else {
        return;
    };
    let c = start("etcd", &image).await;
    let (n, rec) = nemesis(&c);
    n.prepare(&[FaultKind::Clock]).await.expect("clock setup");

    let bump = Fault::Clock {
        nodes: vec!["n2".into()],
        setting: ClockSetting::offset_ms(30_000),
    };
    assert!(
        !n.start(&bump).await,
        "no verified skew: {:?}",
        rec.events()
    );
    let fs = rec.fs();
    assert!(!fs.contains(&"start-clock".to_string()), "{fs:?}");
    let ev = rec
        .events()
        .into_iter()
        .find(|e| e.f == "clock-unverified")
        .unwrap();
    let reason = ev.value["reason"].as_str().unwrap();
    assert!(
        reason.contains("etcd HTTP Date header") && reason.contains("does not follow"),
        "{reason}"
    );
    assert!(
        n.clocks().skewed().is_empty(),
        "the offset was put back at once"
    );

    drop(n);
    teardown(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_without_the_shim_is_restarted_once_to_load_it() {
    let Some(image) = image_or_skip("clock-restart").await else {
        return;
    };
    let c = start_with("postgres", &image, false).await;
    let (n, rec) = nemesis(&c);
    let setup = n.prepare(&[FaultKind::Clock]).await.expect("clock setup");
    assert_eq!(
        setup["clock"]["n1"]["shim"], "loaded after restart",
        "{setup}"
    );
    assert_eq!(rec.fs(), ["clock-setup"], "the restart is on the record");

    let bump = Fault::Clock {
        nodes: vec!["n1".into()],
        setting: ClockSetting::offset_ms(3_600_000),
    };
    assert!(n.start(&bump).await, "{:?}", rec.events());
    let ev = rec.events().last().cloned().unwrap();
    assert_eq!(
        ev.value["nodes"]["n1"]["verified_by"],
        "probe: postgres clock_timestamp()"
    );
    n.heal_all().await;
    assert_eq!(rec.fs().last().map(String::as_str), Some("heal"));
    assert!(n.clocks().skewed().is_empty());

    drop(n);
    teardown(c).await;
}

/// RabbitMQ's clock as the VM reads it, minus the host's, in ms: `os:system_time` (what the
/// clock probe reads) or `erlang:system_time` (the VM's own system time), through `erl_call`.
async fn rabbit_offset_ms(c: &faultline::cluster::Cluster, node: &str, fun: &str) -> i64 {
    let call = format!(
        "erl_call -sname rabbit@{node} -c {} -timeout 5 -a '{fun} system_time [millisecond]'",
        faultline::cluster::systems::rabbitmq::COOKIE
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let out = c.exec(node, &["sh", "-c", &call]).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.output);
    let v: i64 = out
        .output
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{fun}:system_time answered {:?}", out.output));
    v - before
}

/// RabbitMQ (Erlang, through the shim): a bump shows at once in the VM's reading of the OS
/// clock (`os:system_time`, the probe), and in `erlang:system_time` at the VM's next
/// time-correction check (multi-time-warp mode; bounded wait); a node killed and restarted
/// under the fault comes back skewed; a strobe shows its shifted phase; heal resets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_follows_a_clock_bump_and_a_strobe_and_heal_resets_it() {
    let Some(image) = image_or_skip("clock-rabbitmq").await else {
        return;
    };
    // As `faultline run` sets clock faults up.
    let c = start_for_clock("rabbitmq", &image).await;
    let (n, rec) = nemesis_with_vdso(&c);
    let setup = n.prepare(&[FaultKind::Clock]).await.expect("clock setup");
    assert_eq!(setup["clock"]["n2"]["shim"], "loaded", "{setup}");

    let bump = Fault::Clock {
        nodes: vec!["n2".into()],
        setting: ClockSetting::offset_ms(30_000),
    };
    assert!(n.start(&bump).await, "{:?}", rec.events());
    let ev = rec.events().last().cloned().unwrap();
    assert_eq!(ev.f, "start-clock", "{ev:?}");
    let n2 = &ev.value["nodes"]["n2"];
    assert_eq!(n2["verified_by"], "probe: rabbitmq os:system_time", "{n2}");
    let observed = n2["observed_offset_ms"].as_i64().unwrap();
    assert!((observed - 30_000).abs() <= 1_000, "observed {observed} ms");
    let n1 = rabbit_offset_ms(&c, "n1", "os").await;
    assert!(n1.abs() <= 2_000, "n1 stays real: {n1} ms");

    // The VM's own system time follows at its next time-correction check (at most a minute
    // apart); bounded at 150 s.
    let t0 = std::time::Instant::now();
    let mut erlang = 0;
    while t0.elapsed() < Duration::from_secs(150) {
        erlang = rabbit_offset_ms(&c, "n2", "erlang").await;
        if (erlang - 30_000).abs() <= 2_000 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!(
        "erlang:system_time on n2 is {erlang} ms off after {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        (erlang - 30_000).abs() <= 2_000,
        "erlang:system_time {erlang} ms"
    );

    // Killed and restarted under the fault: the new VM loads the shim and starts skewed.
    assert!(
        n.start(&Fault::Kill(Targets::Nodes(vec!["n2".into()])))
            .await
    );
    n.stop(FaultKind::Kill).await;
    let after = rabbit_offset_ms(&c, "n2", "os").await;
    assert!(
        (after - 30_000).abs() <= 2_000,
        "after the restart: {after} ms"
    );
    let after = rabbit_offset_ms(&c, "n2", "erlang").await;
    assert!(
        (after - 30_000).abs() <= 2_000,
        "erlang:system_time after the restart: {after} ms"
    );
    n.stop(FaultKind::Clock).await;
    let stop = rec.events().last().cloned().unwrap();
    assert_eq!(stop.f, "stop-clock", "{stop:?}");
    assert_eq!(
        stop.value["nodes"]["n2"]["verified_by"],
        "probe: rabbitmq os:system_time"
    );

    let strobe = Fault::Clock {
        nodes: vec!["n3".into()],
        setting: ClockSetting::strobe_ms(0, 8_000, 50),
    };
    assert!(n.start(&strobe).await, "{:?}", rec.events());
    let ev = rec.events().last().cloned().unwrap();
    let observed = ev.value["nodes"]["n3"]["observed_offset_ms"]
        .as_i64()
        .unwrap();
    assert!(
        (observed - 8_000).abs() <= 1_000,
        "the strobe's shifted phase: {observed} ms"
    );

    // Heal (as at the end of a run or on Ctrl-C) puts every clock back.
    n.heal_all().await;
    assert!(n.clocks().skewed().is_empty());
    for node in ["n2", "n3"] {
        let off = rabbit_offset_ms(&c, node, "os").await;
        assert!(off.abs() <= 2_000, "{node} after heal: {off} ms");
    }
    assert_eq!(
        rec.fs().iter().filter(|f| *f == "clock-unverified").count(),
        0,
        "{:?}",
        rec.events()
    );

    drop(n);
    teardown(c).await;
}

/// One row of the table: what each kind of clock change did on one system's first server.
async fn measure(system: &str, image: &str) -> Vec<String> {
    // As `faultline run` sets clock faults up: the shim, and the vDSO patch for servers the
    // shim cannot reach.
    let c = start_for_clock(system, image).await;
    let (n, rec) = nemesis_with_vdso(&c);
    let setup = n.prepare(&[FaultKind::Clock]).await.expect("clock setup");
    let node = "n1";
    let shim = setup["clock"][node]["shim"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let mut row = vec![system.to_string(), shim];
    let changes = [
        ("bump +7 s", ClockSetting::offset_ms(7_000)),
        ("bump -7 s", ClockSetting::offset_ms(-7_000)),
        (
            "strobe 0/+5 s, 20 ms",
            ClockSetting::strobe_ms(0, 5_000, 20),
        ),
    ];
    for (_, setting) in changes {
        let v = n
            .clocks()
            .set(node, setting)
            .await
            .expect("clock change written");
        row.push(cell(&v));
        n.clocks().reset(node).await.expect("reset");
    }
    let v = n.clocks().reset(node).await.expect("reset");
    row.push(cell(&v));
    drop(rec);
    drop(n);
    teardown(c).await;
    row
}

fn cell(v: &Verification) -> String {
    match v {
        Verification::Verified {
            method,
            observed_offset_ms,
        } => match observed_offset_ms {
            Some(o) => format!("yes ({method}, {o} ms)"),
            None => format!("yes ({method})"),
        },
        Verification::Unverified { reason } => format!("NO: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts all six systems; run with --ignored --nocapture to print the table"]
async fn clock_fault_table() {
    let Some(image) = image_or_skip("clock-table").await else {
        return;
    };
    // FAULTLINE_CLOCK_SYSTEMS=redis,etcd measures a subset.
    let systems = std::env::var("FAULTLINE_CLOCK_SYSTEMS")
        .unwrap_or_else(|_| "etcd,redis,nats,rabbitmq,zookeeper,postgres,testbed".into());
    let mut rows = vec![];
    for system in systems.split(',') {
        rows.push(measure(system, &image).await);
    }
    println!("| system | shim in server | bump +7 s | bump -7 s | strobe | reset |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!("| {} |", r.join(" | "));
    }
    let verified = |row: &Vec<String>| row[2].starts_with("yes");
    let by: std::collections::BTreeMap<&str, bool> =
        rows.iter().map(|r| (r[0].as_str(), verified(r))).collect();
    // Every system must show each bump (RabbitMQ: in the VM's reading of the OS clock).
    for (system, follows) in by {
        assert!(follows, "{system}: {rows:?}");
    }
}
