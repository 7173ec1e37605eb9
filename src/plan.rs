//! Test plans: everything a run needs to know, as one plain struct.
//!
//! A plan comes from a TOML file (`faultline run --plan FILE`), from flags, or both: flags win
//! over the file, and the file wins over the defaults. The resolved plan is written to the run's
//! `plan.json` with the seed, so that a run can always be repeated exactly; [`Plan::rerun_command`]
//! prints the command that does it.
//!
//! Validation happens here, before anything is started: an unknown system, workload or nemesis,
//! a zero concurrency or an unparsable duration is one error naming the option (or the file and
//! key), never a half-started cluster.

use crate::cluster::user::UserSystem;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use workloads::Builtin;

/// The systems a plan may name: real ones started in containers, and in-memory references
/// (`memory`, and `memory-stale` / `memory-lossy` with seeded bugs) that need no Docker and take
/// no faults, for trying faultline out and for testing the harness itself. The names of the one
/// registry of shipped systems, [`workloads::Builtin`].
pub const SYSTEMS: &[&str] = &Builtin::NAMES;

/// Whether `system` runs in the controller's memory rather than in containers.
pub fn is_in_memory(system: &str) -> bool {
    Builtin::parse(system).is_some_and(Builtin::is_in_memory)
}

/// The container system behind a plan's system name (variants share their base's cluster);
/// any other name as it is.
pub fn cluster_system(system: &str) -> &str {
    Builtin::parse(system)
        .and_then(Builtin::cluster)
        .map_or(system, |c| c.name())
}

/// Fault kinds accepted by `--nemesis` (comma-separated), or `none`.
pub const NEMESES: &[&str] = &["partition", "kill", "pause", "restart", "clock", "latency"];

/// A resolved plan. Durations are kept in milliseconds so that plan.json is plain numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Name of the test; the store folder is store/<name>/<timestamp>/.
    pub name: String,
    pub system: String,
    pub workload: String,
    /// Fault kinds to schedule; empty means no faults.
    pub nemesis: Vec<String>,
    /// Time between fault starts (and from start to stop), in milliseconds.
    pub nemesis_interval_ms: u64,
    /// How long the workload phase runs, in milliseconds (the final phase comes after).
    pub time_limit_ms: u64,
    /// Concurrent client processes.
    pub concurrency: u32,
    /// Target operations per second over all processes.
    pub rate_ops_per_s: f64,
    /// Seed of the one RNG every random choice derives from.
    pub seed: u64,
    /// etcd read mode: `linearizable` (quorum) or `serializable` (local, may be stale).
    pub read_mode: String,
    /// Number of keys the register workloads spread over.
    pub keys: u32,
    /// Per-operation timeout in milliseconds; an op that takes longer is recorded as info.
    pub op_timeout_ms: u64,
    /// Where runs are stored.
    pub store: String,
    /// Testbed only: bugs switched on in every node (`--bug NAME`, see `--list-bugs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
    /// Testbed only: node flags by long name without dashes, e.g. `session-ms = 500`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub testbed: BTreeMap<String, Value>,
    /// Workload tuning by name (testbed workloads: stalls, churn, drains, see
    /// `docs/testbed.md`; broker queues: ack stalls, see `docs/ci.md`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client: BTreeMap<String, Value>,
    /// The plan file the plan was read from, so the rerun command names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_file: Option<String>,
    /// How nodes reach their peers: `direct`, or `proxy` (through a Toxiproxy-compatible
    /// proxy container: partitions by toxics, and latency). `latency` implies `proxy`.
    #[serde(default = "default_links")]
    pub links: String,
    /// A user's own system (a plan's `[system]` table, docs/your-system.md); `system` is then
    /// its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_def: Option<UserSystem>,
}

