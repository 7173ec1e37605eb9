//! The HTTP routes of Toxiproxy's API, on axum.
//!
//! Bodies are taken as raw bytes and decoded by the registry, so a malformed body gets
//! Toxiproxy's `400 {"error": "bad request body: ...", "status": 400}` rather than the web
//! framework's own rejection. Status codes follow Toxiproxy: 201 for a created proxy and for
//! populate, 200 for a created toxic (Toxiproxy's clients expect exactly that), 204 for deletes
//! and reset. Like Toxiproxy, requests from browsers (a `User-Agent` starting with `Mozilla/`)
//! are refused with 403, so a web page cannot drive the proxy through the user's browser.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

use super::registry::{ApiError, Registry};
use super::API_VERSION;
use crate::toxiproxy::{ApiErrorBody, Proxy};

type Reg = State<Arc<Registry>>;

pub(crate) fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/reset", post(reset))
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .route("/version", get(version))
        .layer(middleware::from_fn(stop_browsers))
        .with_state(registry)
}

async fn stop_browsers(req: Request, next: Next) -> Response {
    let from_browser = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if from_browser {
        return (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response();
    }
    next.run(req).await
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => error(ApiError {
            message: e.to_string(),
            status: 500,
        }),
    }
}

fn error(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &ApiErrorBody {
            error: e.message,
            status: e.status,
        },
    )
}

fn answer<T: Serialize>(status: StatusCode, r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => json(status, &v),
        Err(e) => error(e),
    }
}

fn no_content(r: Result<(), ApiError>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn version() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf-8"),
        )],
        format!("{{\"version\": \"{API_VERSION}\"}}\n"),
    )
        .into_response()
}

async fn reset(State(reg): Reg) -> Response {
    no_content(reg.reset().await)
}

async fn list(State(reg): Reg) -> Response {
    json(StatusCode::OK, &reg.list().await)
}

async fn create(State(reg): Reg, body: Bytes) -> Response {
    answer(StatusCode::CREATED, reg.create(&body).await)
}

async fn populate(State(reg): Reg, body: Bytes) -> Response {
    #[derive(Serialize)]
    struct Populated {
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        proxies: Vec<Proxy>,
    }
    let (proxies, err) = reg.populate(&body).await;
    let status = match &err {
        None => StatusCode::CREATED,
        Some(e) => StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let (error, code) = match err {
        None => (None, None),
        Some(e) => (Some(e.message), Some(e.status)),
    };
    json(
        status,
        &Populated {
            error,
            status: code,
            proxies,
        },
    )
}

async fn show(State(reg): Reg, Path(proxy): Path<String>) -> Response {
    answer(StatusCode::OK, reg.show(&proxy).await)
}

async fn update(State(reg): Reg, Path(proxy): Path<String>, body: Bytes) -> Response {
    answer(StatusCode::OK, reg.update(&proxy, &body).await)
}

async fn delete(State(reg): Reg, Path(proxy): Path<String>) -> Response {
    no_content(reg.delete(&proxy).await)
}

async fn toxics(State(reg): Reg, Path(proxy): Path<String>) -> Response {
    answer(StatusCode::OK, reg.toxics(&proxy).await)
}

async fn add_toxic(State(reg): Reg, Path(proxy): Path<String>, body: Bytes) -> Response {
    answer(StatusCode::OK, reg.add_toxic(&proxy, &body).await)
}

async fn show_toxic(State(reg): Reg, Path((proxy, toxic)): Path<(String, String)>) -> Response {
    answer(StatusCode::OK, reg.show_toxic(&proxy, &toxic).await)
}

async fn update_toxic(
    State(reg): Reg,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer(
        StatusCode::OK,
        reg.update_toxic(&proxy, &toxic, &body).await,
    )
}

async fn remove_toxic(State(reg): Reg, Path((proxy, toxic)): Path<(String, String)>) -> Response {
    no_content(reg.remove_toxic(&proxy, &toxic).await)
}
