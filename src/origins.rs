//! Which web pages may use this node from a browser: the Origin allowlist
//! of `MATCHD_ALLOWED_ORIGINS`, applied to WebSocket upgrades (browsers send
//! `Origin` there but no CORS preflight, so the server must check it
//! itself) and, through CORS, to the HTTP API.
//!
//! The default allows only pages the node serves itself (the demo): an
//! `Origin` whose host and port are the request's `Host`. Requests without
//! `Origin` (game clients outside a browser, curl) are not affected.

/// The parsed setting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    /// Same origin, plus these (`scheme://host[:port]`, lowercase).
    #[default]
    SameOriginAnd,
    List(Vec<String>),
    /// `*`: any page (for development; never with credentials).
    Any,
}

impl AllowedOrigins {
    /// `""`: same origin only; `*`: any; else a comma-separated list of
    /// `http(s)://host[:port]` (no path).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::SameOriginAnd);
        }
        if raw == "*" {
            return Ok(Self::Any);
        }
        let mut list = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let lower = item.to_ascii_lowercase();
            let Some(rest) = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"))
            else {
                return Err(format!("{item:?} is not an http(s) origin"));
            };
            if rest.is_empty() || rest.contains('/') {
                return Err(format!(
                    "{item:?}: an origin is scheme://host[:port], no path"
                ));
            }
            list.push(lower);
        }
        Ok(Self::List(list))
    }

    /// Whether a request with `Origin: origin` to `Host: host` may go on.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        let same = host.is_some_and(|h| {
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            authority == Some(h.trim().to_ascii_lowercase().as_str())
        });
        match self {
            Self::Any => true,
            Self::SameOriginAnd => same,
            Self::List(list) => same || list.contains(&origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_by_default_plus_the_listed_ones() {
        let default = AllowedOrigins::parse("").expect("parses");
        assert!(default.allows("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(default.allows("HTTPS://Game.Example", Some("game.example")));
        assert!(!default.allows("https://evil.example", Some("127.0.0.1:8080")));
        assert!(!default.allows("http://127.0.0.1:9090", Some("127.0.0.1:8080")));
        assert!(!default.allows("null", Some("127.0.0.1:8080")));
        assert!(!default.allows("http://127.0.0.1:8080", None));

        let list =
            AllowedOrigins::parse("https://play.example, http://localhost:3000").expect("parses");
        assert!(list.allows("https://play.example", Some("api.example")));
        assert!(list.allows("http://localhost:3000", Some("127.0.0.1:8080")));
        assert!(!list.allows("https://play.example.evil", Some("api.example")));
        assert!(list.allows("https://api.example", Some("api.example")));

        assert!(AllowedOrigins::parse("*")
            .expect("parses")
            .allows("https://anything", None));
        for bad in [
            "play.example",
            "https://play.example/path",
            "ftp://x",
            "https://",
        ] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
    }
}
