//! Real clusters in containers: one Docker network per run, one container per node, a bounded
//! readiness wait, the operations faults need (kill -9, start with data kept, pause, network
//! disconnect, exec), node logs, and teardown that nothing can skip.
//!
//! `Cluster`'s methods live by job in `start.rs`, `ready.rs` and `control.rs`; this file holds
//! the types, the accessors, teardown and `Drop`.
//!
//! Design decisions:
//! - Containers are driven through testcontainers (create with network, labels and files,
//!   start, exec, stop, pause, logs); bollard is kept for what testcontainers does not offer
//!   (see `docker.rs`): the labeled network, kill with a signal, network disconnect/connect,
//!   copying a file into a running node, reading files out, inspect, and removal by label.
//! - testcontainers creates a container and, if the daemon answers 404, pulls the image. So the
//!   image is checked (never pulled) and the network created before any node is made: neither
//!   can be missing, and nothing is ever pulled.
//! - Nodes find each other by host name: on a user-defined network Docker's DNS answers a
//!   container's host name (testcontainers sets no network aliases, and needs none).
//! - Everything a run creates carries `faultline.run=<run-id>`; teardown removes by that label,
//!   so it is correct even for a half-built cluster. Four paths lead there: `teardown()` (normal
//!   end), `Drop` (a panic, an early `?` return, or a cancelled future, e.g. when Ctrl-C wins a
//!   `select!`), [`shutdown_signal`] + `teardown()` in commands, and `faultline clean` for runs
//!   whose controller was killed with SIGKILL.
//! - Nodes are reached by name on the run network (container name `fl-<run>-<node>`, network
//!   alias and host name `<node>`), and clients on the host reach them through loopback ports the
//!   controller picks itself, so a node keeps its host port across kill and start (Docker would
//!   pick a new random port at every start).
//! - Node data lives in the container's own file system, so `kill` + `start` keeps it.
//! - Containers get cap NET_ADMIN so the nemesis can install iptables rules inside them, plus
//!   what `ClusterOptions::cap_add` asks for (SYS_PTRACE when clock faults patch the vDSO).
//!   With `ClusterOptions::net_helpers` (a user's own image) they get no NET_ADMIN: each node
//!   gets a helper container on faultline's image that shares its network namespace and runs
//!   the rules instead (`net_helper.rs`); the link proxy then runs on that image too.

mod control;
pub mod docker;
mod leader;
pub mod links;
pub mod net_helper;
mod ready;
mod start;
pub mod system;
pub mod systems;
pub mod user;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{
    EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
    PortBinding,
};
use bollard::query_parameters::{
    DownloadFromContainerOptions, KillContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use testcontainers::core::{CopyDataSource, ExecCommand, IntoContainerPort};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};

pub use docker::Removed;
pub use system::{
    LeaderQuery, NodeFile, NodeSpec, PortSpec, Probe, System, SystemParams, TemplateSystem,
    SYSTEM_NAMES,
};

/// Longest one `exec` may take unless the caller says otherwise.
pub const EXEC_TIMEOUT_S: u64 = 30;
/// Longest one readiness probe attempt may take.
const PROBE_ATTEMPT_TIMEOUT_S: u64 = 30;
/// Shortest time given to a readiness attempt (the last one before the deadline).
const PROBE_ATTEMPT_MIN_MS: u64 = 500;
/// Attempts at picking free host ports when Docker says one was taken meanwhile.
const PORT_PICK_ATTEMPTS_MAX: usize = 3;
/// How long Drop waits for in-flight requests of a cancelled start before sweeping again.
const CANCEL_SETTLE_MS: u64 = 500;
/// Log lines quoted in an error when a node dies or never gets ready.
const ERROR_LOG_LINES: usize = 15;
/// Longest testcontainers may take to create, copy files into and start one node (readiness is
/// waited for separately, with the system's own bound).
const NODE_START_TIMEOUT_S: u64 = 120;

