//! End-to-end `faultline run` against real clusters in Docker, with short time limits.
//!
//! What each test may assert is limited by what a short run can guarantee:
//! - etcd register under partitions: etcd is linearizable, so the verdict must be valid (and a
//!   partition must actually have happened, or the test proved nothing);
//! - etcd with serializable reads under partitions: stale reads, which the linearizability
//!   checker must flag (up to two seeds; the odds are with the test);
//! - Redis with Sentinel failover and node-bound clients: acknowledged writes lost when the
//!   isolated old primary rejoins, which the checker must flag (up to two seeds; the odds are
//!   with the test);
//! - Ctrl-C: the binary stops within a bound, keeps the history, checks it, says the run was
//!   interrupted, and leaves nothing in Docker.
//!
//! Every test asks Docker for what is left of its run (containers and networks labeled with the
//! run's id from `plan.json`). Without Docker or the base image the tests skip with the reason,
//! except under CI, where they fail: CI must have both (`faultline images build`).

use checkers::{Process, Verdict};
use faultline::plan::Plan;
use faultline::run::{run_plan, RunOptions, RunOutcome};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bound on `faultline run` exiting after SIGINT (heal, teardown, checks).
const SIGINT_EXIT_BOUND_S: u64 = 60;

#[path = "../testsupport/prereq.rs"]
mod prereq;

/// `false` (after printing why) when there is no Docker or no base image and this is not CI;
/// a panic under CI (testsupport/prereq.rs).
async fn docker_and_image_or_skip(test: &str) -> bool {
    let missing = match faultline::cluster::docker::available() {
        Err(e) => Some(("no Docker daemon", format!("{e:#}"))),
        Ok(()) => {
            let docker = faultline::cluster::docker::connect().expect("connecting to Docker");
            let image = faultline::images::base_image_ref();
            match faultline::images::image_exists(&docker, &image).await {
                Ok(true) => None,
                Ok(false) => Some((
                    "no base image",
                    format!("{image} does not exist; build it with `faultline images build`"),
                )),
                Err(e) => Some((
                    "no base image",
                    format!("cannot ask Docker for {image}: {e:#}"),
                )),
            }
        }
    };
    match missing {
        None => true,
        Some((reason, detail)) => {
            prereq::skip::<()>(reason, &format!("{test}: {detail}")).is_some()
        }
    }
}

