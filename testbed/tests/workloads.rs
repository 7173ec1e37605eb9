//! The testbed workloads as a run uses them: the workloads crate's runner drives each one
//! against three in-process nodes, the history goes through the recorder to disk, and the
//! workload's own checkers judge it. Without a bug every workload must pass; with a bug that
//! the workload alone provokes (no nemesis needed: stalls, churn, races, failpoints) its
//! checker must flag it. Bugs that need a crash or a partition are in `scenarios.rs`.

pub use workloads::{client, generator, op, stall, workload};
mod common;
#[path = "../../workloads/src/clients/testbed/mod.rs"]
#[allow(dead_code, unused_imports)]
mod tb;

use checkers::{Budget, Verdict};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tb::{Stall, TestbedOptions};
use testbed::config::Settings;
use testbed::{Bug, Cluster, ClusterSpec};
use tokio_util::sync::CancellationToken;
use workloads::{PhaseLimits, Recorder, Runner, RunnerConfig};

type Results = Vec<(String, Verdict, Vec<String>, String)>;

/// Runs `workload` for `secs` seconds (then its final phase) on three nodes with `bug`, and
/// returns each checker's verdict with the anomaly kinds that counted.
async fn run(
    workload: &str,
    bug: Option<Bug>,
    settings: Settings,
    opts: TestbedOptions,
    secs: u64,
    rate_ops_per_s: Option<f64>,
) -> Results {
    let cluster = Cluster::start(ClusterSpec {
        nodes: 3,
        bugs: bug.into_iter().collect(),
        settings,
        durable: false,
    })
    .await
    .unwrap();
    run_on(
        Arc::new(cluster),
        workload,
        opts,
        secs,
        rate_ops_per_s,
        None,
    )
    .await
}

/// A fault schedule running beside the main phase; it must heal before it returns.
type Nemesis = Box<dyn FnOnce(Arc<Cluster>) -> tokio::task::JoinHandle<()> + Send>;

async fn run_on(
    cluster: Arc<Cluster>,
    workload: &str,
    opts: TestbedOptions,
    secs: u64,
    rate_ops_per_s: Option<f64>,
    nemesis: Option<Nemesis>,
) -> Results {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let (w, factory) = tb::build_with(workload, &opts).unwrap();
    let mut config = RunnerConfig::new(6, cluster.addrs(), 5);
    config.op_timeout = Duration::from_secs(6);
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let faults = nemesis.map(|n| n(Arc::clone(&cluster)));
    let main = PhaseLimits {
        time_limit: Duration::from_secs(secs),
        grace: Duration::from_secs(7),
    };
    let gen = match rate_ops_per_s {
        Some(r) => generator::rate(r, w.generator),
        None => w.generator,
    };
    runner.run_phase(gen, main, &cancel).await.unwrap();
    if let Some(f) = faults {
        f.await.unwrap();
    }
    if let Some(fin) = w.final_generator {
        let limits = PhaseLimits {
            time_limit: Duration::from_secs(20),
            grace: Duration::from_secs(7),
        };
        runner.run_phase(fin, limits, &cancel).await.unwrap();
    }
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();
    if let Ok(keep) = std::env::var("TESTBED_KEEP_HISTORY") {
        let _ = std::fs::copy(&path, keep);
    }
    let history = checkers::formats::read_path(&path, None).unwrap();
    w.checkers
        .iter()
        .map(|spec| {
            let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
            let budget = Budget {
                time_limit: Some(Duration::from_secs(60)),
                ..Budget::default()
            };
            let r = checkers::run_checker(checker.as_ref(), &history, &budget).unwrap();
            let kinds = r
                .anomalies
                .iter()
                .filter(|a| a.data.get("counted").and_then(Value::as_bool) != Some(false))
                .map(|a| a.kind.clone())
                .collect();
            (spec.name.clone(), r.verdict, kinds, r.summary)
        })
        .collect()
}

fn opts() -> TestbedOptions {
    TestbedOptions {
        seed: 9,
        max_retries: common::fast().max_retries,
        ack_stall: Stall::NONE,
        lease_stall: Stall::NONE,
        churn_every: 0,
        drain_wait: Duration::from_secs(4),
        adds_per_group: 20,
        members_pool: 5,
        leave_members: 20,
        ..TestbedOptions::default()
    }
}

