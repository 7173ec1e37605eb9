//! Compatibility from the other side: the `toxiproxy_rust` client crate, which users already
//! have, drives our server. That crate is blocking and panics on HTTP errors, so it runs on a
//! blocking thread while our server runs on the test's runtime; its network checks use std
//! sockets with read timeouts.

mod proxy_util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use proxy_util::{echo_server, WAIT};
use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

/// One request/response of `n` bytes over a blocking socket; the time it took.
fn round_trip(s: &mut TcpStream, n: usize) -> Duration {
    let payload = vec![42u8; n];
    let start = Instant::now();
    s.write_all(&payload).unwrap();
    let mut back = vec![0u8; n];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, payload);
    start.elapsed()
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(WAIT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxy_rust_drives_our_server() {
    let server = nemeses::proxy::ProxyServer::bind("127.0.0.1:0")
        .await
        .unwrap();
    let api = server.addr();
    let upstream = echo_server().await.to_string();

    tokio::task::spawn_blocking(move || {
        let client = Client::new(api);
        assert!(client.is_running());
        assert!(client.version().unwrap().contains("\"version\""));

        let proxies = client
            .populate(vec![ProxyPack::new(
                "echo".into(),
                "127.0.0.1:0".into(),
                upstream.clone(),
            )])
            .expect("populate");
        assert_eq!(proxies.len(), 1);
        let listen = proxies[0].proxy_pack.listen.clone();
        assert!(!listen.ends_with(":0"), "bound port reported: {listen}");

        let proxy = client.find_and_reset_proxy("echo").expect("find");
        assert_eq!(proxy.proxy_pack.upstream, upstream);

        // latency through the crate's helper: 150 ms downstream.
        proxy.with_latency("downstream".into(), 150, 0, 1.0);
        let toxics = proxy.toxics().unwrap();
        assert_eq!(toxics.len(), 1);
        assert_eq!(toxics[0].name, "latency_downstream");
        assert_eq!(toxics[0].attributes["latency"], 150);
        let mut s = connect(&listen).unwrap();
        let rtt = round_trip(&mut s, 16);
        assert!(rtt >= Duration::from_millis(150) && rtt < WAIT, "{rtt:?}");

        // apply() removes the toxics afterwards.
        proxy
            .with_limit_data("downstream".into(), 8, 1.0)
            .apply(|| {
                let mut s = connect(&listen).unwrap();
                s.write_all(&[1u8; 64]).unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).expect("closed after the limit");
                assert_eq!(got, [1u8; 8], "limit_data cut the response");
            })
            .unwrap();
        assert!(proxy.toxics().unwrap().is_empty());
        let mut s = connect(&listen).unwrap();
        round_trip(&mut s, 1024);

        // with_down(): refused while disabled, back afterwards.
        proxy
            .with_down(|| {
                let e = connect(&listen).unwrap_err();
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
            })
            .unwrap();
        let mut s = connect(&listen).unwrap();
        round_trip(&mut s, 1024);

        let all = client.all().unwrap();
        assert!(all["echo"].proxy_pack.enabled);
        proxy.with_timeout("downstream".into(), 0, 1.0);
        client.reset().unwrap();
        assert!(client
            .find_proxy("echo")
            .unwrap()
            .toxics()
            .unwrap()
            .is_empty());
        proxy.delete().unwrap();
        assert!(client.all().unwrap().is_empty());
        assert!(connect(&listen).is_err());
    })
    .await
    .expect("blocking client thread");
    server.shutdown().await;
}
