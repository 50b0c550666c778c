//! Authentication on the data roads: API keys and JWTs (HS256, RS256), probes always open.

use std::time::{SystemTime, UNIX_EPOCH};

use coworking_gateway::auth::AuthConfig;
use coworking_gateway::config::AuthSettings;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::helpers::{Backend, TestApp};

const HS_SECRET: &str = "test-only-hs256-secret-of-at-least-32-bytes!!";
const AUDIENCE: &str = "coworking-gateway";
const API_KEY: &str = "ck_live_test_key_123";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn jwt(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    encode(&Header::new(alg), &claims, key).expect("encode")
}

struct Keys {
    dir: std::path::PathBuf,
    rsa_private: Option<Vec<u8>>,
}

/// Writes the HS256 secret and, when `openssl` is there, a fresh RSA key pair (test-only, in a temp dir).
fn keys() -> Keys {
    let dir = std::env::temp_dir().join(format!("gw-auth-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("hs256"), format!("{HS_SECRET}\n")).expect("secret");
    std::fs::write(
        dir.join("keys"),
        format!("# API keys\n{}\n", sha256_hex(API_KEY)),
    )
    .expect("keys");
    let private = dir.join("rsa.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .output()
        .is_ok_and(|o| o.status.success())
        && std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(dir.join("rsa.pub"))
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("NOTE: openssl not found: the RS256 cases were not run");
    }
    Keys {
        rsa_private: ok.then(|| std::fs::read(&private).expect("pem")),
        dir,
    }
}

#[tokio::test]
async fn with_auth_on_every_data_road_refuses_bad_credentials_and_probes_stay_open() {
    let keys = keys();
    let raw = AuthSettings {
        auth_api_key_hashes_file: Some(keys.dir.join("keys").display().to_string()),
        auth_jwt_hs256_secret_file: Some(keys.dir.join("hs256").display().to_string()),
        auth_jwt_rs256_public_keys_file: keys
            .rsa_private
            .as_ref()
            .map(|_| keys.dir.join("rsa.pub").display().to_string()),
        auth_jwt_audience: Some(AUDIENCE.into()),
        ..AuthSettings::default()
    };
    AuthConfig::from_settings(&raw).expect("auth config");
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.auth = raw).await;
    let hs = EncodingKey::from_secret(HS_SECRET.as_bytes());
    let good = json!({ "sub": "analyst", "aud": AUDIENCE, "exp": now() + 600 });
    let valid_hs = jwt(Algorithm::HS256, &hs, good.clone());
    let mut accepted = vec![
        ("x-api-key", API_KEY.to_owned()),
        ("authorization", format!("Bearer {API_KEY}")),
        ("authorization", format!("Bearer {valid_hs}")),
    ];
    let bearer = |token: String| Some(("authorization", format!("Bearer {token}")));
    let hs_token = |claims: serde_json::Value| jwt(Algorithm::HS256, &hs, claims);
    let other_key = EncodingKey::from_secret(b"another-secret-another-secret-another");
    let mut refused: Vec<(&str, Option<(&str, String)>)> = vec![
        ("no credentials", None),
        (
            "wrong API key",
            Some(("x-api-key", "ck_live_wrong".to_owned())),
        ),
        (
            "API key digest itself",
            Some(("x-api-key", sha256_hex(API_KEY))),
        ),
        (
            "basic scheme",
            Some(("authorization", "Basic dXNlcjpwYXNz".to_owned())),
        ),
        (
            "expired",
            bearer(hs_token(json!({ "aud": AUDIENCE, "exp": now() - 120 }))),
        ),
        (
            "not yet valid",
            bearer(hs_token(
                json!({ "aud": AUDIENCE, "exp": now() + 600, "nbf": now() + 300 }),
            )),
        ),
        (
            "wrong audience",
            bearer(hs_token(
                json!({ "aud": "someone-else", "exp": now() + 600 }),
            )),
        ),
        (
            "no audience",
            bearer(hs_token(json!({ "exp": now() + 600 }))),
        ),
        ("no expiry", bearer(hs_token(json!({ "aud": AUDIENCE })))),
        (
            "wrong signature",
            bearer(jwt(Algorithm::HS256, &other_key, good.clone())),
        ),
        ("tampered payload", bearer(tamper(&valid_hs))),
        ("alg none", bearer(alg_none(&valid_hs))),
    ];
    if let Some(pem) = &keys.rsa_private {
        let rs = EncodingKey::from_rsa_pem(pem).expect("rsa key");
        accepted.push((
            "authorization",
            format!("Bearer {}", jwt(Algorithm::RS256, &rs, good.clone())),
        ));
        let expired = jwt(
            Algorithm::RS256,
            &rs,
            json!({ "aud": AUDIENCE, "exp": now() - 120 }),
        );
        refused.push((
            "RS256 expired",
            Some(("authorization", format!("Bearer {expired}"))),
        ));
    }
    let roads = [
        "/graphql?query=%7Bsummary%7Busers%7D%7D",
        "/api/reports/daily_usage",
        "/api/reports/user_visits",
    ];
    for road in roads {
        for (why, header) in &refused {
            let mut req = app.client.get(format!("{}{road}", app.base));
            if let Some((name, value)) = header {
                req = req.header(*name, value);
            }
            let res = req.send().await.expect("request");
            assert_eq!(res.status(), 401, "{road} {why}");
            let challenge = res
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            assert!(
                challenge.starts_with("Bearer realm="),
                "{road} {why}: {challenge}"
            );
            let body: serde_json::Value = res.json().await.expect("json");
            assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
        }
        for (name, value) in &accepted {
            let res = app
                .client
                .get(format!("{}{road}", app.base))
                .header(*name, value)
                .send()
                .await
                .expect("request");
            assert_eq!(res.status(), 200, "{road} with {name}");
        }
    }
    let post = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&json!({ "query": "{ summary { users } }" }))
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 401);
    for probe in ["/health_check", "/readiness_check", "/metrics"] {
        assert_eq!(
            app.get(probe).await.status(),
            200,
            "{probe} must not need credentials"
        );
    }
    let _ = std::fs::remove_dir_all(&keys.dir);
}

