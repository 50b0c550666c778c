//! The seeder's SQL that differs between PostgreSQL and SQLite: row generators and
//! bulk-load maintenance. Kept apart from the report queries' dialect.

use sea_orm::{ConnectionTrait, DbErr};

use crate::db::dialect::Dialect;
use crate::db::dialect::RawSql;

pub(super) trait SeedSql {
    /// Appends rows `i = 1..=n` as a CTE named `series(i)`, with `n` bound.
    fn series_cte(self, sql: &mut RawSql, n: u64);
    /// `base + micros` microseconds as a timestamp, with `base` a literal `YYYY-MM-DD HH:MM:SS`.
    fn timestamp_plus_micros(self, base: &str, micros: &str) -> String;
    /// The `idx`-th element (0-based) of a JSON array of strings given as a literal.
    fn json_pick(self, json_array: &str, idx: &str) -> String;
    /// A number as a zero-padded six-character string.
    fn six_digits(self, expr: &str) -> String;
    /// Appended to a subquery so the planner computes its columns once instead of
    /// inlining their expressions into every reference.
    fn no_flatten(self) -> &'static str;
    /// Maintenance after a bulk load (outside any transaction).
    fn after_bulk_load(self) -> Option<&'static str>;
    /// Names and `CREATE INDEX` statements of `table`'s indexes other than its primary key,
    /// for bulk loads to drop and rebuild. SQLite loads are small: nothing to gain there.
    async fn secondary_indexes(
        self,
        db: &impl ConnectionTrait,
        table: &str,
    ) -> Result<Vec<(String, String)>, DbErr>;
}

impl SeedSql for Dialect {
    fn series_cte(self, sql: &mut RawSql, n: u64) {
        match self {
            Self::Postgres => sql
                .push("series(i) AS (SELECT g FROM generate_series(1, CAST(")
                .bind(n)
                .push(" AS bigint)) AS g)"),
            Self::Sqlite => sql
                .push("series(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM series WHERE i < ")
                .bind(n)
                .push(")"),
        };
    }

    fn timestamp_plus_micros(self, base: &str, micros: &str) -> String {
        match self {
            Self::Postgres => {
                format!("(TIMESTAMP '{base}' + ({micros}) * INTERVAL '1 microsecond')")
            }
            // SQLite's own date functions keep milliseconds only: write the microseconds by hand,
            // in the `%F %T%.f` text form the driver reads and writes.
            Self::Sqlite => format!(
                "(datetime('{base}', '+' || (({micros}) / 1000000) || ' seconds') || printf('.%06d', ({micros}) % 1000000))"
            ),
        }
    }

    fn json_pick(self, json_array: &str, idx: &str) -> String {
        match self {
            Self::Postgres => format!("(CAST('{json_array}' AS json) ->> CAST({idx} AS int))"),
            Self::Sqlite => format!("json_extract('{json_array}', '$[' || ({idx}) || ']')"),
        }
    }

    fn six_digits(self, expr: &str) -> String {
        match self {
            Self::Postgres => format!("lpad(CAST({expr} AS text), 6, '0')"),
            Self::Sqlite => format!("printf('%06d', {expr})"),
        }
    }

    fn no_flatten(self) -> &'static str {
        match self {
            Self::Postgres => "OFFSET 0",
            Self::Sqlite => "LIMIT -1 OFFSET 0",
        }
    }

    fn after_bulk_load(self) -> Option<&'static str> {
        match self {
            Self::Postgres => Some("VACUUM (ANALYZE) users, tokens"),
            Self::Sqlite => Some("ANALYZE"),
        }
    }

    async fn secondary_indexes(
        self,
        db: &impl ConnectionTrait,
        table: &str,
    ) -> Result<Vec<(String, String)>, DbErr> {
        if self == Self::Sqlite {
            return Ok(Vec::new());
        }
        let mut sql = self.raw();
        sql.push(
            "SELECT i.indexname AS name, i.indexdef AS def FROM pg_indexes i \
             JOIN pg_class c ON c.relname = i.indexname JOIN pg_index x ON x.indexrelid = c.oid \
             WHERE i.schemaname = current_schema() AND i.tablename = ",
        )
        .bind(table.to_owned())
        .push(" AND NOT x.indisprimary AND NOT x.indisunique");
        let rows = db.query_all_raw(sql.finish()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("", "name")?, r.try_get("", "def")?)))
            .collect()
    }
}
