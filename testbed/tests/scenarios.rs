//! Every switchable bug, as a specification: a short scripted scenario on three in-process
//! nodes, recorded into a history and judged by the checker docs/scenarios.md names. With the bug on
//! the checker must flag the scenario's anomaly; with it off the same script must pass.

// The testbed client is compiled from its source in workloads/ (see tests/common/mod.rs).
pub use workloads::{client, generator, op, stall, workload};
mod common;
#[path = "../../workloads/src/clients/testbed/mod.rs"]
#[allow(dead_code, unused_imports)]
mod tb;

use checkers::{CheckOptions, EventType};
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tb::{Family, Stall, TestbedFactory, TestbedOptions};
use testbed::config::Settings;
use testbed::{Bug, Cluster, ClusterSpec};
use workloads::{ClientFactory, Invocation};

const WAIT: Duration = Duration::from_secs(10);

async fn cluster(bug: Option<Bug>, settings: Settings, durable: bool) -> Cluster {
    Cluster::start(ClusterSpec {
        nodes: 3,
        bugs: bug.into_iter().collect(),
        settings,
        durable,
    })
    .await
    .expect("start the cluster")
}

fn client_opts() -> TestbedOptions {
    TestbedOptions {
        ack_stall: Stall::NONE,
        lease_stall: Stall::NONE,
        churn_every: 0,
        consume_max: 10,
        drain_wait: Duration::from_secs(4),
        ..TestbedOptions::default()
    }
}

fn factory(family: Family, opts: TestbedOptions) -> Arc<dyn ClientFactory> {
    Arc::new(TestbedFactory::new(family, opts))
}

fn op(f: &str, value: Value) -> Invocation {
    Invocation::new(f, value)
}

fn keyed(f: &str, key: &str, value: Value) -> Invocation {
    Invocation::new(f, value).with_key(key)
}

fn exactly_once() -> CheckOptions {
    CheckOptions {
        guarantee: Some("exactly-once".into()),
        ..CheckOptions::default()
    }
}

/// Declares the pair of tests for one bug: flagged with it, valid without.
macro_rules! calibrated {
    ($with:ident, $without:ident, $bug:expr, $scenario:ident, $checker:expr, $kind:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $with() {
            let (hist, opts) = $scenario(Some($bug)).await;
            expect_flagged(&hist, $checker, &opts, $kind);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $without() {
            let (hist, opts) = $scenario(None).await;
            expect_valid(&hist, $checker, &opts);
        }
    };
}

// ------------------------------------------------------------------------------------------
// Queue

/// B1: consumer 1 holds message 1 past its lease and its session; consumer 2 takes it over and
/// acknowledges it; then consumer 1's late ack arrives.
async fn double_delivery(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let s = fast();
    let c = cluster(bug, s.clone(), false).await;
    let h = Hist::new();
    let f = factory(Family::Queue, client_opts());
    let mut p = Actor::open(&h, &f, &c.addr(1)).await;
    let mut c1 = Actor::open(&h, &f, &c.addr(2)).await;
    let mut c2 = Actor::open(&h, &f, &c.addr(0)).await;
    for id in 1..=4 {
        p.run(op("produce", json!({ "id": id }))).await;
    }
    let got = c1.run(op("consume", Value::Null)).await;
    let msgs = got.value.as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 4, "consumer 1 gets everything: {msgs:?}");
    let (held, rest): (Vec<Value>, Vec<Value>) = msgs.into_iter().partition(|m| m["id"] == 1);
    for m in rest {
        c1.run(op("ack", m)).await;
    }
    h.nemesis("start-stall", json!({ "process": c1.process }));
    tokio::time::sleep(past_session(&s)).await;
    let again = c2.run(op("consume", Value::Null)).await;
    assert_eq!(
        again.value,
        json!([{ "id": 1, "partition": 1, "offset": 0, "delivery": 2 }])
    );
    c2.run(op("ack", again.value[0].clone())).await;
    h.nemesis("stop-stall", json!({ "process": c1.process }));
    c1.run(op("ack", held[0].clone())).await;
    assert!(c2.drain(10, false).await, "the drain ends");
    (h, exactly_once())
}

calibrated!(
    b1_double_delivery_on_timeout_is_flagged,
    b1_late_ack_is_refused_without_the_bug,
    Bug::DoubleDeliveryOnTimeout,
    double_delivery,
    "delivery",
    "double-committed"
);

