//! The browser IDE on `GET /graphql`: GraphiQL from the pinned npm release when the
//! build bundled it (after `npm ci --prefix assets/graphiql`), else the simple
//! playground; every asset from the gateway, none without `GRAPHQL_PLAYGROUND`.
//! Static files: one backend is enough (the browser check in CI drives the rest).

use std::path::PathBuf;

use coworking_gateway::auth::AuthConfig;
use coworking_gateway::config::AuthSettings;
use coworking_gateway::http::graphiql::BUNDLED;
use coworking_gateway::seed::{SeedPlan, seed};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

const API_KEY: &str = "ck_graphiql_test_key";

fn node_modules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/graphiql/node_modules")
}

/// A package's version, read from its own package.json in node_modules.
fn installed_version(package: &str) -> String {
    let path = node_modules().join(package).join("package.json");
    let text = std::fs::read_to_string(&path).expect("package.json of a bundled package");
    let manifest: Value = serde_json::from_str(&text).expect("package.json is JSON");
    manifest["version"].as_str().expect("a version").to_owned()
}

/// The files the page must load, as (URL path, file in node_modules or None for ours,
/// content type, versioned URL).
fn expected_assets() -> Vec<(String, Option<PathBuf>, &'static str, bool)> {
    let g = format!("/graphql/assets/graphiql-{}", installed_version("graphiql"));
    let r = format!("/graphql/assets/react-{}", installed_version("react"));
    let rd = format!(
        "/graphql/assets/react-dom-{}",
        installed_version("react-dom")
    );
    let nm = node_modules();
    let js = "text/javascript; charset=utf-8";
    let css = "text/css; charset=utf-8";
    let text = "text/plain; charset=utf-8";
    vec![
        (
            format!("{g}/graphiql.min.js"),
            Some(nm.join("graphiql/graphiql.min.js")),
            js,
            true,
        ),
        (
            format!("{g}/graphiql.min.css"),
            Some(nm.join("graphiql/graphiql.min.css")),
            css,
            true,
        ),
        (
            format!("{g}/LICENSE-graphiql.txt"),
            Some(nm.join("graphiql/LICENSE")),
            text,
            true,
        ),
        (
            format!("{r}/react.production.min.js"),
            Some(nm.join("react/umd/react.production.min.js")),
            js,
            true,
        ),
        (
            format!("{r}/LICENSE-react.txt"),
            Some(nm.join("react/LICENSE")),
            text,
            true,
        ),
        (
            format!("{rd}/react-dom.production.min.js"),
            Some(nm.join("react-dom/umd/react-dom.production.min.js")),
            js,
            true,
        ),
        (format!("{g}/THIRD-PARTY-LICENSES.txt"), None, text, true),
        ("/graphql/assets/init.js".to_owned(), None, js, false),
        ("/graphql/assets/page.css".to_owned(), None, css, false),
    ]
}

async fn page(app: &TestApp, key: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .get(format!("{}/graphql", app.base))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    req.send().await.expect("GET /graphql")
}

