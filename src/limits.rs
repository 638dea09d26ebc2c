//! Per-client-IP rate limits of the HTTP entry points that cost the node
//! something: session creation, match creation and WebSocket upgrades
//! (token buckets from `governor`, one state per IP, swept of idle IPs so
//! the limiter itself stays bounded). Over a limit: 429 `rate_limited`
//! with `Retry-After`.
//!
//! Behind a load balancer every request comes from the balancer: the client
//! IP is read from `X-Forwarded-For` only when the peer is one of
//! `MATCHD_TRUSTED_PROXIES`, else a client could pose as many.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use matchd_protocol::PlayerId;

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
    /// WebSocket connections open at once per client IP.
    pub conns_per_ip: usize,
    /// WebSocket connections open at once per player.
    pub conns_per_player: usize,
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            sessions_per_min: 120,
            matches_per_min: 120,
            upgrades_per_min: 300,
            conns_per_ip: 512,
            conns_per_player: 4,
            trusted_proxies: Vec::new(),
        }
    }
}

pub struct Limits {
    sessions: DefaultKeyedRateLimiter<IpAddr>,
    matches: DefaultKeyedRateLimiter<IpAddr>,
    upgrades: DefaultKeyedRateLimiter<IpAddr>,
    trusted: Vec<IpAddr>,
    per_ip: Counted<IpAddr>,
    per_player: Counted<PlayerId>,
}

/// Which concurrency cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowded {
    Ip,
    Player,
}

/// Open things per key, capped; entries leave the map when their count
/// drops to zero, so it holds only keys with something open.
struct Counted<K: Hash + Eq> {
    counts: Arc<DashMap<K, usize>>,
    cap: usize,
}

impl<K: Hash + Eq + Copy + Send + Sync + 'static> Counted<K> {
    fn new(cap: usize) -> Self {
        Self {
            counts: Arc::default(),
            cap,
        }
    }

    fn acquire(&self, key: K) -> Option<Slot<K>> {
        let mut n = self.counts.entry(key).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: self.counts.clone(),
            key,
        })
    }
}

/// One open thing of a [`Counted`] key; dropping it closes it.
struct Slot<K: Hash + Eq + Copy> {
    counts: Arc<DashMap<K, usize>>,
    key: K,
}

impl<K: Hash + Eq + Copy> Drop for Slot<K> {
    fn drop(&mut self) {
        if let dashmap::Entry::Occupied(mut e) = self.counts.entry(self.key) {
            *e.get_mut() = e.get().saturating_sub(1);
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// A connection's places in the per-IP and per-player caps, released when
/// it is dropped (the connection actor holds it for its lifetime).
pub struct ConnSlots {
    _ip: Option<Slot<IpAddr>>,
    _player: Slot<PlayerId>,
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
            per_ip: Counted::new(cfg.conns_per_ip),
            per_player: Counted::new(cfg.conns_per_player),
        }
    }

    /// A place for one more connection of `player` from `ip` (no IP: only
    /// the player's cap applies), or which cap is full.
    pub fn open_connection(
        &self,
        ip: Option<IpAddr>,
        player: PlayerId,
    ) -> Result<ConnSlots, Crowded> {
        let ip_slot = match ip {
            Some(ip) => Some(self.per_ip.acquire(ip).ok_or(Crowded::Ip)?),
            None => None,
        };
        let player_slot = self.per_player.acquire(player).ok_or(Crowded::Player)?;
        Ok(ConnSlots {
            _ip: ip_slot,
            _player: player_slot,
        })
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
    fn connection_caps_count_open_connections_and_forget_closed_ones() {
        let limits = Limits::new(&LimitsConfig {
            conns_per_ip: 3,
            conns_per_player: 2,
            ..LimitsConfig::default()
        });
        let a = ip("10.0.0.1");
        let one = limits.open_connection(Some(a), 1).expect("first");
        let two = limits.open_connection(Some(a), 1).expect("second");
        assert_eq!(
            limits.open_connection(Some(a), 1).err(),
            Some(Crowded::Player)
        );
        let three = limits.open_connection(Some(a), 2).expect("another player");
        assert_eq!(limits.open_connection(Some(a), 3).err(), Some(Crowded::Ip));
        assert!(limits.open_connection(Some(ip("10.0.0.2")), 3).is_ok());
        drop(one);
        let _four = limits.open_connection(Some(a), 1).expect("a slot freed");
        drop((two, three));
        drop(_four);
        assert!(limits.per_ip.counts.is_empty(), "closed IPs are forgotten");
        assert!(limits.per_player.counts.is_empty());
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
