//! The Docker connection, the labels faultline puts on everything it creates, and removal by
//! label.
//!
//! The container lifecycle (create with network, labels and files; start, exec, stop, pause,
//! logs) goes through testcontainers (`cluster/mod.rs`). This module keeps the bollard calls
//! testcontainers does not offer: the image import and image listing (`images.rs`), the run's
//! network with its labels (testcontainers creates networks without labels), kill with a signal,
//! network disconnect and connect, copying into a running container and out of any, inspect,
//! and listing and removal by label for teardown and `faultline clean`.
//!
//! The API version: bollard 0.21 builds each request path by joining an absolute path onto
//! `/v1.53/`, which drops the version prefix, so its requests (and testcontainers' requests,
//! which go through it) are unversioned and the daemon answers in its own version; that is why
//! both work with Docker 20.10 (API 1.41), which refuses a `/v1.53/...` request outright. The
//! controller still asks the daemon for its API version once and tells bollard the lower of the
//! two, so a bollard that does send the prefix keeps working.
//!
//! Removal never depends on in-memory bookkeeping: every container and network a run creates
//! carries `faultline=1` and `faultline.run=<run-id>`, so teardown, the signal path, the panic
//! path and `faultline clean` all remove "whatever carries this run's label".

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use bollard::{ClientVersion, Docker};

/// Present (value "1") on every container, network and image faultline creates.
pub const LABEL_FAULTLINE: &str = "faultline";
/// The run a container or network belongs to.
pub const LABEL_RUN: &str = "faultline.run";
/// The node name of a container.
pub const LABEL_NODE: &str = "faultline.node";
/// The system (etcd, redis, ...) a container runs.
pub const LABEL_SYSTEM: &str = "faultline.system";
/// `<pid>:<start-time-in-ticks>` of the controller that created the run, so `faultline clean`
/// can tell a live run from one a killed controller left (pids are reused; start times are not).
pub const LABEL_OWNER: &str = "faultline.owner";

/// The newest API version this bollard speaks; never ask the daemon for more.
const CLIENT_API_MAX: (usize, usize) = (1, 53);
/// Docker's own default request timeout is long; ours bounds every call.
const REQUEST_TIMEOUT_S: u64 = 120;

/// Where the Docker socket is: `DOCKER_HOST=unix://...` or the default path.
pub fn socket_path() -> Result<String> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => match h.strip_prefix("unix://") {
            Some(p) => Ok(p.to_string()),
            None => bail!("DOCKER_HOST={h} is not a unix socket; faultline supports unix:// only"),
        },
        _ => Ok("/var/run/docker.sock".to_string()),
    }
}

/// Asks the daemon for its API version with an unversioned request (which any engine answers).
fn daemon_api_version(path: &str) -> Result<(usize, usize)> {
    let mut s = UnixStream::connect(path).with_context(|| {
        format!("Docker is not reachable at {path}: install Docker Engine (Debian: apt-get install docker.io) and start it")
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut reply = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut reply)
        .context("reading the Docker daemon's /version")?;
    let text = String::from_utf8_lossy(&reply);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow!("the Docker daemon's /version answer has no body"))?;
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).context("the Docker daemon's /version is not JSON")?;
    let api = v["ApiVersion"]
        .as_str()
        .ok_or_else(|| anyhow!("the Docker daemon's /version has no ApiVersion"))?;
    parse_api_version(api)
}

fn parse_api_version(s: &str) -> Result<(usize, usize)> {
    let (a, b) = s
        .split_once('.')
        .ok_or_else(|| anyhow!("bad Docker API version {s:?}"))?;
    Ok((a.parse()?, b.parse()?))
}

/// Connects to the local Docker daemon, speaking the newest API version both sides know.
pub fn connect() -> Result<Docker> {
    connect_with_timeout(REQUEST_TIMEOUT_S)
}

/// [`connect`] with a longer bound on each request, for the few that stream for minutes (an
/// image import fed by a running mmdebstrap).
pub fn connect_with_timeout(request_timeout_s: u64) -> Result<Docker> {
    let path = socket_path()?;
    let daemon = daemon_api_version(&path)?;
    let (major, minor) = daemon.min(CLIENT_API_MAX);
    let version = ClientVersion {
        major_version: major,
        minor_version: minor,
    };
    Docker::connect_with_unix(&path, request_timeout_s, &version)
        .with_context(|| format!("connecting to Docker at {path}"))
}

/// `Ok(())` when a Docker daemon answers; otherwise the one-line reason (for tests that skip).
pub fn available() -> Result<()> {
    let path = socket_path()?;
    daemon_api_version(&path).map(|_| ())
}

/// `<pid>:<start time>` of this process, the value of [`LABEL_OWNER`].
pub fn owner_label() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", process_start_ticks(pid).unwrap_or(0))
}

/// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot.
fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the controller named by an owner label still runs.
pub fn owner_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once(':') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    process_start_ticks(pid) == Some(start)
}

/// Labels for something run `run_id` creates.
pub fn run_labels(run_id: &str, system: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_FAULTLINE.to_string(), "1".to_string()),
        (LABEL_RUN.to_string(), run_id.to_string()),
        (LABEL_SYSTEM.to_string(), system.to_string()),
        (LABEL_OWNER.to_string(), owner_label()),
    ])
}

fn label_filter(label: &str) -> Option<HashMap<String, Vec<String>>> {
    Some(HashMap::from([(
        "label".to_string(),
        vec![label.to_string()],
    )]))
}

/// What a removal found and removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
}

/// A faultline run that has containers or networks on this Docker daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResources {
    pub run_id: String,
    pub owner: String,
    pub owner_alive: bool,
    /// Container names (without the leading '/').
    pub containers: Vec<String>,
    pub networks: Vec<String>,
}

