//! The `Date` scalar: a calendar date `YYYY-MM-DD`, read in the caller's time zone.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{Datelike, NaiveDate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

/// A calendar date as `YYYY-MM-DD` (years 1 to 9999).
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(s) = &value else {
            return Err(InputValueError::custom("expected a date string YYYY-MM-DD"));
        };
        match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) if (1..=9999).contains(&d.year()) && s.len() == 10 => Ok(Date(d)),
            _ => Err(InputValueError::custom(format!(
                "'{}' is not a date: expected YYYY-MM-DD, e.g. 2023-02-07",
                crate::analytics::time::truncate(s, 40)
            ))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}
