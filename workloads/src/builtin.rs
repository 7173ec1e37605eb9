//! The systems faultline ships: one typed registry.
//!
//! [`Builtin`] is every system a plan may name without a `[system]` table of its own: the six
//! real systems started in containers, the testbed, the known-bad PostgreSQL variant and the
//! in-memory references. [`BuiltinCluster`] is what runs in containers: a built-in system's
//! cluster ([`Builtin::cluster`]), shared by a variant and its base. Each property of a system
//! (name, workloads, cluster, the client factory in [`crate::workload::build_builtin`], and in
//! the controller its nodes, server process, clock probe and links) is an exhaustive `match` on
//! one of these enums, so a system added here does not compile until every place handles it.

/// A system faultline ships. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Etcd,
    Redis,
    Nats,
    RabbitMq,
    ZooKeeper,
    Postgres,
    /// PostgreSQL with idempotent requests implemented by the classic check-then-insert race:
    /// a known-bad control on a real database.
    PostgresCheckThenInsert,
    Testbed,
    /// In-process register and queue, no cluster: for trying faultline out.
    Memory,
    /// In-process register that serves stale reads (a seeded bug, for testing the harness).
    MemoryStale,
    /// In-process queue that loses messages (a seeded bug, for testing the harness).
    MemoryLossy,
}

impl Builtin {
    /// Every built-in system, in the order `--help` and error messages list them.
    pub const ALL: [Builtin; 11] = [
        Builtin::Etcd,
        Builtin::Redis,
        Builtin::Nats,
        Builtin::RabbitMq,
        Builtin::ZooKeeper,
        Builtin::Postgres,
        Builtin::PostgresCheckThenInsert,
        Builtin::Testbed,
        Builtin::Memory,
        Builtin::MemoryStale,
        Builtin::MemoryLossy,
    ];

    /// The names of [`Builtin::ALL`], in its order.
    pub const NAMES: [&'static str; Builtin::ALL.len()] = {
        let mut names = [""; Builtin::ALL.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = Builtin::ALL[i].name();
            i += 1;
        }
        names
    };

    /// The name plans, flags and messages use.
    pub const fn name(self) -> &'static str {
        match self {
            Builtin::Etcd => "etcd",
            Builtin::Redis => "redis",
            Builtin::Nats => "nats",
            Builtin::RabbitMq => "rabbitmq",
            Builtin::ZooKeeper => "zookeeper",
            Builtin::Postgres => "postgres",
            Builtin::PostgresCheckThenInsert => "postgres-check-then-insert",
            Builtin::Testbed => crate::clients::testbed::SYSTEM,
            Builtin::Memory => "memory",
            Builtin::MemoryStale => "memory-stale",
            Builtin::MemoryLossy => "memory-lossy",
        }
    }

    /// The system named `name` exactly ([`Builtin::name`]); `None` for anything else.
    pub fn parse(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The workloads the system runs, in the order `--help` and messages list them.
    pub fn workloads(self) -> &'static [&'static str] {
        match self {
            Builtin::Etcd | Builtin::ZooKeeper | Builtin::MemoryStale => {
                &["register", "cas-register"]
            }
            Builtin::Redis => &["register", "cas-register", "queue", "stream"],
            Builtin::Nats | Builtin::RabbitMq | Builtin::MemoryLossy => &["queue"],
            Builtin::Postgres => &[
                "idempotency",
                "versioned-append",
                "set",
                "list-append",
                "rw-register",
            ],
            Builtin::PostgresCheckThenInsert => &["idempotency"],
            Builtin::Testbed => crate::clients::testbed::WORKLOADS,
            Builtin::Memory => &["register", "cas-register", "queue"],
        }
    }

    /// The cluster the system runs on; `None` for the in-memory systems, which run inside the
    /// controller and take no faults.
    pub const fn cluster(self) -> Option<BuiltinCluster> {
        match self {
            Builtin::Etcd => Some(BuiltinCluster::Etcd),
            Builtin::Redis => Some(BuiltinCluster::Redis),
            Builtin::Nats => Some(BuiltinCluster::Nats),
            Builtin::RabbitMq => Some(BuiltinCluster::RabbitMq),
            Builtin::ZooKeeper => Some(BuiltinCluster::ZooKeeper),
            Builtin::Postgres | Builtin::PostgresCheckThenInsert => Some(BuiltinCluster::Postgres),
            Builtin::Testbed => Some(BuiltinCluster::Testbed),
            Builtin::Memory | Builtin::MemoryStale | Builtin::MemoryLossy => None,
        }
    }

    /// Whether the system runs in the controller's memory rather than in containers.
    pub const fn is_in_memory(self) -> bool {
        self.cluster().is_none()
    }

    /// The error for a workload the system does not run; it lists the ones it does.
    pub fn no_workload(self, workload: &str) -> String {
        format!(
            "system {:?} has no workload {workload:?}; it has: {}",
            self.name(),
            self.workloads().join(", ")
        )
    }
}

