//! Prometheus registry and the HTTP, GraphQL, database, business and process metrics.
//!
//! Labels come from bounded sets only: route templates (never raw paths),
//! known operation names (else `other`), named analytics queries (else `other`).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// HTTP latency buckets, seconds: cached answers take well under a millisecond,
/// cold reports at ten million tokens take seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Database statement buckets, seconds: index lookups to full aggregations.
const DB_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `cache` label's whole set: the report cache (`reports`), the rendered legacy REST
/// bodies (`rest_bodies`) and the whole GraphQL answers (`graphql_responses`).
pub const CACHES: &[&str] = &["reports", "rest_bodies", "graphql_responses"];
/// The `result` label of `cache_requests_total`.
pub const CACHE_RESULTS: &[&str] = &["hit", "miss", "stale"];

/// Operation names that get their own label value; everything else is `other`.
pub const LEGACY_OPERATIONS: &[&str] = &["LegacyDailyUsage", "LegacyUserVisits"];

/// The rollups' figures (see `db::rollup`): handles are cheap clones of the registered series.
#[derive(Clone)]
pub struct RollupMetrics {
    /// Log rows waiting to be folded, by rollup (`slots`, `users`).
    pub pending: IntGaugeVec,
    /// Time to fold the log before an answer (only folds that found work).
    pub fold_duration: Histogram,
    /// Keys recomputed from raw rows by folds, by rollup.
    pub folded_keys: IntCounterVec,
    /// Report buckets answered from raw rows instead of the rollup, by reason.
    pub raw_fallbacks: IntCounterVec,
    /// 1 when the newest recorded `rollup verify` matched, 0 when it found a difference,
    /// -1 when none was recorded.
    pub verify_ok: IntGauge,
    /// When the newest `rollup verify` ran (Unix seconds; 0 when never).
    pub verify_timestamp: IntGauge,
}

/// Every `rollup` label value.
pub const ROLLUPS: &[&str] = &["slots", "users"];
/// Every `reason` a report bucket falls back to raw rows for.
pub const RAW_FALLBACK_REASONS: &[&str] = &["unaligned_offset"];

impl RollupMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let pending = IntGaugeVec::new(
            Opts::new(
                "rollup_pending_keys",
                "Invalidation-log rows waiting to be folded into the rollups, by rollup.",
            ),
            &["rollup"],
        )?;
        let fold_duration = Histogram::with_opts(
            HistogramOpts::new(
                "rollup_fold_duration_seconds",
                "Time to fold the invalidation log into the rollups (folds that found work).",
            )
            .buckets(DB_BUCKETS.to_vec()),
        )?;
        let folded_keys = IntCounterVec::new(
            Opts::new(
                "rollup_folded_keys_total",
                "Rollup keys (slots, users) recomputed from raw rows by folds.",
            ),
            &["rollup"],
        )?;
        let raw_fallbacks = IntCounterVec::new(
            Opts::new(
                "rollup_raw_fallbacks_total",
                "Report buckets counted from raw rows instead of the rollup, by reason.",
            ),
            &["reason"],
        )?;
        let verify_ok = IntGauge::new(
            "rollup_verify_last_ok",
            "1 if the newest `rollup verify` matched the raw rows, 0 if not, -1 if none ran.",
        )?;
        let verify_timestamp = IntGauge::new(
            "rollup_verify_last_run_timestamp_seconds",
            "When the newest `rollup verify` ran (Unix seconds, 0 if never).",
        )?;
        verify_ok.set(-1);
        for rollup in ROLLUPS {
            pending.with_label_values(&[rollup]);
            folded_keys.with_label_values(&[rollup]);
        }
        for reason in RAW_FALLBACK_REASONS {
            raw_fallbacks.with_label_values(&[reason]);
        }
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(fold_duration.clone()))?;
        registry.register(Box::new(folded_keys.clone()))?;
        registry.register(Box::new(raw_fallbacks.clone()))?;
        registry.register(Box::new(verify_ok.clone()))?;
        registry.register(Box::new(verify_timestamp.clone()))?;
        Ok(Self {
            pending,
            fold_duration,
            folded_keys,
            raw_fallbacks,
            verify_ok,
            verify_timestamp,
        })
    }
}

pub struct Metrics {
    registry: Registry,
    pub rollup: RollupMetrics,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    pub graphql_operations: IntCounterVec,
    pub graphql_duration: HistogramVec,
    pub db_duration: HistogramVec,
    pub db_pool: IntGaugeVec,
    pub db_errors: IntCounterVec,
    pub cache_refresh_failures: IntCounterVec,
    pub cache_requests: IntCounterVec,
    pub cache_bytes: IntGaugeVec,
    pub cache_entries: IntGaugeVec,
    pub http_not_modified: prometheus::IntCounter,
    pub tokens_used_today: IntGauge,
    pub tokens_issued_today: IntGauge,
    pub active_users: IntGauge,
    known_operations: Vec<String>,
}

