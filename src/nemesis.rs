//! The nemesis adapter: the controller's [`Cluster`] as the `nemeses` crate's [`NodeControl`].
//!
//! The fault crate must not depend on the controller, so it defines a small trait of node
//! operations and this module implements it for real clusters. It also holds what only the
//! controller can know per system: which process in a node is the server (for clock-fault
//! verification), and how each system reports its own wall-clock time (the probe that proves a
//! clock fault reached the server, or shows that it did not).
//!
//! Use in `faultline run`:
//! 1. start the cluster with [`add_clock_fault_options`] applied to its `ClusterOptions` (the
//!    clock shim, loaded by every node process from its first start; faultline's binary and
//!    CAP_SYS_PTRACE for the vDSO patch of Go and static servers), and set
//!    `NemesisConfig::clock_vdso_helper` to [`CLOCK_VDSO_HELPER`];
//! 2. `let ctl = Arc::new(ClusterControl::new(cluster.clone()))`,
//!    `let nemesis = Arc::new(Nemesis::new(ctl, recorder, NemesisConfig::default()))`;
//! 3. `nemesis.prepare(&kinds)`, then `nemesis.run(&schedule, cancel)` alongside the workload,
//!    with `cancel` resolving at the deadline or on Ctrl-C; `run` heals before it returns;
//! 4. keep a [`nemeses::driver::HealGuard`] alive over the run, and call `heal_all` when the
//!    nemesis task ends in any other way (a panic surfaces as a `JoinError`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nemeses::clock::{parse_http_date, parse_rfc3339_utc};
use nemeses::control::{ClockReading, ExecOutput, NodeControl};
use workloads::BuiltinCluster;

use crate::cluster::{Cluster, ClusterOptions, NodeFile, System};

/// Files that put the clock shim into a node before its first start: the shim, the loader's
/// preload list and a zero offset. At offset zero the shim only adds a memory read per call.
pub fn clock_shim_files() -> Vec<NodeFile> {
    nemeses::clock::image_files()
        .into_iter()
        .map(|f| NodeFile {
            path: f.path.to_string(),
            contents: f.bytes,
            mode: f.mode,
        })
        .collect()
}

/// faultline's binary inside the nodes, which the clock nemesis runs as `clock-attach` to patch
/// the vDSO of servers the shim cannot reach (Go programs, static binaries).
pub const CLOCK_VDSO_HELPER: &str = crate::cluster::systems::testbed::BINARY_PATH;

/// Adds what clock faults need to a cluster's options: the shim files ([`clock_shim_files`]),
/// faultline's binary at [`CLOCK_VDSO_HELPER`] (unless a node file is already there, as in the
/// testbed) and CAP_SYS_PTRACE, which patching another process's vDSO needs.
pub fn add_clock_fault_options(opts: &mut ClusterOptions, system: &System) -> Result<()> {
    opts.files.extend(clock_shim_files());
    let present = |files: &[NodeFile]| files.iter().any(|f| f.path == CLOCK_VDSO_HELPER);
    let in_system = system.nodes.iter().any(|n| present(&n.files));
    if !in_system && !present(&opts.files) {
        opts.files
            .push(crate::cluster::systems::testbed::binary_file()?);
    }
    if !opts.cap_add.iter().any(|c| c == "SYS_PTRACE") {
        opts.cap_add.push("SYS_PTRACE".into());
    }
    Ok(())
}

/// A running cluster, as the nemesis sees it.
pub struct ClusterControl {
    cluster: Arc<Cluster>,
}

impl ClusterControl {
    pub fn new(cluster: Arc<Cluster>) -> ClusterControl {
        ClusterControl { cluster }
    }

    fn system(&self) -> &str {
        &self.cluster.system().name
    }

    fn role(&self, node: &str) -> String {
        self.cluster
            .node(node)
            .map(|n| n.role.clone())
            .unwrap_or_default()
    }

    async fn sh(&self, node: &str, script: &str) -> Result<String> {
        let out = self.cluster.exec(node, &["sh", "-c", script]).await?;
        if out.exit_code != 0 {
            bail!(
                "probe on {node} exited {}: {}",
                out.exit_code,
                out.output.trim()
            );
        }
        Ok(out.output)
    }

