//! Every toxic's effect, measured on loopback through our proxy to an echo server.
//!
//! Timing bounds are about correctness, not speed: a toxic must delay by at least what it
//! promises, and the upper bounds are several times that, to hold on a loaded machine.

mod proxy_util;

use std::time::{Duration, Instant};

use nemeses::toxiproxy::{ProxyConfig, Stream, Toxic, ToxicKind};
use proxy_util::{
    connect, env, pattern, read_to_end_within, recorder_server, round_trip, ReadEnd, WAIT,
};
use tokio::io::AsyncWriteExt;

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_toxics_bytes_pass_unchanged_both_ways() {
    let env = env().await;
    let addr = env.proxy("plain").await;
    let mut s = connect(addr).await;
    round_trip(&mut s, &pattern(1 << 20)).await;
    s.shutdown().await.unwrap();
    let (rest, end) = read_to_end_within(&mut s, WAIT).await;
    assert_eq!((rest.len(), end), (0, ReadEnd::Eof), "close passes through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_switched_during_a_bulk_stream_keep_every_byte_in_order() {
    let env = env().await;
    let addr = env.proxy("bulk").await;
    let s = connect(addr).await;
    let (mut r, mut w) = s.into_split();
    let sent = pattern(32 << 20);
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let latency = ToxicKind::Latency {
        latency_ms: 1,
        jitter_ms: 1,
    };
    let mut got = Vec::with_capacity(expected.len());
    let mut buf = vec![0u8; 1 << 16];
    let mut switches = 0;
    while got.len() < expected.len() {
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(WAIT, r.read(&mut buf))
            .await
            .expect("data in time")
            .unwrap();
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        // Every 4 MiB, toggle a toxic on both streams.
        if got.len() / (4 << 20) > switches {
            switches += 1;
            for stream in [Stream::Upstream, Stream::Downstream] {
                let t = Toxic::new(latency.clone(), stream);
                if switches % 2 == 1 {
                    env.client.add_toxic("bulk", &t).await.unwrap();
                } else {
                    env.client.remove_toxic("bulk", &t.name).await.unwrap();
                }
            }
        }
    }
    assert!(got == expected, "bytes differ");
    assert!(switches >= 4);
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_adds_its_delay_to_each_round_trip() {
    let env = env().await;
    let addr = env.proxy("lat").await;
    env.toxic(
        "lat",
        Stream::Downstream,
        ToxicKind::Latency {
            latency_ms: 100,
            jitter_ms: 0,
        },
    )
    .await;
    let mut s = connect(addr).await;
    for _ in 0..3 {
        let rtt = round_trip(&mut s, b"ping").await;
        assert!(
            rtt >= MS(100) && rtt < MS(1000),
            "downstream latency: {rtt:?}"
        );
    }
    // Upstream latency adds to downstream latency.
    env.toxic(
        "lat",
        Stream::Upstream,
        ToxicKind::Latency {
            latency_ms: 100,
            jitter_ms: 0,
        },
    )
    .await;
    let rtt = round_trip(&mut s, b"ping").await;
    assert!(rtt >= MS(200) && rtt < MS(2000), "both ways: {rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_jitter_stays_within_its_bounds() {
    let env = env().await;
    let addr = env.proxy("jit").await;
    env.toxic(
        "jit",
        Stream::Downstream,
        ToxicKind::Latency {
            latency_ms: 100,
            jitter_ms: 50,
        },
    )
    .await;
    let mut s = connect(addr).await;
    for _ in 0..5 {
        let rtt = round_trip(&mut s, b"ping").await;
        assert!(rtt >= MS(50) && rtt < MS(1500), "{rtt:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_act_on_connections_already_open() {
    let env = env().await;
    let addr = env.proxy("open").await;
    let mut s = connect(addr).await;
    round_trip(&mut s, b"before").await;
    env.toxic(
        "open",
        Stream::Downstream,
        ToxicKind::Latency {
            latency_ms: 200,
            jitter_ms: 0,
        },
    )
    .await;
    let rtt = round_trip(&mut s, b"after").await;
    assert!(rtt >= MS(200), "{rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_caps_the_transfer_rate() {
    let env = env().await;
    let addr = env.proxy("bw").await;
    // 100 KB/s: 60 000 bytes need at least 600 ms.
    env.toxic(
        "bw",
        Stream::Downstream,
        ToxicKind::Bandwidth { rate_kb_per_s: 100 },
    )
    .await;
    let mut s = connect(addr).await;
    let took = round_trip(&mut s, &pattern(60_000)).await;
    assert!(took >= MS(580) && took < MS(6000), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_zero_black_holes_until_removed_then_closes() {
    let env = env().await;
    let addr = env.proxy("hole").await;
    env.toxic(
        "hole",
        Stream::Downstream,
        ToxicKind::Timeout { timeout_ms: 0 },
    )
    .await;
    let mut s = connect(addr).await;
    s.write_all(b"anyone there?").await.unwrap();
    let (got, end) = read_to_end_within(&mut s, MS(700)).await;
    assert_eq!((got.len(), end), (0, ReadEnd::Silent), "no data, no close");

    env.client
        .remove_toxic("hole", "timeout_downstream")
        .await
        .unwrap();
    let (got, end) = read_to_end_within(&mut s, WAIT).await;
    assert!(got.is_empty(), "dropped data stays dropped");
    assert_ne!(
        end,
        ReadEnd::Silent,
        "removing the black hole closes the connection"
    );

    let mut fresh = connect(addr).await;
    round_trip(&mut fresh, b"hello again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_closes_the_connection_after_its_timeout_without_data() {
    let env = env().await;
    let addr = env.proxy("tmo").await;
    env.toxic(
        "tmo",
        Stream::Downstream,
        ToxicKind::Timeout { timeout_ms: 300 },
    )
    .await;
    let start = Instant::now();
    let mut s = connect(addr).await;
    s.write_all(b"hello").await.unwrap();
    let (got, end) = read_to_end_within(&mut s, WAIT).await;
    let took = start.elapsed();
    assert!(got.is_empty());
    assert_ne!(end, ReadEnd::Silent);
    assert!(took >= MS(300), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_resets_the_connection_with_rst() {
    let env = env().await;
    let addr = env.proxy("rst").await;
    env.toxic(
        "rst",
        Stream::Downstream,
        ToxicKind::ResetPeer { timeout_ms: 100 },
    )
    .await;
    let start = Instant::now();
    let mut s = connect(addr).await;
    s.write_all(b"hello").await.unwrap();
    let (got, end) = read_to_end_within(&mut s, WAIT).await;
    assert!(got.is_empty());
    assert_eq!(end, ReadEnd::Reset);
    assert!(start.elapsed() >= MS(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slicer_delivers_data_in_many_small_reads() {
    let env = env().await;
    let addr = env.proxy("slice").await;
    env.toxic(
        "slice",
        Stream::Downstream,
        ToxicKind::Slicer {
            average_size_bytes: 10,
            size_variation_bytes: 0,
            delay_us: 20_000,
        },
    )
    .await;
    let mut s = connect(addr).await;
    let sent = pattern(100);
    s.write_all(&sent).await.unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 1024];
    while got.len() < sent.len() {
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("data in time")
            .unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
        reads += 1;
    }
    assert_eq!(got, sent);
    assert!(reads >= 5, "{reads} reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_data_passes_n_bytes_then_closes() {
    let env = env().await;
    let addr = env.proxy("limit").await;
    env.toxic(
        "limit",
        Stream::Downstream,
        ToxicKind::LimitData { bytes: 100 },
    )
    .await;
    let mut s = connect(addr).await;
    let sent = pattern(300);
    s.write_all(&sent).await.unwrap();
    let (got, end) = read_to_end_within(&mut s, WAIT).await;
    assert_eq!(got, sent[..100]);
    assert_ne!(end, ReadEnd::Silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_toxics_act_on_what_the_client_sends() {
    let env = env().await;
    let (recorder, mut recorded) = recorder_server().await;
    let p = env
        .client
        .create_proxy(&ProxyConfig::new("up", "127.0.0.1:0", recorder.to_string()))
        .await
        .unwrap();
    env.toxic("up", Stream::Upstream, ToxicKind::LimitData { bytes: 10 })
        .await;
    let mut s = connect(p.listen.parse().unwrap()).await;
    let sent = pattern(100);
    s.write_all(&sent).await.unwrap();
    let seen = tokio::time::timeout(WAIT, recorded.recv())
        .await
        .expect("upstream closed in time")
        .unwrap();
    assert_eq!(seen, sent[..10], "the server saw 10 bytes, then the close");
    let (_, end) = read_to_end_within(&mut s, WAIT).await;
    assert_ne!(
        end,
        ReadEnd::Silent,
        "the client's connection is closed too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_close_delays_the_close() {
    let env = env().await;
    let addr = env.proxy("slow").await;
    env.toxic(
        "slow",
        Stream::Downstream,
        ToxicKind::SlowClose { delay_ms: 500 },
    )
    .await;
    let mut s = connect(addr).await;
    round_trip(&mut s, b"bye").await;
    let start = Instant::now();
    s.shutdown().await.unwrap();
    let (got, end) = read_to_end_within(&mut s, WAIT).await;
    let took = start.elapsed();
    assert_eq!((got.len(), end), (0, ReadEnd::Eof));
    assert!(took >= MS(500), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_zero_has_no_effect() {
    let env = env().await;
    let addr = env.proxy("zero").await;
    for kind in [
        ToxicKind::LimitData { bytes: 10 },
        ToxicKind::Latency {
            latency_ms: 2_000,
            jitter_ms: 0,
        },
        ToxicKind::Timeout { timeout_ms: 0 },
    ] {
        env.client
            .add_toxic(
                "zero",
                &Toxic::new(kind, Stream::Downstream).with_toxicity(0.0),
            )
            .await
            .unwrap();
    }
    let mut s = connect(addr).await;
    let rtt = round_trip(&mut s, &pattern(1000)).await;
    assert!(rtt < MS(2000), "{rtt:?}");
    // Removing a never-active black hole leaves the connection alone.
    env.client
        .remove_toxic("zero", "timeout_downstream")
        .await
        .unwrap();
    round_trip(&mut s, b"still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_proxy_closes_connections_and_refuses_new_ones() {
    let env = env().await;
    let addr = env.proxy("down").await;
    let mut open = connect(addr).await;
    round_trip(&mut open, b"up").await;

    let p = env.client.set_enabled("down", false).await.unwrap();
    assert!(!p.enabled);
    let (_, end) = read_to_end_within(&mut open, WAIT).await;
    assert_ne!(end, ReadEnd::Silent, "open connection closed");
    let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    let p = env.client.set_enabled("down", true).await.unwrap();
    assert_eq!(p.listen, addr.to_string(), "same address again");
    let mut again = connect(addr).await;
    round_trip(&mut again, b"up again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_proxy_stops_listening() {
    let env = env().await;
    let addr = env.proxy("gone").await;
    let mut open = connect(addr).await;
    env.client.delete_proxy("gone").await.unwrap();
    let (_, end) = read_to_end_within(&mut open, WAIT).await;
    assert_ne!(end, ReadEnd::Silent);
    let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_enables_proxies_and_removes_toxics() {
    let env = env().await;
    let addr = env.proxy("r").await;
    env.toxic(
        "r",
        Stream::Downstream,
        ToxicKind::Timeout { timeout_ms: 0 },
    )
    .await;
    env.client.set_enabled("r", false).await.unwrap();
    env.client.reset().await.unwrap();
    let p = env.client.proxy("r").await.unwrap();
    assert!(p.enabled && p.toxics.is_empty(), "{p:?}");
    let mut s = connect(addr).await;
    round_trip(&mut s, b"clean").await;
}