fn default_links() -> String {
    "direct".into()
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            name: String::new(),
            system: "etcd".into(),
            workload: "register".into(),
            nemesis: vec!["partition".into(), "kill".into()],
            nemesis_interval_ms: 10_000,
            time_limit_ms: 60_000,
            concurrency: 10,
            rate_ops_per_s: 200.0,
            seed: 0,
            read_mode: "linearizable".into(),
            keys: 4,
            op_timeout_ms: 1_000,
            store: "store".into(),
            bugs: vec![],
            testbed: BTreeMap::new(),
            client: BTreeMap::new(),
            plan_file: None,
            links: default_links(),
            system_def: None,
        }
    }
}

/// A plan file: every field optional; durations as strings like "60s".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub name: Option<String>,
    /// A shipped system's name, or a user's `[system]` table.
    pub system: Option<SystemChoice>,
    pub workload: Option<String>,
    pub nemesis: Option<Vec<String>>,
    pub nemesis_interval: Option<String>,
    pub time_limit: Option<String>,
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    pub seed: Option<u64>,
    pub read_mode: Option<String>,
    pub keys: Option<u32>,
    pub op_timeout: Option<String>,
    pub store: Option<String>,
    /// Testbed bugs to switch on.
    pub bug: Option<Vec<String>>,
    /// Testbed node flags (a table).
    pub testbed: Option<BTreeMap<String, toml::Value>>,
    /// Workload tuning (a table).
    pub client: Option<BTreeMap<String, toml::Value>>,
    /// `direct` or `proxy`.
    pub links: Option<String>,
}

/// A plan's `system`: a name (`system = "etcd"`), or a table defining the user's own system.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SystemChoice {
    Name(String),
    Table(toml::Value),
}

impl PlanFile {
    pub fn load(path: &Path) -> Result<PlanFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read plan: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let place = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            format!(
                "{}: {place}{}",
                path.display(),
                e.message().replace('\n', " ")
            )
        })
    }

    /// Lays `self` (the file) over `plan`; `origin` names the file in errors.
    pub fn apply(&self, plan: &mut Plan, origin: &str) -> Result<(), String> {
        // A flag is named as it is typed (`--time-limit`), a plan file's key as it is written.
        let place = |key: &str| match origin {
            "flags" => format!("--{}", key.replace('_', "-")),
            _ => format!("{origin}: {key}"),
        };
        let dur = |key: &str, v: &Option<String>| -> Result<Option<u64>, String> {
            v.as_deref()
                .map(|s| parse_duration_ms(s).map_err(|e| format!("{}: {e}", place(key))))
                .transpose()
        };
        if let Some(v) = &self.name {
            plan.name = v.clone();
        }
        match &self.system {
            Some(SystemChoice::Name(n)) => {
                plan.system = n.clone();
                plan.system_def = None;
            }
            Some(SystemChoice::Table(t)) => {
                let def = UserSystem::from_toml(t.clone()).map_err(|e| format!("{origin}: {e}"))?;
                plan.system = def.name.clone();
                plan.system_def = Some(def);
            }
            None => {}
        }
        if let Some(v) = &self.workload {
            plan.workload = v.clone();
        }
        if let Some(v) = &self.nemesis {
            plan.nemesis = v.clone();
        }
        if let Some(v) = dur("nemesis_interval", &self.nemesis_interval)? {
            plan.nemesis_interval_ms = v;
        }
        if let Some(v) = dur("time_limit", &self.time_limit)? {
            plan.time_limit_ms = v;
        }
        if let Some(v) = self.concurrency {
            plan.concurrency = v;
        }
        if let Some(v) = self.rate {
            plan.rate_ops_per_s = v;
        }
        if let Some(v) = self.seed {
            plan.seed = v;
        }
        if let Some(v) = &self.read_mode {
            plan.read_mode = v.clone();
        }
        if let Some(v) = self.keys {
            plan.keys = v;
        }
        if let Some(v) = dur("op_timeout", &self.op_timeout)? {
            plan.op_timeout_ms = v;
        }
        if let Some(v) = &self.store {
            plan.store = v.clone();
        }
        if let Some(v) = &self.bug {
            plan.bugs = v.clone();
        }
        if let Some(v) = &self.links {
            plan.links = v.clone();
        }
        let table = |key: &str, t: &BTreeMap<String, toml::Value>| {
            t.iter()
                .map(|(k, v)| {
                    serde_json::to_value(v)
                        .map(|j| (k.clone(), j))
                        .map_err(|e| format!("{origin}: {key}.{k}: {e}"))
                })
                .collect::<Result<BTreeMap<_, _>, String>>()
        };
        if let Some(t) = &self.testbed {
            plan.testbed.extend(table("testbed", t)?);
        }
        if let Some(t) = &self.client {
            plan.client.extend(table("client", t)?);
        }
        Ok(())
    }
}

