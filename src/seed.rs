//! Deterministic demo data shaped like the legacy seed, written with bulk SQL (no row-by-row inserts).
//!
//! Every value is a pure function of the row number and the seed, computed by
//! the database itself, so the same seed gives the same rows on either backend
//! and ten million tokens take one pass of `INSERT … SELECT`.

use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use crate::analytics::Dialect;

/// Tokens are issued over this week (as in the legacy seed)…
const TOKENS_FROM: &str = "2023-02-07 00:00:00";
const TOKEN_SPAN_SECONDS: u64 = 7 * 86_400;
/// …by users who joined over the two months before.
const USERS_FROM: &str = "2022-12-15 00:00:00";
const USER_SPAN_SECONDS: u64 = 60 * 86_400;
const CHUNK: u64 = 1_000_000;

const FIRST_NAMES: &str = r#"["Cristopher","Dakota","Mattie","Darien","Luca","Valeria","Courtney","Aiyana","Weston","Karla","Dawson","Aniyah","Tanya","Gilberto","Saniyah","Warren"]"#;
const LAST_NAMES: &str = r#"["Alexander","Gardner","Moyer","Gamble","Abbott","Franklin","Waters","Liu","Clark","Oneal","Taylor","Marquez","Martin","Spears","Jimenez","Griffith"]"#;

#[derive(Debug, Clone, Copy)]
pub struct SeedPlan {
    pub users: u64,
    pub tokens: u64,
    pub seed: u64,
    pub append: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the database already holds {users} users and {tokens} tokens; nothing was written (pass --append to add to them)")]
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

async fn count(db: &impl ConnectionTrait, dialect: Dialect, table: &str) -> Result<i64, DbErr> {
    let row = db.query_one_raw(dialect.statement(&format!("SELECT COUNT(*) AS n FROM {table}"), vec![])).await?;
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
pub async fn seed(db: &DatabaseConnection, plan: SeedPlan, mut progress: impl FnMut(u64, u64)) -> Result<(), SeedError> {
    let dialect = Dialect::of(db);
    let seed = plan.seed % 2_147_483_647;
    let txn = db.begin().await?;
    let (users, tokens) = (count(&txn, dialect, "users").await?, count(&txn, dialect, "tokens").await?);
    if !plan.append && (users > 0 || tokens > 0) {
        return Err(SeedError::NotEmpty { users, tokens });
    }
    // With --append the row numbers continue, so appended rows differ from existing ones.
    let user_offset = u64::try_from(users).unwrap_or(0);
    let token_offset = u64::try_from(tokens).unwrap_or(0);
    if plan.users > 0 {
        let joined = dialect.timestamp_plus_micros(
            USERS_FROM,
            &format!("({} % {USER_SPAN_SECONDS}) * 1000000 + ({} % 1000000)", mix(11, seed), mix(12, seed)),
        );
        let sql = format!(
            "WITH RECURSIVE {series} \
             INSERT INTO users (first_name, last_name, joined_at, is_active) \
             SELECT {first}, {last}, {joined}, ({active} % 10) <> 0 \
             FROM (SELECT i + {user_offset} AS i FROM series) s ORDER BY i",
            series = dialect.series_cte(),
            first = dialect.json_pick(FIRST_NAMES, &format!("{} % 16", mix(13, seed))),
            last = dialect.json_pick(LAST_NAMES, &format!("{} % 16", mix(14, seed))),
            active = mix(15, seed),
        );
        txn.execute_raw(dialect.statement(&sql, vec![plan.users.into()])).await?;
    }
    let total_users = count(&txn, dialect, "users").await?;
    if plan.tokens > 0 && total_users == 0 {
        return Err(SeedError::NoUsers);
    }
    let created = dialect.timestamp_plus_micros(
        TOKENS_FROM,
        &format!("({} % {TOKEN_SPAN_SECONDS}) * 1000000 + ({} % 1000000)", mix(21, seed), mix(22, seed)),
    );
    // used_at comes 1 to 15 minutes after created_at for about half the tokens.
    let used = dialect.timestamp_plus_micros(
        TOKENS_FROM,
        &format!(
            "({} % {TOKEN_SPAN_SECONDS}) * 1000000 + ({} % 1000000) + (1 + {} % 15) * 60000000",
            mix(21, seed),
            mix(22, seed),
            mix(23, seed)
        ),
    );
    let mut done = 0;
    let started = Instant::now();
    while done < plan.tokens {
        let n = CHUNK.min(plan.tokens - done);
        let offset = token_offset + done;
        let sql = format!(
            "WITH RECURSIVE {series}, \
             numbered AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM users) \
             INSERT INTO tokens (user_id, token, created_at, used_at) \
             SELECT numbered.id, {token}, {created}, CASE WHEN {used_pick} % 100 < 50 THEN {used} END \
             FROM (SELECT i + {offset} AS i FROM series) s \
             JOIN numbered ON numbered.rn = 1 + {user_pick} % {total_users} ORDER BY i",
            series = dialect.series_cte(),
            token = dialect.six_digits(&format!("{} % 1000000", mix(24, seed))),
            used_pick = mix(25, seed),
            user_pick = mix(26, seed),
        );
        txn.execute_raw(dialect.statement(&sql, vec![n.into()])).await?;
        done += n;
        progress(done, plan.tokens);
    }
    txn.commit().await?;
    tracing::info!(users = plan.users, tokens = plan.tokens, seconds = started.elapsed().as_secs_f64(), "seeded demo data");
    Ok(())
}
