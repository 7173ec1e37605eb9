//! What the client tests against locally installed servers (Debian packages on loopback)
//! share: a free port, finding the server's binary (a test fails under CI when it is
//! missing, since CI installs it, and is skipped with the reason otherwise: testsupport/prereq.rs), waiting until it
//! listens, and killing it when the test ends.

#![allow(dead_code)] // each test file uses what its server needs

#[path = "../../../testsupport/prereq.rs"]
mod prereq;

use std::net::TcpListener;
use std::process::Child;
use std::time::{Duration, Instant};

/// A server process, killed (and reaped) when dropped.
pub struct ServerProcess(pub Child);

impl ServerProcess {
    /// Kills the server now (a test of what clients do when it is gone).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first of `paths` that exists, else `None` after saying the test is skipped; under
/// `CI=true` a missing server is a failure naming the Debian `package` to install.
pub fn installed(paths: &[&'static str], package: &str) -> Option<&'static str> {
    let found = paths
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).exists());
    found.or_else(|| missing(&format!("{paths:?}"), package))
}

/// `None`, after saying that `what` is not installed and the test is skipped; under `CI=true`
/// a failure naming the Debian `package` to install.
pub fn missing<T>(what: &str, package: &str) -> Option<T> {
    prereq::skip(
        &format!("{package} not installed"),
        &format!("no {what}; apt-get install {package}"),
    )
}

/// Waits until `addr` accepts TCP connections; a server that does not within `max` fails the
/// test.
pub async fn wait_listening(addr: &str, server: &str, max: Duration) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < max,
            "{server} did not listen on {addr} within {max:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
