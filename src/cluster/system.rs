//! What a system under test is, as data: its nodes (each with a command, files, ports, a
//! readiness probe and log files) and how to ask it for its leader.
//!
//! A `System` is built by a constructor in `systems/` from [`SystemParams`] (node count and how a
//! node dials a peer), so the node commands are plain values by the time a cluster starts: the
//! lifecycle code in `cluster/mod.rs` knows nothing about etcd or Redis, and a user's own system is
//! one more constructor ([`System::from_template`]) rather than a new code path.
//! Config goes into containers at creation (files uploaded before the first start) so one base
//! image serves every system; that also lets a run add files (the faultline binary, a clock shim)
//! without rebuilding an image.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use workloads::BuiltinCluster;

/// How node `from` reaches port `port` of node `to`: `(host, port)`. The default is the peer's
/// name and the port itself; the proxy nemesis can route links through its listeners instead.
pub type DialFn = Arc<dyn Fn(&str, &str, u16) -> (String, u16) + Send + Sync>;

/// Knobs every system constructor takes.
#[derive(Clone, Default)]
pub struct SystemParams {
    /// Number of server nodes (None: the system's default, e.g. 3).
    pub nodes: Option<usize>,
    /// How a node dials a peer (None: by name on the peer's own port).
    pub dial: Option<DialFn>,
    /// Image to run (None: the base image of the current recipe).
    pub image: Option<String>,
    /// Extra flags for every server node (the testbed's `--bug` and timings).
    pub node_args: Vec<String>,
    /// Each server listens for its peers on a port of its own (the system's peer port plus the
    /// node's number), so that a node's outgoing links can be told apart by destination port
    /// alone (see `cluster::links`, redirected links). Redis, whose servers listen on one port
    /// for clients and peers alike, announces such a port to its peers instead and redirects it
    /// to the real one on arrival. Systems without a peer port ignore it.
    pub distinct_peer_ports: bool,
}

impl SystemParams {
    /// `(host, port)` node `from` uses to reach `to`'s `port`.
    pub fn dial(&self, from: &str, to: &str, port: u16) -> (String, u16) {
        match &self.dial {
            Some(f) => f(from, to, port),
            None => (to.to_string(), port),
        }
    }

    /// `host:port` form of [`SystemParams::dial`].
    pub fn dial_addr(&self, from: &str, to: &str, port: u16) -> String {
        let (h, p) = self.dial(from, to, port);
        format!("{h}:{p}")
    }

    pub fn image(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(crate::images::base_image_ref)
    }
}

/// A file put into a node's container before its first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile {
    /// Absolute path inside the container.
    pub path: String,
    pub contents: Vec<u8>,
    /// Unix permission bits, e.g. 0o644.
    pub mode: u32,
}

impl NodeFile {
    pub fn text(path: &str, contents: impl Into<String>) -> NodeFile {
        NodeFile {
            path: path.to_string(),
            contents: contents.into().into_bytes(),
            mode: 0o644,
        }
    }
}

/// A container port a node exposes, published on a loopback port of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// What the port is for: "client", "peer", "monitor", ...
    pub name: String,
    pub container_port: u16,
}

/// How to tell that a node is ready. Probes run repeatedly until they pass or the readiness
/// deadline passes; the last failure is what the error reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Run a command inside the container; ready when it exits 0 (and its output holds the
    /// text, when given).
    Exec {
        cmd: Vec<String>,
        output_contains: Option<String>,
    },
    /// The container's log (stdout + stderr) holds this text.
    Log(String),
    /// A TCP connect to the node's named port (through the host mapping) succeeds.
    Tcp(String),
    /// An HTTP GET of `path` on the node's named port (through the host mapping) answers 2xx
    /// (and its body holds the text, when given).
    Http {
        port: String,
        path: String,
        body_contains: Option<String>,
    },
    /// Every probe passes.
    All(Vec<Probe>),
}

impl Probe {
    pub fn exec(cmd: &[&str]) -> Probe {
        Probe::Exec {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            output_contains: None,
        }
    }

    pub fn exec_expect(cmd: &[&str], output_contains: &str) -> Probe {
        Probe::Exec {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            output_contains: Some(output_contains.to_string()),
        }
    }

    /// What the probe waits for, in words, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Probe::Exec {
                cmd,
                output_contains: None,
            } => format!("`{}` to exit 0", cmd.join(" ")),
            Probe::Exec {
                cmd,
                output_contains: Some(t),
            } => format!("`{}` to exit 0 printing {t:?}", cmd.join(" ")),
            Probe::Log(t) => format!("its log to contain {t:?}"),
            Probe::Tcp(p) => format!("a TCP connect to its {p} port"),
            Probe::Http { port, path, .. } => {
                format!("GET {path} on its {port} port to answer 2xx")
            }
            Probe::All(ps) => ps
                .iter()
                .map(Probe::describe)
                .collect::<Vec<_>>()
                .join(" and "),
        }
    }
}

