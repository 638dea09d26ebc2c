//! Which web pages may use this node from a browser: the Origin allowlist
//! of `MATCHD_ALLOWED_ORIGINS`, applied to WebSocket upgrades (browsers send
//! `Origin` there but no CORS preflight, so the server must check it
//! itself) and, through CORS, to the HTTP API.
//!
//! The default allows only pages the cluster serves itself (the demo): an
//! `Origin` whose host and port are the request's `Host`, or those of
//! another live node of the cluster (a page of node B follows a redirect to
//! node A). Requests without `Origin` (game clients outside a browser,
//! curl) are not affected.

use std::sync::{Arc, RwLock};

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

/// The allowlist plus the origins of the cluster's live nodes, which the
/// node registration refreshes (see `startup.rs`).
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: AllowedOrigins,
    peers: Arc<RwLock<Vec<String>>>,
}

impl OriginPolicy {
    pub fn new(allowed: AllowedOrigins) -> Self {
        Self {
            allowed,
            peers: Arc::default(),
        }
    }

    /// Replaces the peers with the nodes advertised at `urls`
    /// (`ws://host:port/v1/ws` → `http://host:port`, `wss` → `https`).
    pub fn set_peers<'a>(&self, urls: impl IntoIterator<Item = &'a str>) {
        let origins = urls
            .into_iter()
            .filter_map(|url| {
                let lower = url.to_ascii_lowercase();
                let (scheme, rest) = if let Some(r) = lower.strip_prefix("wss://") {
                    ("https", r)
                } else {
                    ("http", lower.strip_prefix("ws://")?)
                };
                let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
                Some(format!("{scheme}://{authority}"))
            })
            .collect();
        if let Ok(mut peers) = self.peers.write() {
            *peers = origins;
        }
    }

    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        if self.allowed.allows(origin, host) {
            return true;
        }
        let origin = origin.trim().to_ascii_lowercase();
        self.peers.read().is_ok_and(|peers| peers.contains(&origin))
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

    #[test]
    fn pages_of_the_other_live_nodes_are_allowed() {
        let policy = OriginPolicy::new(AllowedOrigins::default());
        assert!(!policy.allows("http://10.0.0.2:8080", Some("10.0.0.1:8080")));
        policy.set_peers(["ws://10.0.0.2:8080/v1/ws", "wss://B.example/v1/ws", "junk"]);
        assert!(policy.allows("http://10.0.0.2:8080", Some("10.0.0.1:8080")));
        assert!(policy.allows("https://b.example", Some("a.example")));
        assert!(
            !policy.allows("http://b.example", Some("a.example")),
            "scheme counts"
        );
        assert!(!policy.allows("https://evil.example", Some("a.example")));
        policy.set_peers([]);
        assert!(!policy.allows("http://10.0.0.2:8080", Some("10.0.0.1:8080")));
    }
}
