//! Per-client-IP rate limits of the HTTP entry points that cost the node
//! something: session creation, match creation and WebSocket upgrades
//! (token buckets from `governor`, one state per IP, swept of idle IPs so
//! the limiter itself stays bounded). Over a limit: 429 `rate_limited`
//! with `Retry-After`.
//!
//! Behind a load balancer every request comes from the balancer: the client
//! IP is read from `X-Forwarded-For` only when the peer is one of
//! `MATCHD_TRUSTED_PROXIES`, else a client could pose as many.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// What a limit guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Sessions,
    Matches,
    Upgrades,
}

impl Limit {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Sessions => "sessions",
            Limit::Matches => "matches",
            Limit::Upgrades => "upgrades",
        }
    }
}

/// Per-minute budgets per client IP (each also the burst).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    pub sessions_per_min: u32,
    pub matches_per_min: u32,
    pub upgrades_per_min: u32,
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            sessions_per_min: 120,
            matches_per_min: 120,
            upgrades_per_min: 300,
            trusted_proxies: Vec::new(),
        }
    }
}

pub struct Limits {
    sessions: DefaultKeyedRateLimiter<IpAddr>,
    matches: DefaultKeyedRateLimiter<IpAddr>,
    upgrades: DefaultKeyedRateLimiter<IpAddr>,
    trusted: Vec<IpAddr>,
}

fn quota(per_min: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_min.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl Limits {
    pub fn new(cfg: &LimitsConfig) -> Self {
        Self {
            sessions: RateLimiter::keyed(quota(cfg.sessions_per_min)),
            matches: RateLimiter::keyed(quota(cfg.matches_per_min)),
            upgrades: RateLimiter::keyed(quota(cfg.upgrades_per_min)),
            trusted: cfg.trusted_proxies.clone(),
        }
    }

    /// Takes one from `ip`'s budget of `what`; `Err(wait)` when it is spent.
    pub fn check(&self, what: Limit, ip: IpAddr) -> Result<(), Duration> {
        let limiter = match what {
            Limit::Sessions => &self.sessions,
            Limit::Matches => &self.matches,
            Limit::Upgrades => &self.upgrades,
        };
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// The client's IP: the peer, or, when the peer is a trusted proxy, the
    /// last address in `X-Forwarded-For` that is not a trusted proxy.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusted.contains(&peer) {
            return Some(peer);
        }
        let forwarded = forwarded_for
            .into_iter()
            .flat_map(|h| h.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .rev()
            .find(|a| !self.trusted.contains(a));
        Some(forwarded.unwrap_or(peer))
    }

    /// Forgets IPs whose budget is full again, so the maps stay bounded.
    pub fn sweep(&self) {
        for limiter in [&self.sessions, &self.matches, &self.upgrades] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Parses `MATCHD_TRUSTED_PROXIES`: comma-separated IP addresses.
pub fn parse_proxies(raw: &str) -> Result<Vec<IpAddr>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("{s:?} is not an IP address")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn each_ip_has_its_own_budget() {
        let limits = Limits::new(&LimitsConfig {
            sessions_per_min: 3,
            ..LimitsConfig::default()
        });
        for _ in 0..3 {
            assert_eq!(limits.check(Limit::Sessions, ip("10.0.0.1")), Ok(()));
        }
        let wait = limits
            .check(Limit::Sessions, ip("10.0.0.1"))
            .expect_err("spent");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(limits.check(Limit::Sessions, ip("10.0.0.2")), Ok(()));
        assert_eq!(
            limits.check(Limit::Matches, ip("10.0.0.1")),
            Ok(()),
            "another limit"
        );
        limits.sweep();
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let limits = Limits::new(&LimitsConfig {
            trusted_proxies: parse_proxies("10.0.0.9, 10.0.0.8").expect("parses"),
            ..LimitsConfig::default()
        });
        let xff = Some("203.0.113.7, 198.51.100.2, 10.0.0.8");
        assert_eq!(
            limits.client_ip(Some(ip("10.0.0.9")), xff),
            Some(ip("198.51.100.2"))
        );
        assert_eq!(
            limits.client_ip(Some(ip("192.0.2.1")), xff),
            Some(ip("192.0.2.1")),
            "an untrusted peer cannot choose its address"
        );
        assert_eq!(
            limits.client_ip(Some(ip("10.0.0.9")), None),
            Some(ip("10.0.0.9"))
        );
        assert!(parse_proxies("10.0.0.1, nope").is_err());
    }
}
