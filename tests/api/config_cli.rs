//! Settings: defaults, the legacy DB_* variables, and bad values exiting with status 2 and one line.

use std::process::Command;

use coworking_gateway::config::{Config, DatabaseTarget, DbArgs, Settings};

fn gateway() -> Command {
    crate::helpers::gateway_command()
}

fn settings(db: DbArgs) -> Settings {
    Settings {
        db,
        ..Settings::default()
    }
}

#[test]
fn defaults_are_the_embedded_sqlite_file_on_port_5153() {
    let config = Config::from_settings(&Settings::default()).expect("defaults are valid");
    assert_eq!(config.port, 5153);
    assert_eq!(config.bind_address.to_string(), "0.0.0.0");
    assert!(
        matches!(config.database, DatabaseTarget::EmbeddedDefault { ref path } if path.to_str() == Some("./coworking.db"))
    );
    assert_eq!(config.max_buckets, 3_660);
    assert_eq!(config.max_page_size, 1_000);
    assert_eq!(config.graphql_max_depth, 12);
    assert_eq!(config.graphql_max_complexity, 2_000);
    assert_eq!(config.cache.max_bytes, 32 * 1024 * 1024);
    assert_eq!(config.cache.max_entries, 10_000);
}

#[test]
fn legacy_db_variables_select_postgres_with_legacy_defaults() {
    let raw = settings(DbArgs {
        db_username: Some("app".into()),
        db_password: Some("s3cr:t@pw".into()),
        ..DbArgs::default()
    });
    let config = Config::from_settings(&raw).expect("valid");
    let url = url::Url::parse(&config.database.url()).expect("url");
    assert_eq!(
        (
            url.scheme(),
            url.host_str(),
            url.port(),
            url.path(),
            url.username()
        ),
        (
            "postgres",
            Some("127.0.0.1"),
            Some(5432),
            "/postgres",
            "app"
        )
    );
    // Reserved characters in the password are percent-encoded, not mangled.
    assert_eq!(url.password(), Some("s3cr%3At%40pw"));
    // Neither the Debug form nor the redacted form shows the password.
    let shown = format!(
        "{:?} {} {:?}",
        config,
        config.database.redacted(),
        config.database
    );
    assert!(!shown.contains("s3cr"), "password leaked: {shown}");

    let raw = settings(DbArgs {
        db_host: Some("db.internal".into()),
        db_port: Some("6543".into()),
        db_name: Some("cowork".into()),
        ..DbArgs::default()
    });
    let url =
        url::Url::parse(&Config::from_settings(&raw).expect("valid").database.url()).expect("url");
    assert_eq!(
        (url.host_str(), url.port(), url.path(), url.username()),
        (Some("db.internal"), Some(6543), "/cowork", "postgres")
    );

    // DATABASE_URL wins over DB_*.
    let raw = settings(DbArgs {
        database_url: Some("postgres://u@h:1/d".into()),
        db_host: Some("other".into()),
        ..DbArgs::default()
    });
    assert!(
        Config::from_settings(&raw)
            .expect("valid")
            .database
            .url()
            .contains("@h:1/d")
    );
}

#[test]
fn bad_settings_exit_2_with_one_line_naming_the_setting() {
    let cases: &[(&str, &str, &str)] = &[
        ("APP_PORT", "eighty", "APP_PORT"),
        ("APP_PORT", "70000", "APP_PORT"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("DATABASE_URL", "mysql://root:hunter2@x/db", "DATABASE_URL"),
        ("DATABASE_URL", "not a url with hunter2", "DATABASE_URL"),
        ("DB_PORT", "-1", "DB_PORT"),
        ("BIND_ADDRESS", "localhost:80", "BIND_ADDRESS"),
        ("GRAPHQL_MAX_DEPTH", "0", "GRAPHQL_MAX_DEPTH"),
        ("CACHE_MAX_BYTES", "32MiB", "CACHE_MAX_BYTES"),
        ("CACHE_MAX_BYTES", "1000", "CACHE_MAX_BYTES"),
    ];
    for (var, value, named) in cases {
        let mut cmd = gateway();
        cmd.env(var, value).arg("migrate");
        if *var == "DB_PORT" {
            cmd.env("DB_USERNAME", "postgres")
                .env("DB_PASSWORD", "hunter2");
        }
        let out = cmd.output().expect("run gateway");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{var}={value}: not one line: {stderr}"
        );
        assert!(
            stderr.contains(named) && stderr.contains("accepted"),
            "{var}={value}: {stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "{var}={value}: secret leaked: {stderr}"
        );
    }
}

#[test]
fn unreachable_database_error_does_not_show_the_password() {
    // Nothing listens on port 9; the error must name the problem without the secret.
    let out = gateway()
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", "9")
        .env("DB_USERNAME", "postgres")
        .env("DB_PASSWORD", "hunter2-secret")
        .env("DB_ACQUIRE_TIMEOUT_MS", "500")
        .arg("migrate")
        .output()
        .expect("run gateway");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(!all.contains("hunter2"), "secret leaked: {all}");
}

#[test]
fn schema_subcommand_prints_the_committed_sdl() {
    let out = gateway().arg("schema").output().expect("run gateway");
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).expect("utf8");
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql is committed");
    assert_eq!(
        printed, committed,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
    assert!(
        printed.contains("usageByDay")
            && printed.contains("visitsPerUser")
            && printed.contains("scalar Date")
    );
}
