//! faultline as a library, with a client written in Rust.
//!
//! The pykv example (examples/pykv/) ships a Perl client that faultline runs as a separate
//! program. A team whose code is Rust may prefer to write the client against faultline's
//! `Client` trait instead: this program loads the same plan file, gives faultline its own
//! `ClientFactory`, and runs the test as `faultline run --plan` would, with the same faults,
//! history, checkers, report and exit code. The plan's `system.client` is then ignored (and may
//! be left out).
//!
//!     cargo run --example pykv_rust_client -- examples/pykv/plan.toml
//!     cargo run --example pykv_rust_client -- examples/pykv/plan-stale-read.toml
//!
//! The client's one rule is the same as in any language: `fail` only when the operation
//! certainly had no effect, `info` when it may have had one.

use faultline::workloads::{Client, ClientFactory, Completion, Invocation};
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Below the plan's per-operation timeout, so a slow node is this client's `info`, not a kill.
const REQUEST_TIMEOUT_MS: u64 = 1_500;

/// Opens one HTTP client per logical process; `node` is the node's client address as this
/// machine reaches it (`127.0.0.1:PORT`).
pub struct PykvFactory;

#[faultline::async_trait]
impl ClientFactory for PykvFactory {
    fn name(&self) -> String {
        "pykv (Rust client)".into()
    }

    async fn open(&self, _process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()?;
        Ok(Box::new(PykvClient {
            http,
            url: format!("http://{node}/op"),
        }))
    }
}

pub struct PykvClient {
    http: reqwest::Client,
    url: String,
}

#[faultline::async_trait]
impl Client for PykvClient {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let body = json!({ "f": op.f, "key": op.key, "value": op.value });
        let response = match self.http.post(&self.url).json(&body).send().await {
            Ok(r) => r,
            // Refused: the request never reached a server, so nothing happened.
            Err(e) if e.is_connect() => return Completion::fail("connection-refused"),
            // Sent, then no answer: it may have been applied.
            Err(e) => return Completion::info(format!("transport: {e}")),
        };
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() && answer["ok"] == json!(true) {
            return Completion::ok(answer["value"].clone());
        }
        let error = answer["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("http {status}"));
        // pykv says `definite` when it knows the operation was not applied.
        match answer["definite"] == json!(true) {
            true => Completion::fail(error),
            false => Completion::info(error),
        }
    }
}

fn main() -> ExitCode {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: pykv_rust_client PLAN.toml   (e.g. examples/pykv/plan.toml)");
        return ExitCode::from(3);
    };
    let plan = match faultline::plan::Plan::from_file(Path::new(&file)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pykv_rust_client: {e}");
            return ExitCode::from(3);
        }
    };
    // The image of a user's system (base image plus python3) is built on first use.
    if let Err(e) = faultline::run::prepare_image(&plan) {
        eprintln!("pykv_rust_client: {e:#}");
        return ExitCode::from(3);
    }
    let opts = faultline::run::RunOptions::default();
    match faultline::run::execute_with_client(plan, opts, Some(Arc::new(PykvFactory))) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("pykv_rust_client: {e:#}");
            ExitCode::from(3)
        }
    }
}
