//! Proxy overhead against a direct connection on loopback, printed as figures and ratios.
//!
//! Each measurement runs on a direct connection and through our proxy (no toxics), in
//! alternating trials so that drift on a shared machine hits both paths alike:
//! - request-response: 1 KiB written, 1 KiB echoed back, over one connection; p50 and p99 of
//!   the round trip. Twice: with blocking-thread endpoints (the leanest possible client and
//!   server, so the proxy's two extra hops weigh the most) and with tokio endpoints (like
//!   faultline's own clients and most servers under test, which pay an event loop per hop too);
//! - bulk: a large stream written to a sink that acknowledges the byte count at the end;
//!   throughput from the first byte to the acknowledgement (blocking endpoints).
//!
//! The proxy runs as `BackgroundProxyServer` (its own thread and single-threaded runtime), as
//! the controller runs it. Run: `cargo bench -p nemeses --bench proxy`. Sizes can be changed
//! with FAULTLINE_BENCH_ROUNDS (round trips per trial), FAULTLINE_BENCH_BULK_MIB and
//! FAULTLINE_BENCH_TRIALS; FAULTLINE_BENCH_ONLY=latency|bulk runs one part;
//! FAULTLINE_BENCH_PROXY_RUNTIME=multi runs the proxy on the bench's work-stealing runtime
//! instead; FAULTLINE_PROXY_NO_SPLICE=1 turns off the splice(2) bulk path.
//!
//! On a shared machine, compare the best trials as well as the medians: the best trial of each
//! path is the one least disturbed by other processes.
//!
//! Each part also measures a third path, a bare relay (blocking threads, one read and one write
//! per chunk: the least work any user-space TCP relay does), so the figures say how much of the
//! overhead is the proxy's and how much any relay would add on this machine; and it prints the
//! CPU time the whole process (endpoints and relay) spent per round trip or per MiB on each
//! path. The difference to direct is what the relay costs in work, which, unlike the time
//! ratios, does not depend on how the scheduler wakes three threads on few CPUs.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use nemeses::proxy::{BackgroundProxyServer, ProxyServer};
use nemeses::toxiproxy::{Client, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGE_BYTES: usize = 1024;
const WARMUP_ROUNDS: usize = 1_000;
const WRITE_CHUNK_BYTES: usize = 1 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    let rounds = env_usize("FAULTLINE_BENCH_ROUNDS", 20_000);
    let bulk_mib = env_usize("FAULTLINE_BENCH_BULK_MIB", 256);
    let trials = env_usize("FAULTLINE_BENCH_TRIALS", 5).max(1);
    let only = std::env::var("FAULTLINE_BENCH_ONLY").unwrap_or_default();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let echo = spawn_server(serve_echo);
    let sink = spawn_server(serve_sink);
    let async_echo = rt.block_on(spawn_async_echo());

    let on_bench_runtime = std::env::var("FAULTLINE_BENCH_PROXY_RUNTIME").as_deref() == Ok("multi");
    let (server, background) = if on_bench_runtime {
        let s = rt.block_on(ProxyServer::bind("127.0.0.1:0"));
        (Some(s.expect("proxy API")), None)
    } else {
        let s = BackgroundProxyServer::start("127.0.0.1:0").expect("proxy API");
        (None, Some(s))
    };
    let api = match (&server, &background) {
        (Some(s), _) => s.addr(),
        (_, Some(b)) => b.addr(),
        _ => unreachable!("one server runs"),
    };
    let client = Client::new(&api.to_string()).expect("client");
    let via = |name: &str, upstream: SocketAddr| -> SocketAddr {
        let cfg = ProxyConfig::new(name, "127.0.0.1:0", upstream.to_string());
        let p = rt
            .block_on(client.create_proxy(&cfg))
            .expect("create proxy");
        p.listen.parse().expect("listen address")
    };
    let echo_proxy = via("echo", echo);
    let sink_proxy = via("sink", sink);
    let async_echo_proxy = via("async-echo", async_echo);

    // The least any TCP relay can do, for reference: blocking threads, one read and one write
    // per chunk, no toxics, no event loop.
    let echo_bare = spawn_bare_relay(echo);
    let sink_bare = spawn_bare_relay(sink);
    let async_echo_bare = spawn_bare_relay(async_echo);

    println!(
        "proxy benchmark: loopback, {} CPUs, proxy on {}; \"bare relay\" is a minimal blocking \
         relay for reference",
        cpus(),
        if on_bench_runtime {
            "a work-stealing runtime"
        } else {
            "its own thread"
        }
    );
    if only.is_empty() || only == "latency" {
        println!(
            "request-response, blocking endpoints: {MESSAGE_BYTES} B each way, \
             {rounds} round trips x {trials} trials per path"
        );
        let paths = [echo, echo_proxy, echo_bare];
        let runs = measure(trials, &paths, |addr| ping_pong(addr, rounds));
        print_latency(runs, (trials * rounds) as f64);

        println!(
            "request-response, tokio endpoints: {MESSAGE_BYTES} B each way, \
             {rounds} round trips x {trials} trials per path"
        );
        let paths = [async_echo, async_echo_proxy, async_echo_bare];
        let runs = measure(trials, &paths, |addr| {
            rt.block_on(async_ping_pong(addr, rounds))
        });
        print_latency(runs, (trials * rounds) as f64);
    }
    if only.is_empty() || only == "bulk" {
        let bytes = bulk_mib * (1 << 20);
        println!("bulk, blocking endpoints: {bulk_mib} MiB one way, {trials} trials per path");
        let paths = [sink, sink_proxy, sink_bare];
        let mut runs = measure(trials, &paths, |addr| vec![bulk(addr, bytes)]);
        let direct_cpu_us = runs[0].cpu_us;
        let (d_med, d_best) = (runs[0].median(), runs[0].best());
        println!(
            "  {:<11} {:>8} {:>8} {:>8} {:>8} {:>11}",
            "MiB/s", "median", "best", "ratio", "best", "CPU us/MiB"
        );
        for run in &mut runs {
            let (med, best) = (run.median(), run.best());
            println!(
                "  {:<11} {:>8.0} {:>8.0} {:>7.0}% {:>7.0}% {:>11.0}",
                run.name,
                med,
                best,
                100.0 * med / d_med,
                100.0 * best / d_best,
                run.cpu_us / (trials * bulk_mib) as f64
            );
        }
        let ratio = runs[1].median() / d_med;
        println!(
            "  proxied: {:.0}% of direct, target >= 70%: {}; its work: {:+.0} CPU us/MiB",
            100.0 * ratio,
            verdict(ratio >= 0.70),
            (runs[1].cpu_us - direct_cpu_us) / (trials * bulk_mib) as f64
        );
    }
    if let Some(s) = server {
        rt.block_on(s.shutdown());
    }
    drop(background);
}

