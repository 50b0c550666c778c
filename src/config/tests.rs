//! Unit tests of the typed settings: the one-line messages, empty values, defaults, secrets.

use clap::{Args, Command, FromArgMatches};

use super::{Config, LogFormat, Settings, refused_value};

/// `args` parsed as flags, which win over the environment (kept, as the messages name
/// its variables; a test process needs none of them set).
fn parse(args: &[&str]) -> Result<Settings, String> {
    let matches = Settings::augment_args(Command::new("gw"))
        .try_get_matches_from(std::iter::once("gw").chain(args.iter().copied()))
        .map_err(|e| refused_value(&e).map_or_else(|| e.to_string(), str::to_owned))?;
    Settings::from_arg_matches(&matches).map_err(|e| e.to_string())
}

fn config(args: &[&str]) -> Result<Config, String> {
    Config::from_settings(&parse(args)?).map_err(|e| e.to_string())
}

#[test]
fn a_refused_value_is_one_line_naming_the_variable_the_flag_and_what_is_accepted() {
    let cases = [
        (
            &["--port", "eighty"][..],
            "invalid APP_PORT (--port): 'eighty' is not usable; accepted: an integer from 0 to 65535",
        ),
        (
            &["--log-format", " XML"],
            "invalid LOG_FORMAT (--log-format): 'xml' is not a log format; accepted: auto, json, pretty",
        ),
        (
            &["--graphql-playground", "maybe"],
            "invalid GRAPHQL_PLAYGROUND (--graphql-playground): 'maybe' is not a boolean; accepted: true or false",
        ),
        (
            &["--cache-ttl-seconds", "nan"],
            "invalid CACHE_TTL_SECONDS (--cache-ttl-seconds): 'nan' is not usable; accepted: seconds from 0 (off) to 86400",
        ),
        (
            &["--auth-metrics", "maybe"],
            "invalid AUTH_METRICS: not a boolean; accepted: true or false",
        ),
        (
            &["--graphql-known-operations", "1st"],
            "invalid GRAPHQL_KNOWN_OPERATIONS: not a list of GraphQL names; accepted: up to 200 comma-separated names like DailyUsage,VisitsPerUser",
        ),
        (
            &["--db-host", "h", "--db-port", "0"],
            "invalid DB_PORT: '0' is not usable; accepted: an integer from 1 to 65535",
        ),
    ];
    for (args, line) in cases {
        assert_eq!(config(args).err().as_deref(), Some(line), "{args:?}");
    }
}

#[test]
fn values_are_trimmed_and_empty_means_the_default_where_it_always_did() {
    let c = config(&["--port", " 8080 ", "--log-format", "JSON"]).expect("valid");
    assert_eq!((c.port, c.log_format), (8080, LogFormat::Json));
    let c = config(&["--graphql-introspection", "", "--auth-metrics", " "]).expect("valid");
    assert!(c.graphql_introspection && !c.auth.auth_metrics);
    assert_eq!(
        config(&["--metrics-port", ""]).expect("valid").metrics_port,
        None
    );
    assert_eq!(
        config(&["--metrics-port", "9100"])
            .expect("valid")
            .metrics_port,
        Some(9100)
    );
    assert!(config(&["--metrics-port", "0"]).is_err());
    // DB_PORT is read only when DB_* selects PostgreSQL.
    assert!(config(&["--db-port", "abc"]).is_ok());
}

#[test]
fn defaults_are_the_documented_values() {
    let default = Config::from_settings(&Settings::default()).expect("defaults");
    assert_eq!(
        (default.port, default.log_format, default.metrics_port),
        (5153, LogFormat::Auto, None)
    );
    assert!(default.graphql_introspection && default.graphql_playground);
    assert_eq!(default.graphql_known_operations.len(), 11);
    assert_eq!(
        default.rate_limit, None,
        "RATE_LIMIT_PER_SECOND=0 is no limit"
    );
    let limited = config(&["--rate-limit-per-second", "0.25"]).expect("valid");
    assert_eq!(limited.rate_limit.map(|l| l.burst), Some(1.0));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let mut settings = parse(&[
        "--database-url",
        "postgres://app:hunter2@db/x",
        "--auth-api-key-hashes",
        "hunter3",
    ])
    .expect("valid");
    settings.db.db_password = Some("hunter4".into());
    let config = Config::from_settings(&settings).expect("valid");
    let shown = format!("{settings:?} {config:?}");
    for secret in ["hunter2", "hunter3", "hunter4"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}
