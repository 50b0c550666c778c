//! Deterministic demo data shaped like the legacy seed, written with bulk SQL (no row-by-row inserts).
//!
//! Every value is a pure function of the row number and the seed, computed by
//! the database itself, so the same seed gives the same rows on either backend
//! and ten million tokens take one pass of `INSERT … SELECT`.

use std::time::Instant;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use sea_orm::sea_query::{Asterisk, Expr, Func, Query};

use crate::db::dialect::Dialect;
use crate::db::rollup;

mod sql;
use sql::SeedSql;

/// Every plan's tokens end here: the legacy seed's week, 2023-02-07 to 2023-02-14, is `--days 7`.
const TOKENS_END: (i32, u32, u32) = (2023, 2, 14);
/// The legacy demo's span, whose rows (join dates included) stay byte for byte what they were.
const DEMO_DAYS: u64 = 7;
/// Its users joined over the two months from here, which runs into the token week
/// (as the legacy seed's join dates do: some demo users have a token before they joined).
const DEMO_USERS_FROM: &str = "2022-12-15 00:00:00";
/// Users join over this long; with any span but the demo's, it ends where the tokens start.
const USER_SPAN_SECONDS: u64 = 60 * 86_400;
/// The most days a plan may span (a hundred years).
pub const MAX_DAYS: u64 = 36_500;
/// Two 23-bit hashes make one 46-bit offset: wide enough for `MAX_DAYS` in seconds, and
/// so much wider than any span that the offsets are uniform over it.
const HASH_RANGE: u64 = 1 << 23;
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
    /// The tokens' `created_at` spread over this many days ending 2023-02-14 00:00:00
    /// (1..=[`MAX_DAYS`]); users joined over the 60 days before (the demo's 7: see [`DEMO_DAYS`]).
    pub days: u64,
}

impl SeedPlan {
    /// Demo data for the embedded default, and the `seed` command's defaults: the legacy
    /// seed's shape and size.
    pub const DEMO: Self = Self {
        users: 1_000,
        tokens: 2_500,
        seed: 42,
        append: false,
        days: DEMO_DAYS,
    };
}

/// Where a plan's timestamps fall, as SQL over the hash columns (`h11`.. for users, `h21`.. for tokens).
struct Span {
    /// `YYYY-MM-DD HH:MM:SS` literals the offsets are added to.
    users_from: String,
    tokens_from: String,
    /// Seconds after `users_from` / `tokens_from`.
    joined_seconds: String,
    created_seconds: String,
}

impl Span {
    fn of(days: u64) -> Result<Self, SeedError> {
        let end = NaiveDate::from_ymd_opt(TOKENS_END.0, TOKENS_END.1, TOKENS_END.2)
            .and_then(|d| d.and_hms_opt(0, 0, 0));
        let start = i64::try_from(days)
            .ok()
            .filter(|d| (1..=MAX_DAYS as i64).contains(d))
            .and_then(|d| end.and_then(|e| e.checked_sub_signed(TimeDelta::try_days(d)?)));
        let Some(start) = start else {
            return Err(SeedError::Days(days));
        };
        let literal = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
        let token_seconds = days * 86_400;
        if days == DEMO_DAYS {
            // The legacy demo's formulas, unchanged.
            return Ok(Self {
                users_from: DEMO_USERS_FROM.to_owned(),
                tokens_from: literal(start),
                joined_seconds: format!("(h11 % {USER_SPAN_SECONDS})"),
                created_seconds: format!("(h21 % {token_seconds})"),
            });
        }
        // Users join in the 60 days before the first token can be issued, so everyone's
        // joined_at is before their first token.
        let users_from = start - TimeDelta::seconds(USER_SPAN_SECONDS as i64);
        Ok(Self {
            users_from: literal(users_from),
            tokens_from: literal(start),
            joined_seconds: format!("((h16 * {HASH_RANGE} + h11) % {USER_SPAN_SECONDS})"),
            created_seconds: format!("((h27 * {HASH_RANGE} + h21) % {token_seconds})"),
        })
    }

    /// The highest salt of the users' and the tokens' hash columns.
    fn salts(days: u64) -> (u64, u64) {
        if days == DEMO_DAYS {
            (15, 26)
        } else {
            (16, 27)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(
        "the database already holds {users} users and {tokens} tokens; nothing was written (pass --append to add to them)"
    )]
    NotEmpty { users: i64, tokens: i64 },
    #[error("cannot seed tokens without users: pass --users N with N > 0")]
    NoUsers,
    #[error("cannot spread tokens over {0} days: from 1 to {MAX_DAYS}")]
    Days(u64),
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
    let span = Span::of(plan.days)?;
    let (user_salts, token_salts) = Span::salts(plan.days);
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
                &span.users_from,
                &format!("{} * 1000000 + (h12 % 1000000)", span.joined_seconds)
            ),
            hashes = hash_columns(11..=user_salts, seed),
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
        &span.tokens_from,
        &format!("{} * 1000000 + (h22 % 1000000)", span.created_seconds),
    );
    // used_at comes 1 to 15 minutes after created_at for about half the tokens.
    let used = dialect.timestamp_plus_micros(
        &span.tokens_from,
        &format!(
            "{} * 1000000 + (h22 % 1000000) + (1 + h23 % 15) * 60000000",
            span.created_seconds
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
            hashes = hash_columns(21..=token_salts, seed),
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
    // The rollup triggers logged the keys the statements above wrote (once per statement);
    // folding them now (with the fresh statistics) leaves the rollups exact on return.
    let fold_started = Instant::now();
    let folded = rollup::fold(db).await?;
    tracing::info!(
        users = plan.users,
        tokens = plan.tokens,
        seconds = started.elapsed().as_secs_f64(),
        folded_slots = folded.slots,
        folded_users = folded.users,
        fold_seconds = fold_started.elapsed().as_secs_f64(),
        "seeded demo data"
    );
    Ok(())
}
