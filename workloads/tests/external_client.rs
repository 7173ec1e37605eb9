//! A client in any language (`clients::external`): small Python programs play the user's
//! client, and the runner drives them as it drives the Rust clients. Specified here: a correct
//! client yields a valid history and a stale one an invalid one; a client that hangs, crashes or
//! prints garbage turns its operation into `info` with the reason and is replaced under a new
//! process id; a client that fails at start is an error quoting its stderr.

use checkers::{Budget, EventType, Verdict};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workloads::clients::external::{ExternalClientConfig, ExternalFactory, ExternalNode};
use workloads::generator;
use workloads::workload::external_workload;
use workloads::{ClientFactory, Invocation, PhaseLimits, Recorder, Runner, RunnerConfig};

/// The protocol loop every test client shares; `handle(msg)` returns the reply (a dict), and
/// `STATE` is a folder the test owns.
const PRELUDE: &str = r#"
import fcntl, json, os, sys, time
STATE = os.environ["STATE"]
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
def main(handle):
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["type"] == "init":
            print("init", json.dumps(msg), file=sys.stderr, flush=True)
            send({"type": "init_ok", "protocol": 1})
        elif msg["type"] in ("setup", "teardown"):
            send({"type": msg["type"] + "_ok"})
        else:
            send(handle(msg))
"#;

/// A register per key in one JSON file, each operation under an exclusive lock: linearizable
/// across processes. With STALE set, a read answers the value the key held before its last
/// write.
const REGISTER: &str = r#"
def handle(op):
    with open(os.path.join(STATE, "lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(STATE, "registers.json")
        regs = json.load(open(path)) if os.path.exists(path) else {}
        cur, prev = regs.get(op["key"], [None, None])
        if op["f"] == "read":
            return {"type": "ok", "value": prev if os.environ.get("STALE") else cur}
        if op["f"] == "write":
            regs[op["key"]] = [op["value"], cur]
        elif op["f"] == "cas":
            old, new = op["value"]
            if cur != old:
                return {"type": "fail", "error": "cas-mismatch"}
            regs[op["key"]] = [new, cur]
        json.dump(regs, open(path + ".tmp", "w")); os.replace(path + ".tmp", path)
        return {"type": "ok"}
main(handle)
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A factory running `body` (after the prelude) with python3, `env` added.
    fn factory(&self, body: &str, env: &[(&str, &str)]) -> ExternalFactory {
        self.factory_with(body, env, Duration::from_secs(10))
    }

    /// [`Fixture::factory`] with a bound on the answer to `init` (generous by default: the
    /// machine may be busy, and python3 must start first).
    fn factory_with(
        &self,
        body: &str,
        env: &[(&str, &str)],
        init_timeout: Duration,
    ) -> ExternalFactory {
        let script = self.path("client.py");
        std::fs::write(&script, format!("{PRELUDE}\n{body}")).unwrap();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("STATE".into(), self.dir.path().display().to_string()));
        ExternalFactory::new(ExternalClientConfig {
            command: vec!["python3".into(), "-u".into(), "client.py".into()],
            cwd: Some(self.dir.path().to_path_buf()),
            env,
            workload: "register".into(),
            nodes: ["n1", "n2"]
                .iter()
                .enumerate()
                .map(|(i, n)| ExternalNode {
                    name: n.to_string(),
                    addresses: BTreeMap::from([(
                        "client".to_string(),
                        format!("127.0.0.1:{}", 7001 + i),
                    )]),
                })
                .collect(),
            stderr_file: Some(self.path("clients.log")),
            init_timeout,
        })
        .unwrap()
    }

    /// Runs `ops` operations from `gen` with `concurrency` processes and an op timeout; returns
    /// the recorded events.
    async fn run(
        &self,
        factory: ExternalFactory,
        gen: workloads::Gen,
        concurrency: usize,
        op_timeout: Duration,
    ) -> Vec<checkers::Event> {
        let path = self.path("history.jsonl");
        let recorder = Recorder::create(&path).unwrap();
        let mut config = RunnerConfig::new(concurrency, vec!["n1".into(), "n2".into()], 5);
        config.op_timeout = op_timeout;
        config.connect_timeout = Duration::from_secs(15);
        let mut runner = Runner::start(config, std::sync::Arc::new(factory), recorder.clone())
            .await
            .unwrap();
        let limits = PhaseLimits {
            time_limit: Duration::from_secs(60),
            grace: Duration::from_secs(2),
        };
        runner
            .run_phase(gen, limits, &CancellationToken::new())
            .await
            .unwrap();
        runner.close().await.unwrap();
        recorder.finish().await.unwrap();
        checkers::formats::read_path(&path, None).unwrap().events
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("clients.log")).unwrap_or_default()
    }
}

