//! The testbed's HTTP client and its factory: an operation's `f` and family pick the endpoint,
//! and the reply's `definite` flag picks `ok`, `fail` or `info`.

use super::*;

/// Opens testbed clients of one family.
pub struct TestbedFactory {
    family: Family,
    opts: Arc<TestbedOptions>,
}

impl TestbedFactory {
    pub fn new(family: Family, opts: TestbedOptions) -> TestbedFactory {
        TestbedFactory {
            family,
            opts: Arc::new(opts),
        }
    }
}

#[async_trait]
impl ClientFactory for TestbedFactory {
    fn name(&self) -> String {
        format!("testbed ({:?})", self.family).to_lowercase()
    }

    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(TestbedClient::new(
            self.family,
            Arc::clone(&self.opts),
            process,
            node,
        )?))
    }

    /// The register families: the node's own map (`/kv/local`, never forwarded).
    async fn replica_snapshot(
        &self,
        node: &str,
    ) -> anyhow::Result<Option<crate::client::ReplicaSnapshot>> {
        if self.family != Family::Register {
            return Ok(None);
        }
        let client = TestbedClient::new(self.family, Arc::clone(&self.opts), 0, node)?;
        match client.call("/kv/local", json!({})).await {
            Answer::Ok(v) => {
                let data = serde_json::from_value(v["data"].clone())
                    .with_context(|| format!("{node}: /kv/local answered without a data map"))?;
                Ok(Some(data))
            }
            Answer::Definite(e) | Answer::Unknown(e) => {
                anyhow::bail!("{node}: /kv/local: {e}")
            }
        }
    }
}

/// One process's connection to one testbed node.
pub struct TestbedClient {
    http: reqwest::Client,
    base: String,
    family: Family,
    opts: Arc<TestbedOptions>,
    process: u64,
    incarnation: u64,
    joined: bool,
    consumes: u64,
    staller: crate::stall::Staller,
    /// id (JSON text) -> (partition, offset) of deliveries this client received.
    deliveries: HashMap<String, (u64, u64)>,
}

/// What the testbed answered.
pub(super) enum Answer {
    Ok(Value),
    /// Certainly no effect: refused, or never sent.
    Definite(String),
    /// May have had an effect.
    Unknown(String),
}

impl TestbedClient {
    pub fn new(
        family: Family,
        opts: Arc<TestbedOptions>,
        process: u64,
        node: &str,
    ) -> anyhow::Result<TestbedClient> {
        let base = if node.starts_with("http://") {
            node.trim_end_matches('/').to_string()
        } else {
            format!("http://{node}")
        };
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .pool_max_idle_per_host(2)
            .build()
            .context("cannot build an HTTP client")?;
        let staller = crate::stall::Staller::new(Stall::NONE, opts.seed, process);
        Ok(TestbedClient {
            http,
            base,
            family,
            opts,
            process,
            incarnation: 0,
            joined: false,
            consumes: 0,
            staller,
            deliveries: HashMap::new(),
        })
    }

    /// The consumer (and task worker) name: process and incarnation.
    pub fn consumer(&self) -> String {
        format!("c{}.{}", self.process, self.incarnation)
    }

    fn topic(&self) -> &str {
        if self.family == Family::Outbox {
            "outbox"
        } else {
            &self.opts.topic
        }
    }

