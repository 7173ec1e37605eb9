//! A user's own system, from a plan's `[system]` table (docs/your-system.md is the user's
//! manual; this is the implementation).
//!
//! The table compiles to the same [`System`] the built-in constructors produce: node commands
//! rendered from a template, files, ports, a readiness probe, a leader query. So every fault
//! (iptables partitions, kill and restart with data kept, pause, the clock shim, proxy links)
//! works on it without a line of code of its own, and a fault added later reaches it too.
//!
//! Design decisions:
//! - Everything is checked before anything starts ([`UserSystem::check`]): placeholders are
//!   parsed, not substituted blindly, so `{adrs:client}` is an error naming the key rather than
//!   a node that starts with a literal brace in its flags; port names are resolved; files are
//!   read. Each error is one line that names the key (`system.command: ...`).
//! - Three image sources, and none pulls: faultline's base image; the base image's recipe plus
//!   Debian packages, built by the same mmdebstrap path and cached under the hash of the whole
//!   recipe (`images::system_image`); or a local image the user built, which must exist.
//! - The client program runs on the host (it is the user's test code, not part of the system)
//!   in the plan's folder, and reaches nodes through the loopback ports the controller publishes.
//! - The data folder lives in the container's own file system, like the built-ins', so kill -9
//!   and restart keep it; nothing else is needed for "data kept across restarts".
//! - A user's own image needs none of faultline's tools: partitions run from a helper container
//!   per node that shares the node's network namespace (`net_helper.rs`), and the link proxy
//!   runs on faultline's image beside the nodes. Both are the run's (`run::helpers_needed`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::system::{
    LeaderQuery, NodeFile, NodeSpec, PortSpec, Probe, System, SystemParams, DEFAULT_PROBE_INTERVAL,
};

/// Where a file given by its name alone goes: `/opt/<system>/<file name>`.
pub const DEFAULT_FILES_DIR: &str = "/opt";
/// Nodes when the table does not say.
const DEFAULT_NODES: usize = 3;
/// Bound on the node count of a user's system.
pub const NODES_MAX: usize = 9;
/// Readiness bound when the table does not say.
const DEFAULT_READY_TIMEOUT_S: u64 = 60;
/// Longest readiness bound a table may ask for.
const READY_TIMEOUT_MAX_S: u64 = 600;

/// The `[system]` table of a plan. Key by key in docs/your-system.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSystem {
    /// The system's name (store folders, reports, run ids): letters, digits and dashes.
    pub name: String,
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    /// A local image of the user's (never pulled); absent: faultline's base image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Debian packages added to faultline's base image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Host files copied into every node, relative to the plan file's folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    /// The node's command, one argument per element, with placeholders.
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Named container ports: `client = 8000`, `peer = 9000`.
    pub ports: BTreeMap<String, u16>,
    /// The node's data folder, kept across kill and restart (may use `{name}`).
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    pub ready: ReadyCheck,
    /// How to ask who leads; turns on the leader-aimed fault shapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderCheck>,
    /// The port (by name) the proxy links sit in front of with `--links proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<String>,
    /// The client program (run on the host, in the plan's folder), one argument per element.
    /// Empty only when a Rust program runs faultline as a library and gives its own
    /// `ClientFactory` ([`crate::run::execute_with_client`]); a run without either refuses to
    /// start.
    #[serde(default)]
    pub client: Vec<String>,
    /// Environment of the client program.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_env: BTreeMap<String, String>,
}

fn default_nodes() -> usize {
    DEFAULT_NODES
}

fn default_data_dir() -> String {
    "/data/{name}".into()
}

/// A file to copy: a path alone (to `/opt/<system>/<file name>`, its mode kept), or where to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileEntry {
    Path(String),
    To {
        from: String,
        to: String,
        /// Octal permission bits as text, e.g. "0755"; absent: the host file's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
    },
}

/// `[system.ready]`: exactly one of `tcp`, `http`, `command`, and a time bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyCheck {
    /// A TCP connect to this named port succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// An HTTP GET answers 2xx (and holds `body_contains`, when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCall>,
    /// A command run in the node exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// How long all nodes together may take, e.g. "30s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// An HTTP GET of `path` on a named port of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    pub port: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

