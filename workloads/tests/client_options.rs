//! Client options, as a plan's `[client]` table gives them: the testbed workloads' (kept out of
//! the client's source file, which the testbed's own tests include by path), the broker
//! queues' ack stalls and the register workloads' key lifetime.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use workloads::clients::testbed::{TestbedOptions, OPTION_NAMES};
use workloads::workload::{AckedQueueOptions, RegisterOptions, ACKED_QUEUE_OPTIONS};
use workloads::{build, Builtin, WorkloadOptions};

fn table(entries: &[(&str, Value)]) -> BTreeMap<String, Value> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn client_options_from_a_plan_table_parse_or_name_the_problem() {
    let mut o = TestbedOptions::default();
    o.apply("ack-stall", &json!("1300ms")).unwrap();
    o.apply("ack-stall-probability", &json!(0.1)).unwrap();
    o.apply("drain-wait", &json!(4000)).unwrap();
    o.apply("lease-stall", &json!("2s")).unwrap();
    o.apply("churn-every", &json!(3)).unwrap();
    o.apply("commit-offsets", &json!(false)).unwrap();
    assert_eq!(o.ack_stall.duration, Duration::from_millis(1300));
    assert_eq!(o.ack_stall.probability, 0.1);
    assert_eq!(o.drain_wait, Duration::from_secs(4));
    assert_eq!(o.lease_stall.duration, Duration::from_secs(2));
    assert_eq!((o.churn_every, o.commit_offsets), (3, false));
    for (key, bad) in [
        ("ack-stall-probability", json!(1.5)),
        ("ack-stall", json!("soon")),
        ("churn-every", json!(-1)),
        ("guarantee", json!("maybe-once")),
    ] {
        assert!(o.apply(key, &bad).is_err(), "{key} = {bad}");
    }
    let e = o.apply("ack-stal", &json!(1)).unwrap_err();
    assert!(e.contains("ack-stal") && e.contains("ack-stall"), "{e}");
}

