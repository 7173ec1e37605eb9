//! NATS JetStream: a stream replicated on all three servers takes a published message with an
//! ack through one server, and a durable consumer reads it through another.

mod cluster_support;

use async_nats::jetstream::{self, consumer, stream};
use cluster_support::{docker_or_skip, leftovers, start};
use futures_util::StreamExt;

async fn js(addr: std::net::SocketAddr) -> jetstream::Context {
    // Only the address we give: the servers' own (container) addresses are for each other.
    let client = async_nats::ConnectOptions::new()
        .ignore_discovered_servers()
        .connect(addr.to_string())
        .await
        .unwrap();
    jetstream::new(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_stream_replicated_on_three_servers() {
    let Some(()) = docker_or_skip("nats cluster") else {
        return;
    };
    let c = start("nats").await;
    let run_id = c.run_id().to_string();
    let leader = c.leader().await.unwrap().expect("a meta leader once ready");
    assert!(c.node_names().contains(&leader));

    let js1 = js(c.host_addr("n1", "client").unwrap()).await;
    let s = js1
        .create_stream(stream::Config {
            name: "FL".into(),
            subjects: vec!["fl.>".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(s.cached_info().config.num_replicas, 3);
    let ack = js1
        .publish("fl.a", "hello".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.stream, "FL");
    assert_eq!(ack.sequence, 1);

    let js3 = js(c.host_addr("n3", "client").unwrap()).await;
    let stream = js3.get_stream("FL").await.unwrap();
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("reader".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.fetch().max_messages(1).messages().await.unwrap();
    let m = msgs.next().await.expect("one message").unwrap();
    assert_eq!(m.subject.as_str(), "fl.a");
    assert_eq!(&m.payload[..], b"hello");
    m.ack().await.unwrap();

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
