//! The rollups' upkeep: folding the invalidation log into them, rebuilding them, and
//! verifying them against the raw rows. The tables and triggers are the migration's
//! (`migration::rollups`); the report queries that read them are in `analytics`.
//!
//! Folding recomputes each logged key (a 15-minute slot, a user) from the raw rows with one
//! index range, and deletes the log rows it folded, in one statement. That statement's
//! snapshot holds every write whose log row it deleted; writes that commit later log their
//! keys again. Folds and rebuilds are serialised across processes by an advisory lock
//! (PostgreSQL) or the single writer (SQLite); writers never wait for either.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDateTime;
use migration::rollups;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IsolationLevel, Statement,
    TransactionTrait,
};

/// Keys recomputed by a fold or rebuild, or log rows waiting (see each function).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    pub slots: u64,
    pub users: u64,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Match {
        slots: u64,
        users: u64,
    },
    /// The first difference, in words.
    Differs(String),
}

const POSTGRES_FOLD_SLOTS: &str = "WITH d AS (DELETE FROM gw_rollup_dirty_slots RETURNING slot), \
    k AS (SELECT DISTINCT slot FROM d), \
    f AS (SELECT k.slot, COUNT(t.created_at) AS issued, COUNT(t.used_at) AS used FROM k \
          LEFT JOIN tokens t ON t.created_at >= k.slot AND t.created_at < k.slot + INTERVAL '15 minutes' \
          GROUP BY k.slot), \
    gone AS (DELETE FROM gw_usage_slots s USING f WHERE s.slot = f.slot AND f.issued = 0 RETURNING 1), \
    put AS (INSERT INTO gw_usage_slots (slot, issued, used) SELECT slot, issued, used FROM f WHERE issued > 0 \
            ON CONFLICT (slot) DO UPDATE SET issued = EXCLUDED.issued, used = EXCLUDED.used RETURNING 1), \
    done AS (INSERT INTO gw_rollup_folded_slots (slot) SELECT slot FROM k RETURNING 1) \
    SELECT COUNT(*) AS n FROM k";

/// The hours, then the days, of the slots just folded, summed again from the level below
/// (a later statement of the same transaction: it sees the new slots, then the new hours).
const POSTGRES_FOLD_COARSER: [&str; 3] = [
    "WITH h AS (SELECT DISTINCT date_trunc('hour', slot) AS hour FROM gw_rollup_folded_slots), \
    f AS (SELECT h.hour, COALESCE(SUM(s.issued), 0) AS issued, COALESCE(SUM(s.used), 0) AS used FROM h \
          LEFT JOIN gw_usage_slots s ON s.slot >= h.hour AND s.slot < h.hour + INTERVAL '1 hour' GROUP BY h.hour), \
    gone AS (DELETE FROM gw_usage_hours x USING f WHERE x.hour = f.hour AND f.issued = 0 RETURNING 1), \
    put AS (INSERT INTO gw_usage_hours (hour, issued, used) SELECT hour, issued, used FROM f WHERE issued > 0 \
            ON CONFLICT (hour) DO UPDATE SET issued = EXCLUDED.issued, used = EXCLUDED.used RETURNING 1) \
    SELECT COUNT(*) AS n FROM h",
    "WITH d AS (SELECT DISTINCT date_trunc('day', slot) AS day FROM gw_rollup_folded_slots), \
    f AS (SELECT d.day, COALESCE(SUM(x.issued), 0) AS issued, COALESCE(SUM(x.used), 0) AS used FROM d \
          LEFT JOIN gw_usage_hours x ON x.hour >= d.day AND x.hour < d.day + INTERVAL '1 day' GROUP BY d.day), \
    gone AS (DELETE FROM gw_usage_days y USING f WHERE y.day = f.day AND f.issued = 0 RETURNING 1), \
    put AS (INSERT INTO gw_usage_days (day, issued, used) SELECT day, issued, used FROM f WHERE issued > 0 \
            ON CONFLICT (day) DO UPDATE SET issued = EXCLUDED.issued, used = EXCLUDED.used RETURNING 1) \
    SELECT COUNT(*) AS n FROM d",
    "DELETE FROM gw_rollup_folded_slots",
];