/// A built-in system's cluster: what runs in containers (`faultline cluster up --system S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinCluster {
    Etcd,
    Redis,
    Nats,
    RabbitMq,
    ZooKeeper,
    Postgres,
    Testbed,
}

impl BuiltinCluster {
    /// Every built-in cluster, in the order `--help` and error messages list them.
    pub const ALL: [BuiltinCluster; 7] = [
        BuiltinCluster::Etcd,
        BuiltinCluster::Redis,
        BuiltinCluster::Nats,
        BuiltinCluster::RabbitMq,
        BuiltinCluster::ZooKeeper,
        BuiltinCluster::Postgres,
        BuiltinCluster::Testbed,
    ];

    /// The names of [`BuiltinCluster::ALL`], in its order.
    pub const NAMES: [&'static str; BuiltinCluster::ALL.len()] = {
        let mut names = [""; BuiltinCluster::ALL.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = BuiltinCluster::ALL[i].name();
            i += 1;
        }
        names
    };

    /// Other names `faultline cluster up --system` accepts for a cluster.
    pub const ALIASES: &'static [(&'static str, BuiltinCluster)] =
        &[("postgresql", BuiltinCluster::Postgres)];

    /// The cluster's name: the name of the system of the same kind, and `System::name`.
    pub const fn name(self) -> &'static str {
        self.system().name()
    }

    /// The system that runs on this cluster as it is (the base of any variants).
    pub const fn system(self) -> Builtin {
        match self {
            BuiltinCluster::Etcd => Builtin::Etcd,
            BuiltinCluster::Redis => Builtin::Redis,
            BuiltinCluster::Nats => Builtin::Nats,
            BuiltinCluster::RabbitMq => Builtin::RabbitMq,
            BuiltinCluster::ZooKeeper => Builtin::ZooKeeper,
            BuiltinCluster::Postgres => Builtin::Postgres,
            BuiltinCluster::Testbed => Builtin::Testbed,
        }
    }

    /// The cluster named `name` exactly ([`BuiltinCluster::name`]); `None` for anything else,
    /// aliases included.
    pub fn parse(name: &str) -> Option<BuiltinCluster> {
        BuiltinCluster::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The cluster named `name` or one of its [`BuiltinCluster::ALIASES`].
    pub fn parse_or_alias(name: &str) -> Option<BuiltinCluster> {
        BuiltinCluster::parse(name).or_else(|| {
            BuiltinCluster::ALIASES
                .iter()
                .find(|(alias, _)| *alias == name)
                .map(|(_, c)| *c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_plans_use_and_parse_back() {
        assert_eq!(
            Builtin::NAMES,
            [
                "etcd",
                "redis",
                "nats",
                "rabbitmq",
                "zookeeper",
                "postgres",
                "postgres-check-then-insert",
                "testbed",
                "memory",
                "memory-stale",
                "memory-lossy",
            ]
        );
        for b in Builtin::ALL {
            assert_eq!(Builtin::parse(b.name()), Some(b));
        }
        assert_eq!(Builtin::parse("postgresql"), None);
        assert_eq!(Builtin::parse("Etcd"), None);
        assert_eq!(Builtin::parse(""), None);
    }

    #[test]
    fn clusters_are_the_container_systems_and_their_variants_share_them() {
        assert_eq!(
            BuiltinCluster::NAMES,
            [
                "etcd",
                "redis",
                "nats",
                "rabbitmq",
                "zookeeper",
                "postgres",
                "testbed"
            ]
        );
        for c in BuiltinCluster::ALL {
            assert_eq!(c.system().cluster(), Some(c), "{c:?}");
            assert_eq!(BuiltinCluster::parse(c.name()), Some(c));
        }
        assert_eq!(
            Builtin::PostgresCheckThenInsert.cluster(),
            Some(BuiltinCluster::Postgres)
        );
        let in_memory: Vec<&str> = Builtin::ALL
            .into_iter()
            .filter(|b| b.is_in_memory())
            .map(Builtin::name)
            .collect();
        assert_eq!(in_memory, ["memory", "memory-stale", "memory-lossy"]);
    }

    #[test]
    fn the_postgresql_alias_is_only_an_alias() {
        assert_eq!(BuiltinCluster::parse("postgresql"), None);
        assert_eq!(
            BuiltinCluster::parse_or_alias("postgresql"),
            Some(BuiltinCluster::Postgres)
        );
        assert_eq!(
            BuiltinCluster::parse_or_alias("etcd"),
            Some(BuiltinCluster::Etcd)
        );
        assert_eq!(BuiltinCluster::parse_or_alias("memory"), None);
    }

    #[test]
    fn every_system_has_workloads_and_names_them_when_asked_for_another() {
        for b in Builtin::ALL {
            assert!(!b.workloads().is_empty(), "{b:?}");
        }
        assert_eq!(
            Builtin::Etcd.no_workload("queue"),
            "system \"etcd\" has no workload \"queue\"; it has: register, cas-register"
        );
    }
}