    /// An HTTP/1.0 GET of `path` on the node's own `port`, from inside the node (bash /dev/tcp),
    /// returning the raw response.
    async fn http_get(&self, node: &str, port: u16, path: &str) -> Result<String> {
        let script = format!(
            "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && printf \"GET {path} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n\" >&3 && cat <&3'"
        );
        self.sh(node, &script).await
    }
}

/// Header line of a HotSpot thread dump; the line before it is the JVM's local time.
const THREAD_DUMP_HEADER: &str = "Full thread dump";
/// Longest wait for a JVM to print the thread dump it was asked for.
const THREAD_DUMP_WAIT_MS: u64 = 5_000;

impl ClusterControl {
    /// The JVM's own wall-clock time: SIGQUIT makes HotSpot print a thread dump to stdout headed
    /// by its local time (`YYYY-MM-DD HH:MM:SS`, read with libc's `time()`), which the node log
    /// then holds. The containers run in UTC.
    async fn jvm_dump_time(&self, node: &str) -> Result<ClockReading> {
        let pid = self
            .server_pid(node)
            .await?
            .context("no JVM process to ask for the time")?;
        let dumps = |log: &str| log.matches(THREAD_DUMP_HEADER).count();
        let before = dumps(&self.cluster.logs(node).await?);
        self.sh(node, &format!("kill -QUIT {pid}")).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(THREAD_DUMP_WAIT_MS);
        loop {
            let log = self.cluster.logs(node).await?;
            if dumps(&log) > before {
                return jvm_dump_reading(&log);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the JVM on {node} printed no thread dump within {THREAD_DUMP_WAIT_MS} ms");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The time heading the last thread dump in `log`.
fn jvm_dump_reading(log: &str) -> Result<ClockReading> {
    let lines: Vec<&str> = log.lines().collect();
    let at = lines
        .iter()
        .rposition(|l| l.starts_with(THREAD_DUMP_HEADER))
        .context("no thread dump in the log")?;
    let stamp = at
        .checked_sub(1)
        .map(|i| lines[i].trim())
        .context("no time line before the thread dump")?;
    let ns = parse_rfc3339_utc(&format!("{}Z", stamp.replacen(' ', "T", 1)))
        .with_context(|| format!("unreadable thread-dump time {stamp:?}"))?;
    Ok(ClockReading {
        unix_ns: ns,
        resolution_ns: 1_000_000_000,
        source: "JVM thread-dump time".into(),
    })
}

/// The server process's command name (`pgrep -x` pattern) per system and node role; `None`
/// for a user's own system.
pub fn server_process_pattern(system: &str, role: &str) -> Option<&'static str> {
    let cluster = BuiltinCluster::parse(system)?;
    Some(match (cluster, role) {
        (BuiltinCluster::Etcd, _) => "etcd",
        (BuiltinCluster::Redis, "sentinel") => "redis-sentinel|redis-server",
        (BuiltinCluster::Redis, _) => "redis-server",
        (BuiltinCluster::Nats, _) => "nats-server",
        (BuiltinCluster::RabbitMq, _) => "beam.smp",
        (BuiltinCluster::ZooKeeper, _) => "java",
        (BuiltinCluster::Postgres, _) => "postgres",
        (BuiltinCluster::Testbed, _) => "faultline",
    })
}

/// `now_us` of a testbed node's `GET /status` answer: the server process's own clock.
fn testbed_status_reading(response: &str) -> Result<ClockReading> {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).context("testbed /status is not JSON")?;
    let us = v["now_us"]
        .as_u64()
        .context("no \"now_us\" in testbed /status")?;
    Ok(ClockReading {
        unix_ns: i128::from(us) * 1_000,
        resolution_ns: 1_000,
        source: "testbed /status now_us".into(),
    })
}

fn http_date_reading(response: &str, source: &str) -> Result<ClockReading> {
    let date = response
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("date").then(|| v.trim().to_string())
        })
        .with_context(|| format!("no Date header in the {source} response"))?;
    let ns = parse_http_date(&date).with_context(|| format!("unreadable Date header {date:?}"))?;
    Ok(ClockReading {
        unix_ns: ns,
        resolution_ns: 1_000_000_000,
        source: format!("{source} Date header"),
    })
}