const POSTGRES_FOLD_USERS: &str = "WITH d AS (DELETE FROM gw_rollup_dirty_users RETURNING user_id), \
    k AS (SELECT DISTINCT user_id FROM d), \
    f AS (SELECT k.user_id, u.joined_at, u.is_active, COUNT(t.user_id) AS tokens, COUNT(t.used_at) AS used, \
                 MIN(t.created_at) AS first_token_at, MAX(t.created_at) AS last_token_at, \
                 MAX(t.used_at) AS last_used_at \
          FROM k LEFT JOIN users u ON u.id = k.user_id \
          LEFT JOIN tokens t ON t.user_id = k.user_id AND u.id IS NOT NULL \
          GROUP BY k.user_id, u.joined_at, u.is_active), \
    gone AS (DELETE FROM gw_user_visits r USING f WHERE r.user_id = f.user_id AND f.tokens = 0 RETURNING 1), \
    put AS (INSERT INTO gw_user_visits \
              (user_id, joined_at, is_active, tokens, used, first_token_at, last_token_at, last_used_at) \
            SELECT user_id, joined_at, is_active, tokens, used, first_token_at, last_token_at, last_used_at \
            FROM f WHERE tokens > 0 \
            ON CONFLICT (user_id) DO UPDATE SET joined_at = EXCLUDED.joined_at, \
              is_active = EXCLUDED.is_active, tokens = EXCLUDED.tokens, used = EXCLUDED.used, \
              first_token_at = EXCLUDED.first_token_at, last_token_at = EXCLUDED.last_token_at, \
              last_used_at = EXCLUDED.last_used_at RETURNING 1) \
    SELECT COUNT(*) AS n FROM k";

/// SQLite: one transaction, its first statement a write (so it holds the write lock from
/// the start); the `RETURNING` of each log deletion counts the keys folded.
const SQLITE_FOLD_SLOTS: [&str; 7] = [
    "DELETE FROM gw_usage_slots WHERE slot IN (SELECT slot FROM gw_rollup_dirty_slots)",
    "INSERT INTO gw_usage_slots (slot, issued, used) \
     SELECT d.slot, COUNT(*), COUNT(t.used_at) FROM gw_rollup_dirty_slots d \
     JOIN tokens t ON t.created_at >= d.slot \
      AND t.created_at < strftime('%Y-%m-%d %H:%M:%S', d.slot, '+15 minutes') \
     GROUP BY d.slot",
    // Their hours, then their days, from the level below.
    "DELETE FROM gw_usage_hours WHERE hour IN \
     (SELECT substr(slot, 1, 13) || ':00:00' FROM gw_rollup_dirty_slots)",
    "INSERT INTO gw_usage_hours (hour, issued, used) \
     SELECT h.hour, SUM(s.issued), SUM(s.used) \
     FROM (SELECT DISTINCT substr(slot, 1, 13) || ':00:00' AS hour FROM gw_rollup_dirty_slots) h \
     JOIN gw_usage_slots s ON s.slot >= h.hour \
      AND s.slot < strftime('%Y-%m-%d %H:%M:%S', h.hour, '+1 hour') \
     GROUP BY h.hour",
    "DELETE FROM gw_usage_days WHERE day IN \
     (SELECT substr(slot, 1, 10) || ' 00:00:00' FROM gw_rollup_dirty_slots)",
    "INSERT INTO gw_usage_days (day, issued, used) \
     SELECT d.day, SUM(x.issued), SUM(x.used) \
     FROM (SELECT DISTINCT substr(slot, 1, 10) || ' 00:00:00' AS day FROM gw_rollup_dirty_slots) d \
     JOIN gw_usage_hours x ON x.hour >= d.day \
      AND x.hour < strftime('%Y-%m-%d %H:%M:%S', d.day, '+1 day') \
     GROUP BY d.day",
    "DELETE FROM gw_rollup_dirty_slots RETURNING slot",
];

/// The users' fold on SQLite, in the same three steps (timestamps written fixed-width).
fn sqlite_fold_users() -> [String; 3] {
    [
        "DELETE FROM gw_user_visits WHERE user_id IN (SELECT user_id FROM gw_rollup_dirty_users)"
            .to_owned(),
        format!(
            "INSERT INTO gw_user_visits \
               (user_id, joined_at, is_active, tokens, used, first_token_at, last_token_at, last_used_at) \
             SELECT {} FROM gw_rollup_dirty_users d JOIN users u ON u.id = d.user_id \
             JOIN tokens t ON t.user_id = d.user_id GROUP BY u.id",
            rollups::SQLITE_USER_VISITS_COLUMNS
        ),
        "DELETE FROM gw_rollup_dirty_users RETURNING user_id".to_owned(),
    ]
}