    async fn call(&self, path: &str, body: Value) -> Answer {
        let resp = match self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Answer::Definite(format!("connection-refused: {e}"))
            }
            Err(e) => return Answer::Unknown(e.to_string()),
        };
        let status = resp.status();
        let body: Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => return Answer::Unknown(format!("HTTP {status}: unreadable answer: {e}")),
        };
        if status.is_success() {
            return Answer::Ok(body);
        }
        let code = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string();
        if body.get("definite").and_then(Value::as_bool) == Some(true) {
            Answer::Definite(code)
        } else {
            Answer::Unknown(code)
        }
    }

    /// A change: ok / fail / info as the testbed said.
    async fn change(&self, path: &str, body: Value, ok: impl FnOnce(Value) -> Value) -> Completion {
        match self.call(path, body).await {
            Answer::Ok(v) => Completion::ok(ok(v)),
            Answer::Definite(e) => Completion::fail(e),
            Answer::Unknown(e) => Completion::info(e),
        }
    }

    /// A read: any error is `fail`, since a read changes nothing.
    async fn read(&self, path: &str, body: Value, ok: impl FnOnce(Value) -> Value) -> Completion {
        match self.call(path, body).await {
            Answer::Ok(v) => Completion::ok(ok(v)),
            Answer::Definite(e) | Answer::Unknown(e) => Completion::fail(e),
        }
    }

    async fn stall(&mut self, stall: Stall) -> Option<Duration> {
        self.staller.hold_with(stall).await
    }

    async fn leave_group(&mut self) {
        if !self.joined {
            return;
        }
        let body =
            json!({ "topic": self.topic(), "group": self.opts.group, "consumer": self.consumer() });
        let _ = tokio::time::timeout(Duration::from_secs(1), self.call("/queue/leave", body)).await;
        self.joined = false;
    }

    /// One consume; remembers the deliveries. Returns the messages and the group's view.
    async fn consume_once(&mut self) -> Result<(Vec<Value>, Value), Completion> {
        let body = json!({
            "topic": self.topic(),
            "group": self.opts.group,
            "consumer": self.consumer(),
            "max": self.opts.consume_max,
        });
        self.joined = true;
        match self.call("/queue/consume", body).await {
            Answer::Ok(v) => {
                let msgs = v
                    .get("messages")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if self.deliveries.len() + msgs.len() > REMEMBERED_DELIVERIES_MAX {
                    self.deliveries.clear();
                }
                for m in &msgs {
                    if let (Some(id), Some(p), Some(o)) = (
                        m.get("id"),
                        m.get("partition").and_then(Value::as_u64),
                        m.get("offset").and_then(Value::as_u64),
                    ) {
                        self.deliveries.insert(id.to_string(), (p, o));
                    }
                }
                Ok((msgs, v))
            }
            Answer::Definite(e) => Err(Completion::fail(e)),
            Answer::Unknown(e) => Err(Completion::info(e)),
        }
    }

    async fn consume(&mut self) -> Completion {
        let churn = self.opts.churn_every;
        if churn > 0 && self.consumes > 0 && self.consumes.is_multiple_of(churn) {
            self.leave_group().await;
            self.incarnation += 1;
        }
        self.consumes += 1;
        match self.consume_once().await {
            Ok((msgs, _)) => Completion::ok(Value::Array(msgs)),
            Err(c) => c,
        }
    }

    /// Consumes until something comes, or until the group has settled on nothing: this
    /// consumer owns every partition (or is the group's only member), no message is leased to
    /// anyone and, for the outbox, nothing waits to be dispatched. Waits at most `drain_wait`;
    /// an unsettled empty answer is `fail`.
    async fn drain(&mut self) -> Completion {
        let deadline = Instant::now() + self.opts.drain_wait;
        loop {
            let (msgs, view) = match self.consume_once().await {
                Ok(x) => x,
                Err(c) => return c,
            };
            if !msgs.is_empty() {
                return Completion::ok(Value::Array(msgs));
            }
            let n = |k: &str| view.get(k).and_then(Value::as_u64);
            let assigned = view.get("assigned").and_then(Value::as_array).map(Vec::len);
            let owns_all = assigned.map(|a| a as u64) == n("partitions");
            let alone = n("members") == Some(1);
            if (owns_all || alone) && n("pending") == Some(0) && self.outbox_idle().await {
                return Completion::ok(json!([]));
            }
            if Instant::now() >= deadline {
                return Completion::fail("drain-unsettled");
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// For the outbox: no row waits for the dispatcher and no batch is in flight, so an empty
    /// topic is the end. Always true for plain queues.
    async fn outbox_idle(&self) -> bool {
        if self.family != Family::Outbox {
            return true;
        }
        match self.call("/outbox/pending", json!({})).await {
            Answer::Ok(v) => {
                v.get("rows").and_then(Value::as_u64) == Some(0)
                    && v.get("in_flight").and_then(Value::as_bool) == Some(false)
            }
            _ => false,
        }
    }

    async fn ack(&mut self, op: &Invocation) -> Completion {
        let id = match &op.value {
            Value::Object(m) => m.get("id").cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        let at = match (
            op.value.get("partition").and_then(Value::as_u64),
            op.value.get("offset").and_then(Value::as_u64),
        ) {
            (Some(p), Some(o)) => Some((p, o)),
            _ => self.deliveries.get(&id.to_string()).copied(),
        };
        let Some((p, o)) = at else {
            return Completion::fail("unknown-delivery");
        };
        let stalled = match op.f.as_str() {
            "nack" => None,
            _ => self.stall(self.opts.ack_stall).await,
        };
        let path = if op.f == "nack" {
            "/queue/nack"
        } else {
            "/queue/ack"
        };
        let body = json!({
            "topic": self.topic(), "group": self.opts.group, "consumer": self.consumer(),
            "partition": p, "offset": o,
        });
        crate::stall::note(self.change(path, body, |_| Value::Null).await, stalled)
    }

    async fn lease_command(&mut self, op: &Invocation) -> Completion {
        let Some(task) = op.key.clone() else {
            return Completion::fail("lease: a command needs a key (the task)");
        };
        let worker = self.consumer();
        let acquired = self
            .call("/lease/acquire", json!({ "task": task, "worker": worker }))
            .await;
        let token = match acquired {
            Answer::Ok(v) => v.get("token").cloned().unwrap_or(Value::Null),
            Answer::Definite(e) => return Completion::fail(e),
            // A lease may have been taken, but a lease alone is no effect.
            Answer::Unknown(e) => return Completion::fail(format!("acquire: {e}")),
        };
        self.stall(self.opts.lease_stall).await;
        let body = json!({ "task": task, "worker": worker, "token": token });
        self.change("/lease/complete", body, |_| json!({ "token": token }))
            .await
    }
}

pub(super) fn key_of(op: &Invocation) -> Result<String, Completion> {
    op.key
        .clone()
        .ok_or_else(|| Completion::fail(format!("testbed: {} needs a key", op.f)))
}

#[async_trait]
impl Client for TestbedClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        if self.family != Family::Leave {
            return Ok(());
        }
        for m in 0..self.opts.leave_members {
            let body = json!({ "group": self.opts.leave_group, "member": format!("m-{m}") });
            match self.call("/members/add", body).await {
                Answer::Ok(_) => {}
                Answer::Definite(e) | Answer::Unknown(e) => {
                    anyhow::bail!("adding member m-{m} at {} failed: {e}", self.base)
                }
            }
        }
        Ok(())
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let key = || key_of(op);
        match (op.f.as_str(), self.family) {
            ("read", Family::Register) => match key() {
                Ok(k) => {
                    self.read("/kv/read", json!({ "key": k }), |v| v["value"].clone())
                        .await
                }
                Err(c) => c,
            },
            ("write", Family::Register) => match key() {
                Ok(k) => {
                    let v = op.value.clone();
                    self.change("/kv/write", json!({ "key": k, "value": v }), |_| v.clone())
                        .await
                }
                Err(c) => c,
            },
            ("cas", Family::Register) => {
                let (Ok(k), Some([from, to])) = (key(), op.value.as_array().map(Vec::as_slice))
                else {
                    return Completion::fail("cas needs a key and the value [old, new]");
                };
                let body = json!({ "key": k, "from": from, "to": to });
                // The cas-register model reads a failed CAS as an observation ("the register
                // held something else"), so only a comparison that failed may be `fail`; a CAS
                // refused for any other reason (no primary, unreachable) observed nothing, and
                // `info` is the sound answer for it.
                match self.call("/kv/cas", body).await {
                    Answer::Ok(_) => Completion::ok(op.value.clone()),
                    Answer::Definite(e) if e == "cas-mismatch" => Completion::fail(e),
                    Answer::Definite(e) => Completion::info(format!("refused: {e}")),
                    Answer::Unknown(e) => Completion::info(e),
                }
            }
            ("produce" | "send" | "enqueue" | "publish", Family::Queue | Family::Outbox) => {
                let id = match &op.value {
                    Value::Object(m) => m.get("id").cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                if self.family == Family::Outbox {
                    return self
                        .change("/outbox/commit", json!({ "id": id }), |_| Value::Null)
                        .await;
                }
                let mut body = json!({ "topic": self.topic(), "id": id });
                if let Some(p) = op.value.get("partition") {
                    body["partition"] = p.clone();
                }
                self.change("/queue/produce", body, |v| v).await
            }
            ("consume" | "poll" | "dequeue", Family::Queue | Family::Outbox) => {
                self.consume().await
            }
            ("drain", Family::Queue | Family::Outbox) => self.drain().await,
            ("ack" | "commit" | "nack", Family::Queue | Family::Outbox) => self.ack(op).await,
            ("dead-letter", Family::Queue | Family::Outbox) => {
                let body = json!({ "topic": self.topic(), "group": self.opts.group });
                self.read("/queue/dead-letters", body, |v| v["messages"].clone())
                    .await
            }
            ("commit-offset", Family::Queue | Family::Outbox) => {
                let body = json!({
                    "topic": self.topic(),
                    "group": op.value.get("group").cloned().unwrap_or(json!(self.opts.group)),
                    "consumer": self.consumer(),
                    "partition": op.value.get("partition").cloned().unwrap_or(Value::Null),
                    "offset": op.value.get("offset").cloned().unwrap_or(Value::Null),
                });
                self.change("/queue/commit-offset", body, |_| Value::Null)
                    .await
            }
            ("fetch-offset", Family::Queue | Family::Outbox) => {
                let body = json!({
                    "topic": self.topic(),
                    "group": op.value.get("group").cloned().unwrap_or(json!(self.opts.group)),
                    "partition": op.value.get("partition").cloned().unwrap_or(Value::Null),
                });
                self.read("/queue/fetch-offset", body, |v| v).await
            }
            ("request", Family::Idempotency) => match key() {
                Ok(k) => {
                    let body = json!({ "key": k, "request": op.value });
                    self.change("/idem/request", body, |v| v).await
                }
                Err(c) => c,
            },
            ("effects", Family::Idempotency) => match key() {
                Ok(k) => {
                    self.read("/idem/effects", json!({ "key": k }), |v| {
                        v["effects"].clone()
                    })
                    .await
                }
                Err(c) => c,
            },
            ("add", Family::Members) => match key() {
                Ok(g) => {
                    let body = json!({ "group": g, "member": op.value });
                    self.change("/members/add", body, |_| Value::Null).await
                }
                Err(c) => c,
            },
            ("read", Family::Members) => match key() {
                Ok(g) => {
                    self.read("/members/list", json!({ "group": g }), |v| {
                        v["members"].clone()
                    })
                    .await
                }
                Err(c) => c,
            },
            ("command" | "effects", Family::Leave) => {
                let member = match key() {
                    Ok(k) => match k.strip_prefix("leave:") {
                        Some(m) => m.to_string(),
                        None => return Completion::fail("leave: the key must be leave:MEMBER"),
                    },
                    Err(c) => return c,
                };
                let body = json!({ "group": self.opts.leave_group, "member": member });
                if op.f == "command" {
                    self.change("/members/leave", body, |v| v).await
                } else {
                    self.read("/members/leave-effects", body, |v| v["effects"].clone())
                        .await
                }
            }
            ("create", Family::Unique) => {
                let id = match (&op.key, &op.value) {
                    (Some(k), _) => json!(k),
                    (None, Value::Object(m)) => m.get("id").cloned().unwrap_or(Value::Null),
                    (None, v) => v.clone(),
                };
                self.change("/unique/create", json!({ "id": id }), |_| Value::Null)
                    .await
            }
            ("append", Family::Stream) => match key() {
                Ok(s) => {
                    let body = json!({
                        "stream": s,
                        "expected": op.value.get("expected").cloned().unwrap_or(Value::Null),
                        "event": op.value.get("event").cloned().unwrap_or(Value::Null),
                    });
                    self.change("/stream/append", body, |_| Value::Null).await
                }
                Err(c) => c,
            },
            ("read", Family::Stream) => match key() {
                Ok(s) => {
                    self.read("/stream/read", json!({ "stream": s }), |v| {
                        v["events"].clone()
                    })
                    .await
                }
                Err(c) => c,
            },
            ("command", Family::Lease) => self.lease_command(op).await,
            ("effects", Family::Lease) => match key() {
                Ok(t) => {
                    self.read("/lease/effects", json!({ "task": t }), |v| {
                        v["effects"].clone()
                    })
                    .await
                }
                Err(c) => c,
            },
            (f, family) => Completion::fail(format!(
                "testbed ({family:?}): no operation {f:?}; see docs/history.md for the vocabulary"
            )),
        }
    }

    async fn close(&mut self) {
        self.leave_group().await;
    }
}
