//! A small `--flag value` parser: the harness has few options and no
//! subcommand tree, so a full argument-parsing crate would buy little.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgError {
    #[error("{0:?} is not an option (options start with --)")]
    Stray(String),
    #[error("--{0} needs a value")]
    MissingValue(String),
    #[error("--{flag} {value:?}: {why}")]
    Invalid {
        flag: String,
        value: String,
        why: String,
    },
    #[error("unknown option --{0}")]
    Unknown(String),
}

/// Parsed `--flag value` pairs; a flag may repeat.
#[derive(Debug, Default)]
pub struct Args {
    values: BTreeMap<String, Vec<String>>,
    used: std::cell::RefCell<Vec<String>>,
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Self, ArgError> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            let Some(flag) = a.strip_prefix("--") else {
                return Err(ArgError::Stray(a.clone()));
            };
            let (flag, value) = match flag.split_once('=') {
                Some((f, v)) => (f.to_string(), v.to_string()),
                None => {
                    let v = it
                        .next()
                        .ok_or_else(|| ArgError::MissingValue(flag.into()))?;
                    (flag.to_string(), v.clone())
                }
            };
            values.entry(flag).or_default().push(value);
        }
        Ok(Self {
            values,
            used: Default::default(),
        })
    }

    fn raw(&self, flag: &str) -> Option<&String> {
        self.used.borrow_mut().push(flag.into());
        self.values.get(flag).and_then(|v| v.last())
    }

    pub fn all(&self, flag: &str) -> Vec<String> {
        self.used.borrow_mut().push(flag.into());
        self.values.get(flag).cloned().unwrap_or_default()
    }

    pub fn string(&self, flag: &str) -> Option<String> {
        self.raw(flag).cloned()
    }

    pub fn get<T: FromStr>(&self, flag: &str, default: T) -> Result<T, ArgError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(flag) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ArgError::Invalid {
                flag: flag.into(),
                value: v.clone(),
                why: e.to_string(),
            }),
        }
    }

    /// A duration: `500ms`, `10s`, `2m`, or plain seconds.
    pub fn duration(&self, flag: &str, default: Duration) -> Result<Duration, ArgError> {
        match self.raw(flag) {
            None => Ok(default),
            Some(v) => parse_duration(v).ok_or_else(|| ArgError::Invalid {
                flag: flag.into(),
                value: v.clone(),
                why: "expected a duration like 500ms, 10s or 2m".into(),
            }),
        }
    }

    pub fn switch(&self, flag: &str, default: bool) -> Result<bool, ArgError> {
        match self.raw(flag).map(String::as_str) {
            None => Ok(default),
            Some("on" | "true" | "yes") => Ok(true),
            Some("off" | "false" | "no") => Ok(false),
            Some(v) => Err(ArgError::Invalid {
                flag: flag.into(),
                value: v.into(),
                why: "expected on or off".into(),
            }),
        }
    }

    /// Fails on any flag that no getter asked for (a typo, usually).
    pub fn finish(&self) -> Result<(), ArgError> {
        let used = self.used.borrow();
        match self.values.keys().find(|k| !used.contains(k)) {
            Some(k) => Err(ArgError::Unknown(k.clone())),
            None => Ok(()),
        }
    }
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Args {
        Args::parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>()).expect("parses")
    }

    #[test]
    fn flags_values_and_typos() {
        let a =
            args("--rooms 10 --duration=2m --cache off --threshold p99<20ms --threshold errors<1%");
        assert_eq!(a.get("rooms", 1usize), Ok(10));
        assert_eq!(
            a.duration("duration", Duration::ZERO),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(a.switch("cache", true), Ok(false));
        assert_eq!(a.all("threshold"), vec!["p99<20ms", "errors<1%"]);
        assert_eq!(a.get("seats", 4usize), Ok(4));
        assert_eq!(a.finish(), Ok(()));
        let b = args("--romos 3");
        assert_eq!(b.finish(), Err(ArgError::Unknown("romos".into())));
        assert!(Args::parse(&["--rooms".into()]).is_err());
        assert!(Args::parse(&["rooms".into()]).is_err());
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("3h"), None);
    }
}
