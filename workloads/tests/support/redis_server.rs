//! A throwaway redis-server on a free loopback port, shared by the Redis client tests.
//!
//! Without a `redis-server` binary the tests fail under `CI=true` and are skipped with a printed
//! reason otherwise.

#[path = "local_server.rs"]
mod local_server;

use local_server::{free_port, installed, wait_listening, ServerProcess};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const STARTUP_MAX: Duration = Duration::from_secs(20);

pub struct RedisServer {
    pub process: ServerProcess,
    pub addr: String,
}

pub async fn start_redis() -> Option<RedisServer> {
    let bin = installed(
        &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
        "redis-server",
    )?;
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
        process: ServerProcess(child),
        addr: format!("127.0.0.1:{port}"),
    };
    wait_listening(&server.addr, "redis-server", STARTUP_MAX).await;
    Some(server)
}
