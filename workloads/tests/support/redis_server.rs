//! A throwaway redis-server on a free loopback port, shared by the Redis client tests.
//!
//! Without a `redis-server` binary the tests fail under `CI=true` and are skipped with a printed
//! reason otherwise.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const STARTUP_MAX: Duration = Duration::from_secs(20);

pub struct RedisServer {
    pub child: Child,
    pub addr: String,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start_redis() -> Option<RedisServer> {
    let Some(bin) = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("redis-server is not installed; CI must install the redis-server package");
        }
        eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
        return None;
    };
    let port = free_port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        // A full resync writes an RDB file; keep it out of the working tree.
        .arg("--dir")
        .arg(std::env::temp_dir())
        .args(["--dbfilename", &format!("faultline-test-{port}.rdb")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start redis-server");
    let server = RedisServer {
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while tokio::net::TcpStream::connect(&server.addr).await.is_err() {
        assert!(
            started.elapsed() < STARTUP_MAX,
            "redis-server did not listen within {STARTUP_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(server)
}