/// Changes the payload (the claims) and keeps the signature.
fn tamper(token: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let payload = format!(
        r#"{{"sub":"admin","aud":"{AUDIENCE}","exp":{}}}"#,
        now() + 99_999
    );
    format!("{}.{}.{}", parts[0], engine.encode(payload), parts[2])
}

/// The same claims with `"alg":"none"` and no signature.
fn alg_none(token: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.",
        engine.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    )
}

#[tokio::test]
async fn metrics_can_require_credentials_and_production_can_hide_the_schema() {
    let raw = AuthSettings {
        auth_api_key_hashes: Some(sha256_hex(API_KEY).into()),
        auth_metrics: true,
        ..AuthSettings::default()
    };
    AuthConfig::from_settings(&raw).expect("auth");
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.auth = raw;
        c.graphql_introspection = false;
        c.graphql_playground = false;
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), 401);
    let scrape = app
        .client
        .get(format!("{}/metrics", app.base))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .expect("scrape");
    assert_eq!(scrape.status(), 200);
    let intro: serde_json::Value = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("x-api-key", API_KEY)
        .json(&json!({ "query": "{ __schema { types { name } } }" }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert!(
        intro.get("errors").is_some() || intro["data"]["__schema"].is_null(),
        "introspection still on: {intro}"
    );
    let page = app
        .client
        .get(format!("{}/graphql", app.base))
        .header("x-api-key", API_KEY)
        .header("accept", "text/html")
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 400, "playground still served");
}

#[test]
fn bad_auth_settings_are_refused_with_the_setting_named() {
    let cases = [
        AuthSettings {
            auth_api_key_hashes: Some("not-a-digest".into()),
            ..AuthSettings::default()
        },
        AuthSettings {
            auth_api_key_hashes_file: Some("/nonexistent/keys".into()),
            ..AuthSettings::default()
        },
        AuthSettings {
            auth_jwt_hs256_secret_file: Some("/nonexistent/secret".into()),
            auth_jwt_audience: Some("a".into()),
            ..AuthSettings::default()
        },
    ];
    let names = [
        "AUTH_API_KEY_HASHES",
        "AUTH_API_KEY_HASHES_FILE",
        "AUTH_JWT_HS256_SECRET_FILE",
    ];
    for (raw, name) in cases.iter().zip(names) {
        let err = AuthConfig::from_settings(raw).expect_err("must be refused");
        assert_eq!(err.setting, name);
    }
    let dir = std::env::temp_dir().join(format!("gw-auth-short-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("s"), "short").expect("write");
    let short = AuthSettings {
        auth_jwt_hs256_secret_file: Some(dir.join("s").display().to_string()),
        auth_jwt_audience: Some("a".into()),
        ..AuthSettings::default()
    };
    assert!(
        AuthConfig::from_settings(&short).is_err(),
        "a short HS256 secret must be refused"
    );
    let no_aud = AuthSettings {
        auth_jwt_hs256_secret_file: Some(dir.join("s").display().to_string()),
        ..AuthSettings::default()
    };
    assert!(AuthConfig::from_settings(&no_aud).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