/// B3: a consumer whose processing always fails; at most max-retries + 1 deliveries each.
async fn retry_budget(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let s = fast();
    let c = cluster(bug, s.clone(), false).await;
    let h = Hist::new();
    let f = factory(Family::Queue, client_opts());
    let mut p = Actor::open(&h, &f, &c.addr(0)).await;
    let mut c1 = Actor::open(&h, &f, &c.addr(1)).await;
    for id in 1..=3 {
        p.run(op("produce", json!({ "id": id }))).await;
    }
    for _ in 0..8 {
        let got = c1.run(op("consume", Value::Null)).await;
        let msgs = got.value.as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            c1.run(op("nack", m)).await;
        }
    }
    c1.drain(4, true).await;
    c1.run(op("dead-letter", Value::Null)).await;
    let opts = CheckOptions {
        max_retries: Some(s.max_retries),
        ..exactly_once()
    };
    (h, opts)
}

calibrated!(
    b3_retry_budget_ignored_is_flagged,
    b3_exhausted_messages_are_dead_lettered_without_the_bug,
    Bug::RetryBudgetIgnored,
    retry_budget,
    "delivery",
    "retries-exceeded"
);

/// B6: three consumers join one after another, then two leave; the last one drains.
async fn orphan_partition(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let s = Settings {
        session: Duration::from_secs(3),
        ..fast()
    };
    let c = cluster(bug, s, false).await;
    let h = Hist::new();
    let f = factory(Family::Queue, client_opts());
    let mut p = Actor::open(&h, &f, &c.addr(0)).await;
    let mut members = Vec::new();
    for i in 0..3 {
        let mut a = Actor::open(&h, &f, &c.addr(i)).await;
        a.run(op("consume", Value::Null)).await;
        members.push(a);
    }
    for id in 0..8 {
        p.run(op("produce", json!({ "id": id, "partition": id % 4 })))
            .await;
    }
    for a in &mut members {
        let got = a.run(op("consume", Value::Null)).await;
        for m in got.value.as_array().cloned().unwrap_or_default() {
            a.run(op("ack", m)).await;
        }
    }
    let mut last = members.remove(0);
    for a in members {
        a.close().await;
    }
    h.nemesis("info", json!("two members left"));
    assert!(last.drain(10, false).await, "the drain ends");
    (h, exactly_once())
}

calibrated!(
    b6_orphan_partition_is_flagged,
    b6_every_partition_stays_owned_without_the_bug,
    Bug::OrphanPartition,
    orphan_partition,
    "delivery",
    "lost"
);

/// L2: six producers append to one partition at once, three rounds.
async fn producer_gap(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let c = cluster(bug, fast(), false).await;
    let h = Hist::new();
    let f = factory(Family::Queue, client_opts());
    let mut producers = Vec::new();
    for i in 0..6 {
        producers.push(Actor::open(&h, &f, &c.addr(i % 3)).await);
    }
    for round in 0..3 {
        producers = concurrently(producers, |i| {
            op("produce", json!({ "id": round * 10 + i, "partition": 0 }))
        })
        .await;
    }
    let mut consumer = Actor::open(&h, &f, &c.addr(1)).await;
    assert!(consumer.drain(10, false).await, "the drain ends");
    (h, exactly_once())
}

calibrated!(
    l2_concurrent_producer_gap_is_flagged,
    l2_offsets_stay_dense_without_the_bug,
    Bug::ConcurrentProducerGap,
    producer_gap,
    "delivery",
    "offset-gap"
);

/// L9: a zombie consumer commits its old position after the partition's new owner committed.
async fn offset_regression(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let s = fast();
    let c = cluster(bug, s.clone(), false).await;
    let h = Hist::new();
    let f = factory(Family::Queue, client_opts());
    let mut p = Actor::open(&h, &f, &c.addr(0)).await;
    let mut c1 = Actor::open(&h, &f, &c.addr(1)).await;
    let mut c2 = Actor::open(&h, &f, &c.addr(2)).await;
    for id in 0..6 {
        p.run(op("produce", json!({ "id": id, "partition": 0 })))
            .await;
    }
    let got = c1.run(op("consume", Value::Null)).await;
    let msgs = got.value.as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 6, "{}", h.text());
    for m in &msgs[..3] {
        c1.run(op("ack", m.clone())).await;
    }
    let commit = |o: u64| {
        op(
            "commit-offset",
            json!({ "group": "g", "partition": 0, "offset": o }),
        )
    };
    c1.run(commit(3)).await;
    h.nemesis("start-stall", json!({ "process": c1.process }));
    tokio::time::sleep(past_session(&s)).await;
    let again = c2.run(op("consume", Value::Null)).await;
    for m in again.value.as_array().cloned().unwrap_or_default() {
        c2.run(op("ack", m)).await;
    }
    c2.run(commit(6)).await;
    h.nemesis("stop-stall", json!({ "process": c1.process }));
    c1.run(commit(4)).await;
    c2.run(op("fetch-offset", json!({ "group": "g", "partition": 0 })))
        .await;
    assert!(c2.drain(10, false).await, "the drain ends");
    (h, exactly_once())
}

