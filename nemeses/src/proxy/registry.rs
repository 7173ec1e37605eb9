//! The proxies by name, and what each API operation does to them.
//!
//! One async mutex serialises API operations (as Toxiproxy's locks do), which keeps each
//! operation simple: check, change, then answer, with listeners already open or closed by the
//! time the answer leaves. Connections never take this lock; they only read their proxy's toxic
//! chain from a `watch` channel, so API calls and traffic do not contend.
//!
//! Request bodies are decoded here, with Toxiproxy's rules: unknown fields are ignored, missing
//! optional fields take Toxiproxy's defaults, and errors carry Toxiproxy's messages and codes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Mutex};
use tokio::task::{JoinHandle, JoinSet};

use super::link::{self, Chain, ChainToxic};
use crate::toxiproxy::{Proxy, Stream, Toxic, ToxicKind, TOXIC_TYPES};

/// Listen address used when a proxy is created without one: loopback, any free port.
const DEFAULT_LISTEN: &str = "127.0.0.1:0";
/// Bound on closing a proxy's listener and connections.
const STOP_TIMEOUT_MS: u64 = 5_000;
/// Pause after a failed accept (e.g. out of file descriptors) before the next try.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 50;

/// An error answer: Toxiproxy's `{"error": message, "status": status}`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub message: String,
    pub status: u16,
}

impl ApiError {
    fn new(message: impl Into<String>, status: u16) -> ApiError {
        ApiError {
            message: message.into(),
            status,
        }
    }
    fn bad_body(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(format!("bad request body: {detail}"), 400)
    }
    fn missing(field: &str) -> ApiError {
        ApiError::new(format!("missing required field: {field}"), 400)
    }
    fn proxy_not_found() -> ApiError {
        ApiError::new("proxy not found", 404)
    }
    fn toxic_not_found() -> ApiError {
        ApiError::new("toxic not found", 404)
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub(crate) struct Registry {
    proxies: Mutex<BTreeMap<String, ProxyState>>,
    next_uid: AtomicU64,
}

struct ProxyState {
    name: String,
    /// The listen address as the client asked for it (may have port 0 or a host name).
    listen_requested: String,
    /// The listen address shown: the bound address once it listened.
    listen: String,
    upstream: String,
    toxics: Vec<ChainToxic>,
    chain_tx: watch::Sender<Chain>,
    running: Option<Running>,
}

/// An enabled proxy's accept task; it owns the listener and the connection tasks.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ProxyState {
    fn new(name: String, listen: String, upstream: String) -> ProxyState {
        let listen = if listen.is_empty() {
            DEFAULT_LISTEN.to_string()
        } else {
            listen
        };
        ProxyState {
            name,
            listen_requested: listen.clone(),
            listen,
            upstream,
            toxics: Vec::new(),
            chain_tx: watch::Sender::new(Arc::new(Vec::new())),
            running: None,
        }
    }

    fn enabled(&self) -> bool {
        self.running.is_some()
    }

    fn wire(&self) -> Proxy {
        Proxy {
            name: self.name.clone(),
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            enabled: self.enabled(),
            toxics: self.wire_toxics(),
        }
    }

    /// Upstream toxics first, then downstream, each in the order added (as Toxiproxy lists).
    fn wire_toxics(&self) -> Vec<Toxic> {
        let of = |s: Stream| {
            self.toxics
                .iter()
                .filter(move |c| c.toxic.stream == s)
                .map(|c| c.toxic.clone())
        };
        of(Stream::Upstream).chain(of(Stream::Downstream)).collect()
    }

    fn find_toxic(&self, name: &str) -> Option<usize> {
        self.toxics.iter().position(|c| c.toxic.name == name)
    }

    fn publish(&self) {
        self.chain_tx.send_replace(Arc::new(self.toxics.clone()));
    }

    /// Opens the listener and starts accepting. The shown `listen` becomes the bound address.
    async fn start(&mut self) -> ApiResult<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.listen.as_str())
            .await
            .map_err(|e| ApiError::new(format!("listen tcp {}: {e}", self.listen), 500))?;
        if let Ok(addr) = listener.local_addr() {
            self.listen = addr.to_string();
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        let upstream: Arc<str> = self.upstream.as_str().into();
        let chain = self.chain_tx.subscribe();
        let task = tokio::spawn(accept_loop(listener, upstream, chain, stop_rx));
        self.running = Some(Running {
            stop: stop_tx,
            task,
        });
        Ok(())
    }