/// Stalls long enough to lose a message lease and the group session (see `common::fast`).
fn stalling() -> TestbedOptions {
    TestbedOptions {
        ack_stall: Stall {
            probability: 0.1,
            duration: Duration::from_millis(1300),
        },
        lease_stall: Stall {
            probability: 0.3,
            duration: Duration::from_millis(900),
        },
        ..opts()
    }
}

fn valid(results: &Results) {
    assert!(!results.is_empty());
    for (name, verdict, _, summary) in results {
        assert_eq!(*verdict, Verdict::Valid, "{name}: {summary}");
    }
}

fn is_flagged(results: &Results, kind: &str) -> bool {
    results
        .iter()
        .any(|(_, v, kinds, _)| *v == Verdict::Invalid && kinds.iter().any(|k| k == kind))
}

fn flagged(results: &Results, kind: &str) {
    assert!(is_flagged(results, kind), "expected {kind}: {results:?}");
}

fn quick() -> Settings {
    Settings {
        storage_latency: Duration::from_millis(5),
        dispatch_step: Duration::from_millis(20),
        ..common::fast()
    }
}

macro_rules! workload_test {
    ($name:ident, $workload:expr, $bug:expr, $settings:expr, $opts:expr, $secs:expr, $expect:expr) => {
        workload_test!($name, $workload, $bug, $settings, $opts, $secs, $expect, None);
    };
    ($name:ident, $workload:expr, $bug:expr, $settings:expr, $opts:expr, $secs:expr, $expect:expr, $rate:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let results = run($workload, $bug, $settings, $opts, $secs, $rate).await;
            match $expect {
                None => valid(&results),
                Some(kind) => flagged(&results, kind),
            }
        }
    };
}

workload_test!(
    register_passes,
    "cas-register",
    None,
    quick(),
    opts(),
    3,
    None::<&str>
);
workload_test!(
    queue_with_stalls_and_churn_passes,
    "queue",
    None,
    quick(),
    TestbedOptions {
        churn_every: 3,
        ..stalling()
    },
    4,
    None::<&str>
);
workload_test!(
    queue_catches_double_delivery,
    "queue",
    Some(Bug::DoubleDeliveryOnTimeout),
    quick(),
    stalling(),
    4,
    Some("double-committed")
);
workload_test!(
    queue_catches_offset_regression,
    "queue",
    Some(Bug::OffsetRegression),
    quick(),
    stalling(),
    4,
    Some("offset-regression")
);
workload_test!(
    queue_catches_orphan_partitions,
    "queue",
    Some(Bug::OrphanPartition),
    // A session long enough that a loaded machine never empties the group (which would heal
    // the orphans by a full reassignment).
    Settings {
        session: Duration::from_secs(2),
        ..quick()
    },
    TestbedOptions {
        churn_every: 3,
        ..opts()
    },
    3,
    Some("lost")
);
workload_test!(
    queue_catches_producer_gaps,
    "queue",
    Some(Bug::ConcurrentProducerGap),
    common::fast(),
    opts(),
    3,
    Some("offset-gap")
);
workload_test!(
    retry_passes,
    "retry",
    None,
    quick(),
    opts(),
    2,
    None::<&str>
);
workload_test!(
    retry_catches_an_ignored_budget,
    "retry",
    Some(Bug::RetryBudgetIgnored),
    quick(),
    TestbedOptions {
        drains_max: 40,
        ..opts()
    },
    2,
    Some("retries-exceeded")
);
workload_test!(
    outbox_with_failing_publishes_passes,
    "outbox",
    None,
    Settings {
        dispatch_fail_every: 3,
        ..quick()
    },
    opts(),
    3,
    None::<&str>,
    Some(100.0)
);
workload_test!(
    outbox_catches_dropped_rows,
    "outbox",
    Some(Bug::OutboxDropAfterCommit),
    Settings {
        dispatch_fail_every: 3,
        ..quick()
    },
    opts(),
    3,
    Some("lost"),
    Some(100.0)
);
workload_test!(
    outbox_catches_redelivered_batches,
    "outbox",
    Some(Bug::OutboxRedeliverBatch),
    Settings {
        dispatch_fail_every: 7,
        ..quick()
    },
    opts(),
    3,
    Some("duplicated"),
    Some(100.0)
);
workload_test!(
    idempotency_passes,
    "idempotency",
    None,
    common::fast(),
    opts(),
    2,
    None::<&str>
);
workload_test!(
    idempotency_catches_the_race,
    "idempotency",
    Some(Bug::IdempotencyRace),
    common::fast(),
    opts(),
    2,
    Some("multiple-effects")
);
workload_test!(
    members_passes,
    "members",
    None,
    common::fast(),
    opts(),
    2,
    None::<&str>
);
workload_test!(
    members_catches_duplicates,
    "members",
    Some(Bug::DuplicateMember),
    common::fast(),
    opts(),
    2,
    Some("duplicate")
);
workload_test!(
    leave_passes,
    "leave",
    None,
    common::fast(),
    opts(),
    2,
    None::<&str>
);
workload_test!(
    leave_catches_double_leaves,
    "leave",
    Some(Bug::DoubleLeave),
    common::fast(),
    opts(),
    2,
    Some("multiple-effects")
);
workload_test!(
    unique_passes,
    "unique",
    None,
    common::fast(),
    opts(),
    2,
    None::<&str>
);
workload_test!(
    unique_catches_double_creates,
    "unique",
    Some(Bug::DoubleCreate),
    common::fast(),
    opts(),
    2,
    Some("duplicate-create")
);
workload_test!(
    versioned_append_passes,
    "versioned-append",
    None,
    common::fast(),
    opts(),
    2,
    None::<&str>
);
workload_test!(
    versioned_append_catches_the_race,
    "versioned-append",
    Some(Bug::VersionRace),
    common::fast(),
    opts(),
    2,
    Some("multiple-winners")
);
workload_test!(
    lease_with_stalls_passes,
    "lease",
    None,
    common::fast(),
    stalling(),
    3,
    None::<&str>
);
workload_test!(
    lease_catches_missing_fencing,
    "lease",
    Some(Bug::NoFencing),
    common::fast(),
    stalling(),
    3,
    Some("multiple-effects")
);

