//! Everything that differs between PostgreSQL and SQLite, in one place: placeholders,
//! JSON-to-rows for bucket bounds, and the row generators used by the seeder.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn of(db: &DatabaseConnection) -> Self {
        match db.get_database_backend() {
            DbBackend::Sqlite => Self::Sqlite,
            _ => Self::Postgres,
        }
    }

    pub fn backend(self) -> DbBackend {
        match self {
            Self::Postgres => DbBackend::Postgres,
            Self::Sqlite => DbBackend::Sqlite,
        }
    }

    /// Queries are written once with `?` placeholders; PostgreSQL wants `$1, $2, …`.
    pub fn statement(self, sql: &str, values: Vec<Value>) -> Statement {
        let sql = match self {
            Self::Sqlite => sql.to_owned(),
            Self::Postgres => {
                let mut out = String::with_capacity(sql.len() + 8);
                let mut n = 0;
                for ch in sql.chars() {
                    if ch == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(ch);
                    }
                }
                out
            }
        };
        Statement::from_sql_and_values(self.backend(), sql, values)
    }

    /// A row source `(idx, lo, hi)` from one JSON parameter `[[lo, hi], …]`
    /// holding UTC timestamps as `YYYY-MM-DD HH:MM:SS` text.
    pub fn bounds_from_json(self) -> &'static str {
        match self {
            Self::Postgres => {
                "SELECT e.ord - 1 AS idx, (e.v->>0)::timestamp AS lo, (e.v->>1)::timestamp AS hi \
                 FROM json_array_elements(CAST(? AS json)) WITH ORDINALITY AS e(v, ord)"
            }
            // Stored timestamps are text in SQLite; the bound text compares in the same order.
            Self::Sqlite => {
                "SELECT CAST(key AS INTEGER) AS idx, json_extract(value, '$[0]') AS lo, json_extract(value, '$[1]') AS hi \
                 FROM json_each(?)"
            }
        }
    }

    /// Rows `i = 1..=n` for the seeder, as a CTE named `series(i)` with `n` as the only parameter.
    pub fn series_cte(self) -> &'static str {
        match self {
            Self::Postgres => {
                "series(i) AS (SELECT g FROM generate_series(1, CAST(? AS bigint)) AS g)"
            }
            Self::Sqlite => {
                "series(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM series WHERE i < ?)"
            }
        }
    }

    /// `base + micros` microseconds as a timestamp, with `base` a literal `YYYY-MM-DD HH:MM:SS`.
    pub fn timestamp_plus_micros(self, base: &str, micros: &str) -> String {
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

    /// The `idx`-th element (0-based) of a JSON array of strings given as a literal.
    pub fn json_pick(self, json_array: &str, idx: &str) -> String {
        match self {
            Self::Postgres => format!("(CAST('{json_array}' AS json) ->> CAST({idx} AS int))"),
            Self::Sqlite => format!("json_extract('{json_array}', '$[' || ({idx}) || ']')"),
        }
    }

    /// A unique SQL comment to prefix a statement with, where abandoned statements can be
    /// cancelled (PostgreSQL); SQLite runs in-process and stops with its future.
    pub fn cancel_tag(self) -> Option<String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        match self {
            Self::Postgres => Some(format!(
                "/* gw:{}:{} */",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )),
            Self::Sqlite => None,
        }
    }

    /// Cancels the running statement that starts with `tag` (from `cancel_tag`).
    pub fn cancel_statement(self, tag: &str) -> Option<Statement> {
        match self {
            Self::Postgres => Some(self.statement(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                 WHERE state = 'active' AND pid <> pg_backend_pid() AND starts_with(query, ?)",
                vec![tag.to_owned().into()],
            )),
            Self::Sqlite => None,
        }
    }

    /// Maintenance after a bulk load (outside any transaction).
    pub fn after_bulk_load(self) -> Option<&'static str> {
        match self {
            Self::Postgres => Some("VACUUM (ANALYZE) users, tokens"),
            Self::Sqlite => Some("ANALYZE"),
        }
    }

    /// The UTC calendar date of a timestamp column as `YYYY-MM-DD` text.
    pub fn utc_day(self, column: &str) -> String {
        match self {
            Self::Postgres => format!("CAST(CAST({column} AS date) AS text)"),
            // Stored as `YYYY-MM-DD HH:MM:SS…` text.
            Self::Sqlite => format!("substr({column}, 1, 10)"),
        }
    }

    /// Appended to a subquery so the planner computes its columns once instead of
    /// inlining their expressions into every reference.
    pub fn no_flatten(self) -> &'static str {
        match self {
            Self::Postgres => "OFFSET 0",
            Self::Sqlite => "LIMIT -1 OFFSET 0",
        }
    }

    /// Names and `CREATE INDEX` statements of `table`'s indexes other than its primary key,
    /// for bulk loads to drop and rebuild. SQLite loads are small: nothing to gain there.
    pub async fn secondary_indexes(
        self,
        db: &impl ConnectionTrait,
        table: &str,
    ) -> Result<Vec<(String, String)>, DbErr> {
        if self == Self::Sqlite {
            return Ok(Vec::new());
        }
        let sql = "SELECT i.indexname AS name, i.indexdef AS def FROM pg_indexes i \
                   JOIN pg_class c ON c.relname = i.indexname JOIN pg_index x ON x.indexrelid = c.oid \
                   WHERE i.schemaname = current_schema() AND i.tablename = ? AND NOT x.indisprimary AND NOT x.indisunique";
        let rows = db
            .query_all_raw(self.statement(sql, vec![table.into()]))
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("", "name")?, r.try_get("", "def")?)))
            .collect()
    }

    /// A number as a zero-padded six-character string.
    pub fn six_digits(self, expr: &str) -> String {
        match self {
            Self::Postgres => format!("lpad(CAST({expr} AS text), 6, '0')"),
            Self::Sqlite => format!("printf('%06d', {expr})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered_in_order() {
        let stmt = Dialect::Postgres.statement(
            "a = ? AND b = ? OR c = ?",
            vec![1.into(), 2.into(), 3.into()],
        );
        assert_eq!(stmt.sql, "a = $1 AND b = $2 OR c = $3");
        let stmt = Dialect::Sqlite.statement("a = ?", vec![1.into()]);
        assert_eq!(stmt.sql, "a = ?");
    }
}