calibrated!(
    l9_offset_regression_is_flagged,
    l9_zombie_commit_is_refused_without_the_bug,
    Bug::OffsetRegression,
    offset_regression,
    "delivery",
    "offset-regression"
);

// ------------------------------------------------------------------------------------------
// Outbox

fn outbox_settings(fail_every: u64) -> Settings {
    Settings {
        storage_latency: Duration::from_millis(2),
        dispatch_interval: Duration::from_millis(150),
        dispatch_step: Duration::from_millis(300),
        dispatch_fail_every: fail_every,
        ..fast()
    }
}

/// Commits events 1..=10 through the outbox, optionally crashes the home node while the
/// dispatcher holds a batch, then drains the topic.
async fn outbox_run(
    c: &mut Cluster,
    h: &Arc<Hist>,
    crash_home_in_flight: bool,
) -> (Arc<Hist>, CheckOptions) {
    let f = factory(Family::Outbox, client_opts());
    let mut p = Actor::open(h, &f, &c.addr(1)).await;
    for id in 1..=10 {
        p.run(op("produce", json!({ "id": id }))).await;
    }
    if crash_home_in_flight {
        c.wait_outbox(0, WAIT, |s| s["in_flight"] == true)
            .await
            .expect("a batch in flight");
        // Inside the pause between taking the batch and publishing it.
        tokio::time::sleep(outbox_settings(0).dispatch_step / 3).await;
        c.kill(0);
        h.nemesis("kill", json!(["n1"]));
        c.restart(0).await.expect("restart the home node");
        h.nemesis("start", json!(["n1"]));
    }
    let mut consumer = Actor::open(h, &f, &c.addr(2)).await;
    assert!(consumer.drain(30, false).await, "the drain ends");
    (Arc::clone(h), exactly_once())
}

/// B4: the home node (outbox and dispatcher) crashes while a batch is in flight.
async fn outbox_crash(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let mut c = cluster(bug, outbox_settings(0), true).await;
    let h = Hist::new();
    outbox_run(&mut c, &h, true).await
}

calibrated!(
    b4_outbox_lose_on_crash_is_flagged,
    b4_outbox_survives_a_crash_without_the_bug,
    Bug::OutboxLoseOnCrash,
    outbox_crash,
    "delivery",
    "lost"
);

/// B7: every 7th publish fails, midway through a batch of five.
async fn outbox_partial_batch(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let mut c = cluster(bug, outbox_settings(7), false).await;
    let h = Hist::new();
    outbox_run(&mut c, &h, false).await
}

calibrated!(
    b7_outbox_redeliver_batch_is_flagged,
    b7_outbox_resumes_after_the_failed_event_without_the_bug,
    Bug::OutboxRedeliverBatch,
    outbox_partial_batch,
    "delivery",
    "duplicated"
);

/// I8: every 3rd publish fails.
async fn outbox_publish_fails(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let mut c = cluster(bug, outbox_settings(3), false).await;
    let h = Hist::new();
    outbox_run(&mut c, &h, false).await
}

calibrated!(
    i8_outbox_drop_after_commit_is_flagged,
    i8_outbox_keeps_failed_rows_without_the_bug,
    Bug::OutboxDropAfterCommit,
    outbox_publish_fails,
    "delivery",
    "lost"
);

// ------------------------------------------------------------------------------------------
// Register

fn register_settings() -> Settings {
    fast()
}