/// `[system.leader]`: exactly one of `http`, `command`; the answer's first line names the
/// leader (a node name); asked of every node, a majority of the answers decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

/// Where a user's nodes' image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// faultline's base image.
    Base,
    /// The base image's recipe plus these Debian packages, built on first use.
    BasePlus(Vec<String>),
    /// The user's own image, which must exist locally.
    Local(String),
}

/// A checked `[system]` table with its files read: what a run starts.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub def: UserSystem,
    /// The files to copy, read from the host.
    pub files: Vec<NodeFile>,
    /// The plan's folder: where relative paths (files, the client program) start.
    pub base_dir: PathBuf,
}

impl UserSystem {
    /// The table from a plan's TOML value; an error names the key.
    pub fn from_toml(value: toml::Value) -> Result<UserSystem, String> {
        UserSystem::deserialize(value).map_err(|e| format!("system: {}", e.message().trim()))
    }

    pub fn image_source(&self) -> ImageSource {
        match (&self.image, self.packages.is_empty()) {
            (Some(image), _) => ImageSource::Local(image.clone()),
            (None, true) => ImageSource::Base,
            (None, false) => ImageSource::BasePlus(self.packages.clone()),
        }
    }

    /// Node names `n1..nN`.
    pub fn node_names(&self) -> Vec<String> {
        super::systems::node_names(self.nodes)
    }