impl Metrics {
    /// A registry per application, so tests running many apps in one process do not mix figures.
    pub fn new(known_operations: &[String]) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route template and status.",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method and route template.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let http_in_flight =
            IntGauge::new("http_requests_in_flight", "HTTP requests being served.")?;
        let graphql_operations = IntCounterVec::new(
            Opts::new(
                "graphql_operations_total",
                "GraphQL operations by (bounded) name, type and outcome.",
            ),
            &["operation", "type", "outcome"],
        )?;
        let graphql_duration = HistogramVec::new(
            HistogramOpts::new(
                "graphql_operation_duration_seconds",
                "GraphQL operation latency by (bounded) name and type.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["operation", "type"],
        )?;
        let db_duration = HistogramVec::new(
            HistogramOpts::new(
                "db_query_duration_seconds",
                "Database statement latency by named analytics query.",
            )
            .buckets(DB_BUCKETS.to_vec()),
            &["query"],
        )?;
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool connections by state (idle, active, max).",
            ),
            &["state"],
        )?;
        let db_errors = IntCounterVec::new(
            Opts::new("db_errors_total", "Failed database statements by kind."),
            &["kind"],
        )?;
        let cache_refresh_failures = IntCounterVec::new(
            Opts::new(
                "cache_refresh_failures_total",
                "Background refreshes of a stale cached answer that failed, by cache.",
            ),
            &["cache"],
        )?;
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "cache_requests_total",
                "Cache lookups by cache and what they answered: hit (fresh), miss (computed), stale (served while refreshed).",
            ),
            &["cache", "result"],
        )?;
        let cache_bytes = IntGaugeVec::new(
            Opts::new(
                "cache_bytes",
                "Bytes a cache holds, by its weights (sampled at scrape).",
            ),
            &["cache"],
        )?;
        let cache_entries = IntGaugeVec::new(
            Opts::new(
                "cache_entries",
                "Entries a cache holds (sampled at scrape).",
            ),
            &["cache"],
        )?;
        let http_not_modified = prometheus::IntCounter::new(
            "http_responses_not_modified_total",
            "Answers sent as 304 Not Modified (If-None-Match named the current ETag).",
        )?;
        let tokens_used_today = IntGauge::new(
            "coworking_tokens_used_today",
            "Tokens created today (UTC) that were used.",
        )?;
        let tokens_issued_today = IntGauge::new(
            "coworking_tokens_issued_today",
            "Tokens created today (UTC).",
        )?;
        let active_users = IntGauge::new("coworking_active_users", "Users flagged active.")?;
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Build of the running gateway (always 1)."),
            &["version", "git_sha"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("GIT_SHA")])
            .set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(http_in_flight.clone()))?;
        registry.register(Box::new(graphql_operations.clone()))?;
        registry.register(Box::new(graphql_duration.clone()))?;
        registry.register(Box::new(db_duration.clone()))?;
        registry.register(Box::new(db_pool.clone()))?;
        // Every kind exists from the start at 0, so rate() and dashboards see the series.
        for kind in ["unavailable", "timeout", "other"] {
            db_errors.with_label_values(&[kind]);
        }
        registry.register(Box::new(db_errors.clone()))?;
        for cache in CACHES {
            cache_refresh_failures.with_label_values(&[cache]);
            cache_bytes.with_label_values(&[cache]);
            cache_entries.with_label_values(&[cache]);
            for result in CACHE_RESULTS {
                cache_requests.with_label_values(&[cache, result]);
            }
        }
        registry.register(Box::new(cache_refresh_failures.clone()))?;
        registry.register(Box::new(cache_requests.clone()))?;
        registry.register(Box::new(cache_bytes.clone()))?;
        registry.register(Box::new(cache_entries.clone()))?;
        registry.register(Box::new(http_not_modified.clone()))?;
        registry.register(Box::new(tokens_used_today.clone()))?;
        registry.register(Box::new(tokens_issued_today.clone()))?;
        registry.register(Box::new(active_users.clone()))?;
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let rollup = RollupMetrics::new(&registry)?;
        let mut known: Vec<String> = LEGACY_OPERATIONS.iter().map(|s| (*s).to_owned()).collect();
        known.extend(known_operations.iter().cloned());
        Ok(Self {
            registry,
            rollup,
            http_requests,
            http_duration,
            http_in_flight,
            graphql_operations,
            graphql_duration,
            db_duration,
            db_pool,
            db_errors,
            cache_refresh_failures,
            cache_requests,
            cache_bytes,
            cache_entries,
            http_not_modified,
            tokens_used_today,
            tokens_issued_today,
            active_users,
            known_operations: known,
        })
    }

    /// The label for an operation name: known names as themselves, others folded.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        match name {
            None => "anonymous".to_owned(),
            Some(n) if self.known_operations.iter().any(|k| k == n) => n.to_owned(),
            Some(_) => "other".to_owned(),
        }
    }

    /// The counters of one of [`CACHES`].
    pub fn cache_counters(&self, cache: &'static str) -> crate::analytics::cache::CacheCounters {
        let result = |r: &str| self.cache_requests.with_label_values(&[cache, r]);
        crate::analytics::cache::CacheCounters {
            hit: result("hit"),
            miss: result("miss"),
            stale: result("stale"),
            refresh_failures: self.cache_refresh_failures.with_label_values(&[cache]),
        }
    }

    /// Samples a cache's size into `cache_bytes` and `cache_entries`.
    pub fn set_cache_size(&self, cache: &'static str, bytes: u64, entries: u64) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.cache_bytes
            .with_label_values(&[cache])
            .set(gauge(bytes));
        self.cache_entries
            .with_label_values(&[cache])
            .set(gauge(entries));
    }

    pub fn db_histogram(&self, query: &str) -> Histogram {
        self.db_duration.with_label_values(&[query])
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
