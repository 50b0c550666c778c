//! Everything that differs between PostgreSQL and SQLite in SQL, in one
//! place: how a statement is built for the backend, the raw SQL the builder cannot
//! express (JSON-to-rows for bucket bounds, cancelling a statement) and small fragments.
//!
//! Statements come from sea-query: its `Query` builders render each backend's own
//! placeholders, and [`RawSql`] writes them for the few hand-written statements.
//! No SQL text is ever scanned for placeholders, so a `?` in a string literal stays one.

use sea_orm::sea_query::{
    Expr, PostgresQueryBuilder, SqliteQueryBuilder, raw_sql::RawSqlQueryBuilder,
};
use sea_orm::{DatabaseConnection, DbBackend, Statement, StatementBuilder, Value};

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

    /// A sea-query statement (`Query::select()` …) rendered for this backend, with its values bound.
    pub fn build(self, query: &impl StatementBuilder) -> Statement {
        self.backend().build(query)
    }

    /// A hand-written statement for this backend: text and bound values, in order.
    pub fn raw(self) -> RawSql {
        let builder = match self {
            Self::Postgres => RawSqlQueryBuilder::new(PostgresQueryBuilder),
            Self::Sqlite => RawSqlQueryBuilder::new(SqliteQueryBuilder),
        };
        RawSql {
            backend: self.backend(),
            builder,
            values: Vec::new(),
        }
    }

    /// Appends a row source `(idx, lo, hi)` from `json`, bound as one parameter
    /// `[[lo, hi], …]` holding UTC timestamps as `YYYY-MM-DD HH:MM:SS` text.
    pub fn bounds_from_json(self, sql: &mut RawSql, json: String) {
        match self {
            Self::Postgres => sql
                .push("SELECT e.ord - 1 AS idx, (e.v->>0)::timestamp AS lo, (e.v->>1)::timestamp AS hi FROM json_array_elements(CAST(")
                .bind(json)
                .push(" AS json)) WITH ORDINALITY AS e(v, ord)"),
            // Stored timestamps are text in SQLite; the bound text compares in the same order.
            Self::Sqlite => sql
                .push("SELECT CAST(key AS INTEGER) AS idx, json_extract(value, '$[0]') AS lo, json_extract(value, '$[1]') AS hi FROM json_each(")
                .bind(json)
                .push(")"),
        };
    }

    /// Appends a row source `(idx, lo, hi)` from `json`, bound as one parameter
    /// `[[idx, lo, hi], …]` with explicit indexes and UTC timestamps as text (see `bounds_from_json`).
    pub fn segments_from_json(self, sql: &mut RawSql, json: String) {
        match self {
            Self::Postgres => sql
                .push("SELECT (e.v->>0)::bigint AS idx, (e.v->>1)::timestamp AS lo, (e.v->>2)::timestamp AS hi FROM json_array_elements(CAST(")
                .bind(json)
                .push(" AS json)) AS e(v)"),
            Self::Sqlite => sql
                .push("SELECT CAST(json_extract(value, '$[0]') AS INTEGER) AS idx, json_extract(value, '$[1]') AS lo, json_extract(value, '$[2]') AS hi FROM json_each(")
                .bind(json)
                .push(")"),
        };
    }

    /// A timestamp to compare with a rollup's timestamp column. The SQLite rollups store
    /// timestamps as fixed-width text with six fractional digits (so equal instants are
    /// equal text); PostgreSQL compares timestamps.
    pub fn rollup_timestamp(self, t: chrono::NaiveDateTime) -> Value {
        match self {
            Self::Postgres => Value::from(t),
            Self::Sqlite => Value::from(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
        }
    }

    /// `stmt`'s rows as one row of arrays, one per column of `columns`, where the backend
    /// has arrays (PostgreSQL): a large result then travels as a few values instead of a
    /// message per row, which costs the client far less to decode. The arrays follow the
    /// order in which `stmt` yields its rows, which SQL does not promise: the caller checks
    /// it (and sorts if needed). `None` on SQLite, which runs in-process: read the rows.
    pub fn columns_as_arrays(self, stmt: &Statement, columns: &[&str]) -> Option<Statement> {
        match self {
            Self::Postgres => {
                let arrays = columns
                    .iter()
                    .map(|c| format!(r#"array_agg(s."{c}")"#))
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(Statement {
                    sql: format!("SELECT {arrays} FROM ({}) AS s", stmt.sql),
                    ..stmt.clone()
                })
            }
            Self::Sqlite => None,
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
            Self::Postgres => {
                let mut sql = self.raw();
                sql.push(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                     WHERE state = 'active' AND pid <> pg_backend_pid() AND starts_with(query, ",
                )
                .bind(tag.to_owned())
                .push(")");
                Some(sql.finish())
            }
            Self::Sqlite => None,
        }
    }

    /// The UTC calendar date of a timestamp column (`"t"."created_at"`) as `YYYY-MM-DD` text.
    /// Written without parameters, so the same expression can be selected and grouped by.
    pub fn utc_day(self, table: &str, column: &str) -> Expr {
        Expr::cust(match self {
            Self::Postgres => format!(r#"CAST(CAST("{table}"."{column}" AS date) AS text)"#),
            // Stored as `YYYY-MM-DD HH:MM:SS…` text.
            Self::Sqlite => format!(r#"substr("{table}"."{column}", 1, 10)"#),
        })
    }
}

/// A hand-written statement being assembled: text is copied verbatim, and each value
/// gets the backend's next placeholder (`?` or `$n`, from sea-query) where it is bound.
#[derive(Debug)]
pub struct RawSql {
    backend: DbBackend,
    builder: RawSqlQueryBuilder,
    values: Vec<Value>,
}

impl RawSql {
    /// Appends SQL text as is; it must hold no placeholders of its own.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.builder.push_fragment(text);
        self
    }

    /// Appends one placeholder and binds `value` to it.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.builder.push_parameters(1);
        self.values.push(value.into());
        self
    }

    pub fn finish(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.builder.finish(), self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{Alias, Condition, ExprTrait, Query};

    #[test]
    fn raw_statements_number_placeholders_and_keep_question_marks_in_literals() {
        let build = |d: Dialect| {
            let mut sql = d.raw();
            sql.push("SELECT '?' AS q, 'a??b' AS r WHERE a = ")
                .bind(1)
                .push(" AND b = '?' AND c = ")
                .bind("x?");
            sql.finish()
        };
        let pg = build(Dialect::Postgres);
        assert_eq!(
            pg.sql,
            "SELECT '?' AS q, 'a??b' AS r WHERE a = $1 AND b = '?' AND c = $2"
        );
        assert_eq!(
            pg.values.map(|v| v.0),
            Some(vec![Value::from(1), Value::from("x?")])
        );
        let lite = build(Dialect::Sqlite);
        assert_eq!(
            lite.sql,
            "SELECT '?' AS q, 'a??b' AS r WHERE a = ? AND b = '?' AND c = ?"
        );
    }

    #[test]
    fn built_statements_get_each_backends_placeholders() {
        let mut q = Query::select();
        q.expr_as(Expr::cust("'?'"), Alias::new("q"))
            .from(Alias::new("tokens"))
            .cond_where(
                Condition::all()
                    .add(Expr::col(Alias::new("a")).eq(1))
                    .add(Expr::col(Alias::new("b")).lt(2)),
            );
        assert_eq!(
            Dialect::Postgres.build(&q).sql,
            r#"SELECT '?' AS "q" FROM "tokens" WHERE "a" = $1 AND "b" < $2"#
        );
        assert_eq!(
            Dialect::Sqlite.build(&q).sql,
            r#"SELECT '?' AS "q" FROM "tokens" WHERE "a" = ? AND "b" < ?"#
        );
    }

    #[test]
    fn bounds_bind_their_json_once_per_backend() {
        for (d, placeholder) in [(Dialect::Postgres, "$1"), (Dialect::Sqlite, "?")] {
            let mut sql = d.raw();
            d.bounds_from_json(&mut sql, "[]".to_owned());
            let stmt = sql.finish();
            assert_eq!(stmt.sql.matches(placeholder).count(), 1, "{}", stmt.sql);
            assert_eq!(stmt.values.map(|v| v.0.len()), Some(1));
        }
    }
}