/// Above this many log rows in either log, a fold rebuilds instead: recomputing each key
/// through its index costs more than one pass over the table (after a bulk load, say).
pub const REBUILD_ABOVE: u64 = 20_000;

const MANY_WAITING: &str = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM gw_rollup_dirty_slots LIMIT 20001) a) AS slots, \
    (SELECT COUNT(*) FROM (SELECT 1 FROM gw_rollup_dirty_users LIMIT 20001) b) AS users";

/// One cheap read: is anything waiting in the log?
const ANY_WAITING: &str = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM gw_rollup_dirty_slots LIMIT 1) a) \
    + (SELECT COUNT(*) FROM (SELECT 1 FROM gw_rollup_dirty_users LIMIT 1) b) AS n";

const WAITING: &str = "SELECT (SELECT COUNT(*) FROM gw_rollup_dirty_slots) AS slots, \
    (SELECT COUNT(*) FROM gw_rollup_dirty_users) AS users";

fn stmt(backend: DbBackend, sql: &str) -> Statement {
    Statement::from_string(backend, sql)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

async fn scalar(db: &impl ConnectionTrait, sql: &str, column: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(stmt(db.get_database_backend(), sql))
        .await?;
    match row {
        Some(row) => row.try_get("", column),
        None => Ok(0),
    }
}

async fn lock(db: &impl ConnectionTrait, tag: Option<&str>) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "{} SELECT pg_advisory_xact_lock($1)",
                tag.unwrap_or_default()
            ),
            [rollups::ROLLUP_LOCK.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Folds the log into the rollups; with an empty log it costs one read and writes nothing.
pub async fn fold(db: &DatabaseConnection) -> Result<Folded, DbErr> {
    fold_tagged(db, None).await
}

/// [`fold`], with each statement prefixed by `tag` (a comment from `Dialect::cancel_tag`)
/// so that a fold its caller abandoned can be cancelled; the log then stays as it was.
pub async fn fold_tagged(db: &DatabaseConnection, tag: Option<&str>) -> Result<Folded, DbErr> {
    let tagged = |sql: &str| match tag {
        Some(tag) => format!("{tag} {sql}"),
        None => sql.to_owned(),
    };
    if scalar(db, &tagged(ANY_WAITING), "n").await? == 0 {
        return Ok(Folded::default());
    }
    let backend = db.get_database_backend();
    if let Some(row) = db
        .query_one_raw(stmt(backend, &tagged(MANY_WAITING)))
        .await?
    {
        let (slots, users): (i64, i64) = (row.try_get("", "slots")?, row.try_get("", "users")?);
        if count(slots.max(users)) > REBUILD_ABOVE {
            tracing::info!(
                slots = count(slots),
                users = count(users),
                "the rollup log is long: rebuilding the rollups instead of folding key by key"
            );
            return rebuild(db).await;
        }
    }
    let txn = db.begin().await?;
    let folded = if backend == DbBackend::Sqlite {
        let mut keys = [0u64; 2];
        let slots: Vec<String> = SQLITE_FOLD_SLOTS.iter().map(|s| (*s).to_owned()).collect();
        for (n, statements) in keys.iter_mut().zip([slots, sqlite_fold_users().to_vec()]) {
            // The last statement empties the log and names what it folded.
            let Some((done, steps)) = statements.split_last() else {
                continue;
            };
            for step in steps {
                txn.execute_unprepared(step).await?;
            }
            *n = txn.query_all_raw(stmt(backend, done)).await?.len() as u64;
        }
        Folded {
            slots: keys[0],
            users: keys[1],
        }
    } else {
        lock(&txn, tag).await?;
        txn.execute_unprepared("SET LOCAL work_mem = '64MB'")
            .await?;
        let slots = count(scalar(&txn, &tagged(POSTGRES_FOLD_SLOTS), "n").await?);
        for sql in POSTGRES_FOLD_COARSER {
            txn.execute_unprepared(&tagged(sql)).await?;
        }
        Folded {
            slots,
            users: count(scalar(&txn, &tagged(POSTGRES_FOLD_USERS), "n").await?),
        }
    };
    txn.commit().await?;
    vacuum_log(db, folded).await;
    Ok(folded)
}

/// After a fold or rebuild that emptied a long log (PostgreSQL): the deleted rows stay in
/// the log's pages until vacuumed, and the next folds would read them all to find nothing.
async fn vacuum_log(db: &DatabaseConnection, folded: Folded) {
    if db.get_database_backend() != DbBackend::Postgres || folded.slots.max(folded.users) < 1_000 {
        return;
    }
    // The rollups too: a rebuild rewrote them, and counts read their indexes alone only
    // once the visibility map is set.
    let sql = "VACUUM (ANALYZE) gw_rollup_dirty_slots, gw_rollup_dirty_users, gw_usage_slots, \
               gw_usage_hours, gw_usage_days, gw_user_visits";
    if let Err(e) = db.execute_unprepared(sql).await {
        tracing::warn!(error = %e, "vacuuming the rollup log failed");
    }
}

/// Log rows waiting to be folded (PostgreSQL's log may hold a key more than once).
pub async fn pending(db: &DatabaseConnection) -> Result<Folded, DbErr> {
    let row = db
        .query_one_raw(stmt(db.get_database_backend(), WAITING))
        .await?;
    let Some(row) = row else {
        return Ok(Folded::default());
    };
    Ok(Folded {
        slots: count(row.try_get("", "slots")?),
        users: count(row.try_get("", "users")?),
    })
}

/// Empties the log and rebuilds both rollups from the raw rows; returns their sizes.
pub async fn rebuild(db: &DatabaseConnection) -> Result<Folded, DbErr> {
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    lock(&txn, None).await?;
    for sql in rollups::rebuild_statements(backend) {
        txn.execute_unprepared(sql).await?;
    }
    let sizes = Folded {
        slots: count(scalar(&txn, "SELECT COUNT(*) AS n FROM gw_usage_slots", "n").await?),
        users: count(scalar(&txn, "SELECT COUNT(*) AS n FROM gw_user_visits", "n").await?),
    };
    txn.commit().await?;
    vacuum_log(db, sizes).await;
    Ok(sizes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SlotRow {
    issued: i64,
    used: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UserRow {
    joined_at: NaiveDateTime,
    is_active: bool,
    tokens: i64,
    used: i64,
    first_token_at: NaiveDateTime,
    last_token_at: NaiveDateTime,
    last_used_at: Option<NaiveDateTime>,
}

impl std::fmt::Display for SlotRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "issued={} used={}", self.issued, self.used)
    }
}

impl std::fmt::Display for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last_used = self
            .last_used_at
            .map_or_else(|| "none".to_owned(), |t| t.to_string());
        write!(
            f,
            "joined_at={} is_active={} tokens={} used={} first_token_at={} last_token_at={} last_used_at={last_used}",
            self.joined_at,
            self.is_active,
            self.tokens,
            self.used,
            self.first_token_at,
            self.last_token_at
        )
    }
}

