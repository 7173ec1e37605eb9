//! Network and process faults on a real 3-node etcd cluster, each checked by its effect:
//! a partitioned node cannot reach its peers and can after heal (and rules that are not ours
//! survive the heal); kill -9 of every node and a restart keep the data; a paused node stops
//! answering and catches up after resume; a rolling restart keeps the cluster serving; a seeded
//! schedule ends with everything healed.

mod cluster_support;
mod nemesis_support;

use cluster_support::etcdctl;

use std::time::Duration;

use nemeses::schedule::{
    parse_nemesis_list, Fault, FaultKind, PartitionSpec, Schedule, ScheduleOptions, Targets,
};
use nemesis_support::{image_or_skip, nemesis, reaches, start, teardown};

const PEER: u16 = 2380;

fn nodes() -> Vec<String> {
    ["n1", "n2", "n3"].map(String::from).to_vec()
}

/// Who reaches whom on the peer port, as `n1>n2` pairs that succeed.
async fn reach_map(c: &faultline::cluster::Cluster) -> Vec<String> {
    let mut ok = vec![];
    for a in nodes() {
        for b in nodes() {
            if a != b && reaches(c, &a, &b, PEER).await {
                ok.push(format!("{a}>{b}"));
            }
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_node_reaches_no_peer_until_healed_and_other_rules_survive() {
    let Some(image) = image_or_skip("partition").await else {
        return;
    };
    let c = start("etcd", &image).await;
    let (n, rec) = nemesis(&c);
    n.prepare(&[FaultKind::Partition])
        .await
        .expect("iptables works");
    // A rule that is not ours (a documentation address, never used) must outlive the heal.
    let marker = ["iptables", "-A", "INPUT", "-s", "192.0.2.7", "-j", "DROP"];
    assert_eq!(c.exec("n2", &marker).await.unwrap().exit_code, 0);

    let all = "n1>n2 n1>n3 n2>n1 n2>n3 n3>n1 n3>n2";
    assert_eq!(reach_map(&c).await.join(" "), all);

    let isolate = Fault::Partition(PartitionSpec::Isolate { node: "n1".into() });
    assert!(n.start(&isolate).await, "{:?}", rec.events());
    assert_eq!(reach_map(&c).await.join(" "), "n2>n3 n3>n2");

    n.stop(FaultKind::Partition).await;
    assert_eq!(reach_map(&c).await.join(" "), all);
    let rules = c
        .exec("n2", &["iptables", "-S", "INPUT"])
        .await
        .unwrap()
        .output;
    assert!(
        rules.contains("192.0.2.7"),
        "our heal left other rules alone: {rules}"
    );
    assert_eq!(rec.fs(), ["start-partition", "stop-partition"]);
    assert_eq!(
        rec.events()[0].value["grudge"]["n1"],
        serde_json::json!(["n2", "n3"])
    );

    // A majority keeps working during a halves partition, the minority side cannot write.
    let halves = Fault::Partition(PartitionSpec::Halves { order: nodes() });
    assert!(n.start(&halves).await);
    let (code, _) = etcdctl(&c, "n1", &["put", "during", "x"]).await;
    assert_ne!(code, 0, "n1 alone is a minority: no write commits");
    let (code, out) = etcdctl(&c, "n2", &["put", "during", "y"]).await;
    assert_eq!(code, 0, "n2+n3 are a majority: {out}");
    let heal = n.heal_all().await;
    assert!(heal.is_ok(), "{heal:?}");
    assert_eq!(reach_map(&c).await.join(" "), all);

    drop(n);
    teardown(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_node_and_restarting_keeps_the_data() {
    let Some(image) = image_or_skip("kill").await else {
        return;
    };
    let c = start("etcd", &image).await;
    let (n, rec) = nemesis(&c);
    let (code, out) = etcdctl(&c, "n1", &["put", "kept", "across-kill"]).await;
    assert_eq!(code, 0, "{out}");

    assert!(n.start(&Fault::Kill(Targets::Nodes(nodes()))).await);
    for node in nodes() {
        assert!(!c.is_running(&node).await.unwrap(), "{node} is down");
    }
    n.stop(FaultKind::Kill).await; // restarts and waits until ready
    let (code, out) = etcdctl(&c, "n3", &["get", "kept", "--print-value-only"]).await;
    assert_eq!((code, out.as_str()), (0, "across-kill"));
    assert_eq!(rec.fs(), ["start-kill", "stop-kill"]);

    drop(n);
    teardown(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_stops_answering_and_catches_up_after_resume() {
    let Some(image) = image_or_skip("pause").await else {
        return;
    };
    let c = start("etcd", &image).await;
    let (n, rec) = nemesis(&c);
    let addr = c.host_addr("n1", "client").unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let version = |http: reqwest::Client| async move {
        http.get(format!("http://{addr}/version"))
            .send()
            .await
            .is_ok()
    };
    assert!(version(http.clone()).await);

    assert!(
        n.start(&Fault::Pause(Targets::Nodes(vec!["n1".into()])))
            .await
    );
    assert!(
        !version(http.clone()).await,
        "a frozen node does not answer"
    );
    let (code, out) = etcdctl(&c, "n2", &["put", "while-paused", "v"]).await;
    assert_eq!(code, 0, "the majority keeps going: {out}");

    n.stop(FaultKind::Pause).await;
    assert!(version(http.clone()).await, "it answers again");
    // A local (serializable) read on n1 shows the write it missed while frozen.
    let mut seen = String::new();
    for _ in 0..20 {
        let (_, out) = etcdctl(
            &c,
            "n1",
            &[
                "get",
                "while-paused",
                "--print-value-only",
                "--consistency=s",
            ],
        )
        .await;
        seen = out;
        if seen == "v" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(seen, "v");
    assert_eq!(rec.fs(), ["start-pause", "stop-pause"]);

    drop(n);
    teardown(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_and_a_seeded_schedule_leave_a_healthy_cluster() {
    let Some(image) = image_or_skip("schedule").await else {
        return;
    };
    let c = start("etcd", &image).await;
    let (n, rec) = nemesis(&c);

    assert!(n.start(&Fault::Restart { order: nodes() }).await);
    assert_eq!(rec.fs(), ["start-restart", "stop-restart"]);
    assert_eq!(
        rec.events()[1].value["restarted"],
        serde_json::json!(["n1", "n2", "n3"])
    );
    let (code, out) = etcdctl(&c, "n2", &["put", "after-roll", "ok"]).await;
    assert_eq!(code, 0, "{out}");

    let kinds = parse_nemesis_list("partition,kill,pause").unwrap();
    n.prepare(&kinds).await.unwrap();
    let opts = ScheduleOptions {
        interval: Duration::from_secs(2),
        time_limit: Duration::from_secs(12),
        ..ScheduleOptions::default()
    };
    let schedule = Schedule::generate(11, &kinds, &nodes(), &opts).unwrap();
    let summary = n.run(&schedule, std::future::pending()).await;
    assert_eq!(summary.steps_run, 6, "{summary:?}");
    assert!(summary.heal.is_ok(), "{:?}", summary.heal);
    assert_eq!(rec.fs().last().map(String::as_str), Some("heal"));
    for node in nodes() {
        assert!(c.is_running(&node).await.unwrap(), "{node} runs");
        let chain = c
            .exec(&node, &["iptables", "-S", "FAULTLINE-IN"])
            .await
            .unwrap()
            .output;
        assert!(
            !chain.contains("DROP"),
            "{node} has no partition rules left: {chain}"
        );
    }
    c.wait_ready(Duration::from_secs(60))
        .await
        .expect("ready after heal");

    drop(n);
    teardown(c).await;
}
