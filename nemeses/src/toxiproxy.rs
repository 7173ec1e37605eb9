//! Toxiproxy's HTTP API: its JSON shapes and our own async client for it.
//!
//! The controller reaches proxies only through this module, never through the proxy server's
//! internals, so that a real Toxiproxy can be swapped in by address and our server is held to
//! the same contract. The wire types here are shared with our server (`crate::proxy`), which
//! keeps the two sides from drifting apart: one definition of a toxic's JSON, used both to
//! produce and to consume it.
//!
//! Toxics are typed (`ToxicKind`) with units in the field names, and serialise to Toxiproxy's
//! `{"name", "type", "stream", "toxicity", "attributes"}` object. Toxic types this crate does not
//! model (a newer Toxiproxy's `slow_open`, say) round-trip as `ToxicKind::Other`, so listing a
//! real Toxiproxy's proxies never fails on them.
//!
//! Every request has a bound (`REQUEST_TIMEOUT_MS`); errors keep the server's status code and its
//! `error` message, so a caller can tell "not found" from "already exists" from a dead server.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Bound on one HTTP request to the Toxiproxy API, connection included.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Bound on establishing the TCP connection to the Toxiproxy API.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;

/// Which direction of a proxied connection a toxic acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to upstream server (requests).
    Upstream,
    /// Upstream server to client (responses). Toxiproxy's default.
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    pub fn parse(s: &str) -> Option<Stream> {
        match s {
            "upstream" => Some(Stream::Upstream),
            "downstream" => Some(Stream::Downstream),
            _ => None,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a toxic does, with its attributes. Units are in the field names; on the wire they are
/// Toxiproxy's attribute names (`latency`, `jitter`, `rate`, `delay`, `timeout`,
/// `average_size`, `size_variation`, `bytes`).
#[derive(Clone, Debug, PartialEq)]
pub enum ToxicKind {
    /// Delays data by `latency_ms` plus or minus up to `jitter_ms`.
    Latency { latency_ms: u64, jitter_ms: u64 },
    /// Caps throughput at `rate_kb_per_s` kilobytes (1000 bytes) per second; 0 = no cap.
    Bandwidth { rate_kb_per_s: u64 },
    /// Delays the close of the connection by `delay_ms` after the sender closed.
    SlowClose { delay_ms: u64 },
    /// Drops all data; closes the connection after `timeout_ms`, or never when 0 (a black
    /// hole until the toxic is removed; removing it closes the affected connections).
    Timeout { timeout_ms: u64 },
    /// On data, waits `timeout_ms` and then resets both sides with a TCP RST.
    ResetPeer { timeout_ms: u64 },
    /// Splits data into pieces of `average_size_bytes` plus or minus `size_variation_bytes`,
    /// `delay_us` microseconds apart.
    Slicer {
        average_size_bytes: u64,
        size_variation_bytes: u64,
        delay_us: u64,
    },
    /// Passes `bytes` bytes, then closes the connection.
    LimitData { bytes: u64 },
    /// A toxic type this crate does not model, kept as it came.
    Other {
        type_name: String,
        attributes: Map<String, Value>,
    },
}

/// The toxic types our server implements, by their wire name.
pub const TOXIC_TYPES: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
];

impl ToxicKind {
    /// Toxiproxy's name for this toxic type (`"latency"`, `"limit_data"`, ...).
    pub fn type_name(&self) -> &str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Other { type_name, .. } => type_name,
        }
    }

    /// The `attributes` object, with Toxiproxy's attribute names.
    pub fn attributes(&self) -> Map<String, Value> {
        fn obj(pairs: &[(&str, u64)]) -> Map<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect()
        }
        match self {
            ToxicKind::Latency {
                latency_ms,
                jitter_ms,
            } => obj(&[("latency", *latency_ms), ("jitter", *jitter_ms)]),
            ToxicKind::Bandwidth { rate_kb_per_s } => obj(&[("rate", *rate_kb_per_s)]),
            ToxicKind::SlowClose { delay_ms } => obj(&[("delay", *delay_ms)]),
            ToxicKind::Timeout { timeout_ms } => obj(&[("timeout", *timeout_ms)]),
            ToxicKind::ResetPeer { timeout_ms } => obj(&[("timeout", *timeout_ms)]),
            ToxicKind::Slicer {
                average_size_bytes,
                size_variation_bytes,
                delay_us,
            } => obj(&[
                ("average_size", *average_size_bytes),
                ("size_variation", *size_variation_bytes),
                ("delay", *delay_us),
            ]),
            ToxicKind::LimitData { bytes } => obj(&[("bytes", *bytes)]),
            ToxicKind::Other { attributes, .. } => attributes.clone(),
        }
    }

    /// Builds a kind from a type name and an attributes object, as Toxiproxy decodes them:
    /// missing attributes are 0, unknown attributes are ignored. A known type whose attribute
    /// is not a non-negative integer is an error naming the attribute; an unknown type becomes
    /// `Other`.
    pub fn from_wire(type_name: &str, attributes: &Map<String, Value>) -> Result<Self, String> {
        let get = |key: &str| -> Result<u64, String> {
            match attributes.get(key) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => v.as_u64().ok_or_else(|| {
                    format!("attribute {key} must be a non-negative integer, got {v}")
                }),
            }
        };
        Ok(match type_name {
            "latency" => ToxicKind::Latency {
                latency_ms: get("latency")?,
                jitter_ms: get("jitter")?,
            },
            "bandwidth" => ToxicKind::Bandwidth {
                rate_kb_per_s: get("rate")?,
            },
            "slow_close" => ToxicKind::SlowClose {
                delay_ms: get("delay")?,
            },
            "timeout" => ToxicKind::Timeout {
                timeout_ms: get("timeout")?,
            },
            "reset_peer" => ToxicKind::ResetPeer {
                timeout_ms: get("timeout")?,
            },
            "slicer" => ToxicKind::Slicer {
                average_size_bytes: get("average_size")?,
                size_variation_bytes: get("size_variation")?,
                delay_us: get("delay")?,
            },
            "limit_data" => ToxicKind::LimitData {
                bytes: get("bytes")?,
            },
            other => ToxicKind::Other {
                type_name: other.to_string(),
                attributes: attributes.clone(),
            },
        })
    }
}

