//! Spawns the real app on port 0 against a fresh database (SQLite in memory; PostgreSQL when
//! `TEST_DATABASE_URL` is set) and talks HTTP to it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Once};

use coworking_gateway::app::Application;
use coworking_gateway::cli::Cli;
use coworking_gateway::config::{Config, LogFormat};
use coworking_gateway::metrics::Metrics;
use entity::{tokens, users};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set, Statement};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static PG_NOTE: Once = Once::new();

/// SQLite always; PostgreSQL too when `TEST_DATABASE_URL` is set (with a visible note when not).
pub fn backends() -> Vec<Backend> {
    if pg_admin_url().is_some() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        PG_NOTE.call_once(|| {
            eprintln!("NOTE: TEST_DATABASE_URL is not set: the PostgreSQL cases of this suite were NOT run (SQLite only).");
        });
        vec![Backend::Sqlite]
    }
}

/// For one `#[case]` of a test: true (with a printed note) when `backend` cannot run here,
/// that is PostgreSQL without `TEST_DATABASE_URL`. Each backend is its own case, so a failure
/// on one cannot hide the result on the other.
pub fn unavailable(backend: Backend) -> bool {
    if backend == Backend::Postgres && pg_admin_url().is_none() {
        eprintln!(
            "NOTE: TEST_DATABASE_URL is not set: {} was NOT run.",
            std::thread::current()
                .name()
                .unwrap_or("this PostgreSQL case")
        );
        return true;
    }
    false
}

pub fn pg_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

pub fn init_test_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            coworking_gateway::telemetry::init(LogFormat::Pretty, std::io::stdout);
        }
    });
}

/// `../shared/legacy` beside the repository, or `None` (with a printed note) when absent.
pub fn legacy_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/legacy");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "NOTE: {} is absent: legacy-data cases skipped.",
            dir.display()
        );
        None
    }
}

/// A PostgreSQL database created for one test and dropped when it goes out of scope.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl PgDatabase {
    pub async fn create() -> Self {
        let admin_url = pg_admin_url().expect("TEST_DATABASE_URL");
        let name = format!(
            "gw_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let admin = Database::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        Self {
            name,
            url: url.to_string(),
            admin_url,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async; use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A config for an app on port 0 of 127.0.0.1, migrating on start, against SQLite in
/// memory or a fresh PostgreSQL database (held by the returned guard).
pub async fn test_config(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
) -> (Config, Option<PgDatabase>) {
    init_test_logging();
    let (url, pg) = match backend {
        Backend::Sqlite => ("sqlite::memory:".to_owned(), None),
        Backend::Postgres => {
            let pg = PgDatabase::create().await;
            (pg.url.clone(), Some(pg))
        }
    };
    let mut config = Config::for_database_url(&url).expect("test config");
    config.bind_address = [127, 0, 0, 1].into();
    config.port = 0;
    config.migrate_on_start = true;
    tweak(&mut config);
    (config, pg)
}

pub struct TestApp {
    pub backend: Backend,
    pub base: String,
    /// Set when /metrics has a port of its own.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    /// The app's own pool: for SQLite in memory it is the only way to reach the same database.
    pub db: DatabaseConnection,
    /// The app's metrics registry (statements run: [`TestApp::statements`]).
    pub metrics: Arc<Metrics>,
    /// The app's server (for what tests trigger without waiting, e.g. one gauge sampling).
    pub server: coworking_gateway::http::Server,
    /// Held so the database lives as long as the app, and is dropped with it.
    _pg: Option<PgDatabase>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let (config, pg) = test_config(backend, tweak).await;
        Self::start(backend, config, pg).await
    }

    pub async fn start(backend: Backend, config: Config, pg: Option<PgDatabase>) -> Self {
        let app = Application::build(config).await.expect("build app");
        let addr = app.local_addr().expect("bound address");
        let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
        let db = app.server().state().db.clone();
        let metrics = app.server().state().metrics.clone();
        let server = app.server().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            backend,
            base: format!("http://{addr}"),
            metrics_base,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("client"),
            db,
            metrics,
            server,
            _pg: pg,
        }
    }

    /// Statements the app's pool has run so far, as its metrics count them.
    pub fn statements(&self) -> u64 {
        db_statements(&self.metrics)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    /// POSTs a GraphQL operation and returns the whole JSON response.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let res = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql");
        res.json().await.expect("JSON body")
    }

    /// The `/metrics` text (on the main port).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// [`Self::graphql`] without `extensions.cache` (the whole-response cache's note of
    /// when the data was read, which an uncached answer does not carry).
    pub async fn graphql_answer(&self, query: &str, variables: Value) -> Value {
        let mut body = self.graphql(query, variables).await;
        strip_cache_note(&mut body);
        body
    }

    /// `data` of a GraphQL response that must have no errors.
    pub async fn graphql_ok(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql(query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "[{:?}] unexpected errors: {body}",
            self.backend
        );
        body["data"].clone()
    }

    pub async fn query_i64(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index(0).expect("an integer")
    }

    pub async fn insert(&self, users: &[users::Model], tokens: &[tokens::Model]) {
        insert(&self.db, users, tokens).await;
    }
}