    /// Everything checkable before a run starts (not the image, which needs Docker): one
    /// line naming the key on error. `base_dir` is the plan file's folder.
    pub fn check(&self, base_dir: &Path) -> Result<Resolved, String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            || self.name.starts_with('-')
        {
            return Err(format!(
                "system.name: {:?} must be letters, digits and dashes",
                self.name
            ));
        }
        if crate::plan::SYSTEMS.contains(&self.name.as_str()) || self.name.starts_with("memory") {
            return Err(format!(
                "system.name: {:?} is a system faultline ships; give yours another name",
                self.name
            ));
        }
        if self.nodes == 0 || self.nodes > NODES_MAX {
            return Err(format!(
                "system.nodes: expected 1 to {NODES_MAX}, not {}",
                self.nodes
            ));
        }
        if self.image.is_some() && !self.packages.is_empty() {
            return Err("system.packages: packages go into faultline's base image; a local system.image brings its own".into());
        }
        if let Some(image) = &self.image {
            if image.trim().is_empty() || image.contains(char::is_whitespace) {
                return Err(format!("system.image: {image:?} is not an image reference"));
            }
        }
        for p in &self.packages {
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:=~".contains(c));
            if !ok {
                return Err(format!(
                    "system.packages: {p:?} is not a Debian package name"
                ));
            }
        }
        if self.ports.is_empty() {
            return Err("system.ports: name at least one port, e.g. client = 8000".into());
        }
        for (name, port) in &self.ports {
            if *port == 0 {
                return Err(format!("system.ports.{name}: 0 is not a port"));
            }
        }
        if self.command.is_empty() {
            return Err(
                "system.command: give the node's command, e.g. [\"mykv\", \"--name={name}\"]"
                    .into(),
            );
        }
        let template_ports = self.port_names();
        let check = |key: &str, text: &str| -> Result<(), String> {
            parse_template(text, &template_ports)
                .map(|_| ())
                .map_err(|e| format!("{key}: {e}"))
        };
        for a in &self.command {
            check("system.command", a)?;
        }
        for (k, v) in &self.env {
            check(&format!("system.env.{k}"), v)?;
        }
        let data_dir_vars =
            parse_template(&self.data_dir, &[]).map_err(|e| format!("system.data_dir: {e}"))?;
        let other_var = data_dir_vars.iter().find_map(|p| match p {
            Part::Var(v) if *v != Var::Name => Some(v),
            _ => None,
        });
        if let Some(v) = other_var {
            return Err(format!(
                "system.data_dir: only {{name}} may be used here, not {}",
                v.describe()
            ));
        }
        if !self.data_dir.starts_with('/') {
            return Err(format!(
                "system.data_dir: {:?} must be an absolute path",
                self.data_dir
            ));
        }
        self.ready_probe_template()?;
        if let Some(cmd) = &self.ready.command {
            for a in cmd {
                check("system.ready.command", a)?;
            }
        }
        self.ready_timeout()?;
        self.leader_query()?;
        // Asked of every node alike, so nothing node-specific: no placeholders.
        if let Some(cmd) = self.leader.as_ref().and_then(|l| l.command.as_ref()) {
            for a in cmd {
                let parts =
                    parse_template(a, &[]).map_err(|e| format!("system.leader.command: {e}"))?;
                if parts.iter().any(|p| matches!(p, Part::Var(_))) {
                    return Err(format!("system.leader.command: {a:?}: placeholders are not allowed here (the same command runs in every node)"));
                }
            }
        }
        if let Some(peer) = &self.peer_port {
            // With system.image the proxy runs on faultline's image beside the nodes.
            self.port_number("system.peer_port", peer)?;
        }
        let files = self.read_files(base_dir)?;
        Ok(Resolved {
            def: self.clone(),
            files,
            base_dir: base_dir.to_path_buf(),
        })
    }

    fn port_names(&self) -> Vec<String> {
        self.ports.keys().cloned().collect()
    }

    fn port_number(&self, key: &str, name: &str) -> Result<u16, String> {
        self.ports.get(name).copied().ok_or_else(|| {
            format!(
                "{key}: {name:?} names no port of system.ports ({})",
                self.port_names().join(", ")
            )
        })
    }

    fn ready_timeout(&self) -> Result<Duration, String> {
        let d = match &self.ready.timeout {
            None => Duration::from_secs(DEFAULT_READY_TIMEOUT_S),
            Some(t) => {
                crate::units::duration(t).map_err(|e| format!("system.ready.timeout: {e}"))?
            }
        };
        if d.is_zero() || d > Duration::from_secs(READY_TIMEOUT_MAX_S) {
            return Err(format!(
                "system.ready.timeout: expected more than 0 and at most {READY_TIMEOUT_MAX_S}s"
            ));
        }
        Ok(d)
    }

    /// The readiness probe, with commands not yet rendered.
    fn ready_probe_template(&self) -> Result<Probe, String> {
        let r = &self.ready;
        let given = [r.tcp.is_some(), r.http.is_some(), r.command.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err("system.ready: give exactly one of tcp = \"PORT\", http = { port = \"PORT\", path = \"/...\" }, command = [...]".into());
        }
        if let Some(port) = &r.tcp {
            self.port_number("system.ready.tcp", port)?;
            return Ok(Probe::Tcp(port.clone()));
        }
        if let Some(h) = &r.http {
            self.port_number("system.ready.http.port", &h.port)?;
            if !h.path.starts_with('/') {
                return Err(format!(
                    "system.ready.http.path: {:?} must start with /",
                    h.path
                ));
            }
            return Ok(Probe::Http {
                port: h.port.clone(),
                path: h.path.clone(),
                body_contains: h.body_contains.clone(),
            });
        }
        let cmd = r.command.clone().unwrap_or_default();
        if cmd.is_empty() {
            return Err("system.ready.command: give a command".into());
        }
        Ok(Probe::Exec {
            cmd,
            output_contains: None,
        })
    }

    fn leader_query(&self) -> Result<LeaderQuery, String> {
        let Some(l) = &self.leader else {
            return Ok(LeaderQuery::None);
        };
        match (&l.http, &l.command) {
            (Some(h), None) => {
                self.port_number("system.leader.http.port", &h.port)?;
                if !h.path.starts_with('/') {
                    return Err(format!("system.leader.http.path: {:?} must start with /", h.path));
                }
                Ok(LeaderQuery::Http {
                    port: h.port.clone(),
                    path: h.path.clone(),
                })
            }
            (None, Some(cmd)) if !cmd.is_empty() => Ok(LeaderQuery::Command(cmd.clone())),
            _ => Err("system.leader: give exactly one of http = { port = \"PORT\", path = \"/...\" }, command = [...]".into()),
        }
    }

    fn read_files(&self, base_dir: &Path) -> Result<Vec<NodeFile>, String> {
        let mut out: Vec<NodeFile> = Vec::new();
        for entry in &self.files {
            let (from, to, mode) = match entry {
                FileEntry::Path(p) => {
                    let file_name = Path::new(p)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| format!("system.files: {p:?} names no file"))?;
                    (
                        p.clone(),
                        format!("{DEFAULT_FILES_DIR}/{}/{file_name}", self.name),
                        None,
                    )
                }
                FileEntry::To { from, to, mode } => (from.clone(), to.clone(), mode.clone()),
            };
            if !to.starts_with('/') {
                return Err(format!(
                    "system.files: destination {to:?} must be an absolute path"
                ));
            }
            let path = base_dir.join(&from);
            let contents = std::fs::read(&path).map_err(|e| {
                format!(
                    "system.files: cannot read {} (paths are relative to the plan file's folder): {e}",
                    path.display()
                )
            })?;
            let mode = match mode {
                Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        format!("system.files: mode {m:?} is not octal like \"0755\"")
                    })?,
                None => host_mode(&path),
            };
            if out.iter().any(|f| f.path == to) {
                return Err(format!("system.files: two files go to {to}"));
            }
            out.push(NodeFile {
                path: to,
                contents,
                mode,
            });
        }
        Ok(out)
    }
}

