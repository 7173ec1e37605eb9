//! RabbitMQ: three brokers form one cluster; a message published with a publisher confirm
//! through one node is fetched through another.

mod cluster_support;

use cluster_support::{docker_or_skip, leftovers, start};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

async fn connect(addr: std::net::SocketAddr) -> Connection {
    Connection::connect(
        &format!("amqp://guest:guest@{addr}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_message_is_fetched_through_another_node() {
    let Some(()) = docker_or_skip("rabbitmq cluster") else {
        return;
    };
    let c = start("rabbitmq").await;
    let run_id = c.run_id().to_string();

    // Every node sees all three as running members of one cluster.
    let status = c
        .exec(
            "n2",
            &["rabbitmqctl", "-q", "cluster_status", "--formatter", "json"],
        )
        .await
        .unwrap();
    assert_eq!(status.exit_code, 0, "{}", status.output);
    let v: serde_json::Value = serde_json::from_str(status.output.trim()).unwrap();
    let mut running: Vec<String> = v["running_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    running.sort();
    assert_eq!(running, ["rabbit@n1", "rabbit@n2", "rabbit@n3"]);

    let pub_conn = connect(c.host_addr("n1", "amqp").unwrap()).await;
    let ch = pub_conn.create_channel().await.unwrap();
    ch.queue_declare(
        "fl".into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            "fl".into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "the broker confirms the publish");

    let sub_conn = connect(c.host_addr("n3", "amqp").unwrap()).await;
    let ch3 = sub_conn.create_channel().await.unwrap();
    let got = ch3
        .basic_get("fl".into(), BasicGetOptions::default())
        .await
        .unwrap()
        .expect("the message is in the queue");
    assert_eq!(got.delivery.data, b"hello");
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    let empty = ch3
        .basic_get("fl".into(), BasicGetOptions::default())
        .await
        .unwrap();
    assert!(empty.is_none(), "acked once, gone");

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