async fn slots(
    db: &impl ConnectionTrait,
    sql: &str,
) -> Result<BTreeMap<NaiveDateTime, SlotRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(db.get_database_backend(), sql))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get("", "slot")?,
                SlotRow {
                    issued: r.try_get("", "issued")?,
                    used: r.try_get("", "used")?,
                },
            ))
        })
        .collect()
}

async fn users(db: &impl ConnectionTrait, sql: &str) -> Result<BTreeMap<i32, UserRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(db.get_database_backend(), sql))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get("", "user_id")?,
                UserRow {
                    joined_at: r.try_get("", "joined_at")?,
                    is_active: r.try_get("", "is_active")?,
                    tokens: r.try_get("", "tokens")?,
                    used: r.try_get("", "used")?,
                    first_token_at: r.try_get("", "first_token_at")?,
                    last_token_at: r.try_get("", "last_token_at")?,
                    last_used_at: r.try_get("", "last_used_at")?,
                },
            ))
        })
        .collect()
}

/// The first key where `rollup` and `raw` differ, skipping keys still in the log.
fn first_difference<
    K: Ord + Copy + std::hash::Hash + std::fmt::Display,
    V: PartialEq + std::fmt::Display,
>(
    what: &str,
    rollup: &BTreeMap<K, V>,
    raw: &BTreeMap<K, V>,
    pending: &HashSet<K>,
) -> Option<String> {
    let keys: std::collections::BTreeSet<K> = rollup.keys().chain(raw.keys()).copied().collect();
    keys.into_iter()
        .filter(|k| !pending.contains(k))
        .find_map(|k| match (rollup.get(&k), raw.get(&k)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(a), Some(b)) => Some(format!(
                "{what} {k}: the rollup has {a}, the raw rows give {b}"
            )),
            (Some(a), None) => Some(format!(
                "{what} {k}: the rollup has {a}, the raw rows have nothing there"
            )),
            (None, Some(b)) => Some(format!(
                "{what} {k}: missing from the rollup, the raw rows give {b}"
            )),
            (None, None) => None,
        })
}

