//! PostgreSQL 15: rows written through tokio-postgres survive a kill -9 and a start of the node.

mod cluster_support;

use std::time::Duration;

use cluster_support::{docker_or_skip, leftovers, start};

async fn connect(
    addr: std::net::SocketAddr,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=postgres", addr.port()),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_rows_survive_kill_and_start() {
    let Some(()) = docker_or_skip("postgres") else {
        return;
    };
    let c = start("postgres").await;
    let run_id = c.run_id().to_string();
    assert_eq!(c.leader().await.unwrap().as_deref(), Some("n1"));
    let addr = c.host_addr("n1", "client").unwrap();

    let db = connect(addr).await.unwrap();
    db.batch_execute(
        "CREATE TABLE t (k int primary key, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');",
    )
    .await
    .unwrap();
    drop(db);

    c.kill("n1").await.unwrap();
    c.start("n1").await.unwrap();
    c.wait_node_ready("n1", Duration::from_secs(30))
        .await
        .unwrap();

    let db = connect(addr).await.unwrap();
    let rows = db
        .query("SELECT k, v FROM t ORDER BY k", &[])
        .await
        .unwrap();
    let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [(1, "a".to_string()), (2, "b".to_string())]);

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
