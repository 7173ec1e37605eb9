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

/// `/data/<node>`.
pub fn data_dir(node: &str) -> String {
    format!("/data/{node}")
}

/// `sh -c <script>`: for nodes that prepare something (ownership, first-boot init) and then
/// `exec` the server, so the server is the container's main process and `kill` hits it.
pub fn shell(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}