/// Folds the log, then compares every rollup row with the raw rows in one snapshot.
pub async fn verify(db: &DatabaseConnection) -> Result<Verdict, DbErr> {
    fold(db).await?;
    let backend = db.get_database_backend();
    let txn = if backend == DbBackend::Postgres {
        db.begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?
    } else {
        db.begin().await?
    };
    let raw_slots = slots(&txn, rollups::slots_from_raw(backend)).await?;
    let rolled_slots = slots(&txn, "SELECT slot, issued, used FROM gw_usage_slots").await?;
    let pending_slots: HashSet<NaiveDateTime> = txn
        .query_all_raw(stmt(
            backend,
            "SELECT DISTINCT slot FROM gw_rollup_dirty_slots",
        ))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "slot"))
        .collect::<Result<_, _>>()?;
    let raw_users = users(&txn, rollups::user_visits_from_raw()).await?;
    let rolled_users = users(
        &txn,
        "SELECT user_id, joined_at, is_active, tokens, used, first_token_at, last_token_at, \
         last_used_at FROM gw_user_visits",
    )
    .await?;
    let pending_users: HashSet<i32> = txn
        .query_all_raw(stmt(
            backend,
            "SELECT DISTINCT user_id FROM gw_rollup_dirty_users",
        ))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "user_id"))
        .collect::<Result<_, _>>()?;
    let rolled_hours = slots(
        &txn,
        "SELECT hour AS slot, issued, used FROM gw_usage_hours",
    )
    .await?;
    let rolled_days = slots(&txn, "SELECT day AS slot, issued, used FROM gw_usage_days").await?;
    txn.commit().await?;
    // The hours and days the raw slots sum to, and those a pending slot makes pending.
    let by = |round: fn(NaiveDateTime) -> NaiveDateTime| {
        let mut sums: BTreeMap<NaiveDateTime, SlotRow> = BTreeMap::new();
        for (slot, row) in &raw_slots {
            let sum = sums
                .entry(round(*slot))
                .or_insert(SlotRow { issued: 0, used: 0 });
            sum.issued += row.issued;
            sum.used += row.used;
        }
        let pending: HashSet<NaiveDateTime> = pending_slots.iter().map(|s| round(*s)).collect();
        (sums, pending)
    };
    let hour = |t: NaiveDateTime| {
        t.date()
            .and_hms_opt(chrono::Timelike::hour(&t), 0, 0)
            .unwrap_or(t)
    };
    let day = |t: NaiveDateTime| t.date().and_hms_opt(0, 0, 0).unwrap_or(t);
    let (raw_hours, pending_hours) = by(hour);
    let (raw_days, pending_days) = by(day);
    let difference = first_difference("usage slot", &rolled_slots, &raw_slots, &pending_slots)
        .or_else(|| first_difference("usage hour", &rolled_hours, &raw_hours, &pending_hours))
        .or_else(|| first_difference("usage day", &rolled_days, &raw_days, &pending_days))
        .or_else(|| first_difference("user", &rolled_users, &raw_users, &pending_users));
    Ok(match difference {
        Some(d) => Verdict::Differs(d),
        None => Verdict::Match {
            slots: raw_slots.len() as u64,
            users: raw_users.len() as u64,
        },
    })
}

/// Records a `verify` result for the gateway's metrics (a verify Job's outcome).
pub async fn record_check(db: &DatabaseConnection, ok: bool, detail: &str) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let now = chrono::Utc::now().naive_utc();
    let sql = match backend {
        DbBackend::Sqlite => {
            "INSERT INTO gw_rollup_checks (checked_at, ok, detail) VALUES (?, ?, ?)"
        }
        _ => "INSERT INTO gw_rollup_checks (checked_at, ok, detail) VALUES ($1, $2, $3)",
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [now.into(), ok.into(), detail.into()],
    ))
    .await?;
    Ok(())
}

/// The newest recorded `verify` result: when, and whether the rollups matched.
pub async fn last_check(db: &DatabaseConnection) -> Result<Option<(NaiveDateTime, bool)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db.get_database_backend(),
            "SELECT checked_at, ok FROM gw_rollup_checks ORDER BY checked_at DESC LIMIT 1",
        ))
        .await?;
    row.map(|r| Ok((r.try_get("", "checked_at")?, r.try_get("", "ok")?)))
        .transpose()
}