/// A toxic as Toxiproxy shows it. `Toxic::new` fills Toxiproxy's defaults: the name
/// `<type>_<stream>` and toxicity 1.0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireToxic", into = "WireToxic")]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    /// Probability in [0, 1] that the toxic acts on a given connection.
    pub toxicity: f64,
    pub kind: ToxicKind,
}

impl Toxic {
    pub fn new(kind: ToxicKind, stream: Stream) -> Toxic {
        Toxic {
            name: format!("{}_{}", kind.type_name(), stream),
            stream,
            toxicity: 1.0,
            kind,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Toxic {
        self.name = name.into();
        self
    }

    pub fn with_toxicity(mut self, toxicity: f64) -> Toxic {
        self.toxicity = toxicity;
        self
    }
}

/// Toxiproxy's JSON object for a toxic.
#[derive(Serialize, Deserialize)]
struct WireToxic {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    stream: Stream,
    toxicity: f64,
    #[serde(default)]
    attributes: Map<String, Value>,
}

impl TryFrom<WireToxic> for Toxic {
    type Error = String;
    fn try_from(w: WireToxic) -> Result<Toxic, String> {
        Ok(Toxic {
            kind: ToxicKind::from_wire(&w.type_name, &w.attributes)?,
            name: w.name,
            stream: w.stream,
            toxicity: w.toxicity,
        })
    }
}

impl From<Toxic> for WireToxic {
    fn from(t: Toxic) -> WireToxic {
        WireToxic {
            type_name: t.kind.type_name().to_string(),
            attributes: t.kind.attributes(),
            name: t.name,
            stream: t.stream,
            toxicity: t.toxicity,
        }
    }
}

/// A proxy as Toxiproxy shows it, with its active toxics (upstream ones first, each stream in
/// the order they were added).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    pub name: String,
    /// The address the proxy listens on; once it listened, the bound address (a requested
    /// port 0 shows as the port the system chose).
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

/// The body that creates a proxy (`POST /proxies`, `POST /populate`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyConfig {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
}

impl ProxyConfig {
    /// An enabled proxy named `name` from `listen` to `upstream`.
    pub fn new(
        name: impl Into<String>,
        listen: impl Into<String>,
        upstream: impl Into<String>,
    ) -> ProxyConfig {
        ProxyConfig {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: true,
        }
    }
}

/// A partial update of a proxy (`POST /proxies/{name}`): absent fields keep their value.
/// Changing `listen` or `upstream` restarts the proxy and drops its connections.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Toxiproxy's error body: `{"error": "...", "status": N}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: String,
    pub status: u16,
}

/// What went wrong talking to a Toxiproxy API.
#[derive(Debug)]
pub enum Error {
    /// The server answered with an error status; `message` is its `error` field (or the raw
    /// body when it was not Toxiproxy's error shape).
    Api {
        status: u16,
        message: String,
        context: String,
    },
    /// No answer: connection refused, timed out, broken.
    Transport {
        context: String,
        source: reqwest::Error,
    },
    /// The answer was not the JSON we expected.
    Decode { context: String, message: String },
    /// The server address could not be made into a URL.
    BadAddress(String),
}

