//! PostgreSQL: idempotent requests, versioned append and a set, each the way an application
//! would build it on the database, so a test shows whether the pattern holds under faults.
//!
//! - Idempotent requests (`request`, `effects`): one transaction inserts the idempotency key into
//!   a table with a unique constraint (`ON CONFLICT DO NOTHING`); only the transaction that
//!   inserted it creates the effect and stores the response, the others read the stored
//!   response. [`IdempotencyMode::CheckThenInsert`] is the classic bug (look the key up, then
//!   insert, no constraint), kept as a known-bad control.
//! - Versioned append (`append`, `read`): an event is inserted at version V+1 only if the stream
//!   holds exactly V events, with (stream, version) as primary key, so two writers at the same
//!   expected version cannot both win.
//! - Set (`add`, `read`).
//! - Transactions (`txn`, docs/history.md): list-append keeps each key's list in one row as
//!   comma-separated text, appended with `INSERT ... ON CONFLICT DO UPDATE SET v = v || ...`
//!   (so under read committed an append re-reads the newest committed row rather than losing
//!   one); rw-register keeps one integer per row. Each transaction runs at the plan's isolation
//!   level (`BEGIN ISOLATION LEVEL ...`), every micro-op one statement. Nothing is retried: a
//!   serialization failure or deadlock is `fail`, as the server rolled the transaction back.
//!
//! How answers map to the history: an error reported by the server (constraint violation,
//! serialization failure, shutdown) means the transaction was rolled back: `fail`. A connection
//! that breaks mid-transaction (including during `COMMIT`) leaves it unknown: `info`; reads that
//! break are `fail`, since they changed nothing.

use crate::client::{Client, ClientFactory};
use crate::op::{Completion, Invocation};
use anyhow::Context as _;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

/// How `request` is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyMode {
    /// Insert the key under a unique constraint first: correct.
    UniqueConstraint,
    /// Look the key up, and insert when absent, without a constraint: racy by design.
    CheckThenInsert,
}

/// Which workload a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresWorkload {
    Idempotency(IdempotencyMode),
    VersionedAppend,
    Set,
    ListAppend(crate::txn::Isolation),
    RwRegister(crate::txn::Isolation),
}

/// Opens PostgreSQL clients. Nodes are `host:port`.
#[derive(Debug, Clone)]
pub struct PostgresFactory {
    pub workload: PostgresWorkload,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    /// Table names start with this; setup creates the tables and empties them.
    pub table_prefix: String,
    pub connect_timeout: Duration,
}

impl PostgresFactory {
    pub fn new(workload: PostgresWorkload) -> Self {
        PostgresFactory {
            workload,
            user: "postgres".into(),
            password: None,
            dbname: "postgres".into(),
            table_prefix: "faultline_".into(),
            connect_timeout: Duration::from_secs(2),
        }
    }

    fn config(&self, node: &str) -> anyhow::Result<tokio_postgres::Config> {
        let (host, port) = match node.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .with_context(|| format!("bad port in PostgreSQL address {node:?}"))?,
            ),
            None => (node, 5432),
        };
        let mut c = tokio_postgres::Config::new();
        c.host(host)
            .port(port)
            .user(&self.user)
            .dbname(&self.dbname)
            .connect_timeout(self.connect_timeout);
        if let Some(p) = &self.password {
            c.password(p);
        }
        Ok(c)
    }
}

#[async_trait]
impl ClientFactory for PostgresFactory {
    fn name(&self) -> String {
        match self.workload {
            PostgresWorkload::Idempotency(IdempotencyMode::UniqueConstraint) => {
                "postgres idempotency".into()
            }
            PostgresWorkload::Idempotency(IdempotencyMode::CheckThenInsert) => {
                "postgres idempotency (check-then-insert)".into()
            }
            PostgresWorkload::VersionedAppend => "postgres versioned append".into(),
            PostgresWorkload::Set => "postgres set".into(),
            PostgresWorkload::ListAppend(i) => format!("postgres list-append ({})", i.name()),
            PostgresWorkload::RwRegister(i) => format!("postgres rw-register ({})", i.name()),
        }
    }

    async fn open(&self, _process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        let (client, connection) = self
            .config(node)?
            .connect(NoTls)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {node}"))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Box::new(PostgresClient {
            client,
            driver,
            workload: self.workload,
            t: self.table_prefix.clone(),
        }))
    }
}