/// How to find the node that currently leads (or is primary), where the system exposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderQuery {
    /// The system has no leader (or does not say).
    None,
    /// Always this node (a single primary).
    Fixed(String),
    /// etcd: the member whose `/v3/maintenance/status` says it is the leader (client port).
    EtcdStatus,
    /// Redis Sentinel: ask the sentinels for the primary of `master` and map its address to a
    /// node.
    RedisSentinel { master: String, sentinel_port: u16 },
    /// NATS: the JetStream meta leader from `/jsz` on the monitoring port.
    NatsJsz,
    /// ZooKeeper: the node whose `srvr` four-letter word says `Mode: leader`.
    ZooKeeperSrvr,
    /// The testbed: the node whose `GET /status` says `kv.role == "primary"` (highest epoch).
    TestbedStatus,
    /// A user's system (`[system.leader]`): `GET path` on each node's named port; the body's
    /// first line names the leader. A majority of the answers decides.
    Http { port: String, path: String },
    /// A user's system: this command run in each node prints the leader's name on its first
    /// line. A majority of the answers decides.
    Command(Vec<String>),
}

/// One container of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Container name on the run network (also its host name).
    pub name: String,
    /// "server", "primary", "replica", "sentinel", ...
    pub role: String,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where the node keeps its data (kept across kill / start).
    pub data_dir: String,
    pub files: Vec<NodeFile>,
    pub ports: Vec<PortSpec>,
    pub probe: Probe,
    /// Files inside the container collected with the node's logs (stdout/stderr always are).
    pub log_files: Vec<String>,
}

/// A system under test: its nodes and how to ask it for its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// "etcd", "redis", ...
    pub name: String,
    pub image: String,
    pub nodes: Vec<NodeSpec>,
    /// Longest the readiness wait may take after the containers start.
    pub ready_timeout: Duration,
    /// Pause between readiness attempts on one node.
    pub probe_interval: Duration,
    pub leader: LeaderQuery,
}

/// Probe pause for systems whose probes are cheap.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// The names of the systems faultline knows: the clusters of the one registry of shipped
/// systems, [`workloads::BuiltinCluster`].
pub const SYSTEM_NAMES: &[&str] = &BuiltinCluster::NAMES;

impl System {
    /// A known system by name (or an alias: `postgresql`) with its defaults.
    pub fn by_name(name: &str, params: &SystemParams) -> Result<System> {
        let Some(cluster) = BuiltinCluster::parse_or_alias(name) else {
            bail!(
                "unknown system {name:?}; known systems: {}",
                SYSTEM_NAMES.join(", ")
            )
        };
        System::builtin(cluster, params)
    }

    /// A shipped system's cluster with its defaults.
    pub fn builtin(cluster: BuiltinCluster, params: &SystemParams) -> Result<System> {
        use super::systems;
        Ok(match cluster {
            BuiltinCluster::Etcd => systems::etcd::system(params),
            BuiltinCluster::Redis => systems::redis::system(params),
            BuiltinCluster::Nats => systems::nats::system(params),
            BuiltinCluster::RabbitMq => systems::rabbitmq::system(params),
            BuiltinCluster::ZooKeeper => systems::zookeeper::system(params),
            BuiltinCluster::Postgres => systems::postgres::system(params),
            BuiltinCluster::Testbed => systems::testbed::system(params)?,
        })
    }

