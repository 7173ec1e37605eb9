//! The HTTP API answers as Toxiproxy does: shapes, status codes and error bodies.
//!
//! Raw requests (reqwest) check the exact codes and bodies; our async client is checked to turn
//! them into typed results and errors.

mod proxy_util;

use nemeses::toxiproxy::{ProxyConfig, ProxyUpdate, Stream, Toxic, ToxicKind};
use proxy_util::{connect, env, round_trip, Env};
use serde_json::{json, Value};

/// Sends a raw request to the API; returns the status and the body as JSON (Null if empty).
async fn call(env: &Env, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{}", env.server.url(), path);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.expect("API answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A request (method, path, body) and the answer it must get.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, (u16, Value));

fn err(status: u16, message: &str) -> (u16, Value) {
    (status, json!({"error": message, "status": status}))
}

#[tokio::test]
async fn proxies_are_created_listed_shown_updated_and_deleted() {
    let env = env().await;
    let upstream = env.echo.to_string();
    let body = json!({"name": "db", "listen": "127.0.0.1:0", "upstream": upstream}).to_string();
    let (status, created) = call(&env, "POST", "/proxies", Some(&body)).await;
    assert_eq!(status, 201);
    let listen = created["listen"].as_str().unwrap().to_string();
    assert!(
        !listen.ends_with(":0"),
        "the bound port is reported: {listen}"
    );
    assert_eq!(
        created,
        json!({"name": "db", "listen": listen, "upstream": upstream, "enabled": true, "toxics": []})
    );

    let (status, all) = call(&env, "GET", "/proxies", None).await;
    assert_eq!((status, &all["db"]), (200, &created));
    assert_eq!(
        call(&env, "GET", "/proxies/db", None).await,
        (200, created.clone())
    );

    let (status, updated) = call(&env, "POST", "/proxies/db", Some(r#"{"enabled": false}"#)).await;
    assert_eq!((status, &updated["enabled"]), (200, &json!(false)));
    let (status, updated) = call(&env, "PATCH", "/proxies/db", Some(r#"{"enabled": true}"#)).await;
    assert_eq!((status, &updated["enabled"]), (200, &json!(true)));
    assert_eq!(
        updated["listen"],
        json!(listen),
        "re-enabled on the same address"
    );

    assert_eq!(
        call(&env, "DELETE", "/proxies/db", None).await,
        (204, Value::Null)
    );
    assert_eq!(call(&env, "GET", "/proxies", None).await, (200, json!({})));
}

#[tokio::test]
async fn toxics_are_added_listed_updated_and_removed() {
    let env = env().await;
    env.proxy("p").await;
    let body = r#"{"type": "latency", "attributes": {"latency": 10}}"#;
    let (status, toxic) = call(&env, "POST", "/proxies/p/toxics", Some(body)).await;
    let expected = json!({"name": "latency_downstream", "type": "latency", "stream": "downstream",
        "toxicity": 1.0, "attributes": {"latency": 10, "jitter": 0}});
    assert_eq!(
        (status, &toxic),
        (200, &expected),
        "Toxiproxy answers 200 here"
    );

    let body = r#"{"name": "cut", "type": "limit_data", "stream": "upstream", "toxicity": 0.5,
        "attributes": {"bytes": 5}}"#;
    assert_eq!(
        call(&env, "POST", "/proxies/p/toxics", Some(body)).await.0,
        200
    );
    let (_, list) = call(&env, "GET", "/proxies/p/toxics", None).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cut", "latency_downstream"],
        "upstream toxics first"
    );

    let (status, updated) = call(
        &env,
        "POST",
        "/proxies/p/toxics/latency_downstream",
        Some(r#"{"attributes": {"jitter": 3}}"#),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        updated["attributes"],
        json!({"latency": 10, "jitter": 3}),
        "merged"
    );
    let (status, shown) = call(&env, "GET", "/proxies/p/toxics/latency_downstream", None).await;
    assert_eq!((status, shown), (200, updated));

    let (_, proxy) = call(&env, "GET", "/proxies/p", None).await;
    assert_eq!(proxy["toxics"].as_array().unwrap().len(), 2);

    let path = "/proxies/p/toxics/latency_downstream";
    assert_eq!(call(&env, "DELETE", path, None).await, (204, Value::Null));
    assert_eq!(
        call(&env, "GET", path, None).await,
        err(404, "toxic not found")
    );
}

#[tokio::test]
async fn bad_requests_get_toxiproxys_errors() {
    let env = env().await;
    env.proxy("p").await;
    env.toxic(
        "p",
        Stream::Downstream,
        ToxicKind::Latency {
            latency_ms: 1,
            jitter_ms: 0,
        },
    )
    .await;
    let up = env.echo.to_string();
    let dup = json!({"name": "p", "listen": "127.0.0.1:0", "upstream": up}).to_string();
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/proxies",
            Some(r#"{"listen": "127.0.0.1:0", "upstream": "x:1"}"#),
            err(400, "missing required field: name"),
        ),
        (
            "POST",
            "/proxies",
            Some(r#"{"name": "q", "listen": "127.0.0.1:0"}"#),
            err(400, "missing required field: upstream"),
        ),
        (
            "POST",
            "/proxies",
            Some(&dup),
            err(409, "proxy already exists"),
        ),
        ("GET", "/proxies/nope", None, err(404, "proxy not found")),
        (
            "POST",
            "/proxies/nope",
            Some("{}"),
            err(404, "proxy not found"),
        ),
        ("DELETE", "/proxies/nope", None, err(404, "proxy not found")),
        (
            "GET",
            "/proxies/nope/toxics",
            None,
            err(404, "proxy not found"),
        ),
        (
            "POST",
            "/proxies/nope/toxics",
            Some(r#"{"type": "latency"}"#),
            err(404, "proxy not found"),
        ),
        (
            "POST",
            "/proxies/p/toxics",
            Some(r#"{"type": "bogus"}"#),
            err(400, "invalid toxic type"),
        ),
        (
            "POST",
            "/proxies/p/toxics",
            Some(r#"{"type": "latency", "stream": "sideways"}"#),
            err(
                400,
                "stream was invalid, can be either upstream or downstream",
            ),
        ),
        (
            "POST",
            "/proxies/p/toxics",
            Some(r#"{"type": "latency"}"#),
            err(409, "toxic already exists"),
        ),
        (
            "GET",
            "/proxies/p/toxics/nope",
            None,
            err(404, "toxic not found"),
        ),
        (
            "POST",
            "/proxies/p/toxics/nope",
            Some("{}"),
            err(404, "toxic not found"),
        ),
        (
            "DELETE",
            "/proxies/p/toxics/nope",
            None,
            err(404, "toxic not found"),
        ),
    ];
    for (method, path, body, expected) in cases {
        assert_eq!(
            call(&env, method, path, body).await,
            expected,
            "{method} {path} {body:?}"
        );
    }

    // Malformed bodies: 400 with Toxiproxy's prefix and the decoder's detail.
    let malformed = [
        ("POST", "/proxies", "{not json"),
        ("POST", "/proxies/p", r#"{"enabled": "yes"}"#),
        ("POST", "/proxies/p/toxics", "[1, 2]"),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"name": "n", "type": "latency", "attributes": {"latency": 1.5}}"#,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"name": "m", "type": "slicer", "attributes": {"delay": -1}}"#,
        ),
        (
            "POST",
            "/proxies/p/toxics/latency_downstream",
            r#"{"toxicity": "high"}"#,
        ),
        ("POST", "/populate", r#"{"name": "x"}"#),
    ];
    for (method, path, body) in malformed {
        let (status, value) = call(&env, method, path, Some(body)).await;
        assert_eq!(status, 400, "{method} {path} {body}");
        assert_eq!(value["status"], json!(400));
        let message = value["error"].as_str().unwrap();
        assert!(message.starts_with("bad request body: "), "{message}");
    }

    // A listen address that cannot be bound.
    let taken = json!({"name": "q", "listen": env.server.addr().to_string(), "upstream": up});
    let (status, value) = call(&env, "POST", "/proxies", Some(&taken.to_string())).await;
    assert_eq!((status, &value["status"]), (500, &json!(500)), "{value}");
}

#[tokio::test]
async fn browsers_are_refused() {
    let env = env().await;
    let resp = reqwest::Client::new()
        .get(format!("{}/proxies", env.server.url()))
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}

#[tokio::test]
async fn version_answers_json() {
    let env = env().await;
    let (status, v) = call(&env, "GET", "/version", None).await;
    assert_eq!(status, 200);
    assert!(v["version"].as_str().unwrap().starts_with("2."), "{v}");
    let version = env.client.version().await.unwrap();
    assert!(version.contains("faultline"), "{version}");
}

#[tokio::test]
async fn populate_creates_keeps_and_replaces() {
    let env = env().await;
    let up = env.echo.to_string();
    let body = json!([
        {"name": "a", "listen": "127.0.0.1:0", "upstream": up},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": up, "enabled": false},
    ])
    .to_string();
    let (status, first) = call(&env, "POST", "/populate", Some(&body)).await;
    assert_eq!(status, 201);
    let proxies = first["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 2);
    assert_eq!(proxies[1]["enabled"], json!(false));
    assert_eq!(
        first.as_object().unwrap().len(),
        1,
        "only `proxies` on success: {first}"
    );

    // Same listen (as asked, or as bound) and upstream: untouched, toxics kept.
    env.toxic("a", Stream::Upstream, ToxicKind::SlowClose { delay_ms: 1 })
        .await;
    let a_listen = proxies[0]["listen"].as_str().unwrap();
    let again = json!([{"name": "a", "listen": a_listen, "upstream": up}]).to_string();
    let (_, second) = call(&env, "POST", "/populate", Some(&again)).await;
    assert_eq!(second["proxies"][0]["listen"], json!(a_listen));
    assert_eq!(second["proxies"][0]["toxics"].as_array().unwrap().len(), 1);

    // A different upstream replaces it.
    let other = proxy_util::echo_server().await.to_string();
    let changed = json!([{"name": "a", "listen": "127.0.0.1:0", "upstream": other}]).to_string();
    let (_, third) = call(&env, "POST", "/populate", Some(&changed)).await;
    assert_eq!(third["proxies"][0]["upstream"], json!(other));
    assert_eq!(third["proxies"][0]["toxics"], json!([]));

    // Invalid entries: nothing changes, Toxiproxy's error fields plus `proxies`.
    let bad = json!([{"name": "c", "listen": "127.0.0.1:0", "upstream": up}, {"upstream": up}]);
    let (status, value) = call(&env, "POST", "/populate", Some(&bad.to_string())).await;
    assert_eq!(status, 400);
    assert_eq!(
        value,
        json!({"error": "missing required field: name at proxy 2", "status": 400, "proxies": []})
    );
    assert!(env.client.proxy("c").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn our_client_maps_answers_to_types_and_errors() {
    let env = env().await;
    let c = &env.client;
    let cfg = ProxyConfig::new("svc", "127.0.0.1:0", env.echo.to_string());
    let p = c.create_proxy(&cfg).await.unwrap();
    assert!(p.enabled && p.toxics.is_empty());
    let e = c.create_proxy(&cfg).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.to_string().contains("proxy already exists"), "{e}");
    assert!(c.proxy("none").await.unwrap_err().is_not_found());

    let toxic = Toxic::new(
        ToxicKind::Slicer {
            average_size_bytes: 64,
            size_variation_bytes: 8,
            delay_us: 10,
        },
        Stream::Upstream,
    )
    .named("slices")
    .with_toxicity(0.25);
    assert_eq!(c.add_toxic("svc", &toxic).await.unwrap(), toxic);
    assert_eq!(c.toxics("svc").await.unwrap(), vec![toxic.clone()]);
    let faster = Toxic {
        kind: ToxicKind::Slicer {
            average_size_bytes: 32,
            size_variation_bytes: 0,
            delay_us: 0,
        },
        toxicity: 1.0,
        ..toxic.clone()
    };
    assert_eq!(
        c.update_toxic("svc", "slices", &faster).await.unwrap(),
        faster
    );
    assert_eq!(c.toxic("svc", "slices").await.unwrap(), faster);
    assert_eq!(c.proxies().await.unwrap()["svc"].toxics, vec![faster]);

    let moved = c
        .update_proxy(
            "svc",
            &ProxyUpdate {
                listen: Some("127.0.0.1:0".into()),
                ..ProxyUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(
        moved.listen, p.listen,
        "a new listen address restarts the proxy"
    );
    let mut s = connect(moved.listen.parse().unwrap()).await;
    round_trip(&mut s, b"through the moved proxy").await;

    c.remove_toxic("svc", "slices").await.unwrap();
    assert!(c
        .remove_toxic("svc", "slices")
        .await
        .unwrap_err()
        .is_not_found());
    let populated = c
        .populate(&[ProxyConfig::new("two", "", env.echo.to_string())])
        .await
        .unwrap();
    assert!(
        populated[0].listen.starts_with("127.0.0.1:"),
        "{populated:?}"
    );
    c.reset().await.unwrap();
    c.delete_proxy("svc").await.unwrap();
    assert_eq!(
        c.proxies().await.unwrap().keys().collect::<Vec<_>>(),
        ["two"]
    );
}

#[tokio::test]
async fn our_client_reports_a_dead_server_as_a_transport_error() {
    let env = env().await;
    let addr = env.server.addr().to_string();
    env.server.shutdown().await;
    let c = nemeses::toxiproxy::Client::new(&addr).unwrap();
    let e = c.proxies().await.unwrap_err();
    assert!(e.status().is_none(), "{e}");
    assert!(
        matches!(e, nemeses::toxiproxy::Error::Transport { .. }),
        "{e}"
    );
}

#[test]
fn a_background_server_runs_on_its_own_thread_until_dropped() {
    let server = nemeses::proxy::BackgroundProxyServer::start("127.0.0.1:0").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listen = rt.block_on(async {
        let echo = proxy_util::echo_server().await;
        let c = nemeses::toxiproxy::Client::new(&server.addr().to_string()).unwrap();
        // Names are free-form: the client escapes them in paths.
        let p = c
            .create_proxy(&ProxyConfig::new(
                "odd name/1",
                "127.0.0.1:0",
                echo.to_string(),
            ))
            .await
            .unwrap();
        assert_eq!(c.proxy("odd name/1").await.unwrap(), p);
        let mut s = connect(p.listen.parse().unwrap()).await;
        round_trip(&mut s, b"via the background server").await;
        p.listen
    });
    let api = server.addr();
    drop(server);
    assert!(std::net::TcpStream::connect(api).is_err(), "API closed");
    assert!(
        std::net::TcpStream::connect(listen).is_err(),
        "proxy closed"
    );
}
