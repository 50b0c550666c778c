//! The list of settings cleared for spawned binaries comes from the CLI definition, so a
//! developer's `AUTH_*` (or any setting added later) cannot leak into a test.

use std::collections::BTreeSet;

use crate::helpers::{ENV_ONLY, GatewayProcess, clap_env_names, gateway_command, gateway_env};

/// `NAME` in every `<marker>NAME"` of `text`, read from the source, not from clap.
fn quoted_after(text: &str, marker: &str) -> BTreeSet<String> {
    text.split(marker)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn cleared_list_is_every_setting_the_binary_reads() {
    // Independent of clap's walk: the `env = "…"` attributes as written in the source.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/config");
    let mut declared = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("read src/config") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read source");
        declared.extend(quoted_after(&text, "env = \""));
    }
    assert!(declared.len() >= 36, "source scan broke: {declared:?}");
    assert_eq!(
        clap_env_names(),
        declared,
        "the clap walk misses (or invents) settings"
    );
    let cleared = gateway_env();
    assert_eq!(cleared.len(), declared.len() + ENV_ONLY.len());
    for name in [
        "AUTH_API_KEY_HASHES",
        "DATABASE_URL",
        "DB_PASSWORD",
        "RUST_LOG",
    ] {
        assert!(cleared.contains(name), "{name} is not cleared");
    }
    // Names read with std::env::var outside clap are in the list too.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut pending = vec![std::path::PathBuf::from(src)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                for name in quoted_after(&text, "env::var(\"") {
                    assert!(
                        cleared.contains(&name),
                        "{} reads {name}, which is not cleared",
                        path.display()
                    );
                }
            }
        }
    }
    // And the helper really removes each one from the child's environment.
    let cmd = gateway_command();
    let removed: BTreeSet<String> = cmd
        .get_envs()
        .filter(|(_, value)| value.is_none())
        .filter_map(|(name, _)| name.to_str().map(str::to_owned))
        .collect();
    assert_eq!(&removed, cleared);
}

#[tokio::test]
async fn an_inherited_api_key_setting_does_not_turn_auth_on() {
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(b"ck_dev_shell_key")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client");
    let status = |gateway: &GatewayProcess| {
        let (client, url) = (client.clone(), format!("{}/graphql", gateway.base));
        async move {
            client
                .post(url)
                .json(&serde_json::json!({ "query": "{ __typename }" }))
                .send()
                .await
                .expect("POST /graphql")
                .status()
                .as_u16()
        }
    };
    let db = [("DATABASE_URL", "sqlite::memory:")];

    // Control: the setting, when it reaches the child, does require credentials.
    let on = GatewayProcess::spawn(&[db[0], ("AUTH_API_KEY_HASHES", &digest)], &["serve"]);
    on.wait_ready(&client).await;
    assert_eq!(status(&on).await, 401, "control: auth did not turn on");

    // A developer's shell, as the command would pass it on: cleared before the spawn.
    let mut inherited = std::process::Command::new(env!("CARGO_BIN_EXE_coworking-gateway"));
    inherited.env("AUTH_API_KEY_HASHES", &digest);
    let off = GatewayProcess::spawn_from(inherited, &db, &["serve"]);
    off.wait_ready(&client).await;
    assert_eq!(
        status(&off).await,
        200,
        "an inherited AUTH_API_KEY_HASHES reached the gateway"
    );
}