fn integer_reading(text: &str, unit_ns: i128, source: &str) -> Result<ClockReading> {
    let v: i128 = text
        .trim()
        .trim_end_matches('.')
        .parse()
        .with_context(|| format!("{source} answered {:?}", text.trim()))?;
    Ok(ClockReading {
        unix_ns: v * unit_ns,
        resolution_ns: unit_ns as u64,
        source: source.to_string(),
    })
}

#[nemeses::control::async_trait]
impl NodeControl for ClusterControl {
    fn nodes(&self) -> Vec<String> {
        self.cluster.fault_targets()
    }

    async fn ip(&self, node: &str) -> Result<IpAddr> {
        self.cluster.ip(node).await
    }

    async fn exec(&self, node: &str, argv: &[&str]) -> Result<ExecOutput> {
        let out = self.cluster.exec(node, argv).await?;
        Ok(ExecOutput {
            code: out.exit_code,
            output: out.output,
        })
    }

    async fn net_exec(&self, node: &str, argv: &[&str]) -> Result<ExecOutput> {
        let out = self.cluster.net_exec(node, argv).await?;
        Ok(ExecOutput {
            code: out.exit_code,
            output: out.output,
        })
    }

    async fn kill(&self, node: &str) -> Result<()> {
        self.cluster.kill(node).await
    }

