//! The systems faultline ships, one constructor each: node names, the command each node runs
//! (from its name, its peers as it dials them, and its data folder), its config files, its ports,
//! how to tell it is ready, and how to find its leader.
//!
//! Conventions: server nodes are `n1..nN`, data lives under `/data/<node>`, config files under
//! `/etc/faultline/`, and every process logs to stdout/stderr so `docker logs` has it all.
//! Readiness means "serves clients as a cluster" (quorum, replicas in sync, sentinels agree), not
//! merely "the process is up", so a test can start its workload as soon as `start` returns.

pub mod etcd;
pub mod nats;
pub mod postgres;
pub mod rabbitmq;
pub mod redis;
pub mod testbed;
pub mod zookeeper;

/// `n1`, `n2`, ... `n<count>`.
pub fn node_names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("n{i}")).collect()
}

/// The port node `name` (`n1`, `s2`, ...) listens on for its peers: `base`, or with
/// `SystemParams::distinct_peer_ports` one of its own (`base + 1` for n1 or s1, `base + 2` for
/// n2, ...).
pub fn peer_port(params: &crate::cluster::system::SystemParams, name: &str, base: u16) -> u16 {
    let number: u16 = name
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .unwrap_or(0);
    match params.distinct_peer_ports {
        true => base + number,
        false => base,
    }
}

/// `/data/<node>`.
pub fn data_dir(node: &str) -> String {
    format!("/data/{node}")
}

/// `sh -c <script>`: for nodes that prepare something (ownership, first-boot init) and then
/// `exec` the server, so the server is the container's main process and `kill` hits it.
pub fn shell(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}
