//! The value parsers behind every typed setting, and the one-line message a bad value gets.

use std::ffi::OsStr;

use clap::builder::{BoolishValueParser, RangedU64ValueParser, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command};

/// A setting that could not be used; its `Display` is the one line printed before exiting with status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(self.setting, &self.problem, self.accepted))]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
    pub accepted: &'static str,
}

impl ConfigError {
    pub fn new(setting: &'static str, problem: impl Into<String>, accepted: &'static str) -> Self {
        Self {
            setting,
            problem: problem.into(),
            accepted,
        }
    }
}

/// The one format of a refused setting, for the checks clap runs and for those run after it.
fn describe(setting: &str, problem: &str, accepted: &str) -> String {
    format!("invalid {setting}: {problem}; accepted: {accepted}")
}

/// The one line for a value a [`Checked`] parser refused; `None` for clap's own errors
/// (unknown flags, `--help`, a flag without its value), which clap renders itself.
pub fn refused_value(error: &clap::Error) -> Option<&str> {
    match error.get(ContextKind::Custom) {
        Some(ContextValue::String(line)) if error.kind() == ErrorKind::ValueValidation => {
            Some(line)
        }
        _ => None,
    }
}

/// How a refused setting is named: `APP_PORT (--port)`, or the bare variable for the
/// legacy and auth settings that have always been named that way.
#[derive(Clone, Copy)]
enum Name {
    EnvAndFlag,
    Env,
}

/// Parses a setting's value, trimmed, with `inner`; on failure the message names the setting
/// (from the clap argument: its variable and flag) and what it accepts.
#[derive(Clone)]
pub struct Checked<P: TypedValueParser> {
    inner: P,
    accepted: &'static str,
    /// What is wrong, from the value as given; never called for a secret.
    problem: fn(&str) -> String,
    /// What an empty value means, when it does not mean an error.
    empty: Option<P::Value>,
    name: Name,
}

impl<P: TypedValueParser> Checked<P> {
    fn new(inner: P, accepted: &'static str, problem: fn(&str) -> String) -> Self {
        Self {
            inner,
            accepted,
            problem,
            empty: None,
            name: Name::EnvAndFlag,
        }
    }

    /// An empty value reads as `value` (the setting's default) instead of being refused.
    pub fn empty_means(mut self, value: P::Value) -> Self {
        self.empty = Some(value);
        self
    }

    /// Says what is wrong in other words than `problem` would.
    pub fn problem(mut self, problem: fn(&str) -> String) -> Self {
        self.problem = problem;
        self
    }

    /// Named by its environment variable alone.
    pub fn env_name(mut self) -> Self {
        self.name = Name::Env;
        self
    }
}

impl<P> TypedValueParser for Checked<P>
where
    P: TypedValueParser,
    P::Value: Clone,
{
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let raw = value.to_string_lossy();
        let trimmed = raw.trim();
        if let (true, Some(empty)) = (trimmed.is_empty(), &self.empty) {
            return Ok(empty.clone());
        }
        self.inner
            .parse_ref(cmd, arg, OsStr::new(trimmed))
            .map_err(|_| {
                let env = arg
                    .and_then(Arg::get_env)
                    .map(|e| e.to_string_lossy().into_owned());
                let long = arg.and_then(Arg::get_long);
                let setting = match (self.name, env, long) {
                    (Name::EnvAndFlag, Some(env), Some(long)) => format!("{env} (--{long})"),
                    (_, Some(env), _) => env,
                    (_, None, Some(long)) => format!("--{long}"),
                    (_, None, None) => "a setting".to_owned(),
                };
                let mut error = clap::Error::new(ErrorKind::ValueValidation).with_cmd(cmd);
                error.insert(
                    ContextKind::Custom,
                    ContextValue::String(describe(&setting, &(self.problem)(&raw), self.accepted)),
                );
                error
            })
    }
}

fn not_usable(raw: &str) -> String {
    format!("'{raw}' is not usable")
}

/// An integer in `range`.
pub fn int<T>(
    range: std::ops::RangeInclusive<u64>,
    accepted: &'static str,
) -> Checked<RangedU64ValueParser<T>>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    Checked::new(
        RangedU64ValueParser::<T>::new().range(range),
        accepted,
        not_usable,
    )
}

/// A number (fractions allowed) from `min` to `max`.
pub fn float(
    min: f64,
    max: f64,
    accepted: &'static str,
) -> Checked<impl TypedValueParser<Value = f64>> {
    let parse = move |s: &str| -> Result<f64, String> {
        s.parse::<f64>()
            .ok()
            .filter(|v| *v >= min && *v <= max)
            .ok_or_else(String::new)
    };
    Checked::new(parse, accepted, not_usable)
}

/// true/false (also 1/0, yes/no, on/off, any case); empty is `default`.
pub fn boolean(default: bool) -> Checked<BoolishValueParser> {
    Checked::new(BoolishValueParser::new(), "true or false", |raw| {
        format!("'{}' is not a boolean", raw.trim().to_ascii_lowercase())
    })
    .empty_means(default)
}

/// Any text, parsed by `parse`; `problem` says what is wrong with it.
pub fn text<T: Clone + Send + Sync + 'static>(
    parse: fn(&str) -> Option<T>,
    accepted: &'static str,
    problem: fn(&str) -> String,
) -> Checked<impl TypedValueParser<Value = T>> {
    Checked::new(
        move |s: &str| parse(s).ok_or_else(String::new),
        accepted,
        problem,
    )
}

/// Any text, kept out of `Debug` output and error messages.
pub fn secret(value: &str) -> Result<secrecy::SecretString, std::convert::Infallible> {
    Ok(value.into())
}

/// A group of settings at its defaults, whatever the environment holds (for tests and tools).
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let cmd = T::augment_args(Command::new("defaults")).mut_args(|arg| arg.env(None));
    cmd.try_get_matches_from(["defaults"])
        .and_then(|matches| T::from_arg_matches(&matches))
        .expect("every default is a valid value")
}