impl Error {
    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api {
                status,
                message,
                context,
            } => write!(f, "{context}: HTTP {status}: {message}"),
            Error::Transport { context, source } => write!(f, "{context}: {source}"),
            Error::Decode { context, message } => {
                write!(f, "{context}: unexpected answer: {message}")
            }
            Error::BadAddress(addr) => write!(f, "bad Toxiproxy address {addr:?}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An async client for one Toxiproxy API server (ours or a real Toxiproxy).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client for the API at `addr`: `host:port` (Toxiproxy's default is
    /// `127.0.0.1:8474`) or a full `http://host:port` URL.
    pub fn new(addr: &str) -> Result<Client> {
        let addr = addr.trim().trim_end_matches('/');
        if addr.is_empty() {
            return Err(Error::BadAddress(addr.to_string()));
        }
        let base = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        if reqwest::Url::parse(&base).is_err() {
            return Err(Error::BadAddress(addr.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport {
                context: "building the HTTP client".to_string(),
                source: e,
            })?;
        Ok(Client { http, base })
    }

    /// The base URL requests go to, e.g. `http://127.0.0.1:8474`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /version`: the server's version string.
    pub async fn version(&self) -> Result<String> {
        let ctx = "GET /version".to_string();
        let text = self.send(self.http.get(self.url("/version")), &ctx).await?;
        // Toxiproxy 2.6+ answers {"version": "..."}; older ones answer the bare string.
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => match m.get("version") {
                Some(Value::String(v)) => Ok(v.clone()),
                _ => Err(Error::Decode {
                    context: ctx,
                    message: format!("no version field in {text:?}"),
                }),
            },
            _ => Ok(text.trim().to_string()),
        }
    }

    /// `GET /proxies`: every proxy with its toxics, by name.
    pub async fn proxies(&self) -> Result<BTreeMap<String, Proxy>> {
        let ctx = "GET /proxies".to_string();
        let text = self.send(self.http.get(self.url("/proxies")), &ctx).await?;
        decode(&text, ctx)
    }

    /// `GET /proxies/{name}`.
    pub async fn proxy(&self, name: &str) -> Result<Proxy> {
        let path = format!("/proxies/{}", seg(name));
        let ctx = format!("GET {path}");
        let text = self.send(self.http.get(self.url(&path)), &ctx).await?;
        decode(&text, ctx)
    }

    /// `POST /proxies`: creates a proxy; 409 if the name is taken.
    pub async fn create_proxy(&self, config: &ProxyConfig) -> Result<Proxy> {
        let ctx = format!("POST /proxies {}", config.name);
        let text = self
            .send(self.http.post(self.url("/proxies")).json(config), &ctx)
            .await?;
        decode(&text, ctx)
    }

    /// `POST /proxies/{name}`: changes some fields of a proxy.
    pub async fn update_proxy(&self, name: &str, update: &ProxyUpdate) -> Result<Proxy> {
        let path = format!("/proxies/{}", seg(name));
        let ctx = format!("POST {path}");
        let text = self
            .send(self.http.post(self.url(&path)).json(update), &ctx)
            .await?;
        decode(&text, ctx)
    }

    /// Enables or disables a proxy. Disabling closes its listener (new connections are
    /// refused) and its open connections.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<Proxy> {
        let update = ProxyUpdate {
            enabled: Some(enabled),
            ..ProxyUpdate::default()
        };
        self.update_proxy(name, &update).await
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete_proxy(&self, name: &str) -> Result<()> {
        let path = format!("/proxies/{}", seg(name));
        let ctx = format!("DELETE {path}");
        self.send(self.http.delete(self.url(&path)), &ctx).await?;
        Ok(())
    }

    /// `POST /populate`: creates the proxies that do not exist, replaces those whose listen or
    /// upstream differ, keeps the rest; returns them all.
    pub async fn populate(&self, configs: &[ProxyConfig]) -> Result<Vec<Proxy>> {
        #[derive(Deserialize)]
        struct Populated {
            proxies: Option<Vec<Proxy>>,
        }
        let ctx = "POST /populate".to_string();
        let text = self
            .send(self.http.post(self.url("/populate")).json(configs), &ctx)
            .await?;
        let p: Populated = decode(&text, ctx)?;
        Ok(p.proxies.unwrap_or_default())
    }

    /// `GET /proxies/{proxy}/toxics`.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>> {
        let path = format!("/proxies/{}/toxics", seg(proxy));
        let ctx = format!("GET {path}");
        let text = self.send(self.http.get(self.url(&path)), &ctx).await?;
        decode(&text, ctx)
    }

    /// `POST /proxies/{proxy}/toxics`: adds a toxic; it acts on open connections too.
    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<Toxic> {
        let path = format!("/proxies/{}/toxics", seg(proxy));
        let ctx = format!("POST {path} {}", toxic.name);
        let text = self
            .send(self.http.post(self.url(&path)).json(toxic), &ctx)
            .await?;
        decode(&text, ctx)
    }

    /// `GET /proxies/{proxy}/toxics/{name}`.
    pub async fn toxic(&self, proxy: &str, name: &str) -> Result<Toxic> {
        let path = format!("/proxies/{}/toxics/{}", seg(proxy), seg(name));
        let ctx = format!("GET {path}");
        let text = self.send(self.http.get(self.url(&path)), &ctx).await?;
        decode(&text, ctx)
    }

    /// `POST /proxies/{proxy}/toxics/{name}`: replaces the attributes and toxicity of an
    /// existing toxic with those of `toxic` (its name, type and stream stay).
    pub async fn update_toxic(&self, proxy: &str, name: &str, toxic: &Toxic) -> Result<Toxic> {
        let path = format!("/proxies/{}/toxics/{}", seg(proxy), seg(name));
        let ctx = format!("POST {path}");
        let body = serde_json::json!({
            "attributes": toxic.kind.attributes(),
            "toxicity": toxic.toxicity,
        });
        let text = self
            .send(self.http.post(self.url(&path)).json(&body), &ctx)
            .await?;
        decode(&text, ctx)
    }

    /// `DELETE /proxies/{proxy}/toxics/{name}`.
    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<()> {
        let path = format!("/proxies/{}/toxics/{}", seg(proxy), seg(name));
        let ctx = format!("DELETE {path}");
        self.send(self.http.delete(self.url(&path)), &ctx).await?;
        Ok(())
    }

    /// `POST /reset`: enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<()> {
        let ctx = "POST /reset".to_string();
        self.send(self.http.post(self.url("/reset")), &ctx).await?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; a 2xx answer gives its body, anything else an `Error::Api`.
    async fn send(&self, req: reqwest::RequestBuilder, ctx: &str) -> Result<String> {
        let transport = |e| Error::Transport {
            context: ctx.to_string(),
            source: e,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if status.is_success() {
            return Ok(text);
        }
        let message = match serde_json::from_str::<ApiErrorBody>(&text) {
            Ok(body) => body.error,
            Err(_) => text.trim().to_string(),
        };
        Err(Error::Api {
            status: status.as_u16(),
            message,
            context: ctx.to_string(),
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, context: String) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Decode {
        context,
        message: format!("{e} in {}", truncate(text, 200)),
    })
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars).collect();
        t.push('…');
        t
    }
}

/// Percent-encodes a path segment (proxy and toxic names are free-form strings).
fn seg(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toxic_json_has_toxiproxys_shape() {
        let t = Toxic::new(
            ToxicKind::Latency {
                latency_ms: 100,
                jitter_ms: 5,
            },
            Stream::Upstream,
        )
        .with_toxicity(0.5);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "latency_upstream", "type": "latency", "stream": "upstream",
                "toxicity": 0.5, "attributes": {"latency": 100, "jitter": 5}})
        );
        let back: Toxic = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn unknown_toxic_types_round_trip() {
        let v = serde_json::json!({"name": "x", "type": "slow_open", "stream": "downstream",
            "toxicity": 1.0, "attributes": {"delay": 3}});
        let t: Toxic = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(t.kind.type_name(), "slow_open");
        assert_eq!(serde_json::to_value(&t).unwrap(), v);
    }

    #[test]
    fn known_toxic_with_bad_attribute_is_an_error() {
        let v = serde_json::json!({"name": "x", "type": "latency", "stream": "downstream",
            "toxicity": 1.0, "attributes": {"latency": -3}});
        let err = serde_json::from_value::<Toxic>(v).unwrap_err().to_string();
        assert!(err.contains("latency"), "{err}");
    }

    #[test]
    fn addresses_become_base_urls() {
        assert_eq!(
            Client::new("127.0.0.1:8474").unwrap().base_url(),
            "http://127.0.0.1:8474"
        );
        assert_eq!(
            Client::new("http://toxiproxy:8474/").unwrap().base_url(),
            "http://toxiproxy:8474"
        );
        assert!(Client::new("").is_err());
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}