#[cfg(unix)]
fn host_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644)
}

#[cfg(not(unix))]
fn host_mode(_: &Path) -> u32 {
    0o644
}

impl Resolved {
    /// The system as the cluster code runs it, on `image`, with `params` (node count and how
    /// nodes dial each other: the proxy links reroute the peer port).
    pub fn system(&self, image: &str, params: &SystemParams) -> Result<System> {
        let def = &self.def;
        let names = def.node_names();
        let ports = def.port_names();
        let probe_template = def.ready_probe_template().map_err(anyhow::Error::msg)?;
        let leader = def.leader_query().map_err(anyhow::Error::msg)?;
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ctx = NodeCtx {
                def,
                params,
                names: &names,
                me: name,
                index: i + 1,
            };
            let render = |t: &str| -> Result<String> {
                let parts = parse_template(t, &ports).map_err(anyhow::Error::msg)?;
                Ok(ctx.render(&parts))
            };
            let cmd = def
                .command
                .iter()
                .map(|a| render(a))
                .collect::<Result<_>>()?;
            let env = def
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), render(v)?)))
                .collect::<Result<_>>()?;
            let probe = match &probe_template {
                Probe::Exec {
                    cmd,
                    output_contains,
                } => Probe::Exec {
                    cmd: cmd.iter().map(|a| render(a)).collect::<Result<_>>()?,
                    output_contains: output_contains.clone(),
                },
                other => other.clone(),
            };
            nodes.push(NodeSpec {
                name: name.clone(),
                role: "server".into(),
                cmd,
                env,
                data_dir: ctx.data_dir(),
                files: self.files.clone(),
                ports: def
                    .ports
                    .iter()
                    .map(|(n, p)| PortSpec {
                        name: n.clone(),
                        container_port: *p,
                    })
                    .collect(),
                probe,
                log_files: vec![],
            });
        }
        Ok(System {
            name: def.name.clone(),
            image: image.to_string(),
            nodes,
            ready_timeout: def.ready_timeout().map_err(anyhow::Error::msg)?,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            leader,
        })
    }

    /// The container port the proxy links sit in front of, when the table names one.
    pub fn peer_port(&self) -> Option<u16> {
        let name = self.def.peer_port.as_ref()?;
        self.def.ports.get(name).copied()
    }
}

/// What one node's placeholders are rendered from.
struct NodeCtx<'a> {
    def: &'a UserSystem,
    params: &'a SystemParams,
    names: &'a [String],
    me: &'a str,
    index: usize,
}

impl NodeCtx<'_> {
    fn data_dir(&self) -> String {
        self.def.data_dir.replace("{name}", self.me)
    }

    fn addr(&self, to: &str, port: &str) -> String {
        self.params.dial_addr(self.me, to, self.def.ports[port])
    }

    fn list(&self, port: &str, others_only: bool, named: bool) -> String {
        self.names
            .iter()
            .filter(|n| !(others_only && *n == self.me))
            .map(|n| match named {
                true => format!("{n}={}", self.addr(n, port)),
                false => self.addr(n, port),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn render(&self, parts: &[Part]) -> String {
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(&match v {
                    Var::Name => self.me.to_string(),
                    Var::Index => self.index.to_string(),
                    Var::Nodes => self.names.join(","),
                    Var::DataDir => self.data_dir(),
                    Var::Port(p) => self.def.ports[p].to_string(),
                    Var::Addrs(p) => self.list(p, false, false),
                    Var::Peers(p) => self.list(p, true, false),
                    Var::Members(p) => self.list(p, false, true),
                }),
            }
        }
        out
    }
}