/// A node's container as testcontainers holds it.
type NodeContainer = ContainerAsync<GenericImage>;

/// Runs started by this process and not yet torn down, for [`remove_live_runs`].
static LIVE_RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// How a cluster is started.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// The run id that labels everything (None: a fresh one from the system name and time).
    pub run_id: Option<String>,
    /// Where teardown collects node logs (None: not collected).
    pub logs_dir: Option<PathBuf>,
    /// Environment added to every node (e.g. LD_PRELOAD for clock faults).
    pub env: Vec<(String, String)>,
    /// Files added to every node before it first starts (e.g. the faultline binary).
    pub files: Vec<NodeFile>,
    /// Linux capabilities added to every node besides NET_ADMIN (e.g. SYS_PTRACE for clock
    /// faults through the vDSO patch).
    pub cap_add: Vec<String>,
    /// Overrides the system's readiness timeout.
    pub ready_timeout: Option<Duration>,
    /// faultline's own image, for the containers faultline adds beside nodes of a user's own
    /// image: the link proxy runs on it (not on the system's image), and so do the network
    /// helpers. None: the system's image serves for everything.
    pub helper_image: Option<String>,
    /// Partition rules go through a helper container per node (on `helper_image`) sharing the
    /// node's network namespace, not through the node; the nodes then get no NET_ADMIN.
    pub net_helpers: bool,
}

/// A node as the rest of the controller sees it.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub role: String,
    pub container_id: String,
    pub container_name: String,
    /// Container port name -> (container port, loopback port on the host).
    pub ports: BTreeMap<String, (u16, u16)>,
}

/// The output of a command run inside a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// stdout and stderr, interleaved as they came.
    pub output: String,
}

/// A running cluster. Dropping it without [`Cluster::teardown`] still removes its containers
/// and network (blocking briefly), so a panic or an early return leaves nothing behind.
pub struct Cluster {
    docker: Docker,
    run_id: String,
    network: String,
    system: System,
    nodes: Vec<Node>,
    /// Node name -> its testcontainers handle (lifecycle calls go through it).
    containers: HashMap<String, NodeContainer>,
    /// Node name -> its network-fault helper, when the run uses them.
    net_helpers: HashMap<String, net_helper::NetHelper>,
    /// The image of the proxy and the helpers (None: the system's).
    helper_image: Option<String>,
    ips: Mutex<HashMap<String, IpAddr>>,
    logs_dir: Option<PathBuf>,
    ready_in: Duration,
    torn_down: bool,
}

