//! Shared fixtures for the proxy tests: our server on a free loopback port, an echo server
//! behind it, and bounded socket helpers. Every wait here is bounded by `WAIT`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nemeses::proxy::ProxyServer;
use nemeses::toxiproxy::{Client, ProxyConfig, Stream, Toxic, ToxicKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// Our proxy server on 127.0.0.1:0, our client for it, and an echo server to proxy to.
pub struct Env {
    pub server: ProxyServer,
    pub client: Client,
    pub echo: SocketAddr,
}

pub async fn env() -> Env {
    let server = ProxyServer::bind("127.0.0.1:0").await.expect("bind API");
    let client = Client::new(&server.addr().to_string()).expect("client");
    let echo = echo_server().await;
    Env {
        server,
        client,
        echo,
    }
}

impl Env {
    /// Creates an enabled proxy `name` to the echo server on a free port; returns its address.
    pub async fn proxy(&self, name: &str) -> SocketAddr {
        let p = self
            .client
            .create_proxy(&ProxyConfig::new(
                name,
                "127.0.0.1:0",
                self.echo.to_string(),
            ))
            .await
            .expect("create proxy");
        p.listen.parse().expect("listen is an address")
    }

    /// Adds a toxic with default name and toxicity 1.
    pub async fn toxic(&self, proxy: &str, stream: Stream, kind: ToxicKind) -> Toxic {
        self.client
            .add_toxic(proxy, &Toxic::new(kind, stream))
            .await
            .expect("add toxic")
    }
}

/// An echo server on a free loopback port: writes back what it reads, and closes its side
/// when the client closes its own.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = sock.set_nodelay(true);
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    let s = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Sends `payload` and reads as many bytes back; returns the elapsed time.
pub async fn round_trip(s: &mut TcpStream, payload: &[u8]) -> Duration {
    let start = Instant::now();
    s.write_all(payload).await.expect("write");
    let mut back = vec![0u8; payload.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(back, payload);
    start.elapsed()
}

/// How a read ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// Orderly close (FIN).
    Eof,
    /// Connection reset (RST).
    Reset,
    /// Another error.
    Error(std::io::ErrorKind),
    /// Nothing happened within the window.
    Silent,
}

/// Reads until the connection ends or `window` passes; returns the bytes and how it ended.
pub async fn read_to_end_within(s: &mut TcpStream, window: Duration) -> (Vec<u8>, ReadEnd) {
    let deadline = tokio::time::Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, ReadEnd::Silent),
            Ok(Ok(0)) => return (got, ReadEnd::Eof),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, ReadEnd::Reset)
            }
            Ok(Err(e)) => return (got, ReadEnd::Error(e.kind())),
        }
    }
}

pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A server that records what each connection sent until it closed; the recordings arrive on
/// the returned channel.
pub async fn recorder_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind recorder");
    let addr = listener.local_addr().expect("recorder addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = sock.read_to_end(&mut got).await;
                let _ = tx.send(got);
            });
        }
    });
    (addr, rx)
}