impl Plan {
    /// A plan file as `faultline run --plan FILE` reads it with no other flag: the file laid
    /// over the defaults, named, seeded (a fresh seed when the file gives none), and checked,
    /// workload and `[client]` options included. Errors name the file.
    pub fn from_file(file: &Path) -> Result<Plan, String> {
        let (mut plan, _) = Plan::from_file_with(file, |_| {})?;
        if plan.seed == 0 {
            plan.seed = random_seed();
        }
        Ok(plan)
    }

    /// The file laid over the defaults, then `adjust` (a matrix's overrides), then named and
    /// checked as a run would check it before it starts anything; the seed is left as the
    /// file gives it (0: none). Returns the file too. Errors name the file.
    pub fn from_file_with(
        file: &Path,
        adjust: impl FnOnce(&mut Plan),
    ) -> Result<(Plan, PlanFile), String> {
        let origin = file.display().to_string();
        let pf = PlanFile::load(file)?;
        let mut plan = Plan::default();
        pf.apply(&mut plan, &origin)?;
        plan.plan_file = Some(origin.clone());
        adjust(&mut plan);
        if plan.name.is_empty() {
            plan.name = plan.default_name();
        }
        plan.validate().map_err(|e| format!("{origin}: {e}"))?;
        crate::run::check_workload(&plan).map_err(|e| format!("{origin}: {e}"))?;
        Ok((plan, pf))
    }