/// One process's connection.
pub struct PostgresClient {
    client: tokio_postgres::Client,
    driver: JoinHandle<()>,
    workload: PostgresWorkload,
    /// Table name prefix.
    t: String,
}

/// Server-reported errors roll the transaction back: `fail`. Anything else: `info`.
fn effect_error(e: tokio_postgres::Error) -> Completion {
    match e.as_db_error() {
        Some(db) => Completion::fail(format!("{}: {}", db.code().code(), db.message())),
        None => Completion::info(format!("{e}")),
    }
}

fn read_error(e: tokio_postgres::Error) -> Completion {
    Completion::fail(format!("{e}"))
}

/// An id as the history writes it: integers or strings.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("id").and_then(id_text),
        _ => None,
    }
}

fn id_value(text: String) -> Value {
    match text.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => Value::String(text),
    }
}

impl PostgresClient {
    async fn request(&mut self, op: &Invocation, mode: IdempotencyMode) -> Completion {
        let Some(key) = op.key.clone() else {
            return Completion::fail("request needs a key (the idempotency key)");
        };
        let t = &self.t;
        let tx = match self.client.transaction().await {
            Ok(tx) => tx,
            Err(e) => return effect_error(e),
        };
        let first = match mode {
            IdempotencyMode::UniqueConstraint => {
                let q = format!(
                    "INSERT INTO {t}requests (key) VALUES ($1) ON CONFLICT (key) DO NOTHING"
                );
                match tx.execute(q.as_str(), &[&key]).await {
                    Ok(n) => n == 1,
                    Err(e) => return effect_error(e),
                }
            }
            IdempotencyMode::CheckThenInsert => {
                let q = format!("SELECT 1 FROM {t}requests_loose WHERE key = $1");
                match tx.query_opt(q.as_str(), &[&key]).await {
                    Ok(Some(_)) => false,
                    Ok(None) => {
                        let q = format!("INSERT INTO {t}requests_loose (key) VALUES ($1)");
                        if let Err(e) = tx.execute(q.as_str(), &[&key]).await {
                            return effect_error(e);
                        }
                        true
                    }
                    Err(e) => return effect_error(e),
                }
            }
        };
        let table = match mode {
            IdempotencyMode::UniqueConstraint => "requests",
            IdempotencyMode::CheckThenInsert => "requests_loose",
        };
        let response: Value = if first {
            let q = format!("INSERT INTO {t}effects (key) VALUES ($1) RETURNING id");
            let id: i64 = match tx.query_one(q.as_str(), &[&key]).await {
                Ok(row) => row.get(0),
                Err(e) => return effect_error(e),
            };
            let response = json!({ "effect": id });
            let q = format!("UPDATE {t}{table} SET response = $2 WHERE key = $1");
            if let Err(e) = tx.execute(q.as_str(), &[&key, &response.to_string()]).await {
                return effect_error(e);
            }
            response
        } else {
            // The first transaction committed before our insert returned (it waited on the
            // conflicting row), so its response is visible.
            let q = format!("SELECT response FROM {t}{table} WHERE key = $1");
            match tx.query_opt(q.as_str(), &[&key]).await {
                Ok(Some(row)) => {
                    let text: Option<String> = row.get(0);
                    match text.map(|s| serde_json::from_str(&s)) {
                        Some(Ok(v)) => v,
                        _ => return Completion::fail("the first request has no response yet"),
                    }
                }
                Ok(None) => return Completion::fail("the first request has no response yet"),
                Err(e) => return effect_error(e),
            }
        };
        match tx.commit().await {
            Ok(()) => Completion::ok(response),
            Err(e) => effect_error(e),
        }
    }

    async fn effects(&mut self, op: &Invocation) -> Completion {
        let t = &self.t;
        match &op.key {
            Some(key) => {
                let q = format!("SELECT count(*) FROM {t}effects WHERE key = $1");
                match self.client.query_one(q.as_str(), &[key]).await {
                    Ok(row) => Completion::ok(json!(row.get::<_, i64>(0))),
                    Err(e) => read_error(e),
                }
            }
            None => {
                let q = format!("SELECT key, count(*) FROM {t}effects GROUP BY key");
                match self.client.query(q.as_str(), &[]).await {
                    Ok(rows) => {
                        let mut m = serde_json::Map::new();
                        for row in rows {
                            m.insert(row.get::<_, String>(0), json!(row.get::<_, i64>(1)));
                        }
                        Completion::ok(Value::Object(m))
                    }
                    Err(e) => read_error(e),
                }
            }
        }
    }