/// A run id: system name, seconds since the epoch, and a few bits that differ per process.
pub fn new_run_id(system: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let salt = (now.subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{system}-{}-{salt:04x}", now.as_secs())
}

impl Cluster {
    fn container(&self, node: &str) -> Result<&NodeContainer> {
        self.node(node)?;
        self.containers
            .get(node)
            .ok_or_else(|| anyhow!("node {node} has no container"))
    }

    /// The run id on every label.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The Docker network of this run.
    pub fn network(&self) -> &str {
        &self.network
    }

    pub fn system(&self) -> &System {
        &self.system
    }

    /// How long `up` took from its call to the last node ready.
    pub fn ready_in(&self) -> Duration {
        self.ready_in
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node names in order (n1, n2, ...; Redis adds s1, s2, s3 for sentinels).
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Names of the nodes faults may target: every node but the link proxy.
    pub fn fault_targets(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.role != links::PROXY_ROLE)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Names of the nodes with this role ("server", "primary", "replica", "sentinel").
    pub fn nodes_with_role(&self, role: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.name.clone())
            .collect()
    }

    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            anyhow!(
                "no node {name:?} in this cluster (nodes: {})",
                self.node_names().join(", ")
            )
        })
    }

    pub fn container_id(&self, node: &str) -> Result<&str> {
        Ok(&self.node(node)?.container_id)
    }

    /// The loopback port on the host that reaches `port_name` of `node`.
    pub fn host_port(&self, node: &str, port_name: &str) -> Result<u16> {
        let n = self.node(node)?;
        n.ports.get(port_name).map(|p| p.1).ok_or_else(|| {
            anyhow!(
                "node {node} has no port named {port_name:?} (ports: {})",
                n.ports.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// `127.0.0.1:<host port>` for `port_name` of `node`: where host-side clients connect.
    pub fn host_addr(&self, node: &str, port_name: &str) -> Result<SocketAddr> {
        Ok(SocketAddr::from((
            [127, 0, 0, 1],
            self.host_port(node, port_name)?,
        )))
    }

    /// The node's address on the run network, asked from Docker (it can change when a node
    /// restarts); the last known address if the node is down.
    pub async fn ip(&self, node: &str) -> Result<IpAddr> {
        let id = self.container_id(node)?.to_string();
        let info = self.docker.inspect_container(&id, None).await?;
        let ip = info
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|mut n| n.remove(&self.network))
            .and_then(|e| e.ip_address)
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse::<IpAddr>().ok());
        let mut known = self.ips.lock().expect("ips lock");
        match ip {
            Some(ip) => {
                known.insert(node.to_string(), ip);
                Ok(ip)
            }
            None => known
                .get(node)
                .copied()
                .ok_or_else(|| anyhow!("node {node} has no address on {}", self.network)),
        }
    }

    /// Every node's address on the run network.
    pub async fn ips(&self) -> Result<BTreeMap<String, IpAddr>> {
        let mut out = BTreeMap::new();
        for n in &self.nodes {
            out.insert(n.name.clone(), self.ip(&n.name).await?);
        }
        Ok(out)
    }

    /// The current leader or primary, where the system exposes one; `None` when there is none
    /// right now (an election is going on) or the system has no such notion.
    pub async fn leader(&self) -> Result<Option<String>> {
        leader::find(self).await
    }

    /// Collects logs (when a logs folder was given) and removes every container and the network
    /// of this run.
    pub async fn teardown(mut self) -> Result<Removed> {
        let logs = match self.logs_dir.clone() {
            Some(dir) => self.collect_logs(&dir).await,
            None => Ok(()),
        };
        // Each node through testcontainers first (the network helpers before the nodes whose
        // namespace they hold), then whatever carries the run label (the network, and anything
        // a failed or cancelled step left behind).
        let helpers: Vec<(String, NodeContainer)> = self
            .net_helpers
            .drain()
            .map(|(n, h)| (format!("{n} (network helper)"), h.container))
            .collect();
        let mut by_testcontainers = remove_containers(helpers).await;
        let containers: Vec<(String, NodeContainer)> = self.containers.drain().collect();
        by_testcontainers.extend(remove_containers(containers).await);
        let removed = docker::remove_run(&self.docker, &self.run_id).await;
        if removed.is_ok() {
            self.torn_down = true;
            forget_live_run(&self.run_id);
        }
        let mut removed = removed?;
        by_testcontainers.retain(|id| !removed.containers.contains(id));
        removed.containers.extend(by_testcontainers);
        logs.context("collecting node logs")?;
        Ok(removed)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // A start cut short (a cancelled future) may have Docker requests in flight that
        // complete after the first sweep: sweep once more after they settle.
        let partial = self.ready_in.is_zero();
        let result = docker::remove_run_blocking(&self.run_id).and_then(|r| {
            if partial {
                std::thread::sleep(Duration::from_millis(CANCEL_SETTLE_MS));
                docker::remove_run_blocking(&self.run_id)
            } else {
                Ok(r)
            }
        });
        // The handles' own Drop asks Docker to remove what the sweep already removed; it needs
        // a tokio runtime, so without one they are let go (nothing of theirs is left to remove).
        if tokio::runtime::Handle::try_current().is_err() {
            for (_, c) in self.containers.drain() {
                std::mem::forget(c);
            }
            for (_, h) in self.net_helpers.drain() {
                std::mem::forget(h);
            }
        }
        match result {
            Ok(_) => forget_live_run(&self.run_id),
            Err(e) => eprintln!(
                "faultline: could not remove run {} ({e:#}); run `faultline clean`",
                self.run_id
            ),
        }
    }
}

fn forget_live_run(run_id: &str) {
    LIVE_RUNS
        .lock()
        .expect("live runs lock")
        .retain(|r| r != run_id);
}

/// Removes every run this process started and has not torn down (for signal handlers that
/// exit the process without unwinding). Returns the run ids removed.
pub async fn remove_live_runs() -> Result<Vec<String>> {
    let runs: Vec<String> = LIVE_RUNS.lock().expect("live runs lock").clone();
    if runs.is_empty() {
        return Ok(vec![]);
    }
    let docker = docker::connect()?;
    for r in &runs {
        docker::remove_run(&docker, r).await?;
        forget_live_run(r);
    }
    Ok(runs)
}

/// Resolves at the first SIGINT or SIGTERM, with the signal's name. Commands `select!` on it
/// against their work, then tear down.
pub async fn shutdown_signal() -> Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    })
}

