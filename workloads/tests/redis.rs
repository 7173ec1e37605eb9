//! The Redis clients against a real redis-server (Debian's redis-server) on loopback.
//!
//! Each test starts its own server on a free port without persistence and kills it at the end.
//! Without a `redis-server` binary the tests fail under `CI=true` and are skipped with a printed
//! reason otherwise.

#[path = "support/redis_server.rs"]
mod redis_server;

use checkers::{Budget, EventType, Verdict};
use redis_server::{start_redis, STARTUP_MAX};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workloads::clients::redis::{RedisFactory, RedisWorkload, Routing};
use workloads::generator;
use workloads::{build, ClientFactory, Invocation, PhaseLimits, Recorder, Runner, RunnerConfig};

fn op(f: &str, key: Option<&str>, value: Value) -> Invocation {
    let o = Invocation::new(f, value);
    match key {
        Some(k) => o.with_key(k),
        None => o,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_operations_map_onto_ok_and_fail() {
    let Some(server) = start_redis().await else {
        return;
    };
    let factory = RedisFactory::new(RedisWorkload::Register).with_prefix("t:");
    let mut c = factory.open(0, &server.addr).await.unwrap();
    c.setup().await.unwrap();
    let k = Some("a");
    assert_eq!(
        c.invoke(&op("read", k, Value::Null)).await.value,
        Value::Null
    );
    let fresh = c.invoke(&op("cas", k, json!([null, 1]))).await;
    assert_eq!(fresh.kind, EventType::Ok, "{fresh:?}");
    let miss = c.invoke(&op("cas", k, json!([7, 2]))).await;
    assert_eq!(
        (miss.kind, miss.error.as_deref()),
        (EventType::Fail, Some("cas-mismatch"))
    );
    assert_eq!(
        c.invoke(&op("cas", k, json!([1, 2]))).await.kind,
        EventType::Ok
    );
    assert_eq!(
        c.invoke(&op("write", k, json!(3))).await.kind,
        EventType::Ok
    );
    assert_eq!(c.invoke(&op("read", k, Value::Null)).await.value, json!(3));
    c.setup().await.unwrap();
    assert_eq!(
        c.invoke(&op("read", k, Value::Null)).await.value,
        Value::Null
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_operations_speak_the_delivery_vocabulary() {
    let Some(server) = start_redis().await else {
        return;
    };
    let factory = RedisFactory::new(RedisWorkload::Queue).with_prefix("q:");
    let mut c = factory.open(0, &server.addr).await.unwrap();
    c.setup().await.unwrap();
    for id in 1..=3 {
        let p = c.invoke(&op("produce", None, json!({ "id": id }))).await;
        assert_eq!((p.kind, p.value), (EventType::Ok, json!({ "id": id })));
    }
    assert_eq!(
        c.invoke(&op("consume", None, Value::Null)).await.value,
        json!([{"id": 1}])
    );
    assert_eq!(
        c.invoke(&op("drain", None, Value::Null)).await.value,
        json!([{"id": 2}, {"id": 3}])
    );
    assert_eq!(
        c.invoke(&op("drain", None, Value::Null)).await.value,
        json!([])
    );
    assert_eq!(
        c.invoke(&op("consume", None, Value::Null)).await.value,
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_gone_fails_or_leaves_operations_indeterminate() {
    let Some(mut server) = start_redis().await else {
        return;
    };
    let factory = RedisFactory::new(RedisWorkload::Register);
    let mut c = factory.open(0, &server.addr).await.unwrap();
    server.process.kill();
    // The connection was open: the client cannot tell whether the write left before the
    // connection broke, so it is indeterminate.
    let w = c.invoke(&op("write", Some("a"), json!(1))).await;
    assert_eq!(w.kind, EventType::Info, "{w:?}");
    let r = c.invoke(&op("read", Some("a"), Value::Null)).await;
    assert_eq!(
        r.kind,
        EventType::Fail,
        "a read that cannot answer changed nothing"
    );
    // A new client cannot connect at all.
    assert!(factory.open(1, &server.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_workloads_run_end_to_end_and_pass_their_checkers() {
    let Some(server) = start_redis().await else {
        return;
    };
    for workload in ["cas-register", "queue"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let recorder = Recorder::create(&path).unwrap();
        let (w, factory) = build("redis", workload, &Default::default()).unwrap();
        let config = RunnerConfig::new(5, vec![server.addr.clone()], 3);
        let mut runner = Runner::start(config, factory, recorder.clone())
            .await
            .unwrap();
        let limits = PhaseLimits {
            time_limit: Duration::from_secs(30),
            grace: Duration::from_secs(2),
        };
        let cancel = CancellationToken::new();
        runner
            .run_phase(generator::limit(1000, w.generator), limits, &cancel)
            .await
            .unwrap();
        if let Some(fin) = w.final_generator {
            runner.run_phase(fin, limits, &cancel).await.unwrap();
        }
        runner.close().await.unwrap();
        recorder.finish().await.unwrap();
        let history = checkers::formats::read_path(&path, None).unwrap();
        let ops = history.ops().unwrap();
        assert!(ops.iter().filter(|o| o.is_ok()).count() > 500, "{workload}");
        for spec in &w.checkers {
            let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
            let r = checkers::run_checker(checker.as_ref(), &history, &Budget::default()).unwrap();
            assert_eq!(
                r.verdict,
                Verdict::Valid,
                "{workload} {}: {}",
                spec.name,
                r.summary
            );
        }
    }
}

/// `ROLE` of the server at `addr`: ("master", connected replicas) or ("slave", 0).
async fn role(addr: &str) -> (String, usize) {
    let mut con = workloads::clients::redis::connect(addr, Duration::from_secs(2))
        .await
        .unwrap();
    let v: redis::Value = redis::cmd("ROLE").query_async(&mut con).await.unwrap();
    let redis::Value::Array(items) = v else {
        panic!("ROLE answered {v:?}");
    };
    let name = match &items[0] {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("{other:?}"),
    };
    let replicas = match items.get(2) {
        Some(redis::Value::Array(r)) if name == "master" => r.len(),
        _ => 0,
    };
    (name, replicas)
}

async fn replicate(replica: &str, primary: Option<&str>) {
    let mut con = workloads::clients::redis::connect(replica, Duration::from_secs(2))
        .await
        .unwrap();
    let mut cmd = redis::cmd("REPLICAOF");
    match primary.and_then(|p| p.split_once(':')) {
        Some((h, p)) => cmd.arg(h).arg(p),
        None => cmd.arg("NO").arg("ONE"),
    };
    let _: () = cmd.query_async(&mut con).await.unwrap();
}

async fn wait_for_replicas(primary: &str, n: usize) {
    let started = Instant::now();
    while role(primary).await != ("master".to_string(), n) {
        assert!(
            started.elapsed() < STARTUP_MAX,
            "{primary} never had {n} replicas"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client assigned to a replica talks to the primary, and after a failover (the replica
/// promoted, the old primary demoted) its next operation after the `READONLY` refusal finds
/// the new primary: a refused write is `fail` (it had no effect), the following one is `ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_follow_the_primary_across_a_failover() {
    let (Some(a), Some(b)) = (start_redis().await, start_redis().await) else {
        return;
    };
    replicate(&b.addr, Some(&a.addr)).await;
    wait_for_replicas(&a.addr, 1).await;

    let factory = RedisFactory::new(RedisWorkload::Register).with_prefix("f:");
    let nodes = vec![a.addr.clone(), b.addr.clone()];
    let mut c = factory.open_among(1, &b.addr, &nodes).await.unwrap();
    let k = Some("x");
    let w = c.invoke(&op("write", k, json!(1))).await;
    assert_eq!(w.kind, EventType::Ok, "routed to the primary: {w:?}");

    // Fail over by hand: b becomes the primary, a its replica.
    replicate(&b.addr, None).await;
    replicate(&a.addr, Some(&b.addr)).await;
    wait_for_replicas(&b.addr, 1).await;

    let refused = c.invoke(&op("write", k, json!(2))).await;
    assert_eq!(refused.kind, EventType::Fail, "{refused:?}");
    assert!(
        refused.error.as_deref().unwrap_or("").contains("READONLY")
            || refused.error.as_deref().unwrap_or("").contains("read-only")
            || refused.error.as_deref().unwrap_or("").contains("read only"),
        "{refused:?}"
    );
    let w = c.invoke(&op("write", k, json!(3))).await;
    assert_eq!(
        w.kind,
        EventType::Ok,
        "the next write finds the new primary: {w:?}"
    );
    let r = c.invoke(&op("read", k, Value::Null)).await;
    assert_eq!(r.value, json!(3));
}

/// What `GET prefix+key` on `addr` itself answers.
async fn get_on(addr: &str, key: &str) -> Option<String> {
    let mut con = workloads::clients::redis::connect(addr, Duration::from_secs(2))
        .await
        .unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap()
}

/// Two primaries at once, as in a partition after a failover: `a` alone, `b` with replica `c`.
/// A follow-primary client assigned to `a` writes to `b` (more replicas); a node-bound one
/// stays on `a` until `a` refuses (READONLY once it is demoted), then finds `b`. The replica
/// snapshot reads each node's own keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_bound_clients_keep_their_primary_until_it_refuses() {
    let (Some(a), Some(b), Some(c)) = (
        start_redis().await,
        start_redis().await,
        start_redis().await,
    ) else {
        return;
    };
    replicate(&c.addr, Some(&b.addr)).await;
    wait_for_replicas(&b.addr, 1).await;
    let nodes = vec![a.addr.clone(), b.addr.clone(), c.addr.clone()];
    let k = Some("x");
    for (routing, prefix, expect_on_a) in [
        (Routing::FollowPrimary, "follow:", false),
        (Routing::NodeBound, "bound:", true),
    ] {
        let f = RedisFactory::new(RedisWorkload::Register)
            .with_prefix(prefix)
            .with_routing(routing);
        let mut client = f.open_among(1, &a.addr, &nodes).await.unwrap();
        let w = client.invoke(&op("write", k, json!(1))).await;
        assert_eq!(w.kind, EventType::Ok, "{routing:?}: {w:?}");
        let key = format!("{prefix}x");
        assert_eq!(
            get_on(&a.addr, &key).await.is_some(),
            expect_on_a,
            "{routing:?} wrote to a: {expect_on_a}"
        );
    }
    // a is demoted: the node-bound client is refused once, then writes to b.
    let f = RedisFactory::new(RedisWorkload::Register)
        .with_prefix("bound2:")
        .with_routing(Routing::NodeBound);
    let mut client = f.open_among(1, &a.addr, &nodes).await.unwrap();
    replicate(&a.addr, Some(&b.addr)).await;
    wait_for_replicas(&b.addr, 2).await;
    let refused = client.invoke(&op("write", k, json!(2))).await;
    assert_eq!(refused.kind, EventType::Fail, "{refused:?}");
    let w = client.invoke(&op("write", k, json!(3))).await;
    assert_eq!(w.kind, EventType::Ok, "{w:?}");
    assert_eq!(get_on(&b.addr, "bound2:x").await.as_deref(), Some("3"));
    // Every node's own copy, once replication caught up.
    let mut snaps = Vec::new();
    for addr in [&a.addr, &b.addr, &c.addr] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let snap = loop {
            let s = f
                .replica_snapshot(addr)
                .await
                .unwrap()
                .expect("the register reads nodes");
            if s.get("x") == Some(&json!(3)) || std::time::Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        snaps.push(snap);
    }
    assert!(
        snaps.iter().all(|s| s.get("x") == Some(&json!(3))),
        "{snaps:?}"
    );
}