/// `src`/`href` values of the page, resolved against `/graphql` as a browser would.
fn referenced_paths(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            out.push(format!("/{}", &rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

fn assert_csp(res: &reqwest::Response) {
    let csp = res
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .expect("the page carries a Content-Security-Policy")
        .to_owned();
    let script = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .expect("a script-src directive");
    assert!(
        !script.contains("unsafe") && !script.contains("http") && !script.contains('*'),
        "scripts must come from the gateway only: {csp}"
    );
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn the_ide_page_and_every_asset_it_loads_come_from_the_gateway() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = page(&app, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_csp(&res);
    let html = res.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("src=\"//"),
        "the page must load nothing from another host: {html}"
    );
    if !BUNDLED {
        // Built without `npm ci --prefix assets/graphiql`: the simple playground.
        assert!(html.contains("<textarea id=\"query\""), "{html}");
        assert_eq!(
            app.get("/graphql/assets/init.js").await.status(),
            404,
            "no GraphiQL assets in a build without them"
        );
        return;
    }
    assert!(html.contains("graphiql.min.js"), "{html}");
    assert!(
        html.contains(r#"<meta name="gateway-auth" content="off">"#),
        "{html}"
    );
    let expected = expected_assets();
    let mut referenced = referenced_paths(&html);
    referenced.sort();
    let mut listed: Vec<String> = expected.iter().map(|(p, ..)| p.clone()).collect();
    listed.sort();
    assert_eq!(
        referenced, listed,
        "the page links exactly the bundled files"
    );
    for (path, file, content_type, versioned) in expected {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], content_type, "{path}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        let cache = res.headers()["cache-control"].to_str().expect("ascii");
        if versioned {
            assert_eq!(cache, "public, max-age=31536000, immutable", "{path}");
        } else {
            assert_eq!(cache, "no-cache", "{path}");
        }
        let body = res.bytes().await.expect("body");
        match file {
            Some(file) => assert!(
                body.as_ref()
                    == std::fs::read(&file)
                        .expect("the npm release file")
                        .as_slice(),
                "{path} differs from {}",
                file.display()
            ),
            None => assert!(!body.is_empty(), "{path} is empty"),
        }
    }
    let notices = app
        .get(&format!(
            "/graphql/assets/graphiql-{}/THIRD-PARTY-LICENSES.txt",
            installed_version("graphiql")
        ))
        .await
        .text()
        .await
        .expect("text");
    for package in [
        "graphiql",
        "react",
        "react-dom",
        "graphql",
        "@graphiql/react",
    ] {
        let line = format!("\n{package} {} (", installed_version(package));
        assert!(notices.contains(&line), "no notice for {package}: {line:?}");
    }
    assert_eq!(
        app.get("/graphql/assets/graphiql-0.0.0/graphiql.min.js")
            .await
            .status(),
        404,
        "another version is not served"
    );
    assert_eq!(
        app.get("/graphql/assets/%2e%2e/Cargo.toml").await.status(),
        404
    );
}

#[tokio::test]
async fn graphql_playground_false_turns_off_the_page_and_its_assets() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.graphql_playground = false).await;
    let res = page(&app, None).await;
    assert_eq!(res.status(), 400, "the page is still served");
    let body: Value = res.json().await.expect("the API's JSON error");
    assert_eq!(body["error"]["code"], json!("BAD_USER_INPUT"), "{body}");
    let mut paths = vec!["/graphql/assets/init.js".to_owned()];
    if BUNDLED {
        paths.extend(expected_assets().into_iter().map(|(p, ..)| p));
    }
    for path in paths {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 404, "{path} is still served");
        let body: Value = res.json().await.expect("JSON 404");
        assert_eq!(body["error"]["code"], json!("NOT_FOUND"), "{path}: {body}");
    }
}

fn auth_on() -> AuthSettings {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(API_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let settings = AuthSettings {
        auth_api_key_hashes: Some(digest.into()),
        ..AuthSettings::default()
    };
    AuthConfig::from_settings(&settings).expect("auth settings");
    settings
}

#[tokio::test]
async fn with_auth_on_the_ide_loads_without_a_key_and_its_queries_need_one() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.auth = auth_on()).await;
    seed(&app.db, SeedPlan::DEMO, |_, _| {})
        .await
        .expect("demo seed");
    let res = page(&app, None).await;
    assert_eq!(res.status(), 200, "the page carries no data: no key needed");
    assert_csp(&res);
    let html = res.text().await.expect("html");
    if BUNDLED {
        // The page tells its script to open the headers editor with an X-API-Key entry.
        assert!(
            html.contains(r#"<meta name="gateway-auth" content="on">"#),
            "{html}"
        );
        for (path, ..) in expected_assets() {
            assert_eq!(app.get(&path).await.status(), 200, "{path} needs no key");
        }
    }
    let query = json!({ "query": "{ summary { tokensUsed } }" });
    let post = |key: Option<&'static str>| {
        let mut req = app
            .client
            .post(format!("{}/graphql", app.base))
            .json(&query);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        req.send()
    };
    assert_eq!(post(None).await.expect("post").status(), 401);
    assert_eq!(post(Some("wrong-key")).await.expect("post").status(), 401);
    let ok: Value = post(Some(API_KEY))
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let expected = app
        .query_i64("SELECT COUNT(*) FROM tokens WHERE used_at IS NOT NULL")
        .await;
    assert!(expected > 0, "the demo data has used tokens");
    assert_eq!(ok["data"]["summary"]["tokensUsed"], json!(expected), "{ok}");
    // Only the bare page is open: a browser GET that carries a query still needs a key.
    let get = app
        .client
        .get(format!(
            "{}/graphql?query=%7Bsummary%7BtokensUsed%7D%7D",
            app.base
        ))
        .header("accept", "text/html")
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), 401);
    let html_post = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("accept", "text/html")
        .json(&query)
        .send()
        .await
        .expect("post");
    assert_eq!(html_post.status(), 401, "a POST is never the page");
}

#[tokio::test]
async fn with_auth_on_and_the_playground_off_the_page_needs_a_key_like_any_query() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.auth = auth_on();
        c.graphql_playground = false;
    })
    .await;
    assert_eq!(page(&app, None).await.status(), 401);
    assert_eq!(app.get("/graphql/assets/init.js").await.status(), 404);
}
