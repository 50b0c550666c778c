//! A panic in a handler: the connection is not dropped, the client gets the JSON 500
//! (with its request id), and the gateway keeps serving.
//!
//! No production route panics on purpose, so the test mounts one of its own inside the
//! gateway's real tower stack (`http::with_stack`), on the state of a built app.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use coworking_gateway::app::Application;
use coworking_gateway::http;

use crate::helpers::{Backend, test_config};

#[tokio::test]
async fn a_panicking_handler_gets_the_json_500_with_the_request_id() {
    let (config, _pg) = test_config(Backend::Sqlite, |_| {}).await;
    let app = Application::build(config).await.expect("build app");
    let state = app.server().state().clone();
    let routes = Router::new()
        .route(
            "/test-only/panic",
            get(|| async {
                if true {
                    panic!("boom in a handler");
                }
                "unreachable"
            }),
        )
        .route("/test-only/ok", get(|| async { "ok" }));
    let router = http::with_stack(routes, state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{base}/test-only/panic"))
        .header("x-request-id", "panic-trace-1")
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(res.status(), 500);
    assert_eq!(res.headers()["x-request-id"], "panic-trace-1");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/json")
    );
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "INTERNAL");
    assert_eq!(body["error"]["message"], "internal error");
    let res = client
        .get(format!("{base}/test-only/ok"))
        .send()
        .await
        .expect("still serving");
    assert_eq!(res.status(), 200);
}
