//! A TCP proxy server whose HTTP API is Toxiproxy's, so any Toxiproxy client drives it.
//!
//! Three layers, each in its own module:
//! - `api`: the HTTP routes, Toxiproxy's JSON shapes, error bodies and status codes. It holds no
//!   state of its own; it calls the registry.
//! - `registry`: the proxies by name. Each enabled proxy owns one accept task, which owns its
//!   listener and (in a `JoinSet`) every connection task it spawned, so disabling or deleting a
//!   proxy is one stop signal: the listener closes (new connections are refused) and every open
//!   connection is aborted, before the API answers.
//! - `link`: one task per proxied connection, pumping both directions. Toxics reach open
//!   connections through a `watch` channel holding the proxy's toxic chain; each direction
//!   re-reads it when it changes, so a toxic added mid-connection acts on the next bytes.
//!   Without an active toxic a direction is a plain read/write loop (splice(2) for bulk streams
//!   on Linux), the fast path the benchmark measures; with one it timestamps what it reads,
//!   passes the pieces through the toxics (which delay, split, drop, cut or schedule a close or
//!   reset) and writes them out when due, while it keeps reading.
//!
//! Two ways to run it: `BackgroundProxyServer` (its own thread and single-threaded runtime,
//! isolated from the caller's runtime; what a run uses) and `run_standalone` (`faultline proxy`,
//! a work-stealing runtime over all cores, since a standalone proxy may serve any number of
//! clients).
//!
//! The controller never calls into this module to inject faults; it uses the HTTP API through
//! `crate::toxiproxy::Client`, so a real Toxiproxy can stand in for this server.

mod api;
mod link;
mod registry;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::toxiproxy::ProxyConfig;
use registry::Registry;

/// Toxiproxy's default API address.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8474";

/// What `GET /version` answers: the Toxiproxy API version we implement, with our own version as
/// semver build metadata (which does not change precedence for clients that compare versions).
pub const API_VERSION: &str = concat!("2.6.0+faultline.", env!("CARGO_PKG_VERSION"));

/// Bound on stopping the API server and every proxy.
const SHUTDOWN_TIMEOUT_MS: u64 = 5_000;

/// A running proxy server: the HTTP API plus every proxy it created.
///
/// Dropping it stops everything too, without waiting; `shutdown` waits (boundedly).
pub struct ProxyServer {
    addr: SocketAddr,
    registry: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ProxyServer {
    /// Binds the API to `listen` (e.g. `127.0.0.1:8474`, or port 0 for any free port) and
    /// serves it on the current tokio runtime.
    pub async fn bind(listen: &str) -> Result<ProxyServer> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the proxy API to {listen}"))?;
        let addr = listener.local_addr().context("reading the API address")?;
        let registry = Arc::new(Registry::new());
        let app = api::router(registry.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let reg = registry.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // A dropped sender also means stop.
                let _ = stop_rx.await;
            });
            let _ = serve.await;
            reg.shutdown().await;
        });
        Ok(ProxyServer {
            addr,
            registry,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8474`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates proxies as `POST /populate` would (used for `--config` at start).
    pub async fn populate(&self, configs: &[ProxyConfig]) -> Result<()> {
        let body = serde_json::to_vec(configs).context("encoding proxies")?;
        let (_, err) = self.registry.populate(&body).await;
        match err {
            None => Ok(()),
            Some(e) => Err(anyhow::anyhow!("{}", e.message)),
        }
    }

    /// Stops the API and every proxy: listeners close, connections are dropped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            let bound = Duration::from_millis(SHUTDOWN_TIMEOUT_MS);
            if tokio::time::timeout(bound, &mut task).await.is_err() {
                task.abort();
            }
        }
        self.registry.shutdown().await;
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A proxy server on a thread of its own with a single-threaded runtime, so that neither the
/// caller's runtime load delays proxied traffic nor the proxy's traffic the caller. One thread
/// is enough: the data path is a few syscalls per chunk, and a single thread saves the
/// cross-thread wake-ups a work-stealing runtime adds to every hop.
///
/// Dropping it stops the server and joins the thread (each step bounded).
pub struct BackgroundProxyServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Bound on a background server's start (binding the API).
const START_TIMEOUT_MS: u64 = 10_000;

impl BackgroundProxyServer {
    /// Starts a server whose API listens on `listen` (port 0 picks a free port).
    pub fn start(listen: &str) -> Result<BackgroundProxyServer> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let listen = listen.to_string();
        let thread = std::thread::Builder::new()
            .name("faultline-proxy".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::new(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    match ProxyServer::bind(&listen).await {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(server.addr()));
                            let _ = stop_rx.await;
                            server.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .context("starting the proxy thread")?;
        let addr = ready_rx
            .recv_timeout(Duration::from_millis(START_TIMEOUT_MS))
            .context("waiting for the proxy thread to start")??;
        Ok(BackgroundProxyServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8474`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and every proxy, and joins its thread.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundProxyServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Runs a proxy server on `listen` until Ctrl-C or SIGTERM: `faultline proxy`. With `config`,
/// first creates the proxies listed in that JSON file (the body of `POST /populate`).
pub fn run_standalone(listen: &str, config: Option<&Path>) -> Result<()> {
    let configs: Vec<ProxyConfig> = match config {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_config(&text).with_context(|| format!("in {}", path.display()))?
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let server = ProxyServer::bind(listen).await?;
        if !configs.is_empty() {
            server
                .populate(&configs)
                .await
                .context("creating the proxies of --config")?;
        }
        eprintln!(
            "faultline proxy: Toxiproxy API {} on {} ({} proxies); Ctrl-C stops",
            API_VERSION,
            server.url(),
            configs.len()
        );
        wait_for_stop_signal().await?;
        eprintln!("faultline proxy: stopping");
        server.shutdown().await;
        Ok(())
    })
}

/// A `--config` file: a JSON list of proxies; `enabled` defaults to true as in Toxiproxy.
fn parse_config(text: &str) -> Result<Vec<ProxyConfig>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        #[serde(default)]
        listen: String,
        upstream: String,
        #[serde(default)]
        enabled: Option<bool>,
    }
    let entries: Vec<Entry> =
        serde_json::from_str(text).context("expected a JSON list of {name, listen, upstream}")?;
    Ok(entries
        .into_iter()
        .map(|e| ProxyConfig {
            name: e.name,
            listen: e.listen,
            upstream: e.upstream,
            enabled: e.enabled.unwrap_or(true),
        })
        .collect())
}

async fn wait_for_stop_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("listening for Ctrl-C")?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("listening for Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_default_to_enabled() {
        let c =
            parse_config(r#"[{"name": "a", "listen": "127.0.0.1:0", "upstream": "x:1"}]"#).unwrap();
        assert_eq!(c, vec![ProxyConfig::new("a", "127.0.0.1:0", "x:1")]);
        let err = parse_config(r#"{"name": "a"}"#).unwrap_err();
        assert!(format!("{err:#}").contains("JSON list"), "{err:#}");
    }
}