/// B2: the primary is partitioned mid-write; a new primary takes over; the partition heals.
async fn stale_epoch(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let c = cluster(bug, register_settings(), false).await;
    let h = Hist::new();
    let f = factory(Family::Register, client_opts());
    let old = c.wait_for_primary(&[], WAIT).await.expect("a primary");
    assert_eq!(old, 0, "the lowest name is elected first");
    let mut a = Actor::open(&h, &f, &c.addr(0)).await;
    let mut b = Actor::open(&h, &f, &c.addr(1)).await;
    assert!(a.run(keyed("write", "r", json!(0))).await.kind == EventType::Ok);
    c.partition(&[&[0], &[1, 2]]);
    h.nemesis("start-partition", json!({ "n1": ["n2", "n3"] }));
    let write = tokio::spawn(async move {
        a.run(keyed("write", "r", json!(1))).await;
    });
    let new = c.wait_for_primary(&[0], WAIT).await.expect("a new primary");
    assert_ne!(new, 0);
    b.run(keyed("read", "r", Value::Null)).await;
    c.heal();
    h.nemesis("stop-partition", Value::Null);
    write.await.expect("the write task");
    b.run(keyed("read", "r", Value::Null)).await;
    (h, CheckOptions::default())
}

calibrated!(
    b2_stale_epoch_write_is_flagged,
    b2_deposed_primary_is_fenced_without_the_bug,
    Bug::StaleEpochWrite,
    stale_epoch,
    "linearizable",
    "nonlinearizable"
);

/// L7: the primary is cut off from the majority and keeps taking writes.
async fn minority_ack(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let s = register_settings();
    let c = cluster(bug, s.clone(), false).await;
    let h = Hist::new();
    let f = factory(Family::Register, client_opts());
    c.wait_for_primary(&[], WAIT).await.expect("a primary");
    let mut a = Actor::open(&h, &f, &c.addr(0)).await;
    let mut b = Actor::open(&h, &f, &c.addr(1)).await;
    a.run(keyed("write", "r", json!(0))).await;
    tokio::time::sleep(s.async_replication_delay * 2).await;
    c.partition(&[&[0], &[1, 2]]);
    h.nemesis("start-partition", json!({ "n1": ["n2", "n3"] }));
    a.run(keyed("write", "r", json!(1))).await;
    c.wait_for_primary(&[0], WAIT).await.expect("a new primary");
    b.run(keyed("read", "r", Value::Null)).await;
    c.heal();
    h.nemesis("stop-partition", Value::Null);
    (h, CheckOptions::default())
}

calibrated!(
    l7_minority_primary_acks_are_flagged,
    l7_minority_does_not_ack_without_the_bug,
    Bug::LostAckedWrite,
    minority_ack,
    "linearizable",
    "nonlinearizable"
);

/// L4: the primary crashes right after acknowledging a write, and restarts from its data.
async fn crash_after_ack(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let s = register_settings();
    let mut c = cluster(bug, s.clone(), true).await;
    let h = Hist::new();
    let f = factory(Family::Register, client_opts());
    c.wait_for_primary(&[], WAIT).await.expect("a primary");
    let mut a = Actor::open(&h, &f, &c.addr(0)).await;
    let mut b = Actor::open(&h, &f, &c.addr(1)).await;
    a.run(keyed("write", "r", json!(0))).await;
    tokio::time::sleep(s.async_replication_delay * 2).await;
    a.run(keyed("write", "r", json!(1))).await;
    c.kill(0);
    h.nemesis("kill", json!(["n1"]));
    c.wait_for_primary(&[0], WAIT).await.expect("a new primary");
    b.run(keyed("read", "r", Value::Null)).await;
    c.restart(0).await.expect("restart n1");
    h.nemesis("start", json!(["n1"]));
    b.run(keyed("read", "r", Value::Null)).await;
    (h, CheckOptions::default())
}

calibrated!(
    l4_acked_write_lost_in_a_crash_is_flagged,
    l4_acked_write_survives_a_crash_without_the_bug,
    Bug::LostAckedWrite,
    crash_after_ack,
    "linearizable",
    "nonlinearizable"
);

// ------------------------------------------------------------------------------------------
// Request services

async fn actors(h: &Arc<Hist>, f: &Arc<dyn ClientFactory>, c: &Cluster, n: usize) -> Vec<Actor> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(Actor::open(h, f, &c.addr(i % c.len())).await);
    }
    out
}

/// I1: eight identical requests with one idempotency key at once, then the effect count.
async fn idempotency_race(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let c = cluster(bug, fast(), false).await;
    let h = Hist::new();
    let f = factory(Family::Idempotency, client_opts());
    let mut all = actors(&h, &f, &c, 8).await;
    all = concurrently(all, |_| keyed("request", "idem-1", json!({ "amount": 5 }))).await;
    all[0].run(keyed("effects", "idem-1", Value::Null)).await;
    (h, CheckOptions::default())
}