fn store(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("run-e2e-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn plan(name: &str, store: &Path) -> Plan {
    Plan {
        name: name.into(),
        store: store.display().to_string(),
        ..Plan::default()
    }
}

/// Containers and networks Docker still has with the run's label.
async fn leftovers(run_id: &str) -> (Vec<String>, Vec<String>) {
    let d = faultline::cluster::docker::connect().expect("docker");
    let runs = faultline::cluster::docker::list_runs(&d)
        .await
        .expect("listing faultline runs");
    runs.into_iter()
        .find(|r| r.run_id == run_id)
        .map(|r| (r.containers, r.networks))
        .unwrap_or_default()
}

/// What a run left in its folder, read back and summarised.
struct Seen {
    verdict: Verdict,
    results: reports::RunResults,
    run_id: String,
    ops: usize,
    ok: usize,
    fail: usize,
    info: usize,
    /// Nemesis events, `f` and value, in order.
    faults: Vec<(String, Value)>,
    /// Reads that completed ok while a partition was in force.
    reads_ok_in_partition: usize,
    history: checkers::History,
}

/// Reads the run folder, asserting that everything a finished run writes is there, and that
/// Docker has nothing left of the run.
async fn inspect(run_dir: &Path) -> Seen {
    for f in [
        "history.jsonl",
        "results.json",
        "plan.json",
        "faultline.log",
        "index.html",
    ] {
        assert!(
            run_dir.join(f).is_file(),
            "{}: missing {f}",
            run_dir.display()
        );
    }
    let results = reports::RunResults::read(&run_dir.join("results.json")).unwrap();
    let plan_json: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("plan.json")).unwrap()).unwrap();
    let run_id = plan_json["cluster"]["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("plan.json names no cluster run id: {plan_json}"))
        .to_string();
    let (containers, networks) = leftovers(&run_id).await;
    assert!(
        containers.is_empty() && networks.is_empty(),
        "run {run_id} left containers {containers:?} and networks {networks:?}"
    );
    let history = checkers::formats::read_path(
        &run_dir.join("history.jsonl"),
        Some(checkers::formats::Format::Jsonl),
    )
    .unwrap();
    let mut seen = Seen {
        verdict: results.verdict,
        results,
        run_id,
        ops: 0,
        ok: 0,
        fail: 0,
        info: 0,
        faults: vec![],
        reads_ok_in_partition: 0,
        history: history.clone(),
    };
    let mut partitioned = false;
    for e in &history.events {
        if e.process == Process::Nemesis {
            match e.f.as_str() {
                "start-partition" => partitioned = true,
                "stop-partition" | "heal" => partitioned = false,
                _ => {}
            }
            seen.faults.push((e.f.clone(), e.value.clone()));
            continue;
        }
        match e.kind {
            checkers::EventType::Invoke => seen.ops += 1,
            checkers::EventType::Ok => {
                seen.ok += 1;
                if partitioned && e.f == "read" {
                    seen.reads_ok_in_partition += 1;
                }
            }
            checkers::EventType::Fail => seen.fail += 1,
            checkers::EventType::Info => seen.info += 1,
        }
    }
    seen
}

fn report(test: &str, outcome: &RunOutcome, seen: &Seen, elapsed: Duration) {
    eprintln!(
        "{test}: {} in {:.1} s; {} ops ({} ok, {} fail, {} info); run {}",
        seen.verdict,
        elapsed.as_secs_f64(),
        seen.ops,
        seen.ok,
        seen.fail,
        seen.info,
        seen.run_id
    );
    for (f, v) in &seen.faults {
        let v = v.to_string();
        let shown: String = v.chars().take(300).collect();
        let more = if shown.len() < v.len() { " …" } else { "" };
        eprintln!("{test}:   nemesis {f} {shown}{more}");
    }
    for r in &seen.results.results {
        eprintln!(
            "{test}:   {}: {} — {}",
            r.checker,
            r.verdict,
            r.unknown_reason.as_deref().unwrap_or(&r.summary)
        );
        for a in r.anomalies.iter().take(3) {
            eprintln!("{test}:     {}: {}", a.kind, a.explanation);
        }
    }
    for e in &outcome.harness_errors {
        eprintln!("{test}:   harness problem: {e}");
    }
    eprintln!("{test}:   run folder {}", outcome.run_dir.display());
}

