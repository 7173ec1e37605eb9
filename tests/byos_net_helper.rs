//! Network faults on a user's own image that has no iptables: a helper container per node, on
//! faultline's base image, shares the node's network namespace and installs the rules
//! (`src/cluster/net_helper.rs`). Proven with Docker, on an image made from the base image with
//! every iptables binary removed:
//!
//! - the node has no iptables and no NET_ADMIN, yet a partition cuts it off (a peer cannot
//!   reach it during the fault and can after the heal), also after the node was killed and
//!   started again (a fresh network namespace the helper must rejoin);
//! - the helpers carry the run's labels (so `faultline clean` lists them with the run) and are
//!   gone after teardown;
//! - with `--links proxy` the proxy runs on faultline's image, not the user's;
//! - through `faultline run`: partitions take effect, and nothing is left behind after a normal
//!   end or a Ctrl-C.

mod cluster_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cluster_support::{docker_or_skip, ensure_image, eventually, exec, leftovers, prereq};
use faultline::cluster::net_helper::{LABEL_HELPER, NET_HELPER};
use faultline::cluster::user::UserSystem;
use faultline::cluster::{docker, Cluster, ClusterOptions, SystemParams};
use faultline::nemesis::ClusterControl;
use nemeses::grudge::Grudge;
use nemeses::partition::{Iptables, Partitioner};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_faultline");

/// `faultline-test/no-iptables:<base tag>`: the base image without any iptables binary, built
/// once with the Docker CLI (`None`, after skipping, when the CLI is missing).
async fn image_without_iptables() -> Option<(String, String)> {
    ensure_image().await;
    let base = faultline::images::base_image_ref();
    let tag = base.rsplit(':').next().unwrap();
    let image = format!("faultline-test/no-iptables:{tag}");
    let d = docker::connect().unwrap();
    if faultline::images::image_exists(&d, &image).await.unwrap() {
        return Some((image, base));
    }
    let dockerfile = format!(
        "FROM {base}\n\
         RUN rm -f /usr/sbin/iptables* /usr/sbin/ip6tables* /usr/sbin/xtables* \
         /usr/sbin/arptables* /usr/sbin/ebtables* /usr/sbin/nft \
         && ! command -v iptables\n"
    );
    let child = tokio::process::Command::new("docker")
        .args(["build", "-q", "-t", &image, "-"])
        // The classic builder takes FROM a local image as it is; nothing is pulled.
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return prereq::skip("no docker CLI", &format!("docker build: {e}")),
    };
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(dockerfile.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((image, base))
}

