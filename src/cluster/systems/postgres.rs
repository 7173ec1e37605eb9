//! PostgreSQL 15: one node. The first boot runs initdb into the data folder and allows
//! password-less connections from the run network and the host (the cluster is private to the
//! run); later boots (after kill + start) reuse the data. The server is the container's main
//! process, as user postgres, logging to stderr. initdb skips its fsyncs (`--no-sync`): a
//! kill -9 of the container does not drop the page cache, so they protect nothing here. Most of
//! the ~9 s to ready is initdb's bootstrap (measured ~6 s inside a container on this machine
//! class); a data folder made at image build would save it, at the price of a bigger recipe.

use std::time::Duration;

use super::{data_dir, shell};
use crate::cluster::system::{
    LeaderQuery, NodeSpec, PortSpec, Probe, System, SystemParams, DEFAULT_PROBE_INTERVAL,
};

pub const PORT: u16 = 5432;
const BIN: &str = "/usr/lib/postgresql/15/bin";

pub fn system(params: &SystemParams) -> System {
    let name = "n1".to_string();
    let dir = data_dir(&name);
    let pg = format!("{dir}/pg");
    let script = format!(
        "set -e; mkdir -p {pg}; chown postgres:postgres {pg}; chmod 700 {pg}; \
         if [ ! -s {pg}/PG_VERSION ]; then \
           setpriv --reuid=postgres --regid=postgres --init-groups {BIN}/initdb --no-sync -D {pg} -U postgres --auth=trust >/dev/null; \
           echo 'host all all 0.0.0.0/0 trust' >> {pg}/pg_hba.conf; \
         fi; \
         exec setpriv --reuid=postgres --regid=postgres --init-groups {BIN}/postgres -D {pg} \
           -c listen_addresses='*' -c unix_socket_directories=/tmp -c max_connections=200"
    );
    System {
        name: workloads::BuiltinCluster::Postgres.name().into(),
        image: params.image(),
        nodes: vec![NodeSpec {
            name: name.clone(),
            role: "primary".into(),
            cmd: shell(&script),
            env: vec![],
            data_dir: dir,
            files: vec![],
            ports: vec![PortSpec {
                name: "client".into(),
                container_port: PORT,
            }],
            probe: Probe::exec(&[
                &format!("{BIN}/pg_isready"),
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
                "-U",
                "postgres",
            ]),
            log_files: vec![],
        }],
        ready_timeout: Duration::from_secs(30),
        probe_interval: DEFAULT_PROBE_INTERVAL,
        leader: LeaderQuery::Fixed(name),
    }
}