    /// A user's own system from a command template. Each element of `cmd` is one argument, and
    /// in each these are replaced:
    /// `{name}` the node's name, `{index}` its 1-based index, `{data_dir}` its data directory,
    /// `{peers}` the comma-separated `host:port` of every node on `peer_port` (as this node dials
    /// them), `{others}` the same without this node.
    pub fn from_template(t: &TemplateSystem, params: &SystemParams) -> Result<System> {
        let n = params.nodes.unwrap_or(t.nodes);
        if n == 0 {
            bail!("system {}: a cluster needs at least one node", t.name);
        }
        let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let mut nodes = vec![];
        for (i, name) in names.iter().enumerate() {
            let data_dir = format!("/data/{name}");
            let peers: Vec<String> = names
                .iter()
                .map(|p| params.dial_addr(name, p, t.peer_port))
                .collect();
            let others: Vec<String> = names
                .iter()
                .filter(|p| *p != name)
                .map(|p| params.dial_addr(name, p, t.peer_port))
                .collect();
            let vars = BTreeMap::from([
                ("name", name.clone()),
                ("index", (i + 1).to_string()),
                ("data_dir", data_dir.clone()),
                ("peers", peers.join(",")),
                ("others", others.join(",")),
            ]);
            nodes.push(NodeSpec {
                name: name.clone(),
                role: "server".into(),
                cmd: t.cmd.iter().map(|a| render(a, &vars)).collect(),
                env: vec![],
                data_dir,
                files: vec![],
                ports: t
                    .ports
                    .iter()
                    .map(|(n, p)| PortSpec {
                        name: n.clone(),
                        container_port: *p,
                    })
                    .collect(),
                probe: match &t.probe {
                    Probe::Exec {
                        cmd,
                        output_contains,
                    } => Probe::Exec {
                        cmd: cmd.iter().map(|a| render(a, &vars)).collect(),
                        output_contains: output_contains.clone(),
                    },
                    p => p.clone(),
                },
                log_files: vec![],
            });
        }
        Ok(System {
            name: t.name.clone(),
            image: params.image.clone().unwrap_or_else(|| t.image.clone()),
            nodes,
            ready_timeout: t.ready_timeout,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            leader: LeaderQuery::None,
        })
    }

    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// A user-defined system described by a command template (see [`System::from_template`]).
#[derive(Debug, Clone)]
pub struct TemplateSystem {
    pub name: String,
    pub image: String,
    pub nodes: usize,
    pub cmd: Vec<String>,
    pub peer_port: u16,
    pub ports: Vec<(String, u16)>,
    pub probe: Probe,
    pub ready_timeout: Duration,
}

/// Replaces `{key}` by its value for every key in `vars`; other braces stay as they are.
pub fn render(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> TemplateSystem {
        TemplateSystem {
            name: "mykv".into(),
            image: "faultline/base:test".into(),
            nodes: 3,
            cmd: vec![
                "mykv".into(),
                "--name={name}".into(),
                "--dir={data_dir}".into(),
                "--join={others}".into(),
            ],
            peer_port: 7000,
            ports: vec![("client".into(), 8000)],
            probe: Probe::exec(&["mykv-ctl", "--node={name}", "health"]),
            ready_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_template_system_gets_names_peers_and_data_dirs() {
        let s = System::from_template(&template(), &SystemParams::default()).unwrap();
        let n2 = s.node("n2").unwrap();
        assert_eq!(
            n2.cmd,
            [
                "mykv",
                "--name=n2",
                "--dir=/data/n2",
                "--join=n1:7000,n3:7000"
            ]
        );
        assert_eq!(n2.probe, Probe::exec(&["mykv-ctl", "--node=n2", "health"]));
        assert_eq!(s.nodes.len(), 3);
    }

    #[test]
    fn dialing_can_be_rerouted_per_link() {
        let params = SystemParams {
            nodes: Some(2),
            dial: Some(Arc::new(|from: &str, to: &str, port: u16| {
                (
                    format!("proxy-{from}"),
                    port + if to == "n2" { 100 } else { 0 },
                )
            })),
            ..SystemParams::default()
        };
        let s = System::from_template(&template(), &params).unwrap();
        assert_eq!(s.node("n1").unwrap().cmd[3], "--join=proxy-n1:7100");
        assert_eq!(s.node("n2").unwrap().cmd[3], "--join=proxy-n2:7000");
    }

    #[test]
    fn zero_nodes_and_unknown_systems_are_errors() {
        let params = SystemParams {
            nodes: Some(0),
            ..Default::default()
        };
        assert!(System::from_template(&template(), &params).is_err());
        let e = System::by_name("cassandra", &SystemParams::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown system \"cassandra\"; known systems: etcd, redis, nats, rabbitmq, zookeeper, postgres, testbed"
        );
        // Plan-only systems have no cluster of their own.
        for name in ["memory", "postgres-check-then-insert"] {
            assert!(
                System::by_name(name, &SystemParams::default()).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn every_shipped_cluster_is_named_as_the_registry_names_it() {
        for name in SYSTEM_NAMES {
            let s = System::by_name(name, &SystemParams::default()).unwrap();
            assert_eq!(s.name, *name);
            assert!(!s.nodes.is_empty(), "{name}");
        }
        let s = System::by_name("postgresql", &SystemParams::default()).unwrap();
        assert_eq!(s.name, "postgres");
    }

    #[test]
    fn probes_describe_what_they_wait_for() {
        let p = Probe::All(vec![
            Probe::Tcp("client".into()),
            Probe::Log("ready".into()),
        ]);
        assert_eq!(
            p.describe(),
            "a TCP connect to its client port and its log to contain \"ready\""
        );
    }
}