fn writes(n: u64) -> workloads::Gen {
    generator::limit(
        n,
        generator::repeat(Invocation::new("write", json!(1)).with_key("r")),
    )
}

fn completions(events: &[checkers::Event]) -> Vec<&checkers::Event> {
    events
        .iter()
        .filter(|e| e.kind != EventType::Invoke)
        .collect()
}

async fn register_verdict(stale: bool) -> Verdict {
    let fx = Fixture::new();
    let env: &[(&str, &str)] = if stale { &[("STALE", "1")] } else { &[] };
    let factory = fx.factory(REGISTER, env);
    let w = external_workload("cas-register", &Default::default()).unwrap();
    let path = fx.path("history.jsonl");
    let events = fx
        .run(
            factory,
            generator::limit(300, w.generator),
            4,
            Duration::from_secs(5),
        )
        .await;
    assert!(events.len() >= 600, "every operation was recorded");
    let history = checkers::formats::read_path(&path, None).unwrap();
    let spec = &w.checkers[0];
    let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
    checkers::run_checker(checker.as_ref(), &history, &Budget::default())
        .unwrap()
        .verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_client_in_python_gives_a_valid_history_and_a_stale_one_an_invalid_one() {
    assert_eq!(register_verdict(false).await, Verdict::Valid);
    assert_eq!(register_verdict(true).await, Verdict::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_tells_the_process_id_the_preferred_node_and_every_address() {
    let fx = Fixture::new();
    let factory = fx.factory(REGISTER, &[]);
    fx.run(factory, writes(2), 2, Duration::from_secs(5)).await;
    let inits: Vec<Value> = fx
        .log()
        .lines()
        .filter_map(|l| l.split_once("| init "))
        .map(|(_, m)| serde_json::from_str(m).unwrap())
        .collect();
    let p1 = inits.iter().find(|m| m["process"] == json!(1)).unwrap();
    assert_eq!(p1["protocol"], json!(1));
    assert_eq!(p1["workload"], json!("register"));
    assert_eq!(p1["node"], json!("n2"), "thread 1 prefers the second node");
    assert_eq!(
        p1["nodes"][1]["addresses"]["client"],
        json!("127.0.0.1:7002")
    );
    assert!(
        inits.iter().any(|m| m["process"] == json!(-1)),
        "the setup client is process -1"
    );
    assert!(fx.log().lines().any(|l| l.starts_with("p1| init ")));
}

/// Answers `ok`, except that the first operation of the run (marked by a file holding the
/// process's pid) does `behave()`.
fn misbehaving_once(behave: &str) -> String {
    format!(
        r#"
def handle(op):
    mark = os.path.join(STATE, "mark")
    if not os.path.exists(mark):
        open(mark, "w").write(str(os.getpid()))
        {behave}
    return {{"type": "ok"}}
main(handle)
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_later_than_the_op_timeout_is_info_and_the_process_is_killed_and_replaced() {
    let fx = Fixture::new();
    let factory = fx.factory(&misbehaving_once("time.sleep(60)"), &[]);
    let events = fx
        .run(factory, writes(3), 1, Duration::from_millis(1500))
        .await;
    let done = completions(&events);
    assert_eq!(done[0].kind, EventType::Info);
    assert_eq!(done[0].error.as_deref(), Some("timed-out"));
    assert_eq!(done[1].kind, EventType::Ok);
    assert_ne!(
        done[1].process, done[0].process,
        "the next operation runs as a new process"
    );
    let pid = std::fs::read_to_string(fx.path("mark")).unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the hung client was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_crashes_turns_its_operation_into_info_with_its_stderr() {
    let fx = Fixture::new();
    let body =
        misbehaving_once("print('boom: lost my socket', file=sys.stderr, flush=True); sys.exit(7)");
    let events = fx
        .run(fx.factory(&body, &[]), writes(2), 1, Duration::from_secs(5))
        .await;
    let done = completions(&events);
    assert_eq!(done[0].kind, EventType::Info);
    let error = done[0].error.as_deref().unwrap();
    assert!(
        error.starts_with("client-crashed: the client closed its stdout")
            && error.contains("exit status: 7")
            && error.contains("boom: lost my socket"),
        "{error}"
    );
    assert_eq!(done[1].kind, EventType::Ok);
    assert!(
        fx.log().contains("| boom: lost my socket"),
        "stderr kept in the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_prints_garbage_turns_its_operation_into_info() {
    let fx = Fixture::new();
    let body = misbehaving_once("print('hello there', flush=True); return {'type': 'ok'}");
    let events = fx
        .run(fx.factory(&body, &[]), writes(2), 1, Duration::from_secs(5))
        .await;
    let done = completions(&events);
    assert_eq!(done[0].kind, EventType::Info);
    assert_eq!(
        done[0].error.as_deref(),
        Some("client-garbage: not a JSON object: \"hello there\"")
    );
    assert_eq!(done[1].kind, EventType::Ok);
    assert_ne!(done[1].process, done[0].process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_fails_at_start_is_an_error_quoting_its_stderr() {
    let fx = Fixture::new();
    let factory = fx.factory(
        "print('ModuleNotFoundError: No module named psycopg', file=sys.stderr); sys.exit(1)",
        &[],
    );
    let e = factory.open(0, "n1").await.err().unwrap().to_string();
    assert!(
        e.starts_with("client process p0 did not start: the client closed its stdout")
            && e.contains("exit status: 1")
            && e.contains("No module named psycopg"),
        "{e}"
    );
}

/// The check before a cluster starts: a client that exits, writes garbage or never answers
/// fails it with its stderr; one that answers init (ok, or error since nothing listens yet)
/// passes, is told it is a check, and is gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_check_catches_a_client_that_cannot_start_and_passes_one_that_answers() {
    let fx = Fixture::new();
    let dies = fx.factory(
        "print('SyntaxError: invalid syntax', file=sys.stderr); sys.exit(2)",
        &[],
    );
    let e = dies.check_starts().await.unwrap_err().to_string();
    assert!(
        e.starts_with("client process check did not start: the client closed its stdout")
            && e.contains("exit status: 2")
            && e.contains("SyntaxError: invalid syntax"),
        "{e}"
    );
    let garbage = fx.factory("sys.stdin.readline(); print('hello there')", &[]);
    let e = garbage.check_starts().await.unwrap_err().to_string();
    assert!(e.contains("not a JSON object: \"hello there\""), "{e}");
    let silent = fx.factory_with("time.sleep(60)", &[], Duration::from_secs(2));
    let e = silent.check_starts().await.unwrap_err().to_string();
    assert!(e.contains("no answer to init within 2000 ms"), "{e}");

    let refuses = fx.factory(
        "sys.stdin.readline(); send({'type': 'error', 'error': 'cannot connect to n1'})",
        &[],
    );
    refuses
        .check_starts()
        .await
        .expect("a refusal is a protocol answer: nothing listens before the cluster starts");
    let good = fx.factory("main(lambda op: {'type': 'ok'})", &[]);
    good.check_starts().await.unwrap();
    let log = fx.log();
    let init = log
        .lines()
        .find(|l| l.starts_with("check| init "))
        .unwrap_or_else(|| panic!("the check's stderr is kept with its label: {log}"));
    let msg: Value = serde_json::from_str(init.trim_start_matches("check| init ")).unwrap();
    assert_eq!(
        (msg["process"].clone(), msg["check"].clone()),
        (json!(-1), json!(true))
    );

    let missing = ExternalFactory::new(ExternalClientConfig {
        command: vec!["./no-such-client".into()],
        cwd: Some(fx.dir.path().to_path_buf()),
        env: vec![],
        workload: "register".into(),
        nodes: vec![],
        stderr_file: None,
        init_timeout: Duration::from_secs(2),
    })
    .unwrap();
    let e = format!("{:#}", missing.check_starts().await.unwrap_err());
    assert!(
        e.starts_with("cannot start the client `./no-such-client`: ")
            && e.contains("No such file or directory"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_init_or_speaks_another_protocol_is_an_error() {
    let fx = Fixture::new();
    let silent = fx.factory_with("time.sleep(60)", &[], Duration::from_secs(2));
    let e = silent.open(0, "n1").await.err().unwrap().to_string();
    assert!(e.contains("no answer to init within 2000 ms"), "{e}");
    let other = fx.factory(
        "sys.stdin.readline(); send({'type': 'init_ok', 'protocol': 2})",
        &[],
    );
    let e = other.open(0, "n1").await.err().unwrap().to_string();
    assert!(
        e.contains("it speaks protocol 2, faultline speaks 1"),
        "{e}"
    );
}

#[test]
fn completions_map_by_the_rules_of_the_contract() {
    use workloads::clients::external::completion_of;
    let cas = Invocation::new("cas", json!([1, 2]));
    let write = Invocation::new("write", json!(1));
    let c = completion_of(&cas, &json!({"type": "fail", "error": "cas-mismatch"}));
    assert_eq!(c.kind, EventType::Fail);
    let c = completion_of(&cas, &json!({"type": "fail", "error": "not-leader"}));
    assert_eq!(
        (c.kind, c.error.as_deref()),
        (EventType::Info, Some("not-applied: not-leader")),
        "a refused cas is no observation"
    );
    let c = completion_of(&write, &json!({"type": "fail", "error": "not-leader"}));
    assert_eq!(c.kind, EventType::Fail);
    let c = completion_of(&write, &json!({"type": "info"}));
    assert_eq!(
        (c.kind, c.error.as_deref()),
        (EventType::Info, Some("indeterminate"))
    );
    let c = completion_of(&write, &json!({"type": "done"}));
    assert!(c.is_info() && c.error.unwrap().starts_with("client-garbage"));
    let c = completion_of(
        &Invocation::new("read", Value::Null),
        &json!({"type": "ok", "value": 3}),
    );
    assert_eq!((c.kind, c.value), (EventType::Ok, json!(3)));
}

#[test]
fn every_external_workload_builds_and_bad_options_name_themselves() {
    for w in workloads::workload::EXTERNAL_WORKLOADS {
        external_workload(w, &Default::default()).unwrap();
    }
    let mut opts = workloads::WorkloadOptions::default();
    opts.client.insert("ack-wait".into(), json!("2s"));
    let q = external_workload("queue", &opts).unwrap();
    assert!(q.guarantee.starts_with("at-least-once"));
    opts.client.insert("ack-wiat".into(), json!("2s"));
    let e = external_workload("queue", &opts).unwrap_err();
    assert!(e.starts_with("client.ack-wiat: unknown option"), "{e}");
    let e = external_workload("bank", &Default::default()).unwrap_err();
    assert!(e.contains("no workload \"bank\""), "{e}");
}

/// A correct reference of every workload in one JSON file under an exclusive lock (so it is
/// atomic across processes): what a user's client answers, operation by operation.
const EVERY_WORKLOAD: &str = r#"
ACK_WAIT_S = float(os.environ.get("ACK_WAIT_S", "0"))
def handle(op):
    with open(os.path.join(STATE, "lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(STATE, "state.json")
        s = json.load(open(path)) if os.path.exists(path) else {
            "ready": [], "pending": {}, "set": [], "effects": {}, "responses": {}, "streams": {}}
        reply = step(s, op["f"], op.get("key"), op.get("value"))
        json.dump(s, open(path + ".tmp", "w")); os.replace(path + ".tmp", path)
        return reply

def take(s, n):
    now = time.time()
    for i, t in list(s["pending"].items()):
        if now - t > ACK_WAIT_S:
            del s["pending"][i]; s["ready"].append(int(i))
    got, s["ready"] = s["ready"][:n], s["ready"][n:]
    if ACK_WAIT_S:
        for i in got: s["pending"][str(i)] = now
    return {"type": "ok", "value": [{"id": i} for i in got]}

def step(s, f, key, value):
    if f == "produce":
        if not (os.environ.get("LOSE") and value["id"] % 10 == 3):
            s["ready"].append(value["id"])
        return {"type": "ok"}
    if f == "consume":
        return take(s, 1)
    if f == "drain":
        return take(s, len(s["ready"]) + len(s["pending"]))
    if f == "ack":
        if str(value["id"]) in s["pending"]:
            del s["pending"][str(value["id"])]; return {"type": "ok"}
        return {"type": "fail", "error": "not-pending"}
    if f == "add":
        s["set"].append(value); return {"type": "ok"}
    if f == "read" and key == "set":
        return {"type": "ok", "value": s["set"]}
    if f == "request":
        if key not in s["responses"]:
            s["effects"][key] = 1; s["responses"][key] = {"created": key}
        return {"type": "ok", "value": s["responses"][key]}
    if f == "effects":
        return {"type": "ok", "value": s["effects"].get(key, 0)}
    if f == "append":
        stream = s["streams"].setdefault(key, [])
        if len(stream) != value["expected"]:
            return {"type": "fail", "error": "conflict"}
        stream.append(value["event"]); return {"type": "ok"}
    if f == "read":
        return {"type": "ok", "value": s["streams"].get(key, [])}
    return {"type": "fail", "error": "unknown operation " + f}
main(handle)
"#;

/// Runs `workload` (with `[client]` options) against the reference for `ops` operations and its
/// final phase; returns every checker's verdict with its summary.
async fn reference_verdicts(
    workload: &str,
    client: &[(&str, Value)],
    env: &[(&str, &str)],
) -> Vec<(Verdict, String)> {
    let fx = Fixture::new();
    let mut opts = workloads::WorkloadOptions::default();
    for (k, v) in client {
        opts.client.insert(k.to_string(), v.clone());
    }
    let w = external_workload(workload, &opts).unwrap();
    let path = fx.path("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let mut config = RunnerConfig::new(4, vec!["n1".into(), "n2".into()], 9);
    config.connect_timeout = Duration::from_secs(15);
    let factory = std::sync::Arc::new(fx.factory(EVERY_WORKLOAD, env));
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let limits = PhaseLimits {
        time_limit: Duration::from_secs(60),
        grace: Duration::from_secs(2),
    };
    let cancel = CancellationToken::new();
    runner
        .run_phase(generator::limit(150, w.generator), limits, &cancel)
        .await
        .unwrap();
    if let Some(fin) = w.final_generator {
        runner.run_phase(fin, limits, &cancel).await.unwrap();
    }
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();
    let history = checkers::formats::read_path(&path, None).unwrap();
    w.checkers
        .iter()
        .map(|spec| {
            let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
            let r = checkers::run_checker(checker.as_ref(), &history, &Budget::default()).unwrap();
            (
                r.verdict,
                format!("{workload}/{}: {}", spec.name, r.summary),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_is_expressible_by_a_client_in_another_language() {
    /// A workload, its `[client]` options and the reference's environment.
    type Case<'a> = (&'a str, Vec<(&'a str, Value)>, Vec<(&'a str, &'a str)>);
    let runs: Vec<Case> = vec![
        ("queue", vec![], vec![]),
        (
            "queue",
            vec![("ack-wait", json!("300ms"))],
            vec![("ACK_WAIT_S", "0.3")],
        ),
        ("set", vec![], vec![]),
        ("idempotency", vec![], vec![]),
        ("versioned-append", vec![], vec![]),
    ];
    for (workload, client, env) in runs {
        let verdicts = reference_verdicts(workload, &client, &env).await;
        assert!(!verdicts.is_empty());
        for (verdict, summary) in verdicts {
            assert_eq!(verdict, Verdict::Valid, "{summary}");
        }
    }
    // The same reference losing every tenth acknowledged message is caught.
    let lossy = reference_verdicts("queue", &[], &[("LOSE", "1")]).await;
    assert_eq!(lossy[0].0, Verdict::Invalid, "{}", lossy[0].1);
}