/// Picks a free loopback port for every named port, holding all of them open while picking so
/// that one node never gets the same port twice.
fn pick_host_ports(ports: &[PortSpec]) -> Result<BTreeMap<String, (u16, u16)>> {
    let mut held = vec![];
    let mut out = BTreeMap::new();
    for p in ports {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("picking a free host port")?;
        out.insert(p.name.clone(), (p.container_port, l.local_addr()?.port()));
        held.push(l);
    }
    Ok(out)
}

fn port_bindings(
    ports: &BTreeMap<String, (u16, u16)>,
) -> HashMap<String, Option<Vec<PortBinding>>> {
    ports
        .values()
        .map(|(container, host)| {
            (
                format!("{container}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(host.to_string()),
                }]),
            )
        })
        .collect()
}

fn is_port_taken(s: &str) -> bool {
    s.contains("port is already allocated") || s.contains("address already in use")
}

/// A tar archive (paths relative to /) holding `files` and the folders above them.
fn tar_of(files: &[NodeFile]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = HashSet::new();
    for f in files {
        assert!(
            f.path.starts_with('/'),
            "node file paths are absolute: {}",
            f.path
        );
        let rel = f.path.trim_start_matches('/');
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            prefix.push_str(part);
            prefix.push('/');
            if dirs.insert(prefix.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, &prefix, std::io::empty())?;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(f.mode);
        h.set_size(f.contents.len() as u64);
        b.append_data(&mut h, rel, f.contents.as_slice())?;
    }
    Ok(b.into_inner()?)
}

/// Runs `cmd` through testcontainers; the output is stdout followed by stderr.
async fn exec_in(container: &NodeContainer, cmd: &[&str]) -> Result<ExecOutput> {
    let mut exec = container
        .exec(ExecCommand::new(cmd.iter().copied()))
        .await?;
    let mut output = exec.stdout_to_vec().await?;
    output.extend(exec.stderr_to_vec().await?);
    // `ExecResult::exit_code` borrows the result across an await, and the result is not `Sync`
    // (it owns its output streams), so that future is not `Send`: it runs on a blocking thread.
    let handle = tokio::runtime::Handle::current();
    let exit_code = tokio::task::spawn_blocking(move || handle.block_on(exec.exit_code()))
        .await
        .context("the exec status thread")??
        .ok_or_else(|| anyhow!("exec finished without an exit code"))?;
    Ok(ExecOutput {
        exit_code,
        output: String::from_utf8_lossy(&output).into_owned(),
    })
}

