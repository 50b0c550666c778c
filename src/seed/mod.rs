//! Deterministic demo data shaped like the legacy seed, written with bulk SQL (no row-by-row inserts).
//!
//! Every value is a pure function of the row number and the seed, computed by
//! the database itself, so the same seed gives the same rows on either backend
//! and ten million tokens take one pass of `INSERT … SELECT`.

use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use sea_orm::sea_query::{Asterisk, Expr, Func, Query};

use crate::db::dialect::Dialect;

mod sql;
use sql::SeedSql;

/// Tokens are issued over this week (as in the legacy seed)…
const TOKENS_FROM: &str = "2023-02-07 00:00:00";
const TOKEN_SPAN_SECONDS: u64 = 7 * 86_400;
/// …by users who joined over the two months before.
const USERS_FROM: &str = "2022-12-15 00:00:00";
const USER_SPAN_SECONDS: u64 = 60 * 86_400;
const CHUNK: u64 = 1_000_000;
/// From this many tokens on, secondary indexes are rebuilt after the load instead of maintained during it.
const BULK_THRESHOLD: u64 = 500_000;

const FIRST_NAMES: &str = r#"["Cristopher","Dakota","Mattie","Darien","Luca","Valeria","Courtney","Aiyana","Weston","Karla","Dawson","Aniyah","Tanya","Gilberto","Saniyah","Warren"]"#;
const LAST_NAMES: &str = r#"["Alexander","Gardner","Moyer","Gamble","Abbott","Franklin","Waters","Liu","Clark","Oneal","Taylor","Marquez","Martin","Spears","Jimenez","Griffith"]"#;

#[derive(Debug, Clone, Copy)]
pub struct SeedPlan {
    pub users: u64,
    pub tokens: u64,
    pub seed: u64,
    pub append: bool,
}