/// Every statement is one observation of `db_query_duration_seconds`: the sum of its
/// sample counts over the report queries, read from the Prometheus text as a scraper would.
/// The fold of the rollup log that every uncached answer starts with (`query="rollup_fold"`,
/// one read when the log is empty; the background fold too) and the gauge task's reads of
/// the log and the last verify (`query="rollup_gauges"`) are left out: these counts are
/// about the reports.
pub fn db_statements(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("db_query_duration_seconds_count"))
        .filter(|l| !l.contains(r#"query="rollup_fold""#))
        .filter(|l| !l.contains(r#"query="rollup_gauges""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub async fn insert(db: &DatabaseConnection, users: &[users::Model], tokens: &[tokens::Model]) {
    for chunk in users.chunks(500) {
        let rows = chunk.iter().map(|u| users::ActiveModel {
            id: Set(u.id),
            first_name: Set(u.first_name.clone()),
            last_name: Set(u.last_name.clone()),
            joined_at: Set(u.joined_at),
            is_active: Set(u.is_active),
        });
        users::Entity::insert_many(rows)
            .exec(db)
            .await
            .expect("insert users");
    }
    for chunk in tokens.chunks(500) {
        let rows = chunk.iter().map(|t| tokens::ActiveModel {
            id: Set(t.id),
            user_id: Set(t.user_id),
            token: Set(t.token.clone()),
            created_at: Set(t.created_at),
            used_at: Set(t.used_at),
        });
        tokens::Entity::insert_many(rows)
            .exec(db)
            .await
            .expect("insert tokens");
    }
}

/// A TCP proxy the test controls, between the gateway and PostgreSQL: `cut` drops every
/// open connection and refuses new ones; `restore` lets them through again.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<std::sync::atomic::AtomicBool>,
    cuts: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let (flag, tx) = (open.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = tx.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, open, cuts }
    }

    /// A proxy in front of the PostgreSQL database at `url`, and the URL that goes through it.
    pub async fn in_front_of(url: &str) -> (Self, url::Url) {
        let real = url::Url::parse(url).expect("url");
        let upstream = format!(
            "{}:{}",
            real.host_str().expect("host"),
            real.port().unwrap_or(5432)
        );
        let proxy = Self::start(upstream).await;
        let mut via = real;
        via.set_port(Some(proxy.addr.port())).expect("port");
        (proxy, via)
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Variables the gateway reads outside its clap definition: the password (env only, so it
/// never shows in `ps`) and the log filter of `tracing-subscriber`.
pub const ENV_ONLY: &[&str] = &["DB_PASSWORD", "RUST_LOG"];

/// Every `env = "…"` name of the CLI definition, root, globals and subcommands alike.
pub fn clap_env_names() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, names: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(name) = arg.get_env().and_then(|n| n.to_str()) {
                names.insert(name.to_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, names);
        }
    }
    let mut names = BTreeSet::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut names);
    names
}

/// Settings a test must not inherit from the developer's shell: derived from the CLI
/// definition, so a new setting is cleared the day it is added.
pub fn gateway_env() -> &'static BTreeSet<String> {
    static NAMES: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
        let mut names = clap_env_names();
        names.extend(ENV_ONLY.iter().map(|n| (*n).to_owned()));
        names
    });
    &NAMES
}

/// Removes every setting of [`gateway_env`] from what `cmd` passes to its child.
pub fn clear_gateway_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in gateway_env() {
        cmd.env_remove(var);
    }
    cmd
}

/// The gateway binary with nothing inherited that it would read as a setting.
pub fn gateway_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_coworking-gateway"));
    clear_gateway_env(&mut cmd);
    cmd
}

/// The real binary as a child process (for signals, exit codes and its log).
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub base: String,
    pub log_path: PathBuf,
}

impl GatewayProcess {
    pub fn spawn(env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::spawn_from(
            std::process::Command::new(env!("CARGO_BIN_EXE_coworking-gateway")),
            env,
            args,
        )
    }

    /// Spawns `cmd` after clearing [`gateway_env`] from it, then setting `env`: whatever `cmd`
    /// would have passed on (its own `env` calls or the parent's environment) is dropped.
    pub fn spawn_from(mut cmd: std::process::Command, env: &[(&str, &str)], args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log_path = std::env::temp_dir().join(format!(
            "gw-{}-{}.log",
            std::process::id(),
            rand::random::<u32>()
        ));
        let log = std::fs::File::create(&log_path).expect("log file");
        clear_gateway_env(&mut cmd)
            .env("APP_PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("LOG_FORMAT", "json");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .args(args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn gateway");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log_path,
        }
    }

    pub async fn wait_ready(&self, client: &reqwest::Client) {
        let started = std::time::Instant::now();
        loop {
            if let Ok(res) = client
                .get(format!("{}/readiness_check", self.base))
                .send()
                .await
                && res.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "gateway not ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// Removes `extensions.cache` (and `extensions` when nothing else is in it).
pub fn strip_cache_note(body: &mut Value) {
    if let Some(ext) = body.get_mut("extensions").and_then(Value::as_object_mut) {
        ext.remove("cache");
        if ext.is_empty()
            && let Some(obj) = body.as_object_mut()
        {
            obj.remove("extensions");
        }
    }
}