/// A node's whole log through testcontainers: stdout, then stderr (testcontainers reads the two
/// streams apart; most servers write their log to one of them).
async fn container_logs(container: &NodeContainer) -> Result<String> {
    let mut out = container.stdout_to_vec().await?;
    let err = container.stderr_to_vec().await?;
    if !out.is_empty() && !err.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend(err);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Node files on their way into containers. testcontainers copies bytes with mode 0644 (its
/// mode option is not public) and a host file with that file's mode, so a file with another mode
/// (a script, a binary) is written once into a folder of the run's own and copied from there.
/// The folder is made with `create_dir` (never an existing one) and removed on drop.
struct StagedFiles {
    dir: PathBuf,
}

impl StagedFiles {
    const DEFAULT_MODE: u32 = 0o644;

    fn new(run_id: &str) -> Result<StagedFiles> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("faultline-files-{run_id}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(StagedFiles { dir })
    }

    fn source(&self, node: &str, file: &NodeFile) -> Result<CopyDataSource> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        assert!(
            file.path.starts_with('/'),
            "node file paths are absolute: {}",
            file.path
        );
        if file.mode == Self::DEFAULT_MODE {
            return Ok(CopyDataSource::Data(file.contents.clone()));
        }
        let dir = self.dir.join(node);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(sanitize(&file.path));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, &file.contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
        Ok(CopyDataSource::File(path))
    }
}

impl Drop for StagedFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `repository:tag` split where the tag begins (a registry port is not a tag).
fn image_parts(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// Copies `path` out of a container into folder `into` (a tar stream unpacked there).
async fn download(docker: &Docker, id: &str, path: &str, into: &Path) -> Result<()> {
    let mut stream = docker.download_from_container(
        id,
        Some(DownloadFromContainerOptions {
            path: path.to_string(),
        }),
    );
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    std::fs::create_dir_all(into)?;
    tar::Archive::new(bytes.as_slice())
        .unpack(into)
        .with_context(|| format!("unpacking {path} into {}", into.display()))?;
    Ok(())
}

/// One HTTP client for probes and leader queries (loopback only, no proxies).
pub(crate) fn http_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client without TLS always builds")
        })
        .clone()
}

fn sanitize(path: &str) -> String {
    path.trim_start_matches('/').replace('/', "_")
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// Removes `containers` at once through testcontainers; the ids of those removed. One that
/// cannot be removed is named on stderr and left to the run-label sweep that follows, which
/// says so if it cannot remove it either.
async fn remove_containers(containers: Vec<(String, NodeContainer)>) -> Vec<String> {
    let removals = containers.into_iter().map(|(name, c)| async move {
        let id = c.id().to_string();
        c.rm().await.map(|()| id).map_err(|e| (name, e))
    });
    let mut removed = vec![];
    for r in futures_util::future::join_all(removals).await {
        match r {
            Ok(id) => removed.push(id),
            Err((name, e)) => eprintln!("faultline: removing node {name}: {e}"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_the_system_and_are_valid_docker_names() {
        let id = new_run_id("etcd");
        assert!(id.starts_with("etcd-"), "{id}");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'));
    }

    #[test]
    fn node_files_become_a_tar_with_their_folders_and_modes() {
        let files = [
            NodeFile::text("/etc/x/a.conf", "a=1\n"),
            NodeFile {
                path: "/etc/x/run.sh".into(),
                contents: b"#!/bin/sh\n".to_vec(),
                mode: 0o755,
            },
        ];
        let tar = tar_of(&files).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    e.header().size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("etc/".to_string(), 0o755, 0),
                ("etc/x/".to_string(), 0o755, 0),
                ("etc/x/a.conf".to_string(), 0o644, 4),
                ("etc/x/run.sh".to_string(), 0o755, 10),
            ]
        );
    }

    #[test]
    fn host_ports_of_one_node_differ() {
        let ports: Vec<PortSpec> = ["a", "b", "c"]
            .iter()
            .map(|n| PortSpec {
                name: n.to_string(),
                container_port: 1,
            })
            .collect();
        let picked = pick_host_ports(&ports).unwrap();
        let set: HashSet<u16> = picked.values().map(|p| p.1).collect();
        assert_eq!(set.len(), 3);
    }
}