/// Isolates whichever node is primary, `rounds` times: long enough for a new primary to take
/// over, shorter than the write timeout, so a deposed primary's stuck writes are still running
/// when the partition heals.
fn isolate_the_primary(rounds: u32) -> Nemesis {
    Box::new(move |c: Arc<Cluster>| {
        tokio::spawn(async move {
            for _ in 0..rounds {
                tokio::time::sleep(Duration::from_millis(700)).await;
                let Ok(p) = c.wait_for_primary(&[], Duration::from_secs(5)).await else {
                    continue;
                };
                let others: Vec<usize> = (0..c.len()).filter(|i| *i != p).collect();
                c.partition(&[&[p], &others]);
                let _ = c.wait_for_primary(&[p], Duration::from_secs(5)).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                c.heal();
            }
        })
    })
}

async fn register_under_failovers(bug: Option<Bug>, seed: u64) -> Results {
    let cluster = Cluster::start(ClusterSpec {
        nodes: 3,
        bugs: bug.into_iter().collect(),
        settings: quick(),
        durable: false,
    })
    .await
    .unwrap();
    let opts = TestbedOptions {
        register: workloads::workload::RegisterOptions {
            keys_in_flight: 6,
            ops_per_key: 60,
            value_count: 50,
            cas: true,
        },
        seed,
        ..opts()
    };
    let nemesis = Some(isolate_the_primary(4));
    run_on(
        Arc::new(cluster),
        "cas-register",
        opts,
        8,
        Some(200.0),
        nemesis,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_passes_under_failovers() {
    valid(&register_under_failovers(None, 9).await);
}

/// A failover bug shows only when a write races the failover in the wrong way, which these
/// eight seconds provoke in most runs but not all (CI once saw a run of this shape pass with
/// four failovers in it). As `calibrate --retry-misses` does, a miss is retried with a fresh
/// seed, at most `ATTEMPTS_MAX` runs in all; a bug that is no longer caught still fails every
/// time, and the bug-off run above is never retried.
async fn flagged_under_failovers(bug: Bug, kind: &str) {
    const ATTEMPTS_MAX: u64 = 3;
    let mut missed = Vec::new();
    for attempt in 0..ATTEMPTS_MAX {
        let results = register_under_failovers(Some(bug), 9 + attempt).await;
        if is_flagged(&results, kind) {
            return;
        }
        missed.push(results);
    }
    panic!("expected {kind} in one of {ATTEMPTS_MAX} runs: {missed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_under_failovers_catches_stale_epoch_writes() {
    flagged_under_failovers(Bug::StaleEpochWrite, "nonlinearizable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_under_failovers_catches_lost_acked_writes() {
    flagged_under_failovers(Bug::LostAckedWrite, "nonlinearizable").await;
}
