//! Partitions and latency through proxy links, on loopback: two "nodes" are echo servers, the
//! links between them go through our Toxiproxy-compatible server, and `ProxyLinks` drives it
//! only through the HTTP client (as it would drive a real Toxiproxy).

use nemeses::grudge::Grudge;
use nemeses::partition::{CutMode, LinkPlan, Partitioner, ProxyLinks};
use nemeses::proxy::ProxyServer;
use nemeses::toxiproxy::Client;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on loopback; returns its address and a count of the bytes it received.
async fn echo() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    counter.fetch_add(n, Ordering::SeqCst);
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, received)
}

struct Rig {
    _server: ProxyServer,
    links: ProxyLinks,
    /// proxy name -> the address it listens on.
    listen: BTreeMap<String, String>,
    /// node -> bytes its echo server received.
    received: BTreeMap<String, Arc<AtomicUsize>>,
}

impl Rig {
    fn received(&self, node: &str) -> usize {
        self.received[node].load(Ordering::SeqCst)
    }
}

fn nodes() -> Vec<String> {
    vec!["n1".into(), "n2".into()]
}

async fn rig(mode: CutMode) -> Rig {
    let server = ProxyServer::bind("127.0.0.1:0").await.unwrap();
    let (a1, r1) = echo().await;
    let (a2, r2) = echo().await;
    let upstream: BTreeMap<String, String> = [("n1".into(), a1), ("n2".into(), a2)].into();
    let received = [("n1".to_string(), r1), ("n2".to_string(), r2)].into();
    let plan = LinkPlan::new(&nodes(), &[7000], "127.0.0.1", 30000).unwrap();
    // Listen on any free loopback port instead of the plan's numbers (tests share the machine).
    let configs: Vec<_> = plan
        .proxy_configs(|l| upstream[&l.to].clone())
        .into_iter()
        .map(|mut c| {
            c.listen = "127.0.0.1:0".into();
            c
        })
        .collect();
    let client = Client::new(&server.addr().to_string()).unwrap();
    client.populate(&configs).await.unwrap();
    let listen = client
        .proxies()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, p)| (name, p.listen))
        .collect();
    let links = ProxyLinks::new(client, plan, mode);
    links.prepare().await.expect("every link exists");
    Rig {
        _server: server,
        links,
        listen,
        received,
    }
}

/// Sends one message through a proxy and waits up to 300 ms for the echo.
async fn round_trip(rig: &Rig, proxy: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(&rig.listen[proxy])
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    match tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await {
        Ok(Ok(_)) if &buf == b"ping" => Ok(t0.elapsed()),
        Ok(Ok(_)) => Err("wrong echo".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

#[tokio::test]
async fn a_black_hole_partition_silences_the_cut_links_until_healed() {
    let r = rig(CutMode::BlackHole).await;
    assert!(round_trip(&r, "n1_to_n2_7000").await.is_ok());
    assert!(round_trip(&r, "n2_to_n1_7000").await.is_ok());

    let g = Grudge::isolate(&nodes(), "n1").unwrap();
    let v = r.links.apply(&g).await.unwrap();
    assert_eq!(v["links_cut"], 4, "{v}");
    assert_eq!(
        round_trip(&r, "n1_to_n2_7000").await,
        Err("no answer".into())
    );
    assert_eq!(
        round_trip(&r, "n2_to_n1_7000").await,
        Err("no answer".into())
    );

    r.links.heal().await.unwrap();
    assert!(round_trip(&r, "n1_to_n2_7000").await.is_ok());
    assert!(round_trip(&r, "n2_to_n1_7000").await.is_ok());
}

#[tokio::test]
async fn a_one_way_cut_stops_only_the_data_flowing_that_way() {
    let r = rig(CutMode::BlackHole).await;
    // n2 drops traffic from n1: on n1's link to n2, n1's request never arrives; on n2's link to
    // n1, n2's request arrives but n1's echo never comes back.
    let g = Grudge::none(&nodes()).with_cut("n1", "n2");
    r.links.apply(&g).await.unwrap();
    let (n1_before, n2_before) = (r.received("n1"), r.received("n2"));
    assert_eq!(
        round_trip(&r, "n1_to_n2_7000").await,
        Err("no answer".into())
    );
    assert_eq!(r.received("n2"), n2_before, "n1's request never reached n2");
    assert_eq!(
        round_trip(&r, "n2_to_n1_7000").await,
        Err("no answer".into())
    );
    assert_eq!(
        r.received("n1"),
        n1_before + 4,
        "n2's request reached n1, the echo did not return"
    );
    r.links.heal().await.unwrap();
    assert!(round_trip(&r, "n1_to_n2_7000").await.is_ok());
}

#[tokio::test]
async fn a_disable_partition_refuses_connections_until_healed() {
    let r = rig(CutMode::Disable).await;
    let g = Grudge::isolate(&nodes(), "n2").unwrap();
    r.links.apply(&g).await.unwrap();
    assert!(round_trip(&r, "n1_to_n2_7000").await.is_err());
    r.links.heal().await.unwrap();
    assert!(round_trip(&r, "n1_to_n2_7000").await.is_ok());
}

#[tokio::test]
async fn latency_is_added_to_every_link_and_removed() {
    let r = rig(CutMode::BlackHole).await;
    r.links.add_latency(100, 0).await.unwrap();
    let slow = round_trip_slow(&r, "n1_to_n2_7000").await;
    assert!(
        slow >= Duration::from_millis(200),
        "100 ms each way: {slow:?}"
    );
    r.links.remove_latency().await.unwrap();
    assert!(round_trip(&r, "n1_to_n2_7000").await.is_ok());
}

/// A round trip without the 300 ms bound (for the latency test).
async fn round_trip_slow(rig: &Rig, proxy: &str) -> Duration {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(&rig.listen[proxy]).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo within 5 s")
        .unwrap();
    t0.elapsed()
}

#[tokio::test]
async fn prepare_names_the_links_a_proxy_lacks() {
    let server = ProxyServer::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(&server.addr().to_string()).unwrap();
    let plan = LinkPlan::new(&nodes(), &[7000], "127.0.0.1", 30000).unwrap();
    let err = ProxyLinks::new(client, plan, CutMode::BlackHole)
        .prepare()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("n1_to_n2_7000") && err.contains("n2_to_n1_7000"),
        "{err}"
    );
}