/// Every faultline run with something on the daemon, grouped by run id.
pub async fn list_runs(docker: &Docker) -> Result<Vec<RunResources>> {
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: label_filter(LABEL_FAULTLINE),
            ..Default::default()
        }))
        .await
        .context("listing faultline containers")?;
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: label_filter(LABEL_FAULTLINE),
        }))
        .await
        .context("listing faultline networks")?;
    let mut runs: std::collections::BTreeMap<String, RunResources> = Default::default();
    let mut entry = |labels: Option<&HashMap<String, String>>| {
        let labels = labels.cloned().unwrap_or_default();
        let run_id = labels.get(LABEL_RUN).cloned().unwrap_or_default();
        let owner = labels.get(LABEL_OWNER).cloned().unwrap_or_default();
        runs.entry(run_id.clone())
            .or_insert_with(|| RunResources {
                owner_alive: owner_alive(&owner),
                run_id,
                owner,
                containers: vec![],
                networks: vec![],
            })
            .run_id
            .clone()
    };
    let mut found_c = vec![];
    for c in &containers {
        let run = entry(c.labels.as_ref());
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .or_else(|| c.id.clone())
            .unwrap_or_default();
        found_c.push((run, name));
    }
    let mut found_n = vec![];
    for n in &networks {
        let run = entry(n.labels.as_ref());
        found_n.push((run, n.name.clone().unwrap_or_default()));
    }
    for (run, name) in found_c {
        runs.get_mut(&run)
            .expect("entry inserted above")
            .containers
            .push(name);
    }
    for (run, name) in found_n {
        runs.get_mut(&run)
            .expect("entry inserted above")
            .networks
            .push(name);
    }
    Ok(runs.into_values().collect())
}

/// Removes (force, with anonymous volumes) every container and then every network that carries
/// `label` (e.g. `faultline.run=<id>`). Idempotent: removing what is already gone is fine.
pub async fn remove_labeled(docker: &Docker, label: &str) -> Result<Removed> {
    let mut removed = Removed::default();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: label_filter(label),
            ..Default::default()
        }))
        .await
        .with_context(|| format!("listing containers labeled {label}"))?;
    let removals = containers
        .iter()
        .filter_map(|c| c.id.clone())
        .map(|id| async move {
            let r = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await;
            (id, r)
        });
    let mut first_err = None;
    for (id, r) in futures_util::future::join_all(removals).await {
        match r {
            Ok(()) => removed.containers.push(id),
            Err(e) if is_not_found(&e) => removed.containers.push(id),
            Err(e) => {
                first_err.get_or_insert(anyhow!("removing container {id}: {e}"));
            }
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: label_filter(label),
        }))
        .await
        .with_context(|| format!("listing networks labeled {label}"))?;
    for n in networks {
        let Some(name) = n.name else { continue };
        match docker.remove_network(&name).await {
            Ok(()) => removed.networks.push(name),
            Err(e) if is_not_found(&e) => removed.networks.push(name),
            Err(e) => {
                first_err.get_or_insert(anyhow!("removing network {name}: {e}"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// Removes what a listing found of one run: by its run label when it has one (which also
/// catches anything created since the listing), else exactly the listed containers and networks.
pub async fn remove_run_resources(docker: &Docker, run: &RunResources) -> Result<Removed> {
    if !run.run_id.is_empty() {
        return remove_run(docker, &run.run_id).await;
    }
    let mut removed = Removed::default();
    for c in &run.containers {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match docker.remove_container(c, Some(opts)).await {
            Ok(()) => removed.containers.push(c.clone()),
            Err(e) if is_not_found(&e) => removed.containers.push(c.clone()),
            Err(e) => bail!("removing container {c}: {e}"),
        }
    }
    for n in &run.networks {
        match docker.remove_network(n).await {
            Ok(()) => removed.networks.push(n.clone()),
            Err(e) if is_not_found(&e) => removed.networks.push(n.clone()),
            Err(e) => bail!("removing network {n}: {e}"),
        }
    }
    Ok(removed)
}

/// Removes (force, with anonymous volumes) one container by name or id; gone already is fine.
pub async fn remove_container(docker: &Docker, name: &str) -> Result<()> {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(name, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(anyhow!("removing container {name}: {e}")),
    }
}

/// Removes everything of one run.
pub async fn remove_run(docker: &Docker, run_id: &str) -> Result<Removed> {
    remove_labeled(docker, &format!("{LABEL_RUN}={run_id}")).await
}

/// Removes one run from a plain (non-async) context, e.g. `Drop` during a panic: it runs on a
/// thread of its own with a small runtime, so it works inside or outside a tokio runtime.
pub fn remove_run_blocking(run_id: &str) -> Result<Removed> {
    let run_id = run_id.to_string();
    std::thread::spawn(move || -> Result<Removed> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let docker = connect()?;
            remove_run(&docker, &run_id).await
        })
    })
    .join()
    .map_err(|_| anyhow!("the cleanup thread panicked"))?
}

/// Docker's "no such container / network" answer.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_parse_and_compare() {
        assert_eq!(parse_api_version("1.41").unwrap(), (1, 41));
        assert!(parse_api_version("141").is_err());
        assert_eq!((1, 41).min(CLIENT_API_MAX), (1, 41));
        assert_eq!((1, 60).min(CLIENT_API_MAX), CLIENT_API_MAX);
    }

    #[test]
    fn this_process_is_alive_and_a_made_up_owner_is_not() {
        assert!(owner_alive(&owner_label()));
        assert!(!owner_alive("999999999:1"));
        assert!(!owner_alive("garbage"));
    }
}
