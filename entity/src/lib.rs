//! SeaORM entities for the legacy `users` and `tokens` tables, exactly as the legacy DDL made them.

pub mod tokens;
pub mod users;
