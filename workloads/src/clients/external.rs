//! A client in any language: a child process spoken to in JSON lines on its stdin and stdout
//! (protocol version [`PROTOCOL_VERSION`], documented for users in `docs/your-system.md`).
//!
//! One child process per logical client process, exactly like the Rust clients: the runner opens
//! a client (here: spawns the program and exchanges `init`), sends it one operation at a time,
//! and replaces it after any `info`. The rules that keep histories honest live on this side of
//! the pipe, so a user's client cannot break them:
//! - faultline owns the per-operation timeout (the runner's): an answer that does not come in
//!   time is `info`, and the process is killed ([`Client::close`]) and replaced under a new
//!   process id;
//! - a client that exits, closes its stdout or prints a line that is not a completion turns its
//!   operation into `info` with the reason (`client-crashed: ...`, `client-garbage: ...`), since
//!   the request may have reached the system;
//! - `fail` is taken at its word ("certainly no effect"), except that a failed `cas` whose error
//!   is not `cas-mismatch` becomes `info` (`Completion::not_applied`): to the linearizability
//!   checker a failed CAS is an observation, which a refused request is not;
//! - every line the program writes to stderr goes to one file of the run folder, prefixed with
//!   the process id, and the last lines are quoted when a program fails at start.
//!
//! Design decisions: one request in flight per process (no ids to match, and a reply can only
//! belong to the last request); lines are bounded ([`LINE_BYTES_MAX`]) so a runaway client
//! cannot exhaust memory; the setup/teardown client is the runner's `SETUP_PROCESS` and is told
//! `"process": -1`, because a u64::MAX does not survive a JSON number in most languages.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::client::{Client, ClientFactory};
use crate::op::{Completion, Invocation, CAS_MISMATCH};
use crate::runner::SETUP_PROCESS;

/// The protocol version faultline speaks; sent in `init`, and a client that answers with
/// another one is refused.
pub const PROTOCOL_VERSION: u64 = 1;
/// Longest line read from a client (a consume may answer many deliveries).
pub const LINE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Stderr lines remembered per process for error messages.
const STDERR_TAIL_LINES: usize = 10;
/// How long a dying client's stderr is waited for before the error is written.
const EXIT_SETTLE_MS: u64 = 500;
/// Characters of a garbage line quoted in the error.
const GARBAGE_QUOTE_CHARS: usize = 120;

/// One node as a client sees it: its name and its host-reachable address for each named port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExternalNode {
    pub name: String,
    /// Port name -> `host:port` reachable from the machine faultline runs on.
    pub addresses: BTreeMap<String, String>,
}

/// How to start and talk to a user's client program.
#[derive(Debug, Clone)]
pub struct ExternalClientConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Its working folder (a plan's folder, so relative paths in the command work).
    pub cwd: Option<PathBuf>,
    /// Added to its environment.
    pub env: Vec<(String, String)>,
    /// The workload's name, told in `init` so one program may serve several workloads.
    pub workload: String,
    /// Every node, in order. The runner names a node by its name.
    pub nodes: Vec<ExternalNode>,
    /// Where every client's stderr goes (one file, lines prefixed `p<process>| `); `None`
    /// drops it (the tail is still kept for errors).
    pub stderr_file: Option<PathBuf>,
    /// Bound on the wait for the answer to `init` (kept under the runner's connect timeout, so
    /// this error, with the stderr tail, is the one the user sees).
    pub init_timeout: Duration,
}

/// Opens [`ExternalClient`]s: see the module documentation.
pub struct ExternalFactory {
    config: ExternalClientConfig,
    stderr: Option<Arc<Mutex<std::fs::File>>>,
}

