//! The wire: every request is `POST /path` with a JSON object body, every answer a JSON body.
//!
//! Answers: `200` with the result; otherwise an error object
//! `{"error": CODE, "definite": BOOL, "message": TEXT}` where `definite: true` means the request
//! certainly had no effect (a client records `fail`) and `false` means it may have had one (a
//! client records `info`). Statuses: 400 bad request, 404 unknown path, 409 refused by the rules
//! (exists, conflict, lease expired, ...), 503 unavailable (not primary, unreachable, timed out).
//!
//! The server is a hand-written accept loop over hyper rather than a framework's `serve`, because
//! a crash must be a crash: on kill every connection task, with the request handlers running in
//! it, is dropped at once, so a killed node never finishes a write on an old connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted.
const BODY_BYTES_MAX: usize = 1 << 20;

/// A handler's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    /// Refused by the rules; certainly no effect.
    pub fn refused(code: &str, message: impl Into<String>) -> Reply {
        Reply::error(409, code, true, message)
    }

    /// A malformed request; no effect.
    pub fn bad(message: impl Into<String>) -> Reply {
        Reply::error(400, "bad-request", true, message)
    }

    /// Unavailable; `definite` says whether the request certainly had no effect.
    pub fn unavailable(code: &str, definite: bool, message: impl Into<String>) -> Reply {
        Reply::error(503, code, definite, message)
    }

    pub fn error(status: u16, code: &str, definite: bool, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: json!({ "error": code, "definite": definite, "message": message.into() }),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == 200
    }
}

/// An incoming request, reduced to what handlers use.
#[derive(Debug, Clone)]
pub struct Req {
    pub path: String,
    /// The sending node, on peer calls and forwarded requests.
    pub from: Option<String>,
    pub forwarded: bool,
    pub body: Value,
}

pub type Handler = Arc<dyn Fn(Req) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Accepts connections until `cancel` fires; then drops every connection and running handler.
pub async fn serve(listener: TcpListener, handler: Handler, cancel: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // Out of file descriptors and the like: back off, bounded, and keep serving.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(answer(req, handler).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

async fn answer(req: Request<Incoming>, handler: Handler) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let from = header(crate::net::FROM_HEADER);
    let forwarded = header(crate::net::FORWARDED_HEADER).is_some();
    // `GET /status` too, so that a plain HTTP probe (or a person with a browser) can read it.
    let status_get = req.method() == hyper::Method::GET && path == "/status";
    let reply = if status_get {
        handler(Req {
            path,
            from,
            forwarded,
            body: serde_json::Value::Object(Default::default()),
        })
        .await
    } else if req.method() != hyper::Method::POST {
        Reply::error(
            405,
            "method-not-allowed",
            true,
            "every endpoint takes POST with a JSON body",
        )
    } else {
        match read_body(req.into_body()).await {
            Err(r) => r,
            Ok(body) => {
                handler(Req {
                    path,
                    from,
                    forwarded,
                    body,
                })
                .await
            }
        }
    };
    let bytes = serde_json::to_vec(&reply.body).expect("JSON values serialize");
    Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("a valid response")
}

async fn read_body(body: Incoming) -> Result<Value, Reply> {
    let limited = http_body_util::Limited::new(body, BODY_BYTES_MAX);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| Reply::bad(format!("cannot read the request body: {e}")))?
        .to_bytes();
    if bytes.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Reply::bad(format!("the body is not JSON: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(Reply::bad("the body must be a JSON object"))
    }
}

/// Small accessors for request bodies, each failing with a reply naming the field.
pub mod field {
    use super::Reply;
    use serde_json::Value;

    pub fn str<'a>(body: &'a Value, name: &str) -> Result<&'a str, Reply> {
        body.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Reply::bad(format!("field {name:?} must be a string")))
    }

    pub fn string(body: &Value, name: &str) -> Result<String, Reply> {
        str(body, name).map(str::to_string)
    }

    pub fn u64(body: &Value, name: &str) -> Result<u64, Reply> {
        body.get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| Reply::bad(format!("field {name:?} must be a non-negative integer")))
    }

    pub fn opt_u64(body: &Value, name: &str) -> Result<Option<u64>, Reply> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                Reply::bad(format!("field {name:?} must be a non-negative integer"))
            }),
        }
    }

    /// A message id, member or event: a string or a non-negative integer.
    pub fn id(body: &Value, name: &str) -> Result<Value, Reply> {
        match body.get(name) {
            Some(v @ Value::String(_)) => Ok(v.clone()),
            Some(v @ Value::Number(n)) if n.is_u64() => Ok(v.clone()),
            _ => Err(Reply::bad(format!(
                "field {name:?} must be a string or a non-negative integer"
            ))),
        }
    }

    pub fn value(body: &Value, name: &str) -> Value {
        body.get(name).cloned().unwrap_or(Value::Null)
    }
}