    /// Checks the plan as a whole; `origin` names where the values came from.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(def) = &self.system_def {
            self.validate_user_system(def)?;
        } else if Builtin::parse(&self.system).is_none() {
            return Err(format!(
                "--system: unknown system {:?}; expected one of: {}",
                self.system,
                SYSTEMS.join(", ")
            ));
        }
        if is_in_memory(&self.system) && !self.nemesis.is_empty() {
            return Err(format!(
                "--nemesis: the in-memory system {:?} runs inside faultline and takes no faults; use --nemesis none",
                self.system
            ));
        }
        for n in &self.nemesis {
            nemeses::schedule::parse_fault(n).map_err(|e| {
                format!("--nemesis: {e}; a fault may name a shape, e.g. partition:isolate-leader or kill:leader")
            })?;
        }
        if self.concurrency == 0 || self.concurrency > 1000 {
            return Err("--concurrency: expected 1 to 1000 client processes".into());
        }
        if !(self.rate_ops_per_s > 0.0 && self.rate_ops_per_s <= 1e6) {
            return Err("--rate: expected more than 0 and at most 1000000 ops per second".into());
        }
        if self.time_limit_ms == 0 || self.time_limit_ms > 24 * 3600 * 1000 {
            return Err("--time-limit: expected more than 0 and at most 24h".into());
        }
        // An op timeout of 0 would make every op `info` (checked: nothing); more than an hour
        // is longer than any run should wait for one op.
        if self.op_timeout_ms == 0 || self.op_timeout_ms > OP_TIMEOUT_MS_MAX {
            return Err(format!(
                "--op-timeout: expected more than 0 and at most 1h, not {}",
                format_ms(self.op_timeout_ms)
            ));
        }
        if self.nemesis_interval_ms < 100 {
            return Err("--nemesis-interval: expected at least 100ms".into());
        }
        if !matches!(self.read_mode.as_str(), "linearizable" | "serializable") {
            return Err("--read-mode: expected linearizable or serializable".into());
        }
        if self.keys == 0 || self.keys > 10_000 {
            return Err("--keys: expected 1 to 10000".into());
        }
        if !matches!(self.links.as_str(), "direct" | "proxy") {
            return Err(format!(
                "--links: expected direct or proxy, not {:?}",
                self.links
            ));
        }
        if self.uses_proxy_links() && self.system_def.is_none() {
            let system = cluster_system(&self.system);
            if let Some(why) = crate::cluster::links::no_proxy_links_reason(system) {
                return Err(format!(
                    "--links proxy (also needed by --nemesis latency): {why}"
                ));
            }
        }
        if self.builtin() == Some(Builtin::Testbed) {
            testbed::cli::check_node_args(&self.testbed_node_args())
                .map_err(|e| format!("testbed: {e}"))?;
        } else if !self.bugs.is_empty() || !self.testbed.is_empty() {
            return Err(format!(
                "--bug: only the testbed system has switchable bugs and node flags, not {:?}",
                self.system
            ));
        }
        if self.name.is_empty() || self.name.contains('/') || self.name.starts_with('.') {
            return Err(format!(
                "--name: {:?} cannot name a store folder; use letters, digits and dashes",
                self.name
            ));
        }
        Ok(())
    }

    /// The folder a plan file's relative paths start from: the plan file's own (`.` for a
    /// plan from flags alone).
    pub fn base_dir(&self) -> std::path::PathBuf {
        self.plan_file
            .as_deref()
            .and_then(|f| Path::new(f).parent())
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into())
    }

    /// A user's system: the table itself, and what the plan asks of it.
    fn validate_user_system(&self, def: &UserSystem) -> Result<(), String> {
        def.check(&self.base_dir())?;
        if self.uses_proxy_links() && def.peer_port.is_none() {
            return Err("--links proxy (also needed by --nemesis latency): set system.peer_port to the port (of system.ports) the nodes dial each other on".into());
        }
        if def.leader.is_none() {
            if let Some(n) = self
                .nemesis
                .iter()
                .find(|n| n.ends_with(":leader") || n.ends_with("-leader"))
            {
                return Err(format!(
                    "--nemesis {n}: aiming at the leader needs system.leader (a command or HTTP call that names it)"
                ));
            }
        }
        Ok(())
    }

    /// The default test name for a system and workload, e.g. `etcd-register`.
    pub fn default_name(&self) -> String {
        format!("{}-{}", self.system, self.workload)
    }

    /// The shipped system the plan names; `None` for a user's own system (`[system]`).
    pub fn builtin(&self) -> Option<Builtin> {
        match self.system_def {
            Some(_) => None,
            None => Builtin::parse(&self.system),
        }
    }

    /// Whether node-to-node links go through a proxy (asked for, or needed for latency).
    pub fn uses_proxy_links(&self) -> bool {
        self.links == "proxy"
            || self
                .nemesis
                .iter()
                .any(|n| n.split(':').next().map(str::trim) == Some("latency"))
    }

    /// The testbed node flags of this plan: `--bug=NAME` for each bug, then `--KEY=VALUE` for
    /// each entry of the `[testbed]` table.
    pub fn testbed_node_args(&self) -> Vec<String> {
        let bugs = self.bugs.iter().map(|b| format!("--bug={b}"));
        let flags = self.testbed.iter().map(|(k, v)| match v {
            Value::String(s) => format!("--{k}={s}"),
            other => format!("--{k}={other}"),
        });
        bugs.chain(flags).collect()
    }

    /// The exact command that repeats this run (same plan, same seed). A plan read from a file
    /// names the file (its tables have no flags) and repeats every value as a flag.
    pub fn rerun_command(&self) -> String {
        let nemesis = if self.nemesis.is_empty() {
            "none".to_string()
        } else {
            self.nemesis.join(",")
        };
        let plan_file = self
            .plan_file
            .as_ref()
            .map(|f| format!(" --plan {}", shell_quote(f)))
            .unwrap_or_default();
        let links = if self.links == "proxy" {
            " --links proxy"
        } else {
            ""
        };
        let bugs: String = if self.bugs.is_empty() && self.builtin() == Some(Builtin::Testbed) {
            " --bug none".into()
        } else {
            self.bugs
                .iter()
                .map(|b| format!(" --bug {}", shell_quote(b)))
                .collect()
        };
        // A user's system lives in its plan file, which the command names.
        let system = match self.system_def {
            Some(_) => String::new(),
            None => format!(" --system {}", shell_quote(&self.system)),
        };
        format!(
            "faultline run{plan_file} --name {}{system} --workload {} --nemesis {} --nemesis-interval {} --time-limit {} --concurrency {} --rate {} --keys {} --read-mode {} --op-timeout {}{links}{bugs} --seed {}",
            shell_quote(&self.name),
            shell_quote(&self.workload),
            shell_quote(&nemesis),
            format_ms(self.nemesis_interval_ms),
            format_ms(self.time_limit_ms),
            self.concurrency,
            self.rate_ops_per_s,
            self.keys,
            shell_quote(&self.read_mode),
            format_ms(self.op_timeout_ms),
            self.seed
        )
    }

    pub fn time_limit(&self) -> Duration {
        Duration::from_millis(self.time_limit_ms)
    }
}

