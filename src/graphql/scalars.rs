//! The `Date` and `DateTime` scalars: a calendar date `YYYY-MM-DD` read in the caller's time zone, and an RFC 3339 instant.

use async_graphql::{InputValueResult, Scalar, ScalarType, Value};
use chrono::{Datelike, FixedOffset, NaiveDate, NaiveDateTime};

use super::errors::bad_input;

/// Parsing never fails at the GraphQL layer: a bad value is kept and reported by the
/// resolver, which knows the argument's name (async-graphql's own message does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Date(Result<NaiveDate, String>);

impl Date {
    pub fn new(date: NaiveDate) -> Self {
        Self(Ok(date))
    }

    /// The date, or a `BAD_USER_INPUT` error naming `argument`.
    pub fn get(&self, argument: &'static str) -> async_graphql::Result<NaiveDate> {
        self.0
            .clone()
            .map_err(|problem| bad_input(argument, problem))
    }

    pub fn optional(
        date: Option<Self>,
        argument: &'static str,
    ) -> async_graphql::Result<Option<NaiveDate>> {
        date.map(|d| d.get(argument)).transpose()
    }
}

/// A calendar date as `YYYY-MM-DD` (years 1 to 9999).
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        let parsed = match &value {
            Value::String(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) if (1..=9999).contains(&d.year()) && s.len() == 10 => Ok(d),
                _ => Err(format!(
                    "'{}' is not a date: expected YYYY-MM-DD, e.g. 2023-02-07",
                    crate::analytics::time::truncate(s, 40)
                )),
            },
            other => Err(format!(
                "expected a date string YYYY-MM-DD, got {}",
                crate::analytics::time::truncate(&other.to_string(), 40)
            )),
        };
        Ok(Date(parsed))
    }

    fn to_value(&self) -> Value {
        match &self.0 {
            Ok(d) => Value::String(d.format("%Y-%m-%d").to_string()),
            Err(_) => Value::Null,
        }
    }
}

/// An instant with the offset it is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<FixedOffset>);

/// A naive database timestamp (stored in UTC) as a `DateTime` at offset zero.
pub(crate) fn utc(t: NaiveDateTime) -> DateTime {
    DateTime(t.and_utc().fixed_offset())
}

/// An instant: an RFC 3339 date-time with its offset from UTC, e.g. `2023-02-07T09:30:00+01:00`.
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(Self)
                .map_err(|_| {
                    async_graphql::InputValueError::custom(
                        "expected an RFC 3339 date-time, e.g. 2023-02-07T09:30:00+01:00",
                    )
                }),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339())
    }
}