impl ExternalFactory {
    pub fn new(config: ExternalClientConfig) -> anyhow::Result<ExternalFactory> {
        anyhow::ensure!(!config.command.is_empty(), "the client command is empty");
        let stderr = match &config.stderr_file {
            Some(path) => Some(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("{}: cannot create the client log", path.display()))?,
            ))),
            None => None,
        };
        Ok(ExternalFactory { config, stderr })
    }

    fn init_message(&self, process: u64, node: &str) -> Value {
        let process = match process {
            SETUP_PROCESS => json!(-1),
            p => json!(p),
        };
        json!({
            "type": "init",
            "protocol": PROTOCOL_VERSION,
            "process": process,
            "workload": self.config.workload,
            "node": node,
            "nodes": self.config.nodes,
        })
    }

    /// Spawns the program; `label` prefixes its stderr lines.
    fn spawn(&self, label: String) -> anyhow::Result<ExternalClient> {
        let mut cmd = tokio::process::Command::new(&self.config.command[0]);
        cmd.args(&self.config.command[1..])
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.config.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "cannot start the client `{}`",
                self.config.command.join(" ")
            )
        })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = tokio::spawn(copy_stderr(
            stderr,
            label.clone(),
            self.stderr.clone(),
            tail.clone(),
        ));
        Ok(ExternalClient {
            label,
            child,
            stdin,
            stdout: BufReader::new(stdout),
            tail,
            stderr_task: Some(stderr_task),
        })
    }

    /// Sends `init` and waits (bounded) for one reply line; the error of a client that did not
    /// start otherwise.
    async fn handshake(&self, client: &mut ExternalClient, init: &Value) -> anyhow::Result<Value> {
        match tokio::time::timeout(self.config.init_timeout, client.request(init)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(client.fail_at_start(format!("{e:#}")).await),
            Err(_) => Err(client
                .fail_at_start(format!(
                    "no answer to init within {} ms",
                    self.config.init_timeout.as_millis()
                ))
                .await),
        }
    }

    /// Starts the program once before any node runs, to catch a client that cannot start
    /// (not found, not executable, exits at once, writes garbage, speaks another protocol,
    /// never answers) before a cluster is booted for it. It gets an `init` like any process,
    /// with `"process": -1`, `"check": true` and the nodes as configured (before the cluster
    /// starts their addresses may say port 0: nothing listens yet). Since nothing listens, an
    /// `error` reply passes the check (a client may refuse init when it cannot connect); only
    /// a reply that is not a protocol line fails it. The process is killed afterwards.
    pub async fn check_starts(&self) -> anyhow::Result<()> {
        let mut client = self.spawn(CHECK_LABEL.to_string())?;
        let node = self
            .config
            .nodes
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let mut init = self.init_message(SETUP_PROCESS, &node);
        init["check"] = json!(true);
        let reply = self.handshake(&mut client, &init).await;
        let verdict = match reply {
            Ok(reply) if reply["type"] == "error" => Ok(()),
            Ok(reply) => match check_init_reply(&reply) {
                Ok(()) => Ok(()),
                Err(e) => Err(client.fail_at_start(e).await),
            },
            Err(e) => Err(e),
        };
        client.close().await;
        verdict
    }
}

/// The stderr prefix and name of the process [`ExternalFactory::check_starts`] starts.
pub const CHECK_LABEL: &str = "check";

#[async_trait]
impl ClientFactory for ExternalFactory {
    fn name(&self) -> String {
        format!("`{}`", self.config.command.join(" "))
    }

    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        let mut client = self.spawn(process_label(process))?;
        let init = self.init_message(process, node);
        let reply = self.handshake(&mut client, &init).await?;
        if let Err(e) = check_init_reply(&reply) {
            return Err(client.fail_at_start(e).await);
        }
        Ok(Box::new(client))
    }

    async fn open_among(
        &self,
        process: u64,
        node: &str,
        _nodes: &[String],
    ) -> anyhow::Result<Box<dyn Client>> {
        // Every client is told every node in `init` anyway.
        self.open(process, node).await
    }
}

fn process_label(process: u64) -> String {
    match process {
        SETUP_PROCESS => "setup".to_string(),
        p => format!("p{p}"),
    }
}

/// Copies a client's stderr, line by line, into the shared file and the tail.
async fn copy_stderr(
    stderr: tokio::process::ChildStderr,
    label: String,
    file: Option<Arc<Mutex<std::fs::File>>>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(f) = &file {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{label}| {line}");
            }
        }
        let mut t = tail.lock().expect("tail lock");
        t.push_back(line);
        while t.len() > STDERR_TAIL_LINES {
            t.pop_front();
        }
    }
}

/// `init_ok` with our protocol version (or none), else why not.
fn check_init_reply(reply: &Value) -> Result<(), String> {
    match reply["type"].as_str() {
        Some("init_ok") => match reply.get("protocol").and_then(Value::as_u64) {
            None | Some(PROTOCOL_VERSION) => Ok(()),
            Some(v) => Err(format!(
                "it speaks protocol {v}, faultline speaks {PROTOCOL_VERSION}"
            )),
        },
        Some("error") => Err(format!(
            "it refused init: {}",
            reply["error"].as_str().unwrap_or("(no error given)")
        )),
        _ => Err(format!(
            "it answered init with {}, expected {{\"type\":\"init_ok\"}}",
            quote(&reply.to_string())
        )),
    }
}

/// One client process: see the module documentation.
pub struct ExternalClient {
    /// How messages name the process (`p3`, `setup`, `check`).
    label: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr_task: Option<tokio::task::JoinHandle<()>>,
}

