//! ZooKeeper: a 3-node ensemble with one leader; a versioned write through one node is read
//! through another, and a write with a stale version is refused.

mod cluster_support;

use cluster_support::{docker_or_skip, leftovers, start};
use zookeeper_client as zk;

async fn client(addr: std::net::SocketAddr) -> zk::Client {
    zk::Client::connect(&addr.to_string()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_writes_on_a_three_node_ensemble() {
    let Some(()) = docker_or_skip("zookeeper ensemble") else {
        return;
    };
    let c = start("zookeeper").await;
    let run_id = c.run_id().to_string();
    let leader = c.leader().await.unwrap().expect("a leader once ready");
    let mut followers = 0;
    for n in c.node_names() {
        let out = c
            .exec(
                &n,
                &[
                    "bash",
                    "-c",
                    "exec 3<>/dev/tcp/127.0.0.1/2181; echo srvr >&3; cat <&3",
                ],
            )
            .await
            .unwrap();
        if n == leader {
            assert!(out.output.contains("Mode: leader"), "{n}: {}", out.output);
        } else if out.output.contains("Mode: follower") {
            followers += 1;
        }
    }
    assert_eq!(followers, 2);

    let z1 = client(c.host_addr("n1", "client").unwrap()).await;
    z1.create(
        "/fl",
        b"v1",
        &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .unwrap();
    let stat = z1.set_data("/fl", b"v2", Some(0)).await.unwrap();
    assert_eq!(stat.version, 1);
    let stale = z1.set_data("/fl", b"v3", Some(0)).await.unwrap_err();
    assert_eq!(stale, zk::Error::BadVersion);

    let z3 = client(c.host_addr("n3", "client").unwrap()).await;
    z3.sync("/fl").await.unwrap();
    let (data, stat) = z3.get_data("/fl").await.unwrap();
    assert_eq!(data, b"v2");
    assert_eq!(stat.version, 1);

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