    async fn append(&mut self, op: &Invocation) -> Completion {
        let Some(stream) = op.key.clone() else {
            return Completion::fail("append needs a key (the stream)");
        };
        let (Some(expected), Some(event)) = (
            op.value.get("expected").and_then(Value::as_i64),
            op.value.get("event").and_then(id_text),
        ) else {
            return Completion::fail("append value must be {\"expected\": V, \"event\": ID}");
        };
        let t = &self.t;
        // One statement: inserted only when the stream holds exactly `expected` events; the
        // primary key (stream, version) stops two writers at the same version.
        let q = format!(
            "INSERT INTO {t}events (stream, version, event) \
             SELECT $1::text, $2::bigint + 1, $3::text \
             WHERE (SELECT count(*) FROM {t}events WHERE stream = $1::text) = $2::bigint"
        );
        match self
            .client
            .execute(q.as_str(), &[&stream, &expected, &event])
            .await
        {
            Ok(1) => Completion::ok(Value::Null),
            Ok(_) => Completion::fail("wrong-expected-version"),
            Err(e) => {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    Completion::fail("wrong-expected-version")
                } else {
                    effect_error(e)
                }
            }
        }
    }

    async fn read_stream(&mut self, op: &Invocation) -> Completion {
        let Some(stream) = &op.key else {
            return Completion::fail("read needs a key (the stream)");
        };
        let t = &self.t;
        let q = format!("SELECT version, event FROM {t}events WHERE stream = $1 ORDER BY version");
        match self.client.query(q.as_str(), &[stream]).await {
            Ok(rows) => Completion::ok(Value::Array(
                rows.into_iter()
                    .map(|r| json!({ "version": r.get::<_, i64>(0), "event": id_value(r.get(1)) }))
                    .collect(),
            )),
            Err(e) => read_error(e),
        }
    }

    async fn set_op(&mut self, op: &Invocation) -> Completion {
        let t = &self.t;
        let set = op.key.clone().unwrap_or_default();
        match op.f.as_str() {
            "add" => {
                let Some(elem) = id_text(&op.value) else {
                    return Completion::fail("add needs an element (a string or integer)");
                };
                let q = format!("INSERT INTO {t}set (set, elem) VALUES ($1, $2)");
                match self.client.execute(q.as_str(), &[&set, &elem]).await {
                    Ok(_) => Completion::ok(Value::Null),
                    Err(e) => effect_error(e),
                }
            }
            "read" => {
                let q = format!("SELECT elem FROM {t}set WHERE set = $1");
                match self.client.query(q.as_str(), &[&set]).await {
                    Ok(rows) => Completion::ok(Value::Array(
                        rows.into_iter().map(|r| id_value(r.get(0))).collect(),
                    )),
                    Err(e) => read_error(e),
                }
            }
            other => Completion::fail(format!("postgres set: unknown operation {other:?}")),
        }
    }
}

/// What a server error during `COMMIT` means: class 40 (serialization failure, deadlock) rolled
/// the transaction back; anything else (the server shutting down, a lost connection) leaves it
/// unknown.
fn commit_error(e: tokio_postgres::Error) -> Completion {
    match e.as_db_error() {
        Some(db) if db.code().code().starts_with("40") => {
            Completion::fail(format!("{}: {}", db.code().code(), db.message()))
        }
        _ => Completion::info(format!("commit: {e}")),
    }
}