impl SeedPlan {
    /// Demo data for the embedded default, and the `seed` command's defaults: the legacy
    /// seed's shape and size.
    pub const DEMO: Self = Self {
        users: 1_000,
        tokens: 2_500,
        seed: 42,
        append: false,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(
        "the database already holds {users} users and {tokens} tokens; nothing was written (pass --append to add to them)"
    )]
    NotEmpty { users: i64, tokens: i64 },
    #[error("cannot seed tokens without users: pass --users N with N > 0")]
    NoUsers,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A well-mixed 23-bit pseudo-random number from the row number `i`, a per-column `salt` and the seed.
/// Squaring modulo the prime 2^31-1 makes columns with different salts independent;
/// every intermediate stays below 2^63 on both backends.
fn mix(salt: u64, seed: u64) -> String {
    let p = 2_147_483_647u64;
    let a = format!("((i * 2654435761 + {}) % {p})", salt * 97_531);
    let b = format!("(({a} * {a} + {seed}) % {p})");
    let c = format!("(({b} * 48271) % {p})");
    format!("((({c} * {c} + {salt}) % {p}) / 256)")
}

/// `mix(s) AS h<s>, …` for each salt: the hash columns a seeding subquery computes once per row.
fn hash_columns(salts: std::ops::RangeInclusive<u64>, seed: u64) -> String {
    salts
        .map(|salt| format!("{} AS h{salt}", mix(salt, seed)))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn count(
    db: &impl ConnectionTrait,
    dialect: Dialect,
    table: &'static str,
) -> Result<i64, DbErr> {
    let query = Query::select()
        .expr_as(Func::count(Expr::col(Asterisk)), "n")
        .from(table)
        .to_owned();
    let row = db.query_one_raw(dialect.build(&query)).await?;
    Ok(match row {
        Some(r) => r.try_get("", "n")?,
        None => 0,
    })
}

pub async fn is_empty(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let dialect = Dialect::of(db);
    Ok(count(db, dialect, "users").await? == 0 && count(db, dialect, "tokens").await? == 0)
}

/// Writes the plan in one transaction; `progress` hears about each chunk of tokens.
pub async fn seed(
    db: &DatabaseConnection,
    plan: SeedPlan,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), SeedError> {
    let dialect = Dialect::of(db);
    let seed = plan.seed % 2_147_483_647;
    let txn = db.begin().await?;
    let (users, tokens) = (
        count(&txn, dialect, "users").await?,
        count(&txn, dialect, "tokens").await?,
    );
    if !plan.append && (users > 0 || tokens > 0) {
        return Err(SeedError::NotEmpty { users, tokens });
    }
    // With --append the row numbers continue, so appended rows differ from existing ones.
    let user_offset = u64::try_from(users).unwrap_or(0);
    let token_offset = u64::try_from(tokens).unwrap_or(0);
    if plan.users > 0 {
        let mut sql = dialect.raw();
        sql.push("WITH RECURSIVE ");
        dialect.series_cte(&mut sql, plan.users);
        sql.push(&format!(
            " INSERT INTO users (first_name, last_name, joined_at, is_active) \
             SELECT {first}, {last}, {joined}, (h15 % 10) <> 0 \
             FROM (SELECT i, {hashes} \
                   FROM (SELECT i + {user_offset} AS i FROM series) n {fence}) s ORDER BY i",
            first = dialect.json_pick(FIRST_NAMES, "h13 % 16"),
            last = dialect.json_pick(LAST_NAMES, "h14 % 16"),
            joined = dialect.timestamp_plus_micros(
                USERS_FROM,
                &format!("(h11 % {USER_SPAN_SECONDS}) * 1000000 + (h12 % 1000000)")
            ),
            hashes = hash_columns(11..=15, seed),
            fence = dialect.no_flatten(),
        ));
        txn.execute_raw(sql.finish()).await?;
    }
    let total_users = count(&txn, dialect, "users").await?;
    if plan.tokens > 0 && total_users == 0 {
        return Err(SeedError::NoUsers);
    }
    // Each hash is computed once per row in a subquery the planner may not flatten.
    let created = dialect.timestamp_plus_micros(
        TOKENS_FROM,
        &format!("(h21 % {TOKEN_SPAN_SECONDS}) * 1000000 + (h22 % 1000000)"),
    );
    // used_at comes 1 to 15 minutes after created_at for about half the tokens.
    let used = dialect.timestamp_plus_micros(
        TOKENS_FROM,
        &format!(
            "(h21 % {TOKEN_SPAN_SECONDS}) * 1000000 + (h22 % 1000000) + (1 + h23 % 15) * 60000000"
        ),
    );
    // Maintaining secondary indexes row by row dominates a bulk load; rebuilding them
    // once afterwards is several times faster. Inside the transaction, so all or nothing.
    let rebuild = if plan.tokens >= BULK_THRESHOLD {
        dialect.secondary_indexes(&txn, "tokens").await?
    } else {
        Vec::new()
    };
    for (name, _) in &rebuild {
        txn.execute_unprepared(&format!("DROP INDEX {name}"))
            .await?;
    }
    let mut done = 0;
    let started = Instant::now();
    while done < plan.tokens {
        let n = CHUNK.min(plan.tokens - done);
        let offset = token_offset + done;
        let mut sql = dialect.raw();
        sql.push("WITH RECURSIVE ");
        dialect.series_cte(&mut sql, n);
        sql.push(&format!(
            ", numbered AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM users) \
             INSERT INTO tokens (user_id, token, created_at, used_at) \
             SELECT numbered.id, {token}, {created}, CASE WHEN h25 % 100 < 50 THEN {used} END \
             FROM (SELECT i, {hashes} \
                   FROM (SELECT i + {offset} AS i FROM series) n {fence}) s \
             JOIN numbered ON numbered.rn = 1 + h26 % {total_users} ORDER BY i",
            token = dialect.six_digits("h24 % 1000000"),
            hashes = hash_columns(21..=26, seed),
            fence = dialect.no_flatten(),
        ));
        txn.execute_raw(sql.finish()).await?;
        done += n;
        progress(done, plan.tokens);
    }
    for (_, definition) in &rebuild {
        txn.execute_unprepared(definition).await?;
    }
    txn.commit().await?;
    // Fresh statistics and visibility map: without them PostgreSQL plans the reports
    // blind and its index-only scans visit the heap for every row (10x slower at 10M).
    if let Some(sql) = dialect.after_bulk_load() {
        db.execute_unprepared(sql).await?;
    }
    tracing::info!(
        users = plan.users,
        tokens = plan.tokens,
        seconds = started.elapsed().as_secs_f64(),
        "seeded demo data"
    );
    Ok(())
}