#[test]
fn every_option_name_is_accepted() {
    let mut o = TestbedOptions::default();
    for name in OPTION_NAMES {
        let v = match *name {
            "guarantee" => json!("at-least-once"),
            "commit-offsets" => json!(true),
            n if n.ends_with("probability") => json!(0.5),
            n if n.ends_with("stall") || n == "drain-wait" => json!("1s"),
            _ => json!(2),
        };
        o.apply(name, &v).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn broker_queues_take_ack_stalls_and_name_what_they_do_not_take() {
    let o = AckedQueueOptions::from_table(
        Builtin::Nats,
        "queue",
        &table(&[
            ("ack-stall-probability", json!(0.25)),
            ("ack-stall", json!("6s")),
            ("ack-wait", json!("2s")),
            ("guarantee", json!("exactly-once")),
        ]),
    )
    .unwrap();
    assert_eq!(o.ack_stall.probability, 0.25);
    assert_eq!(o.ack_stall.duration, Duration::from_secs(6));
    assert_eq!(o.ack_wait, Some(Duration::from_secs(2)));
    assert_eq!(o.guarantee.as_deref(), Some("exactly-once"));
    // ack-wait is NATS's; RabbitMQ plays its own deadline.
    let e = AckedQueueOptions::from_table(
        Builtin::RabbitMq,
        "queue",
        &table(&[("ack-wait", json!("2s"))]),
    )
    .unwrap_err();
    assert!(
        e.starts_with("client.ack-wait:") && e.contains("ack-stall"),
        "{e}"
    );
    let e = AckedQueueOptions::from_table(
        Builtin::Etcd,
        "register",
        &table(&[("ack-stall", json!(5))]),
    )
    .unwrap_err();
    assert!(e.contains("takes no client options"), "{e}");
    let e = AckedQueueOptions::from_table(
        Builtin::Redis,
        "stream",
        &table(&[("ack-stall-probability", json!(0.5))]),
    )
    .unwrap_err();
    assert!(e.contains("client.ack-stall"), "{e}");
    // The workload builder applies the guarantee to the checker it names.
    let opts = WorkloadOptions {
        client: table(&[("guarantee", json!("exactly-once"))]),
        ..WorkloadOptions::default()
    };
    let (w, _) = build("nats", "queue", &opts).unwrap();
    let delivery = w.checkers.iter().find(|c| c.name == "delivery").unwrap();
    assert_eq!(delivery.options.guarantee.as_deref(), Some("exactly-once"));
}

#[test]
fn every_broker_queue_option_is_accepted() {
    for (system, workload, names) in ACKED_QUEUE_OPTIONS {
        let entries: Vec<(&str, Value)> = names
            .iter()
            .map(|n| {
                let v = match *n {
                    "guarantee" => json!("at-least-once"),
                    "queue-type" => json!("classic-mirrored"),
                    "ack-stall-probability" => json!(0.1),
                    _ => json!("3s"),
                };
                (*n, v)
            })
            .collect();
        AckedQueueOptions::from_table(*system, workload, &table(&entries))
            .unwrap_or_else(|e| panic!("{system:?} {workload}: {e}"));
        build(
            system.name(),
            workload,
            &WorkloadOptions {
                client: table(&entries),
                ..WorkloadOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{system:?} {workload}: {e}"));
    }
}

#[test]
fn register_workloads_take_ops_per_key_and_name_what_they_do_not_take() {
    let o = RegisterOptions::default()
        .with_table(&table(&[("ops-per-key", json!(2000))]))
        .unwrap();
    assert_eq!(o.ops_per_key, 2000);
    assert_eq!(o.keys_in_flight, RegisterOptions::default().keys_in_flight);
    let e = RegisterOptions::default()
        .with_table(&table(&[("ops-per-key", json!(0))]))
        .unwrap_err();
    assert!(e.starts_with("client.ops-per-key: expected 1 to"), "{e}");
    let e = RegisterOptions::default()
        .with_table(&table(&[("ack-stall", json!("3s"))]))
        .unwrap_err();
    assert!(
        e.starts_with("client.ack-stall:") && e.contains("ops-per-key"),
        "{e}"
    );
    let with = |entries: &[(&str, Value)]| WorkloadOptions {
        client: table(entries),
        ..WorkloadOptions::default()
    };
    for (system, workload) in [("etcd", "register"), ("redis", "cas-register")] {
        build(system, workload, &with(&[("ops-per-key", json!(500))]))
            .unwrap_or_else(|e| panic!("{system} {workload}: {e}"));
    }
    // A queue does not take it.
    let e = build("redis", "queue", &with(&[("ops-per-key", json!(500))])).err();
    assert!(e.is_some_and(|e| e.contains("takes no client options")));
}

#[test]
fn every_redis_workload_takes_a_routing_mode_and_nothing_else_does() {
    let with = |entries: &[(&str, Value)]| WorkloadOptions {
        client: table(entries),
        ..WorkloadOptions::default()
    };
    for workload in ["register", "cas-register", "queue", "stream"] {
        for mode in ["follow-primary", "node-bound"] {
            build("redis", workload, &with(&[("routing", json!(mode))]))
                .unwrap_or_else(|e| panic!("redis {workload} {mode}: {e}"));
        }
    }
    build(
        "redis",
        "cas-register",
        &with(&[
            ("routing", json!("node-bound")),
            ("ops-per-key", json!(500)),
        ]),
    )
    .unwrap();
    let e = build("redis", "register", &with(&[("routing", json!("sticky"))])).err();
    assert!(
        e.as_deref().is_some_and(
            |e| e.starts_with("client.routing:") && e.contains("follow-primary, node-bound")
        ),
        "{e:?}"
    );
    let e = build(
        "etcd",
        "register",
        &with(&[("routing", json!("node-bound"))]),
    )
    .err();
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("client.routing: only Redis")),
        "{e:?}"
    );
}

#[test]
fn a_rabbitmq_queue_is_quorum_or_classic_mirrored() {
    let t = |v: Value| table(&[("queue-type", v)]);
    let o =
        AckedQueueOptions::from_table(Builtin::RabbitMq, "queue", &t(json!("classic-mirrored")))
            .unwrap();
    assert_eq!(
        o.queue_type,
        workloads::clients::rabbitmq::QueueType::ClassicMirrored
    );
    let e =
        AckedQueueOptions::from_table(Builtin::RabbitMq, "queue", &t(json!("stream"))).unwrap_err();
    assert!(
        e.starts_with("client.queue-type:") && e.contains("quorum, classic-mirrored"),
        "{e}"
    );
    let e = AckedQueueOptions::from_table(Builtin::Nats, "queue", &t(json!("quorum"))).unwrap_err();
    assert!(e.contains("unknown option"), "{e}");
}