/// One path's samples over every trial, and the CPU time the process spent on it.
struct PathRun {
    name: &'static str,
    samples: Vec<f64>,
    cpu_us: f64,
}

impl PathRun {
    fn median(&mut self) -> f64 {
        percentile(&mut self.samples, 0.5)
    }

    /// The highest sample (for throughputs, the best trial).
    fn best(&mut self) -> f64 {
        percentile(&mut self.samples, 1.0)
    }
}

const PATH_NAMES: [&str; 3] = ["direct", "proxied", "bare relay"];

/// Runs `trial` on each path in turn, `trials` times, so drift on a shared machine hits every
/// path alike.
fn measure(
    trials: usize,
    paths: &[SocketAddr; 3],
    mut trial: impl FnMut(SocketAddr) -> Vec<f64>,
) -> Vec<PathRun> {
    let mut runs: Vec<PathRun> = PATH_NAMES
        .iter()
        .map(|&name| PathRun {
            name,
            samples: Vec::new(),
            cpu_us: 0.0,
        })
        .collect();
    for _ in 0..trials {
        for (run, &addr) in runs.iter_mut().zip(paths) {
            let before = process_cpu_us();
            run.samples.extend(trial(addr));
            run.cpu_us += process_cpu_us() - before;
        }
    }
    runs
}