    async fn start(&self, node: &str) -> Result<()> {
        // Idempotent: a running (or paused) node is left alone.
        if self.cluster.is_running(node).await? {
            return Ok(());
        }
        match self.cluster.start(node).await {
            Ok(()) => Ok(()),
            Err(e) if format!("{e:#}").contains("paused") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn pause(&self, node: &str) -> Result<()> {
        self.cluster.pause(node).await
    }

    async fn unpause(&self, node: &str) -> Result<()> {
        // Idempotent: Docker refuses to unpause a container that is not paused.
        match self.cluster.unpause(node).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let text = format!("{e:#}");
                if text.contains("is not paused") || text.contains("is not running") {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn wait_ready(&self, node: &str, timeout: Duration) -> Result<()> {
        self.cluster.wait_node_ready(node, timeout).await
    }

    async fn leader(&self) -> Result<Option<String>> {
        self.cluster.leader().await
    }

    async fn server_pid(&self, node: &str) -> Result<Option<u32>> {
        let script = match server_process_pattern(self.system(), &self.role(node)) {
            Some(p) => format!("pgrep -o -x '{p}' || true"),
            // Unknown systems: the container's main process.
            None => "echo 1".to_string(),
        };
        let out = self.sh(node, &script).await?;
        Ok(out.lines().next().and_then(|l| l.trim().parse().ok()))
    }

    async fn clock_probe(&self, node: &str) -> Result<Option<ClockReading>> {
        let Some(cluster) = BuiltinCluster::parse(self.system()) else {
            // A user's own system: no known way to ask its server for the time.
            return Ok(None);
        };
        let role = self.role(node);
        let reading = match (cluster, role.as_str()) {
            (BuiltinCluster::Redis, "sentinel") => {
                let out = self.sh(node, "redis-cli -p 26379 info server").await?;
                let usec = out
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("server_time_usec:"))
                    .context("no server_time_usec in sentinel INFO")?;
                integer_reading(usec, 1_000, "redis-sentinel INFO server_time_usec")?
            }
            (BuiltinCluster::Redis, _) => {
                let out = self.sh(node, "redis-cli -p 6379 TIME").await?;
                let mut it = out.split_whitespace();
                let (s, us) = (it.next(), it.next());
                let (Some(s), Some(us)) = (s, us) else {
                    bail!("redis TIME answered {:?}", out.trim());
                };
                let s: i128 = s.parse().context("redis TIME seconds")?;
                let us: i128 = us.parse().context("redis TIME microseconds")?;
                ClockReading {
                    unix_ns: s * 1_000_000_000 + us * 1_000,
                    resolution_ns: 1_000,
                    source: "redis TIME".into(),
                }
            }
            (BuiltinCluster::Postgres, _) => {
                let out = self
                    .sh(
                        node,
                        "/usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -U postgres -Atc \
                         'select (extract(epoch from clock_timestamp()) * 1000000)::bigint'",
                    )
                    .await?;
                integer_reading(&out, 1_000, "postgres clock_timestamp()")?
            }
            (BuiltinCluster::RabbitMq, _) => {
                // The VM's own reading of the OS clock, asked through `erl_call` (milliseconds;
                // `rabbitmqctl eval` would boot a second VM, seconds under load, and widen the
                // window the reading is judged in). `erlang:system_time` follows the OS clock
                // too, but only at the VM's next time-correction check (README, clock table).
                let out = self
                    .sh(
                        node,
                        &format!(
                            "erl_call -sname rabbit@{node} -c {} -timeout 5 -a 'os system_time [microsecond]'",
                            crate::cluster::systems::rabbitmq::COOKIE
                        ),
                    )
                    .await?;
                integer_reading(&out, 1_000, "rabbitmq os:system_time")?
            }
            (BuiltinCluster::Etcd, _) => {
                let resp = self.http_get(node, 2379, "/version").await?;
                http_date_reading(&resp, "etcd HTTP")?
            }
            (BuiltinCluster::Nats, _) => {
                let resp = self.http_get(node, 8222, "/varz").await?;
                let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
                let v: serde_json::Value =
                    serde_json::from_str(body).context("nats /varz is not JSON")?;
                let now = v["now"].as_str().context("no \"now\" in nats /varz")?;
                let ns = parse_rfc3339_utc(now)
                    .with_context(|| format!("unreadable nats /varz now {now:?}"))?;
                ClockReading {
                    unix_ns: ns,
                    resolution_ns: 1_000,
                    source: "nats /varz now".into(),
                }
            }
            (BuiltinCluster::ZooKeeper, _) => self.jvm_dump_time(node).await?,
            (BuiltinCluster::Testbed, _) => {
                let port = crate::cluster::systems::testbed::CLIENT_PORT;
                let resp = self.http_get(node, port, "/status").await?;
                testbed_status_reading(&resp)?
            }
        };
        Ok(Some(reading))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_system_names_its_server_process() {
        for s in crate::cluster::SYSTEM_NAMES {
            assert!(server_process_pattern(s, "server").is_some(), "{s}");
        }
        assert_eq!(server_process_pattern("custom", "server"), None);
    }

    #[test]
    fn date_headers_and_integers_become_readings() {
        let r = http_date_reading(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n{}",
            "etcd HTTP",
        )
        .unwrap();
        assert_eq!(r.unix_ns, 784_111_777_000_000_000);
        assert_eq!(r.resolution_ns, 1_000_000_000);
        assert!(http_date_reading("HTTP/1.0 200 OK\r\n\r\n", "x").is_err());
        let r = integer_reading("1700000000123456\n", 1_000, "pg").unwrap();
        assert_eq!(r.unix_ns, 1_700_000_000_123_456_000);
        assert!(integer_reading("ERROR", 1_000, "pg").is_err());
        let r = testbed_status_reading(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"node\":\"n1\",\"now_us\":1700000000123456}",
        )
        .unwrap();
        assert_eq!(r.unix_ns, 1_700_000_000_123_456_000);
        assert!(testbed_status_reading("HTTP/1.1 200 OK\r\n\r\n{\"node\":\"n1\"}").is_err());
    }

    #[test]
    fn a_thread_dump_header_gives_the_jvms_time() {
        let log = "INFO started\n2026-11-22 02:54:43\nFull thread dump OpenJDK 64-Bit Server VM:\n\
                   \"main\" #1\n";
        let r = jvm_dump_reading(log).unwrap();
        assert_eq!(
            r.unix_ns,
            parse_rfc3339_utc("2026-11-22T02:54:43Z").unwrap()
        );
        assert!(jvm_dump_reading("no dump here").is_err());
    }

    #[test]
    fn the_shim_files_are_absolute_and_complete() {
        let files = clock_shim_files();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                nemeses::clock::SHIM_PATH,
                nemeses::clock::PRELOAD_LIST,
                "/run/faultline/clock/offset"
            ]
        );
    }
}
