//! Why a report could not be computed ([`AnalyticsError`]), and how database errors map to it.

use sea_orm::{DbErr, RuntimeErr};

use super::cache::Failure;

/// Why a report could not be computed; each kind maps to one client-facing code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AnalyticsError {
    /// An argument the caller can fix; `argument` names it.
    #[error("{message}")]
    BadInput {
        argument: &'static str,
        message: String,
    },
    /// The database cannot be reached (refused, cut, pool exhausted).
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    /// The statement ran past its time limit.
    #[error("the query took too long and was cancelled")]
    Timeout,
    /// Anything else; the detail is for the log only.
    #[error("internal error")]
    Internal(String),
}

impl AnalyticsError {
    pub fn bad_input(argument: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput {
            argument,
            message: message.into(),
        }
    }
}

impl From<DbErr> for AnalyticsError {
    fn from(err: DbErr) -> Self {
        use sea_orm::sqlx::Error as Sqlx;
        let runtime = match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return Self::Unavailable,
            DbErr::Exec(r) | DbErr::Query(r) => r,
            _ => return Self::Internal(err.to_string()),
        };
        let RuntimeErr::SqlxError(sqlx) = runtime else {
            return Self::Internal(err.to_string());
        };
        match sqlx.as_ref() {
            Sqlx::Io(_)
            | Sqlx::Tls(_)
            | Sqlx::Protocol(_)
            | Sqlx::PoolTimedOut
            | Sqlx::PoolClosed
            | Sqlx::WorkerCrashed => Self::Unavailable,
            Sqlx::Database(db) => match db.code().as_deref() {
                // query_canceled: statement_timeout fired.
                Some("57014") => Self::Timeout,
                // connection exceptions, server shutting down or starting up.
                Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                    Self::Unavailable
                }
                _ => Self::Internal(err.to_string()),
            },
            _ => Self::Internal(err.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, AnalyticsError>;

impl Failure for AnalyticsError {
    /// `Internal`'s display hides its detail from clients; the log needs it.
    fn log_detail(&self) -> String {
        match self {
            Self::Internal(detail) => detail.clone(),
            other => other.to_string(),
        }
    }
}