impl PostgresClient {
    /// Runs one transaction of micro-ops at `isolation`; `ok` carries every read's result.
    async fn txn(&mut self, op: &Invocation, isolation: crate::txn::Isolation) -> Completion {
        use crate::txn::Isolation;
        use tokio_postgres::IsolationLevel;
        let Some(mops) = op.value.as_array() else {
            return Completion::fail("txn needs a list of micro-ops");
        };
        let level = match isolation {
            Isolation::ReadCommitted => IsolationLevel::ReadCommitted,
            Isolation::RepeatableRead => IsolationLevel::RepeatableRead,
            Isolation::Serializable => IsolationLevel::Serializable,
        };
        let lists = matches!(self.workload, PostgresWorkload::ListAppend(_));
        let t = self.t.clone();
        let tx = match self
            .client
            .build_transaction()
            .isolation_level(level)
            .start()
            .await
        {
            Ok(tx) => tx,
            Err(e) => return effect_error(e),
        };
        let mut done = Vec::with_capacity(mops.len());
        for mop in mops {
            let (Some(f), Some(k), arg) = (
                mop.get(0).and_then(Value::as_str),
                mop.get(1).and_then(Value::as_i64),
                mop.get(2).cloned().unwrap_or(Value::Null),
            ) else {
                return Completion::fail(format!("bad micro-op {mop}"));
            };
            let result = match (f, lists) {
                ("r", true) => {
                    let q = format!("SELECT v FROM {t}lists WHERE k = $1");
                    tx.query_opt(q.as_str(), &[&k]).await.map(|row| {
                        let text: Option<String> = row.map(|r| r.get(0));
                        let items: Vec<Value> = text
                            .unwrap_or_default()
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(|s| {
                                s.parse::<i64>()
                                    .map_or(Value::String(s.into()), |n| json!(n))
                            })
                            .collect();
                        json!(["r", k, items])
                    })
                }
                ("append", true) => {
                    let v = arg.to_string();
                    let q = format!(
                        "INSERT INTO {t}lists AS l (k, v) VALUES ($1, $2) \
                         ON CONFLICT (k) DO UPDATE SET v = l.v || ',' || excluded.v"
                    );
                    tx.execute(q.as_str(), &[&k, &v]).await.map(|_| mop.clone())
                }
                ("r", false) => {
                    let q = format!("SELECT v FROM {t}registers WHERE k = $1");
                    tx.query_opt(q.as_str(), &[&k])
                        .await
                        .map(|row| json!(["r", k, row.map(|r| r.get::<_, i64>(0))]))
                }
                ("w", false) => {
                    let Some(v) = arg.as_i64() else {
                        return Completion::fail(format!("bad micro-op {mop}"));
                    };
                    let q = format!(
                        "INSERT INTO {t}registers (k, v) VALUES ($1, $2) \
                         ON CONFLICT (k) DO UPDATE SET v = excluded.v"
                    );
                    tx.execute(q.as_str(), &[&k, &v]).await.map(|_| mop.clone())
                }
                _ => return Completion::fail(format!("unknown micro-op {mop}")),
            };
            match result {
                Ok(v) => done.push(v),
                // Before COMMIT nothing is durable: a server error rolled the transaction back.
                Err(e) => return effect_error(e),
            }
        }
        match tx.commit().await {
            Ok(()) => Completion::ok(Value::Array(done)),
            Err(e) => commit_error(e),
        }
    }
}

#[async_trait]
impl Client for PostgresClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        let t = &self.t;
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t}requests (key text PRIMARY KEY, response text);
             CREATE TABLE IF NOT EXISTS {t}requests_loose (key text, response text);
             CREATE TABLE IF NOT EXISTS {t}effects (id bigserial PRIMARY KEY, key text NOT NULL);
             CREATE TABLE IF NOT EXISTS {t}events (stream text, version bigint, event text NOT NULL,
                 PRIMARY KEY (stream, version));
             CREATE TABLE IF NOT EXISTS {t}set (set text NOT NULL, elem text NOT NULL);
             CREATE TABLE IF NOT EXISTS {t}lists (k bigint PRIMARY KEY, v text NOT NULL);
             CREATE TABLE IF NOT EXISTS {t}registers (k bigint PRIMARY KEY, v bigint NOT NULL);
             TRUNCATE {t}requests, {t}requests_loose, {t}effects, {t}events, {t}set, {t}lists, {t}registers;"
        );
        self.client
            .batch_execute(&ddl)
            .await
            .context("creating and emptying the workload's tables")
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        match (self.workload, op.f.as_str()) {
            (PostgresWorkload::Idempotency(mode), "request") => self.request(op, mode).await,
            (PostgresWorkload::Idempotency(_), "effects") => self.effects(op).await,
            (PostgresWorkload::VersionedAppend, "append") => self.append(op).await,
            (PostgresWorkload::VersionedAppend, "read") => self.read_stream(op).await,
            (PostgresWorkload::Set, _) => self.set_op(op).await,
            (PostgresWorkload::ListAppend(i) | PostgresWorkload::RwRegister(i), "txn") => {
                self.txn(op, i).await
            }
            (_, other) => Completion::fail(format!("postgres: unknown operation {other:?}")),
        }
    }

    async fn close(&mut self) {
        self.driver.abort();
    }
}