    /// Closes the listener and every connection, and waits (boundedly) until they are closed.
    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let mut task = r.task;
            let bound = Duration::from_millis(STOP_TIMEOUT_MS);
            if tokio::time::timeout(bound, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: Arc<str>,
    chain: watch::Receiver<Chain>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => {
                    conns.spawn(link::serve(socket, upstream.clone(), chain.clone()));
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

/// `POST /proxies` body.
#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    listen: String,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    enabled: Option<bool>,
}

/// `POST /proxies/{name}` body: absent fields keep their values.
#[derive(Deserialize)]
struct UpdateBody {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// `POST /proxies/{name}/toxics` body.
#[derive(Deserialize)]
struct ToxicBody {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "type")]
    type_name: String,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    toxicity: Option<f64>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
}

/// `POST /proxies/{name}/toxics/{toxic}` body.
#[derive(Deserialize)]
struct ToxicUpdateBody {
    #[serde(default)]
    toxicity: Option<f64>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(ApiError::bad_body)
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            proxies: Mutex::new(BTreeMap::new()),
            next_uid: AtomicU64::new(1),
        }
    }

    fn uid(&self) -> u64 {
        self.next_uid.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) async fn list(&self) -> BTreeMap<String, Proxy> {
        let proxies = self.proxies.lock().await;
        proxies
            .iter()
            .map(|(name, p)| (name.clone(), p.wire()))
            .collect()
    }

    pub(crate) async fn create(&self, body: &[u8]) -> ApiResult<Proxy> {
        let b: CreateBody = decode(body)?;
        if b.name.is_empty() {
            return Err(ApiError::missing("name"));
        }
        if b.upstream.is_empty() {
            return Err(ApiError::missing("upstream"));
        }
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&b.name) {
            return Err(ApiError::new("proxy already exists", 409));
        }
        let mut p = ProxyState::new(b.name.clone(), b.listen, b.upstream);
        if b.enabled.unwrap_or(true) {
            p.start().await?;
        }
        let wire = p.wire();
        proxies.insert(b.name, p);
        Ok(wire)
    }

    pub(crate) async fn show(&self, name: &str) -> ApiResult<Proxy> {
        let proxies = self.proxies.lock().await;
        proxies
            .get(name)
            .map(ProxyState::wire)
            .ok_or_else(ApiError::proxy_not_found)
    }

    pub(crate) async fn update(&self, name: &str, body: &[u8]) -> ApiResult<Proxy> {
        let mut proxies = self.proxies.lock().await;
        let p = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let b: UpdateBody = decode(body)?;
        let listen = b.listen.unwrap_or_else(|| p.listen.clone());
        let upstream = b.upstream.unwrap_or_else(|| p.upstream.clone());
        let enabled = b.enabled.unwrap_or(p.enabled());
        if listen != p.listen || upstream != p.upstream {
            p.stop().await;
            p.listen_requested = listen.clone();
            p.listen = listen;
            p.upstream = upstream;
        }
        if enabled && !p.enabled() {
            p.start().await?;
        } else if !enabled {
            p.stop().await;
        }
        Ok(p.wire())
    }

    pub(crate) async fn delete(&self, name: &str) -> ApiResult<()> {
        let mut proxies = self.proxies.lock().await;
        let mut p = proxies.remove(name).ok_or_else(ApiError::proxy_not_found)?;
        p.stop().await;
        Ok(())
    }

    pub(crate) async fn toxics(&self, proxy: &str) -> ApiResult<Vec<Toxic>> {
        let proxies = self.proxies.lock().await;
        let p = proxies.get(proxy).ok_or_else(ApiError::proxy_not_found)?;
        Ok(p.wire_toxics())
    }

    pub(crate) async fn add_toxic(&self, proxy: &str, body: &[u8]) -> ApiResult<Toxic> {
        let mut proxies = self.proxies.lock().await;
        let p = proxies
            .get_mut(proxy)
            .ok_or_else(ApiError::proxy_not_found)?;
        let b: ToxicBody = decode(body)?;
        let stream_name = b.stream.unwrap_or_else(|| "downstream".to_string());
        let stream = Stream::parse(&stream_name.to_ascii_lowercase()).ok_or_else(|| {
            ApiError::new(
                "stream was invalid, can be either upstream or downstream",
                400,
            )
        })?;
        let name = if b.name.is_empty() {
            format!("{}_{}", b.type_name, stream)
        } else {
            b.name
        };
        if !TOXIC_TYPES.contains(&b.type_name.as_str()) {
            return Err(ApiError::new("invalid toxic type", 400));
        }
        if p.find_toxic(&name).is_some() {
            return Err(ApiError::new("toxic already exists", 409));
        }
        let attributes = b.attributes.unwrap_or_default();
        let kind = ToxicKind::from_wire(&b.type_name, &attributes).map_err(ApiError::bad_body)?;
        let toxic = Toxic {
            name,
            stream,
            toxicity: b.toxicity.unwrap_or(1.0),
            kind,
        };
        p.toxics.push(ChainToxic {
            uid: self.uid(),
            revision: self.uid(),
            toxic: toxic.clone(),
        });
        p.publish();
        Ok(toxic)
    }

    pub(crate) async fn show_toxic(&self, proxy: &str, toxic: &str) -> ApiResult<Toxic> {
        let proxies = self.proxies.lock().await;
        let p = proxies.get(proxy).ok_or_else(ApiError::proxy_not_found)?;
        let i = p.find_toxic(toxic).ok_or_else(ApiError::toxic_not_found)?;
        Ok(p.toxics[i].toxic.clone())
    }

    /// Merges the given attributes and toxicity into the toxic; its name, type and stream stay.
    pub(crate) async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        body: &[u8],
    ) -> ApiResult<Toxic> {
        let mut proxies = self.proxies.lock().await;
        let p = proxies
            .get_mut(proxy)
            .ok_or_else(ApiError::proxy_not_found)?;
        let i = p.find_toxic(toxic).ok_or_else(ApiError::toxic_not_found)?;
        let b: ToxicUpdateBody = decode(body)?;
        let current = &p.toxics[i].toxic;
        let mut attributes = current.kind.attributes();
        attributes.extend(b.attributes.unwrap_or_default());
        let kind = ToxicKind::from_wire(current.kind.type_name(), &attributes)
            .map_err(ApiError::bad_body)?;
        let toxicity = b.toxicity.unwrap_or(current.toxicity);
        let revision = self.uid();
        let entry = &mut p.toxics[i];
        entry.toxic.kind = kind;
        entry.toxic.toxicity = toxicity;
        entry.revision = revision;
        let updated = entry.toxic.clone();
        p.publish();
        Ok(updated)
    }

    pub(crate) async fn remove_toxic(&self, proxy: &str, toxic: &str) -> ApiResult<()> {
        let mut proxies = self.proxies.lock().await;
        let p = proxies
            .get_mut(proxy)
            .ok_or_else(ApiError::proxy_not_found)?;
        let i = p.find_toxic(toxic).ok_or_else(ApiError::toxic_not_found)?;
        p.toxics.remove(i);
        p.publish();
        Ok(())
    }

    /// Enables every proxy and removes every toxic.
    pub(crate) async fn reset(&self) -> ApiResult<()> {
        let mut proxies = self.proxies.lock().await;
        for p in proxies.values_mut() {
            p.start().await?;
            p.toxics.clear();
            p.publish();
        }
        Ok(())
    }

    /// Creates or replaces a list of proxies. Validates the whole list before changing
    /// anything; a proxy whose listen and upstream are unchanged is kept as it is. Answers the
    /// proxies handled so far, and the error that stopped it, if any.
    pub(crate) async fn populate(&self, body: &[u8]) -> (Vec<Proxy>, Option<ApiError>) {
        let entries: Vec<CreateBody> = match decode(body) {
            Ok(e) => e,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut seen = std::collections::HashSet::new();
        for (i, e) in entries.iter().enumerate() {
            if e.name.is_empty() {
                return (
                    Vec::new(),
                    Some(ApiError::missing(&format!("name at proxy {}", i + 1))),
                );
            }
            if e.upstream.is_empty() {
                let field = format!("upstream at proxy {}", i + 1);
                return (Vec::new(), Some(ApiError::missing(&field)));
            }
            if !seen.insert(e.name.as_str()) {
                let msg = format!("duplicate proxy name {:?}", e.name);
                return (Vec::new(), Some(ApiError::bad_body(msg)));
            }
        }
        let mut proxies = self.proxies.lock().await;
        let mut done = Vec::new();
        for e in entries {
            if let Some(existing) = proxies.get(&e.name) {
                let same_listen = e.listen == existing.listen
                    || e.listen == existing.listen_requested
                    || (e.listen.is_empty() && existing.listen_requested == DEFAULT_LISTEN);
                if same_listen && e.upstream == existing.upstream {
                    done.push(existing.wire());
                    continue;
                }
            }
            if let Some(mut old) = proxies.remove(&e.name) {
                old.stop().await;
            }
            let mut p = ProxyState::new(e.name.clone(), e.listen, e.upstream);
            if e.enabled.unwrap_or(true) {
                if let Err(err) = p.start().await {
                    return (done, Some(err));
                }
            }
            done.push(p.wire());
            proxies.insert(e.name, p);
        }
        (done, None)
    }

    /// Stops every proxy (listeners and connections) and forgets them.
    pub(crate) async fn shutdown(&self) {
        let mut proxies = self.proxies.lock().await;
        for p in proxies.values_mut() {
            p.stop().await;
        }
        proxies.clear();
    }
}