/// A seed from the OS's randomness, folded with the time (never zero).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() % 1_000_000_000).max(1)
}

/// `s` as one POSIX shell word: as is when it holds only characters no shell treats specially,
/// else in single quotes (a `'` inside becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `60s`, `500ms`, `2m`, `1h` or bare seconds, to milliseconds.
/// The longest `--op-timeout` a plan may give.
const OP_TIMEOUT_MS_MAX: u64 = 3600 * 1000;

pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    crate::units::duration(s).map(|d| d.as_millis() as u64)
}

fn format_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rerun_command_quotes_what_a_shell_would_split_or_expand() {
        assert_eq!(shell_quote("etcd-register"), "etcd-register");
        assert_eq!(shell_quote("plans/a b.toml"), "'plans/a b.toml'");
        assert_eq!(shell_quote("it's $HOME"), "'it'\\''s $HOME'");
        assert_eq!(shell_quote(""), "''");
        let plan = Plan {
            name: "my test; rm -rf x".into(),
            plan_file: Some("plans/my plan.toml".into()),
            ..Plan::default()
        };
        let cmd = plan.rerun_command();
        assert!(cmd.contains(" --name 'my test; rm -rf x' "), "{cmd}");
        assert!(cmd.contains(" --plan 'plans/my plan.toml' "), "{cmd}");
    }

    fn plan_from(toml_text: &str) -> Result<Plan, String> {
        let dir = std::env::temp_dir().join(format!("faultline-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("p{}.toml", toml_text.len()));
        std::fs::write(&path, toml_text).unwrap();
        let file = PlanFile::load(&path)?;
        let mut plan = Plan::default();
        file.apply(&mut plan, "plan.toml")?;
        if plan.name.is_empty() {
            plan.name = plan.default_name();
        }
        plan.validate()?;
        Ok(plan)
    }

    #[test]
    fn a_plan_file_overrides_defaults() {
        let p = plan_from(
            "system = \"etcd\"\nworkload = \"register\"\nnemesis = [\"partition\"]\ntime_limit = \"20s\"\nconcurrency = 5\nseed = 7\n",
        )
        .unwrap();
        assert_eq!(p.time_limit_ms, 20_000);
        assert_eq!(p.nemesis, vec!["partition"]);
        assert_eq!(p.seed, 7);
        assert_eq!(p.name, "etcd-register");
    }

    #[test]
    fn bad_plans_name_the_problem() {
        let e = plan_from("sytem = \"etcd\"\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("sytem"), "{e}");
        let e = plan_from("time_limit = \"ten\"\n").unwrap_err();
        assert!(e.contains("time_limit"), "{e}");
        let e = plan_from("system = \"mongo\"\n").unwrap_err();
        assert!(e.contains("unknown system"), "{e}");
        let e = plan_from("nemesis = [\"meteor\"]\n").unwrap_err();
        assert!(e.contains("unknown fault"), "{e}");
        let e = plan_from("system = \"postgres\"\nworkload = \"set\"\nnemesis = [\"latency\"]\n")
            .unwrap_err();
        assert!(
            e.starts_with(
                "--links proxy (also needed by --nemesis latency): postgres runs one server"
            ),
            "{e}"
        );
        plan_from("system = \"redis\"\nworkload = \"queue\"\nnemesis = [\"latency\"]\n").unwrap();
        let e = plan_from("op_timeout = \"0s\"\n").unwrap_err();
        assert_eq!(
            e,
            "--op-timeout: expected more than 0 and at most 1h, not 0s"
        );
        let e = plan_from("op_timeout = \"2h\"\n").unwrap_err();
        assert!(e.starts_with("--op-timeout: "), "{e}");
        plan_from("op_timeout = \"250ms\"\n").unwrap();
    }

    #[test]
    fn the_rerun_command_round_trips_the_plan() {
        let p = Plan {
            name: "t".into(),
            seed: 42,
            ..Plan::default()
        };
        let cmd = p.rerun_command();
        assert!(cmd.contains("--seed 42") && cmd.contains("--nemesis partition,kill"));
        assert!(cmd.contains("--time-limit 60s"));
    }

    #[test]
    fn testbed_plans_carry_bugs_node_flags_and_client_options() {
        let p = plan_from(
            "system = \"testbed\"\nworkload = \"queue\"\nbug = [\"orphan-partition\"]\nnemesis = [\"kill:leader\", \"partition:bridge\"]\n[testbed]\nsession-ms = 2000\n[client]\nchurn-every = 3\n",
        )
        .unwrap();
        assert_eq!(
            p.testbed_node_args(),
            vec!["--bug=orphan-partition", "--session-ms=2000"]
        );
        assert_eq!(p.client["churn-every"], serde_json::json!(3));
        let mut from_file = p.clone();
        from_file.plan_file = Some("plans/scenarios/b6.toml".into());
        let cmd = from_file.rerun_command();
        assert!(
            cmd.starts_with("faultline run --plan plans/scenarios/b6.toml ")
                && cmd.contains("--bug orphan-partition"),
            "{cmd}"
        );
        let off = Plan { bugs: vec![], ..p };
        assert!(off.rerun_command().contains("--bug none"));
    }

    #[test]
    fn bad_testbed_settings_fail_before_anything_starts() {
        let e = plan_from("system = \"testbed\"\nworkload = \"queue\"\nbug = [\"no-such-bug\"]\n")
            .unwrap_err();
        assert!(e.contains("testbed") && e.contains("no-such-bug"), "{e}");
        let e = plan_from("system = \"testbed\"\nworkload = \"queue\"\n[testbed]\nsesion-ms = 5\n")
            .unwrap_err();
        assert!(e.contains("sesion-ms"), "{e}");
        let e = plan_from("system = \"etcd\"\nbug = [\"stale-epoch-write\"]\n").unwrap_err();
        assert!(e.contains("only the testbed"), "{e}");
        let e = plan_from("system = \"etcd\"\nnemesis = [\"partition:sideways\"]\n").unwrap_err();
        assert!(e.contains("sideways") && e.contains("--nemesis"), "{e}");
    }
}