/// A placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Name,
    Index,
    Nodes,
    DataDir,
    Port(String),
    Addrs(String),
    Peers(String),
    Members(String),
}

impl Var {
    fn describe(&self) -> String {
        match self {
            Var::Name => "{name}".into(),
            Var::Index => "{index}".into(),
            Var::Nodes => "{nodes}".into(),
            Var::DataDir => "{data_dir}".into(),
            Var::Port(p) => format!("{{port:{p}}}"),
            Var::Addrs(p) => format!("{{addrs:{p}}}"),
            Var::Peers(p) => format!("{{peers:{p}}}"),
            Var::Members(p) => format!("{{members:{p}}}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// The placeholders a template may use, for messages.
pub const PLACEHOLDERS: &str = "{name}, {index}, {nodes}, {data_dir}, {port:P}, {addrs:P}, {peers:P}, {members:P} (P a port of system.ports); {{ and }} are literal braces";

/// Splits a template into text and placeholders; `{{` and `}}` are literal braces.
fn parse_template(t: &str, ports: &[String]) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut inner = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    inner.push(c);
                }
                if !closed {
                    return Err(format!(
                        "unclosed {{ in {t:?} (write {{{{ for a literal brace)"
                    ));
                }
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Var(parse_var(&inner, ports)?));
            }
            '}' => {
                return Err(format!(
                    "stray }} in {t:?} (write }}}} for a literal brace)"
                ))
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

fn parse_var(inner: &str, ports: &[String]) -> Result<Var, String> {
    let simple = match inner {
        "name" => Some(Var::Name),
        "index" => Some(Var::Index),
        "nodes" => Some(Var::Nodes),
        "data_dir" => Some(Var::DataDir),
        _ => None,
    };
    if let Some(v) = simple {
        return Ok(v);
    }
    let unknown = || format!("unknown placeholder {{{inner}}}; known: {PLACEHOLDERS}");
    let (kind, port) = inner.split_once(':').ok_or_else(unknown)?;
    let make: fn(String) -> Var = match kind {
        "port" => Var::Port,
        "addrs" => Var::Addrs,
        "peers" => Var::Peers,
        "members" => Var::Members,
        _ => return Err(unknown()),
    };
    if !ports.iter().any(|p| p == port) {
        return Err(format!(
            "{{{inner}}} names no port of system.ports ({})",
            ports.join(", ")
        ));
    }
    Ok(make(port.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
name = "pykv"
nodes = 3
packages = ["python3"]
files = ["store.py", { from = "store.py", to = "/usr/local/bin/pykv", mode = "0755" }]
command = ["python3", "/opt/pykv/store.py", "--name={name}", "--peers={peers:peer}", "--all={members:client}", "--data={data_dir}", "--listen=:{port:client}", "{{literal}}"]
env = { NODE = "{name}-{index}", ALL = "{nodes}" }
ports = { client = 8000, peer = 9000 }
ready = { http = { port = "client", path = "/health" }, timeout = "20s" }
leader = { command = ["cat", "/tmp/leader"] }
peer_port = "peer"
client = ["perl", "client.pl"]
"#;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("faultline-user-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("store.py"), "print('hi')\n").unwrap();
        d
    }

    fn table(extra: &str) -> Result<Resolved, String> {
        let mut value: toml::Value = toml::from_str(TABLE).unwrap();
        let patch: toml::Value = toml::from_str(extra).unwrap();
        for (k, v) in patch.as_table().unwrap() {
            value.as_table_mut().unwrap().insert(k.clone(), v.clone());
        }
        UserSystem::from_toml(value)?.check(&dir())
    }

    #[test]
    fn a_table_compiles_to_a_system_with_rendered_commands_files_and_probes() {
        let r = table("").unwrap();
        let s = r
            .system("faultline/system:abc", &SystemParams::default())
            .unwrap();
        assert_eq!(s.name, "pykv");
        assert_eq!(s.nodes.len(), 3);
        let n2 = s.node("n2").unwrap();
        assert_eq!(
            n2.cmd,
            [
                "python3",
                "/opt/pykv/store.py",
                "--name=n2",
                "--peers=n1:9000,n3:9000",
                "--all=n1=n1:8000,n2=n2:8000,n3=n3:8000",
                "--data=/data/n2",
                "--listen=:8000",
                "{literal}"
            ]
        );
        assert_eq!(
            n2.env,
            [
                ("ALL".to_string(), "n1,n2,n3".to_string()),
                ("NODE".to_string(), "n2-2".to_string())
            ]
        );
        assert_eq!(n2.files[0].path, "/opt/pykv/store.py");
        assert_eq!(
            (n2.files[1].path.as_str(), n2.files[1].mode),
            ("/usr/local/bin/pykv", 0o755)
        );
        assert_eq!(n2.data_dir, "/data/n2");
        assert_eq!(s.ready_timeout, Duration::from_secs(20));
        assert_eq!(
            s.leader,
            LeaderQuery::Command(vec!["cat".into(), "/tmp/leader".into()])
        );
        assert_eq!(r.peer_port(), Some(9000));
        assert_eq!(
            r.def.image_source(),
            ImageSource::BasePlus(vec!["python3".into()])
        );
    }

    #[test]
    fn peers_are_dialed_as_the_links_say() {
        let r = table("").unwrap();
        let params = SystemParams {
            dial: Some(std::sync::Arc::new(
                |from: &str, to: &str, port: u16| match port {
                    9000 => ("proxy".to_string(), 20_000 + (from.len() + to.len()) as u16),
                    p => (to.to_string(), p),
                },
            )),
            ..SystemParams::default()
        };
        let s = r.system("img", &params).unwrap();
        assert_eq!(
            s.node("n1").unwrap().cmd[3],
            "--peers=proxy:20004,proxy:20004"
        );
        assert_eq!(
            s.node("n1").unwrap().cmd[4],
            "--all=n1=n1:8000,n2=n2:8000,n3=n3:8000"
        );
    }

    #[test]
    fn each_mistake_is_one_line_naming_the_key() {
        let e = |extra: &str| table(extra).unwrap_err();
        assert_eq!(
            e(r#"command = ["kv", "--peers={peerz:peer}"]"#),
            format!("system.command: unknown placeholder {{peerz:peer}}; known: {PLACEHOLDERS}")
        );
        assert_eq!(
            e(r#"command = ["kv", "--peers={peers:gossip}"]"#),
            "system.command: {peers:gossip} names no port of system.ports (client, peer)"
        );
        assert!(e(r#"command = ["sh", "-c", "echo ${HOME}"]"#)
            .starts_with("system.command: unknown placeholder {HOME}"));
        assert!(e(r#"files = ["nope.py"]"#).starts_with("system.files: cannot read "));
        assert_eq!(
            e(r#"ready = { tcp = "admin" }"#),
            "system.ready.tcp: \"admin\" names no port of system.ports (client, peer)"
        );
        assert!(e(r#"ready = { tcp = "client", command = ["true"] }"#)
            .starts_with("system.ready: give exactly one"));
        assert!(e(r#"image = "mycorp/kv:dev""#).starts_with("system.packages: "));
        assert!(e(r#"name = "etcd""#).contains("a system faultline ships"));
        assert!(e("nodes = 0").starts_with("system.nodes: "));
        assert!(
            e(r#"peer_port = "gossip""#).starts_with("system.peer_port: \"gossip\" names no port")
        );
        assert!(e(r#"data_dir = "/data/{index}""#).starts_with("system.data_dir: only {name}"));
        assert!(e(r#"ready = { tcp = "client", timeout = "soon" }"#)
            .starts_with("system.ready.timeout: "));
        let unknown = UserSystem::from_toml(toml::from_str("name = \"x\"\ncomand = []").unwrap())
            .unwrap_err();
        assert!(
            unknown.starts_with("system: unknown field `comand`"),
            "{unknown}"
        );
    }
}
