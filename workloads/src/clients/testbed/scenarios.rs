//! The testbed's workloads that have no generic counterpart (register with sole writers,
//! members, leave, unique, lease), with their generators and checker choices.

use super::*;

pub(super) fn checker(name: &str) -> CheckerSpec {
    CheckerSpec {
        name: name.into(),
        options: CheckOptions::default(),
    }
}

/// Keys used by a main generator, shared with its deferred final reads.
#[derive(Default, Clone)]
pub(super) struct Used(Arc<AtomicU64>);

impl Used {
    fn saw(&self, n: u64) {
        self.0.fetch_max(n + 1, Ordering::Relaxed);
    }
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub(super) fn final_reads(
    used: Used,
    f: &'static str,
    key: impl Fn(u64) -> String + Send + 'static,
) -> Gen {
    generator::deferred(move || {
        generator::seq(
            (0..used.count())
                .map(|k| {
                    let op = Invocation::new(f, Value::Null).with_key(key(k));
                    generator::until_ok(FINAL_ATTEMPTS_MAX, generator::repeat(op))
                })
                .collect(),
        )
    })
}

/// Registers with one writer each: every worker thread writes (and CASes) only its own key, and
/// reads every thread's key; a key is retired after `ops_per_key` of its writer's operations and
/// replaced by a fresh one; the final phase reads every key used.
///
/// Why one writer per key: a write acknowledged and then lost, or a deposed primary's write
/// acknowledged after a new primary took over, can always be explained away by linearizing it
/// before some other client's concurrent write to the same key. With a sole writer there is no
/// such write, so any later read that misses an acknowledged write proves it lost.
pub(super) struct SoleWriterGen {
    ops_per_key: u64,
    values: i64,
    cas: bool,
    /// thread -> (key generation, operations left on it)
    keys: BTreeMap<usize, (u64, u64)>,
    used: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SoleWriterGen {
    fn key(thread: usize, generation: u64) -> String {
        format!("t{thread}k{generation}")
    }
}

impl Generator for SoleWriterGen {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        for &t in ctx.all {
            if !self.keys.contains_key(&t) {
                self.keys.insert(t, (0, self.ops_per_key));
                if let Ok(mut u) = self.used.lock() {
                    u.push(Self::key(t, 0));
                }
            }
        }
        let Some(thread) = ctx.some_free_thread() else {
            return Next::Pending { wake_ns: None };
        };
        let kinds = if self.cas { 3 } else { 2 };
        let op = match ctx.rng.random_range(0..kinds) {
            0 => {
                let threads: Vec<usize> = self.keys.keys().copied().collect();
                let t = threads[ctx.rng.random_range(0..threads.len())];
                Invocation::new("read", Value::Null).with_key(Self::key(t, self.keys[&t].0))
            }
            kind => {
                let (generation, left) =
                    self.keys.get_mut(&thread).expect("every thread has a key");
                let key = Self::key(thread, *generation);
                *left -= 1;
                if *left == 0 {
                    *generation += 1;
                    *left = self.ops_per_key;
                    if let Ok(mut u) = self.used.lock() {
                        u.push(Self::key(thread, *generation));
                    }
                }
                let v = ctx.rng.random_range(0..self.values);
                let op = if kind == 1 {
                    Invocation::new("write", json!(v))
                } else {
                    Invocation::new("cas", json!([ctx.rng.random_range(0..self.values), v]))
                };
                op.with_key(key)
            }
        };
        Next::Op(Planned {
            thread,
            at_ns: ctx.time_ns,
            op,
        })
    }
}

/// See [`SoleWriterGen`]; checked for linearizability with the cas-register model.
pub(super) fn register(o: &TestbedOptions, cas: bool) -> Workload {
    let ro = &o.register;
    assert!(ro.ops_per_key > 0 && ro.value_count > 0);
    let used: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let gen = SoleWriterGen {
        ops_per_key: ro.ops_per_key,
        values: ro.value_count,
        cas,
        keys: BTreeMap::new(),
        used: Arc::clone(&used),
    };
    let final_gen = generator::deferred(move || {
        let keys = used.lock().map(|u| u.clone()).unwrap_or_default();
        generator::seq(
            keys.into_iter()
                .map(|k| {
                    let op = Invocation::new("read", Value::Null).with_key(k);
                    generator::until_ok(FINAL_ATTEMPTS_MAX, generator::repeat(op))
                })
                .collect(),
        )
    });
    Workload {
        name: if cas { "cas-register" } else { "register" }.into(),
        guarantee: "linearizability of a primary-backup register across failovers: no acknowledged write lost, no deposed primary's write surfacing (one writer per key, every thread reads)".into(),
        checkers: vec![CheckerSpec {
            name: "linearizable".into(),
            options: CheckOptions {
                model: Some("cas-register".into()),
                ..CheckOptions::default()
            },
        }],
        generator: Box::new(gen),
        final_generator: Some(final_gen),
    }
}

/// Concurrent adds of a small pool of members to one group at a time, then a read of each group:
/// a duplicate member in a read is what the set checker flags.
pub(super) fn members(o: &TestbedOptions) -> Workload {
    assert!(o.members_pool > 0 && o.adds_per_group > 0);
    let used = Used::default();
    let u = used.clone();
    let (pool, per) = (o.members_pool, o.adds_per_group);
    let mut n = 0u64;
    let gen = generator::from_fn(move |rng| {
        let g = n / per;
        n += 1;
        u.saw(g);
        let m = rng.random_range(0..pool);
        Invocation::new("add", json!(m)).with_key(format!("members-{g}"))
    });
    Workload {
        name: "members".into(),
        guarantee: "membership: concurrent adds of one member leave it in the group once; no acknowledged add is lost".into(),
        checkers: vec![checker("set")],
        generator: gen,
        final_generator: Some(final_reads(used, "read", |g| format!("members-{g}"))),
    }
}

/// Concurrent leaves of one member (added at setup), then the number of state changes each made.
pub(super) fn leave(o: &TestbedOptions) -> Workload {
    assert!(o.leaves_per_member > 0 && o.leave_members > 0);
    let used = Used::default();
    let u = used.clone();
    let (per, max) = (o.leaves_per_member, o.leave_members);
    let mut n = 0u64;
    let gen = generator::from_fn(move |_| {
        // Past the members added at setup, leaves find nobody: bound the run by them instead.
        let m = (n / per).min(max - 1);
        n += 1;
        u.saw(m);
        Invocation::new("command", json!({ "leave": format!("m-{m}") }))
            .with_key(format!("leave:m-{m}"))
    });
    let gen = generator::limit(per * max, gen);
    Workload {
        name: "leave".into(),
        guarantee: "concurrent leave requests of one member make exactly one state change".into(),
        checkers: vec![checker("idempotency")],
        generator: gen,
        final_generator: Some(final_reads(used, "effects", |m| format!("leave:m-{m}"))),
    }
}

/// Each id created several times, concurrently: one success per id.
pub(super) fn unique(o: &TestbedOptions) -> Workload {
    assert!(o.creates_per_id > 0);
    let per = o.creates_per_id;
    let mut n = 0u64;
    let gen = generator::from_fn(move |_| {
        let id = n / per;
        n += 1;
        Invocation::new("create", Value::Null).with_key(format!("id-{id}"))
    });
    Workload {
        name: "unique".into(),
        guarantee: "a create of an existing id fails: at most one successful create per id".into(),
        checkers: vec![checker("unique")],
        generator: gen,
        final_generator: None,
    }
}

/// Workers race for task leases: each command acquires `task-K`, maybe stalls past the lease,
/// and completes; then the number of completions each task took.
pub(super) fn lease(o: &TestbedOptions) -> Workload {
    assert!(o.tasks_in_flight > 0 && o.commands_per_task > 0);
    let used = Used::default();
    let u = used.clone();
    let mut slots: Vec<(u64, u64)> = (0..o.tasks_in_flight as u64)
        .map(|k| (k, o.commands_per_task))
        .collect();
    let mut next_task = o.tasks_in_flight as u64;
    let per = o.commands_per_task;
    let gen = generator::from_fn(move |rng| {
        let i = rng.random_range(0..slots.len());
        let (task, left) = &mut slots[i];
        let t = *task;
        u.saw(t);
        *left -= 1;
        if *left == 0 {
            slots[i] = (next_task, per);
            next_task += 1;
        }
        Invocation::new("command", json!({ "complete": format!("task-{t}") }))
            .with_key(format!("task-{t}"))
    });
    Workload {
        name: "lease".into(),
        guarantee: "fencing: a task completes once; a worker whose lease expired cannot complete it after another took it over".into(),
        checkers: vec![checker("idempotency")],
        generator: gen,
        final_generator: Some(final_reads(used, "effects", |t| format!("task-{t}"))),
    }
}