calibrated!(
    i1_idempotency_race_is_flagged,
    i1_one_effect_per_key_without_the_bug,
    Bug::IdempotencyRace,
    idempotency_race,
    "idempotency",
    "multiple-effects"
);

/// I2: eight concurrent adds of the same member, then the group read.
async fn duplicate_member(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let c = cluster(bug, fast(), false).await;
    let h = Hist::new();
    let f = factory(Family::Members, client_opts());
    let mut all = actors(&h, &f, &c, 8).await;
    all = concurrently(all, |i| {
        keyed("add", "team", json!(if i < 6 { 7 } else { i }))
    })
    .await;
    all[0].run(keyed("read", "team", Value::Null)).await;
    (h, CheckOptions::default())
}

calibrated!(
    i2_duplicate_member_is_flagged,
    i2_members_stay_unique_without_the_bug,
    Bug::DuplicateMember,
    duplicate_member,
    "set",
    "duplicate"
);

/// I4: eight concurrent leaves of one member, then the number of state changes.
async fn double_leave(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let c = cluster(bug, fast(), false).await;
    let h = Hist::new();
    let f = factory(
        Family::Leave,
        TestbedOptions {
            leave_members: 3,
            ..client_opts()
        },
    );
    let mut all = actors(&h, &f, &c, 8).await;
    all[0].setup().await;
    all = concurrently(all, |_| {
        keyed("command", "leave:m-1", json!({ "leave": "m-1" }))
    })
    .await;
    all[0].run(keyed("effects", "leave:m-1", Value::Null)).await;
    (h, CheckOptions::default())
}

calibrated!(
    i4_double_leave_is_flagged,
    i4_one_state_change_without_the_bug,
    Bug::DoubleLeave,
    double_leave,
    "idempotency",
    "multiple-effects"
);

/// B5: five concurrent creates of one id.
async fn double_create(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let c = cluster(bug, fast(), false).await;
    let h = Hist::new();
    let f = factory(Family::Unique, client_opts());
    let all = actors(&h, &f, &c, 5).await;
    concurrently(all, |_| keyed("create", "order-9", Value::Null)).await;
    (h, CheckOptions::default())
}

calibrated!(
    b5_double_create_is_flagged,
    b5_one_create_wins_without_the_bug,
    Bug::DoubleCreate,
    double_create,
    "unique",
    "duplicate-create"
);

/// I6: six writers append at expected version 0 at once, then the stream is read.
async fn version_race(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let c = cluster(bug, fast(), false).await;
    let h = Hist::new();
    let f = factory(Family::Stream, client_opts());
    let mut all = actors(&h, &f, &c, 6).await;
    all = concurrently(all, |i| {
        keyed(
            "append",
            "order-1",
            json!({ "expected": 0, "event": format!("e{i}") }),
        )
    })
    .await;
    all[0].run(keyed("read", "order-1", Value::Null)).await;
    (h, CheckOptions::default())
}

calibrated!(
    i6_version_race_is_flagged,
    i6_one_winner_per_version_without_the_bug,
    Bug::VersionRace,
    version_race,
    "versioned-append",
    "multiple-winners"
);

/// I7: worker A acquires the task and stalls past its lease; worker B takes it over and
/// completes; then A completes late.
async fn no_fencing(bug: Option<Bug>) -> (Arc<Hist>, CheckOptions) {
    let s = fast();
    let c = cluster(bug, s.clone(), false).await;
    let h = Hist::new();
    let stalling = factory(
        Family::Lease,
        TestbedOptions {
            lease_stall: Stall {
                probability: 1.0,
                duration: s.task_lease * 3,
            },
            ..client_opts()
        },
    );
    let prompt = factory(Family::Lease, client_opts());
    let mut a = Actor::open(&h, &stalling, &c.addr(0)).await;
    let mut b = Actor::open(&h, &prompt, &c.addr(1)).await;
    let cmd = || keyed("command", "task-1", json!({ "complete": "task-1" }));
    let late = tokio::spawn(async move {
        a.run(cmd()).await;
        a
    });
    tokio::time::sleep(s.task_lease + Duration::from_millis(200)).await;
    b.run(cmd()).await;
    late.await.expect("worker A");
    b.run(keyed("effects", "task-1", Value::Null)).await;
    (h, CheckOptions::default())
}

calibrated!(
    i7_no_fencing_is_flagged,
    i7_late_completion_is_fenced_without_the_bug,
    Bug::NoFencing,
    no_fencing,
    "idempotency",
    "multiple-effects"
);
