//! Redis with Sentinel: a write to the primary reaches both replicas, replicas refuse writes,
//! and when the primary is killed the sentinels promote a replica that then takes writes.

mod cluster_support;

use std::net::SocketAddr;
use std::time::Duration;

use cluster_support::{docker_or_skip, eventually, leftovers, start};

async fn conn(addr: SocketAddr) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(format!("redis://{addr}/"))?
        .get_multiplexed_async_connection()
        .await
}

async fn set(addr: SocketAddr, key: &str, value: &str) -> redis::RedisResult<()> {
    let mut c = conn(addr).await?;
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut c)
        .await
}

async fn get(addr: SocketAddr, key: &str) -> redis::RedisResult<Option<String>> {
    let mut c = conn(addr).await?;
    redis::cmd("GET").arg(key).query_async(&mut c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_replicates_and_sentinels_fail_over() {
    let Some(()) = docker_or_skip("redis cluster") else {
        return;
    };
    let c = start("redis").await;
    let run_id = c.run_id().to_string();
    assert_eq!(c.nodes_with_role("primary"), ["n1"]);
    assert_eq!(c.nodes_with_role("replica"), ["n2", "n3"]);
    assert_eq!(c.nodes_with_role("sentinel"), ["s1", "s2", "s3"]);
    assert_eq!(c.leader().await.unwrap().as_deref(), Some("n1"));

    // A write acknowledged by both replicas (WAIT) is read from each. WAIT waits for the
    // writes of its own connection only, so SET and WAIT share one.
    let primary = c.host_addr("n1", "client").unwrap();
    let mut pc = conn(primary).await.unwrap();
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v1")
        .query_async(&mut pc)
        .await
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(5000)
        .query_async(&mut pc)
        .await
        .unwrap();
    assert_eq!(acked, 2, "both replicas acknowledged the write");
    for r in ["n2", "n3"] {
        let addr = c.host_addr(r, "client").unwrap();
        assert_eq!(get(addr, "k").await.unwrap().as_deref(), Some("v1"), "{r}");
        let err = set(addr, "k", "nope").await.unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("read only"),
            "{r}: {err}"
        );
    }

    // Kill the primary: the sentinels promote a replica, which takes writes.
    c.kill("n1").await.unwrap();
    // Sentinel retries a failed election after twice the failover timeout (20 s), so the bound
    // covers a second attempt.
    let promoted = eventually(Duration::from_secs(60), || async {
        c.leader().await.unwrap().filter(|l| l != "n1")
    })
    .await;
    let Some(promoted) = promoted else {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("redis-failover-logs");
        let _ = std::fs::remove_dir_all(&dir);
        c.collect_logs(&dir).await.unwrap();
        let mut logs = String::new();
        for n in ["s1", "s2", "s3", "n2", "n3"] {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                if e.file_name().to_string_lossy().contains(n) {
                    logs += &format!(
                        "--- {}\n{}\n",
                        e.path().display(),
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    );
                }
            }
        }
        panic!("sentinels promote a replica within 60 s\n{logs}");
    };
    assert!(["n2", "n3"].contains(&promoted.as_str()), "{promoted}");
    let new_primary = c.host_addr(&promoted, "client").unwrap();
    let wrote = eventually(Duration::from_secs(10), || async {
        set(new_primary, "k", "v2").await.ok()
    })
    .await;
    assert!(wrote.is_some(), "the promoted replica takes writes");
    assert_eq!(get(new_primary, "k").await.unwrap().as_deref(), Some("v2"));

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