fn print_latency(mut runs: Vec<PathRun>, round_trips: f64) {
    let (d50, d99) = (
        percentile(&mut runs[0].samples, 0.50),
        percentile(&mut runs[0].samples, 0.99),
    );
    let direct_cpu_us = runs[0].cpu_us;
    println!(
        "  {:<11} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "", "p50 us", "p99 us", "p50 x", "p99 x", "CPU us/rt"
    );
    for run in &mut runs {
        let (p50, p99) = (
            percentile(&mut run.samples, 0.50),
            percentile(&mut run.samples, 0.99),
        );
        println!(
            "  {:<11} {:>8.1} {:>8.1} {:>7.2}x {:>7.2}x {:>10.1}",
            run.name,
            p50,
            p99,
            p50 / d50,
            p99 / d99,
            run.cpu_us / round_trips
        );
    }
    let p50 = percentile(&mut runs[1].samples, 0.50);
    println!(
        "  proxied: p50 {:+.1} us ({:.2}x), target <= 1.30x: {}; its work: {:+.1} CPU us per round trip",
        p50 - d50,
        p50 / d50,
        verdict(p50 / d50 <= 1.30),
        (runs[1].cpu_us - direct_cpu_us) / round_trips
    );
}

/// CPU time (user and system) of every thread of the process so far, in microseconds.
fn process_cpu_us() -> f64 {
    // SAFETY: getrusage fills the struct we own; RUSAGE_SELF covers every thread.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// Round-trip times in microseconds, after a warm-up; blocking client.
fn ping_pong(addr: SocketAddr, rounds: usize) -> Vec<f64> {
    let mut s = connect(addr);
    let msg = vec![7u8; MESSAGE_BYTES];
    let mut back = vec![0u8; MESSAGE_BYTES];
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..WARMUP_ROUNDS + rounds {
        let start = Instant::now();
        s.write_all(&msg).expect("write");
        s.read_exact(&mut back).expect("read echo");
        if i >= WARMUP_ROUNDS {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples
}

/// Round-trip times in microseconds, after a warm-up; tokio client.
async fn async_ping_pong(addr: SocketAddr, rounds: usize) -> Vec<f64> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = vec![7u8; MESSAGE_BYTES];
    let mut back = vec![0u8; MESSAGE_BYTES];
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..WARMUP_ROUNDS + rounds {
        let start = Instant::now();
        let trip = async {
            s.write_all(&msg).await?;
            s.read_exact(&mut back).await
        };
        tokio::time::timeout(IO_TIMEOUT, trip)
            .await
            .expect("round trip in time")
            .expect("round trip");
        if i >= WARMUP_ROUNDS {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples
}

/// Streams `bytes` to the sink; MiB/s until the sink acknowledged the last byte.
fn bulk(addr: SocketAddr, bytes: usize) -> f64 {
    let mut s = connect(addr);
    let chunk = vec![0x5au8; WRITE_CHUNK_BYTES];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).expect("write bulk");
        left -= n;
    }
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack).expect("sink ack");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(u64::from_le_bytes(ack), bytes as u64, "sink saw every byte");
    bytes as f64 / (1 << 20) as f64 / secs
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

fn spawn_server(handler: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = conn.set_nodelay(true);
            std::thread::spawn(move || handler(conn));
        }
    });
    addr
}

/// A minimal relay to `upstream`: per connection, one blocking thread per direction doing
/// read then write_all with a 64 KiB buffer, passing on the half-close.
fn spawn_bare_relay(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (c2, s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || pump(client, server));
            std::thread::spawn(move || pump(s2, c2));
        }
    });
    addr
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn serve_echo(s: TcpStream) {
    let Ok(back) = s.try_clone() else {
        return;
    };
    pump(s, back);
}

async fn spawn_async_echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn serve_sink(mut s: TcpStream) {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(_) => return,
        }
    }
    let _ = s.write_all(&total.to_le_bytes());
}

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i]
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