/// Three Redis servers (from the base image's redis-server) on `image`; peers are reached on
/// the `client` port, and with `peer_port` the links may be proxied.
fn table(image: &str) -> String {
    format!(
        r#"name = "noipt"
nodes = 3
image = "{image}"
command = ["redis-server", "--port", "{{port:client}}", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
ports = {{ client = 6379 }}
ready = {{ tcp = "client", timeout = "30s" }}
peer_port = "client"
client = ["python3", "client.py"]
"#
    )
}

fn resolved(image: &str) -> faultline::cluster::user::Resolved {
    let def = UserSystem::from_toml(toml::from_str(&table(image)).unwrap()).unwrap();
    def.check(Path::new(".")).unwrap()
}

/// Whether `from` gets an answer from `to`'s Redis within 2 s.
async fn reaches(c: &Cluster, from: &str, to: &str) -> bool {
    let (code, out) = exec(
        c,
        from,
        &["timeout", "2", "redis-cli", "-h", to, "-p", "6379", "ping"],
    )
    .await;
    code == 0 && out.contains("PONG")
}

/// Names of the run's containers that carry the network-helper label.
async fn helper_containers(run_id: &str) -> Vec<String> {
    let d = docker::connect().unwrap();
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}={run_id}", docker::LABEL_RUN),
            format!("{LABEL_HELPER}={NET_HELPER}"),
        ],
    )]);
    let list = d
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut names: Vec<String> = list
        .iter()
        .filter_map(|c| c.names.as_ref()?.first().cloned())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_iptables_is_partitioned_through_its_helper_and_healed() {
    let Some(()) = docker_or_skip("net-helper") else {
        return;
    };
    let Some((image, base)) = image_without_iptables().await else {
        return;
    };
    let system = resolved(&image)
        .system(&image, &SystemParams::default())
        .unwrap();
    let cluster = Cluster::up(
        system,
        ClusterOptions {
            helper_image: Some(base.clone()),
            net_helpers: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let run_id = cluster.run_id().to_string();
    let cluster = Arc::new(cluster);

    // The node itself: no iptables, no NET_ADMIN.
    let (code, out) = exec(&cluster, "n1", &["sh", "-c", "command -v iptables"]).await;
    assert_ne!(code, 0, "the node image has no iptables: {out}");
    let d = docker::connect().unwrap();
    let caps = d
        .inspect_container(cluster.container_id("n1").unwrap(), None)
        .await
        .unwrap()
        .host_config
        .and_then(|h| h.cap_add)
        .unwrap_or_default();
    assert!(!caps.iter().any(|c| c.contains("NET_ADMIN")), "{caps:?}");

    // One labeled helper per node, listed with the run (what `faultline clean` removes).
    let names: Vec<String> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| format!("fl-{run_id}-{n}-net"))
        .collect();
    assert_eq!(helper_containers(&run_id).await, names);
    let runs = docker::list_runs(&d).await.unwrap();
    let listed = &runs.iter().find(|r| r.run_id == run_id).unwrap().containers;
    assert!(names.iter().all(|n| listed.contains(n)), "{listed:?}");

    let ctl = Arc::new(ClusterControl::new(cluster.clone()));
    let iptables = Iptables::new(ctl);
    iptables.prepare().await.unwrap();
    let nodes: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
    let isolate_n1 = Grudge::isolate(&nodes, "n1").unwrap();
    for round in ["first start", "after n1 was killed and started"] {
        assert!(
            reaches(&cluster, "n2", "n1").await,
            "{round}: n2 reaches n1"
        );
        iptables.apply(&isolate_n1).await.unwrap();
        assert!(
            !reaches(&cluster, "n2", "n1").await,
            "{round}: n1 cut off from n2"
        );
        assert!(
            !reaches(&cluster, "n1", "n3").await,
            "{round}: n1 cut off from n3"
        );
        assert!(
            reaches(&cluster, "n2", "n3").await,
            "{round}: n2 and n3 still talk"
        );
        iptables.heal().await.unwrap();
        assert!(
            reaches(&cluster, "n2", "n1").await,
            "{round}: healed, n2 reaches n1 again"
        );
        assert!(reaches(&cluster, "n1", "n3").await, "{round}: healed");
        // A restart gives n1 a fresh network namespace, which its helper must follow.
        cluster.kill("n1").await.unwrap();
        cluster.start("n1").await.unwrap();
        cluster
            .wait_node_ready("n1", Duration::from_secs(30))
            .await
            .unwrap();
    }
    drop(iptables);
    let cluster = Arc::try_unwrap(cluster).ok().expect("one handle left");
    cluster.teardown().await.unwrap();
    assert!(helper_containers(&run_id).await.is_empty());
    assert_eq!(leftovers(&run_id).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_proxy_links_the_proxy_runs_on_faultlines_image_beside_a_users_image() {
    let Some(()) = docker_or_skip("net-helper-links") else {
        return;
    };
    let Some((image, base)) = image_without_iptables().await else {
        return;
    };
    let (system, plan) = faultline::cluster::links::user_system_with_proxy_links(
        &resolved(&image),
        &image,
        SystemParams::default(),
    )
    .unwrap();
    assert_eq!(plan.links.len(), 6);
    let cluster = Cluster::up(
        system,
        ClusterOptions {
            helper_image: Some(base.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let d = docker::connect().unwrap();
    let image_of = |node: &str| {
        let id = cluster.container_id(node).unwrap().to_string();
        let d = d.clone();
        async move {
            d.inspect_container(&id, None)
                .await
                .unwrap()
                .config
                .and_then(|c| c.image)
                .unwrap()
        }
    };
    assert_eq!(image_of("proxy").await, base);
    assert_eq!(image_of("n1").await, image);
    // n2 reaches n1 through the link n2 -> n1 of the proxy.
    let (host, port) = plan.dial("n2", "n1", 6379);
    let (code, out) = exec(
        &cluster,
        "n2",
        &[
            "timeout",
            "5",
            "redis-cli",
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "ping",
        ],
    )
    .await;
    assert!(code == 0 && out.contains("PONG"), "{code}: {out}");
    assert!(helper_containers(cluster.run_id()).await.is_empty());
    let run_id = cluster.run_id().to_string();
    cluster.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}

/// A register client for the test's Redis nodes, in Python: every process talks to n1 (the
/// nodes do not replicate, so one node is the register), reads with GET and writes with SET;
/// only a refused connection is a `fail`.
const CLIENT: &str = r#"
import json, socket, sys
addr = None
def redis(*args):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=1.5)
    try:
        cmd = "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(str(a)), a) for a in args)
        s.sendall(cmd.encode())
        f = s.makefile("rb")
        line = f.readline().decode().rstrip("\r\n")
        if line.startswith("$-1"):
            return None
        if line.startswith("$"):
            return f.readline().decode().rstrip("\r\n")
        return line
    finally:
        s.close()
for line in sys.stdin:
    msg = json.loads(line)
    t = msg["type"]
    if t == "init":
        addr = next(n for n in msg["nodes"] if n["name"] == "n1")["addresses"]["client"]
        reply = {"type": "init_ok", "protocol": 1}
    elif t in ("setup", "teardown"):
        reply = {"type": t + "_ok"}
    else:
        try:
            if msg["f"] == "read":
                v = redis("GET", msg["key"])
                reply = {"type": "ok", "value": None if v is None else int(v)}
            else:
                redis("SET", msg["key"], msg["value"])
                reply = {"type": "ok", "value": None}
        except ConnectionRefusedError as e:
            reply = {"type": "fail", "error": "refused: %s" % e}
        except Exception as e:
            reply = {"type": "info", "error": "%s: %s" % (type(e).__name__, e)}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"#;

/// A plan folder for `faultline run` on `image`; returns (plan, store).
fn plan_folder(test: &str, image: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("byos-net-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("client.py"), CLIENT).unwrap();
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "workload = \"register\"\nnemesis = [\"partition\"]\nnemesis_interval = \"2s\"\n\
             time_limit = \"10s\"\nconcurrency = 3\nrate = 50\nop_timeout = \"3s\"\n\n[system]\n{}",
            table(image)
        ),
    )
    .unwrap();
    (plan, dir.join("store"))
}

/// The one run folder of a store, once it has its plan.json.
fn find_run_dir(store: &Path) -> Option<PathBuf> {
    std::fs::read_dir(store)
        .ok()?
        .filter_map(|t| t.ok())
        .filter(|t| t.path().is_dir())
        .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten())
        .filter_map(|r| r.ok().map(|r| r.path()))
        .find(|p| p.join("plan.json").exists())
}

fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn run_id_of(dir: &Path) -> String {
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    plan["cluster"]["run_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_an_image_without_iptables_partitions_and_leaves_nothing_even_after_ctrl_c() {
    let Some(()) = docker_or_skip("net-helper-run") else {
        return;
    };
    let Some((image, _)) = image_without_iptables().await else {
        return;
    };
    // A normal end.
    let (plan, store) = plan_folder("run", &image);
    let out = tokio::process::Command::new(BIN)
        .args(["run", "--quiet", "--seed", "3", "--plan"])
        .arg(&plan)
        .arg("--store")
        .arg(&store)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let dir = find_run_dir(&store).expect("a run folder");
    let log = std::fs::read_to_string(dir.join("faultline.log")).unwrap_or_default();
    assert!(
        log.contains("partitions through a network helper per node"),
        "{log}"
    );
    let h = history(&dir);
    let partitions: Vec<&Value> = h.iter().filter(|e| e["f"] == "start-partition").collect();
    assert!(!partitions.is_empty(), "no partition took effect: {stderr}");
    assert_eq!(partitions[0]["value"]["mechanism"], "iptables");
    assert!(
        !h.iter().any(|e| e["f"] == "fault-error"),
        "every fault worked"
    );
    let run_id = run_id_of(&dir);
    assert_eq!(
        leftovers(&run_id).await,
        (0, 0),
        "helpers and nodes removed"
    );

    // Ctrl-C once a partition is in force: the run stops, heals and removes everything.
    let (plan, store) = plan_folder("ctrl-c", &image);
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "run",
            "--quiet",
            "--seed",
            "3",
            "--time-limit",
            "60s",
            "--plan",
        ])
        .arg(&plan)
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let partitioned = eventually(Duration::from_secs(120), || {
        let store = store.clone();
        async move {
            let dir = find_run_dir(&store)?;
            history(&dir)
                .iter()
                .any(|e| e["f"] == "start-partition")
                .then_some(dir)
        }
    })
    .await;
    partitioned.expect("a partition took effect within 120 s");
    // plan.json gets the run id at the end; mid-run the run is found by its owner's pid.
    let pid = child.id().unwrap().to_string();
    let d = docker::connect().unwrap();
    let runs = docker::list_runs(&d).await.unwrap();
    let run_id = runs
        .iter()
        .find(|r| r.owner.split(':').next() == Some(pid.as_str()))
        .map(|r| r.run_id.clone())
        .expect("the run's containers carry its owner");
    assert_eq!(helper_containers(&run_id).await.len(), 3, "helpers exist");
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("the run ends after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(2), "interrupted: unknown");
    assert!(helper_containers(&run_id).await.is_empty());
    assert_eq!(
        leftovers(&run_id).await,
        (0, 0),
        "nothing left after Ctrl-C"
    );
}