async fn run(test: &str, plan: Plan) -> (RunOutcome, Seen) {
    eprintln!("{test}: rerun with: {}", plan.rerun_command());
    let t0 = Instant::now();
    let outcome = run_plan(plan, RunOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{test}: the run failed: {e:#}"));
    let seen = inspect(&outcome.run_dir).await;
    report(test, &outcome, &seen, t0.elapsed());
    (outcome, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_register_with_partitions_is_valid() {
    let test = "etcd_register_with_partitions_is_valid";
    if !docker_and_image_or_skip(test).await {
        return;
    }
    let dir = store(test);
    let p = Plan {
        system: "etcd".into(),
        workload: "register".into(),
        nemesis: vec!["partition".into()],
        nemesis_interval_ms: 3_000,
        time_limit_ms: 15_000,
        seed: 7,
        ..plan("e2e-etcd-register", &dir)
    };
    let (outcome, seen) = run(test, p).await;
    assert!(
        outcome.harness_errors.is_empty(),
        "{:?}",
        outcome.harness_errors
    );
    assert!(
        seen.faults.iter().any(|(f, _)| f == "start-partition"),
        "no partition happened, so the run proves nothing: {:?}",
        seen.faults
    );
    assert!(seen.ok > 100, "only {} ops succeeded", seen.ok);
    assert_eq!(
        seen.verdict,
        Verdict::Valid,
        "etcd with quorum reads must be linearizable: {:?}",
        seen.results.results
    );
    // The register workload has no final phase; the convergence reads still follow the heal.
    let convergence = seen
        .results
        .results
        .iter()
        .find(|r| r.checker == "convergence");
    assert!(
        convergence.is_some_and(|r| r.verdict == Verdict::Valid),
        "the members must be read after the heal and agree: {:?}",
        seen.results.results
    );
    assert_eq!(outcome.exit_code(), 0);
}

/// Runs `plan(seed)` for up to `attempts` seeds until one is flagged `invalid` with
/// `anomaly` (by any checker); panics when none is. Every run must complete without harness
/// errors and inject `fault`. Returns the flagged run. A known anomaly caught with probability
/// p per run makes this fail with probability (1 - p)^attempts; a regression that stops the
/// detection fails every time.
async fn flagged_within(
    test: &str,
    attempts: u64,
    anomaly: &str,
    fault: &str,
    plan: impl Fn(u64) -> Plan,
) -> Seen {
    for attempt in 1..=attempts {
        let (outcome, seen) = run(test, plan(attempt)).await;
        assert!(
            outcome.harness_errors.is_empty(),
            "{:?}",
            outcome.harness_errors
        );
        assert!(
            seen.faults.iter().any(|(f, _)| f == fault),
            "no {fault} happened, so the run proves nothing: {:?}",
            seen.faults
        );
        assert!(seen.ok > 100, "only {} ops succeeded", seen.ok);
        assert_eq!(outcome.exit_code(), seen.verdict.exit_code());
        let found = seen.results.results.iter().any(|r| {
            r.verdict == Verdict::Invalid && r.anomalies.iter().any(|a| a.kind == anomaly)
        });
        eprintln!(
            "{test}: attempt {attempt}/{attempts}: verdict {}, {anomaly} found: {found}",
            seen.verdict
        );
        if found {
            return seen;
        }
    }
    panic!("{test}: no {anomaly} anomaly in {attempts} runs: the checker or the client regressed");
}

/// etcd with serializable reads under partitions: a member cut off from the quorum keeps
/// answering reads from its own, stale state. One partition (one node isolated from 5 s to
/// 15 s) with writes on the majority and reads everywhere: measured flagged in N/N runs
/// (see the README, Detection on real clusters); two attempts make a spurious failure
/// negligible.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_serializable_reads_under_partitions_are_flagged_stale() {
    let test = "etcd_serializable_reads_under_partitions";
    if !docker_and_image_or_skip(test).await {
        return;
    }
    let dir = store(test);
    let seen = flagged_within(test, 2, "nonlinearizable", "start-partition", |seed| Plan {
        system: "etcd".into(),
        workload: "register".into(),
        read_mode: "serializable".into(),
        nemesis: vec!["partition".into()],
        nemesis_interval_ms: 3_000,
        time_limit_ms: 20_000,
        keys: 2,
        rate_ops_per_s: 300.0,
        seed: 2 + seed,
        ..plan("e2e-etcd-serializable", &dir)
    })
    .await;
    assert!(seen.reads_ok_in_partition > 0);
    assert_eq!(seen.verdict, Verdict::Invalid);
}

/// Redis (primary, two replicas, three Sentinels) with the primary cut off from 12 s to 24 s
/// (one fault: a second would start at 36 s and end after the 45 s limit),
/// long enough for the Sentinels to fail over (down-after 5 s), and node-bound clients
/// (`[client] routing = "node-bound"`: each keeps writing to the primary it knows until it
/// refuses, like the applications in Jepsen's Redis analysis). The old primary acknowledges
/// writes from the failover until the Sentinels convert it to a replica, about 10 s after the
/// heal (their INFO period), when it discards them; the 21 s after the heal leave time for
/// reads of the same keys to see the older values. The settings are those of
/// plans/known-anomalies/redis-register.toml, flagged in 3 of 3 seeds (README, Detection on
/// real clusters). Measured misses: with 2 keys, 2 of 2 runs (a few hot keys with 5 values
/// let most stale reads match a later write); with faults at 10-20 s and 30-40 s, 1 of 2.
/// Hence up to three attempts; the odds are not yet measured well enough to say more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_failover_loses_writes_acknowledged_by_the_isolated_primary() {
    let test = "redis_with_failover";
    if !docker_and_image_or_skip(test).await {
        return;
    }
    let dir = store(test);
    let mut client = std::collections::BTreeMap::new();
    client.insert("routing".to_string(), serde_json::json!("node-bound"));
    client.insert("ops-per-key".to_string(), serde_json::json!(2_000));
    let seen = flagged_within(test, 3, "nonlinearizable", "start-partition", |seed| Plan {
        system: "redis".into(),
        workload: "cas-register".into(),
        nemesis: vec!["partition:isolate-leader".into()],
        nemesis_interval_ms: 12_000,
        time_limit_ms: 45_000,
        keys: 4,
        concurrency: 10,
        rate_ops_per_s: 100.0,
        client: client.clone(),
        seed,
        ..plan("e2e-redis-failover", &dir)
    })
    .await;
    assert_eq!(seen.verdict, Verdict::Invalid);
}

/// Whether the last nemesis event of a (possibly partial) JSONL history starts a fault.
fn fault_in_force(history: &str) -> bool {
    history
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["process"] == "nemesis")
        .is_some_and(|e| e["f"].as_str().is_some_and(|f| f.starts_with("start-")))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The only run folder of `test` in `store`, once it exists.
fn run_folder(store: &Path, test: &str) -> Option<PathBuf> {
    std::fs::read_dir(store.join(test))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.is_dir())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_heals_tears_down_and_still_checks() {
    let test = "ctrl_c_stops_heals_tears_down_and_still_checks";
    if !docker_and_image_or_skip(test).await {
        return;
    }
    let dir = store(test);
    let log = dir.join("stderr.txt");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--name",
            "e2e-ctrl-c",
            "--system",
            "etcd",
            "--workload",
            "register",
            "--nemesis",
            "partition,kill",
            "--nemesis-interval",
            "3s",
            "--time-limit",
            "60s",
            "--seed",
            "11",
            "--quiet",
            "--store",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting faultline run");
    let started = Instant::now();
    // SIGINT at least 8 s in, while a fault is in force and the workload is recording (so the
    // heal on interrupt has something to heal, and a slow cluster start does not turn this into
    // a test of an interrupted start-up); bounded.
    let mut in_fault = false;
    while started.elapsed() < Duration::from_secs(90) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "faultline run exited by itself with {status} before SIGINT: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let history = run_folder(&dir, "e2e-ctrl-c")
            .and_then(|d| std::fs::read_to_string(d.join("history.jsonl")).ok())
            .unwrap_or_default();
        in_fault = fault_in_force(&history);
        if in_fault && started.elapsed() >= Duration::from_secs(8) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_fault, "no fault started within 90 s");
    let sent_at = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent_at.elapsed() > Duration::from_secs(SIGINT_EXIT_BOUND_S) {
            let _ = child.kill();
            panic!("faultline run did not exit within {SIGINT_EXIT_BOUND_S} s of SIGINT");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "{test}: SIGINT after {:.1} s; exited with {status} {:.1} s later\n{stderr}",
        (sent_at - started).as_secs_f64(),
        sent_at.elapsed().as_secs_f64()
    );
    // Interrupted: never valid; 3 would mean the harness failed.
    let code = status.code().expect("an exit code, not a signal");
    assert!(code == 2 || code == 1, "exit code {code}");
    let run_dir = run_folder(&dir, "e2e-ctrl-c").unwrap();
    let seen = inspect(&run_dir).await;
    let interrupted = seen
        .results
        .results
        .iter()
        .find(|r| r.checker == "run")
        .unwrap_or_else(|| panic!("no \"run\" result: {:?}", seen.results.results));
    assert_eq!(interrupted.verdict, Verdict::Unknown);
    assert!(
        interrupted
            .unknown_reason
            .as_deref()
            .unwrap_or(&interrupted.summary)
            .contains("interrupted"),
        "{interrupted:?}"
    );
    assert!(seen.ops > 0);
    // The fault in force at SIGINT was healed, and the heal is in the history.
    let last_heal = seen
        .faults
        .iter()
        .rposition(|(f, _)| f == "heal")
        .expect("a heal event after SIGINT");
    let last_start = seen
        .faults
        .iter()
        .rposition(|(f, _)| f.starts_with("start-"))
        .unwrap();
    assert!(last_start < last_heal, "{:?}", seen.faults);
    assert_eq!(seen.faults[last_heal].1["ok"], true, "{:?}", seen.faults);
    let plan_json = read_json(&run_dir.join("plan.json")).unwrap();
    assert_eq!(plan_json["seed"], 11);
    eprintln!(
        "{test}: {} ops ({} ok, {} fail, {} info), {} nemesis events, verdict {}",
        seen.ops,
        seen.ok,
        seen.fail,
        seen.info,
        seen.faults.len(),
        seen.verdict
    );
}

/// Ctrl-C while the cluster is still starting (RabbitMQ takes seconds to boot): the run stops
/// at once, removes what it created, and says it was interrupted before any operation: an
/// interruption (exit 2), not a harness failure (exit 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_cluster_start_is_an_interruption_not_a_failure() {
    let test = "ctrl_c_during_cluster_start";
    if !docker_and_image_or_skip(test).await {
        return;
    }
    let dir = store(test);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--name", "e2e-start-ctrl-c", "--system", "rabbitmq"])
        .args(["--workload", "queue", "--time-limit", "20s", "--seed", "3"])
        .args(["--quiet", "--store"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting faultline run");
    let started = Instant::now();
    let mut starting = false;
    while !starting && started.elapsed() < Duration::from_secs(60) {
        assert!(child.try_wait().unwrap().is_none(), "exited before SIGINT");
        starting = run_folder(&dir, "e2e-start-ctrl-c")
            .and_then(|d| std::fs::read_to_string(d.join("faultline.log")).ok())
            .is_some_and(|log| log.contains("starting rabbitmq cluster"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(starting, "the cluster start was not logged within 60 s");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let run_dir = run_folder(&dir, "e2e-start-ctrl-c").unwrap();
    let results = read_json(&run_dir.join("results.json")).expect("results.json");
    let run = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["checker"] == "run")
        .unwrap_or_else(|| panic!("no \"run\" result: {results}"));
    assert_eq!(run["verdict"], "unknown", "{run}");
    assert!(
        run.to_string()
            .contains("before any operation was recorded"),
        "{run}"
    );
    let log = std::fs::read_to_string(run_dir.join("faultline.log")).unwrap();
    assert!(!log.contains("run failed"), "{log}");
    let clean = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["clean", "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(text.contains("would remove 0 container(s)"), "{text}");
}

/// Latency and partitions through the link proxy (`--links proxy`) on the testbed: the faults
/// go through the Toxiproxy API of a proxy container the nodes dial their peers through, the
/// added latency shows in the operations' durations, and the correct testbed stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn testbed_latency_and_partitions_through_the_link_proxy() {
    let test = "testbed_links_proxy";
    if !docker_and_image_or_skip(test).await {
        return;
    }
    let dir = store(test);
    let p = Plan {
        system: "testbed".into(),
        workload: "cas-register".into(),
        nemesis: vec!["latency".into(), "partition:isolate-leader".into()],
        links: "proxy".into(),
        // Timeouts above the largest latency the schedule draws (500 ms each way), so that
        // replication slows down under latency instead of failing.
        testbed: [
            ("lease-ms", 3000),
            ("peer-timeout-ms", 3000),
            ("write-timeout-ms", 8000),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect(),
        nemesis_interval_ms: 2_000,
        time_limit_ms: 16_000,
        concurrency: 4,
        rate_ops_per_s: 100.0,
        op_timeout_ms: 10_000,
        seed: 11,
        ..plan("e2e-testbed-links", &dir)
    };
    let (outcome, seen) = run(test, p).await;
    assert!(
        outcome.harness_errors.is_empty(),
        "{:?}",
        outcome.harness_errors
    );
    assert!(
        !seen.faults.iter().any(|(f, _)| f == "fault-error"),
        "{:?}",
        seen.faults
    );
    let latencies: Vec<u64> = seen
        .faults
        .iter()
        .filter(|(f, _)| f == "start-latency")
        .map(|(_, v)| v["latency_ms"].as_u64().expect("latency_ms"))
        .collect();
    assert!(
        !latencies.is_empty(),
        "seed 11 schedules latency: {:?}",
        seen.faults
    );
    assert!(
        seen.faults
            .iter()
            .any(|(f, v)| f == "start-partition" && v.to_string().contains("proxy")),
        "a partition through the proxy: {:?}",
        seen.faults
    );

    // Durations of ok writes that started inside a latency window, and of those that ran with
    // no fault at all.
    let mut in_latency = vec![];
    let mut quiet = vec![];
    let mut active: Vec<&str> = vec![];
    let mut open: std::collections::HashMap<u64, (u64, bool)> = Default::default();
    for e in &seen.history.events {
        if e.process == Process::Nemesis {
            if let Some(k) = e.f.strip_prefix("start-") {
                active.push(if k == "latency" { "latency" } else { "other" });
            } else if let Some(k) = e.f.strip_prefix("stop-") {
                let k = if k == "latency" { "latency" } else { "other" };
                if let Some(i) = active.iter().position(|a| *a == k) {
                    active.remove(i);
                }
            } else if e.f == "heal" {
                active.clear();
            }
            continue;
        }
        let Process::Client(p) = e.process else {
            continue;
        };
        if e.f != "write" {
            continue;
        }
        match e.kind {
            checkers::EventType::Invoke => {
                let only_latency = active == ["latency"];
                let latency_or_quiet = active.is_empty() || only_latency;
                if latency_or_quiet {
                    open.insert(p, (e.time, only_latency));
                }
            }
            checkers::EventType::Ok => {
                if let Some((t0, lat)) = open.remove(&p) {
                    let ms = (e.time - t0) / 1_000_000;
                    if lat {
                        in_latency.push(ms)
                    } else {
                        quiet.push(ms)
                    }
                }
            }
            _ => {
                open.remove(&p);
            }
        }
    }
    let median = |v: &mut Vec<u64>| {
        v.sort();
        v[v.len() / 2]
    };
    assert!(
        in_latency.len() >= 5 && quiet.len() >= 5,
        "writes under latency {in_latency:?}, without faults {quiet:?}"
    );
    let (lat_ms, quiet_ms) = (median(&mut in_latency), median(&mut quiet));
    let least = *latencies.iter().min().unwrap();
    eprintln!("{test}: median write {lat_ms} ms under latency (least added {least} ms), {quiet_ms} ms without faults");
    assert!(
        lat_ms >= quiet_ms + least / 2,
        "latency of at least {least} ms on every link must slow replicated writes: {lat_ms} ms vs {quiet_ms} ms"
    );
    assert_eq!(
        seen.verdict,
        Verdict::Valid,
        "the testbed without bugs is linearizable: {:?}",
        seen.results.results
    );
}