/// Why a request got no usable answer.
#[derive(Debug)]
enum ReplyError {
    /// The process closed its stdout or could not be written to: it crashed or exited.
    Gone(String),
    /// It wrote something that is not one JSON object on one line.
    Garbage(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Gone(e) => write!(f, "{e}"),
            ReplyError::Garbage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReplyError {}

impl ExternalClient {
    /// Writes one message and reads one reply line as a JSON object.
    async fn request(&mut self, msg: &Value) -> Result<Value, ReplyError> {
        let mut line = msg.to_string();
        line.push('\n');
        let write = async {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.flush().await
        };
        if let Err(e) = write.await {
            return Err(ReplyError::Gone(format!(
                "writing to the client failed: {e}"
            )));
        }
        let mut buf = Vec::new();
        let read = (&mut self.stdout)
            .take(LINE_BYTES_MAX)
            .read_until(b'\n', &mut buf)
            .await;
        match read {
            Err(e) => Err(ReplyError::Gone(format!(
                "reading from the client failed: {e}"
            ))),
            Ok(0) => Err(ReplyError::Gone("the client closed its stdout".into())),
            Ok(_) if buf.last() != Some(&b'\n') => {
                if buf.len() as u64 >= LINE_BYTES_MAX {
                    Err(ReplyError::Garbage(format!(
                        "a line longer than {LINE_BYTES_MAX} bytes"
                    )))
                } else {
                    Err(ReplyError::Gone(
                        "the client closed its stdout mid-line".into(),
                    ))
                }
            }
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                match serde_json::from_str::<Value>(text.trim()) {
                    Ok(v) if v.is_object() => Ok(v),
                    _ => Err(ReplyError::Garbage(format!(
                        "not a JSON object: {}",
                        quote(text.trim())
                    ))),
                }
            }
        }
    }

    /// How the process ended, if it did (waiting briefly), and its stderr's last lines.
    async fn exit_report(&mut self) -> String {
        let status =
            tokio::time::timeout(Duration::from_millis(EXIT_SETTLE_MS), self.child.wait()).await;
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(EXIT_SETTLE_MS), task).await;
        }
        let status = match status {
            Ok(Ok(s)) => format!("it exited ({s})"),
            _ => "it is still running".to_string(),
        };
        let tail: Vec<String> = self
            .tail
            .lock()
            .expect("tail lock")
            .iter()
            .cloned()
            .collect();
        match tail.is_empty() {
            true => format!("{status}; its stderr is empty"),
            false => format!("{status}; its stderr's last lines: {}", tail.join(" | ")),
        }
    }

    /// The error of a client that did not start: the reason, how it ended and its stderr.
    async fn fail_at_start(&mut self, why: String) -> anyhow::Error {
        let _ = self.child.start_kill();
        let report = self.exit_report().await;
        anyhow!(
            "client process {} did not start: {why}; {report}",
            self.label
        )
    }

    /// A setup or teardown message: `<kind>_ok`, else an error naming the reply.
    async fn lifecycle(&mut self, kind: &str) -> anyhow::Result<()> {
        let reply = match self.request(&json!({ "type": kind })).await {
            Ok(r) => r,
            Err(e) => bail!("{kind}: {e}; {}", self.exit_report().await),
        };
        let expected = format!("{kind}_ok");
        match reply["type"].as_str() {
            Some(t) if t == expected => Ok(()),
            Some("error") => bail!(
                "{kind}: the client answered error: {}",
                reply["error"].as_str().unwrap_or("(no error given)")
            ),
            _ => bail!(
                "{kind}: the client answered {}, expected {{\"type\":\"{expected}\"}}",
                quote(&reply.to_string())
            ),
        }
    }
}

/// A completion from a reply line, by the rules of the module documentation.
pub fn completion_of(op: &Invocation, reply: &Value) -> Completion {
    let error = reply.get("error").and_then(|e| match e {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    });
    let value = reply.get("value").cloned().unwrap_or(Value::Null);
    match reply["type"].as_str() {
        Some("ok") => Completion::ok(value),
        Some("fail") => {
            let error = error.unwrap_or_else(|| "failed".into());
            if op.f == "cas" && error != CAS_MISMATCH {
                Completion::not_applied(op, error)
            } else {
                Completion::fail(error).with_value(value)
            }
        }
        Some("info") => {
            Completion::info(error.unwrap_or_else(|| "indeterminate".into())).with_value(value)
        }
        _ => Completion::info(format!(
            "client-garbage: expected a completion (type ok, fail or info), got {}",
            quote(&reply.to_string())
        )),
    }
}

fn quote(text: &str) -> String {
    let mut q: String = text.chars().take(GARBAGE_QUOTE_CHARS).collect();
    if q.len() < text.len() {
        q.push_str("...");
    }
    format!("{q:?}")
}

#[async_trait]
impl Client for ExternalClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        self.lifecycle("setup").await
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let msg = json!({
            "type": "invoke",
            "f": op.f,
            "key": op.key,
            "value": op.value,
        });
        match self.request(&msg).await {
            Ok(reply) => completion_of(op, &reply),
            Err(ReplyError::Garbage(e)) => Completion::info(format!("client-garbage: {e}")),
            Err(ReplyError::Gone(e)) => {
                let report = self.exit_report().await;
                Completion::info(format!("client-crashed: {e}; {report}"))
            }
        }
    }

    async fn teardown(&mut self) -> anyhow::Result<()> {
        self.lifecycle("teardown").await
    }

    async fn close(&mut self) {
        let _ = self.child.start_kill();
        let _ =
            tokio::time::timeout(Duration::from_millis(EXIT_SETTLE_MS), self.child.wait()).await;
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(EXIT_SETTLE_MS), task).await;
        }
    }
}
