//! Sessions: a random bearer token per player. A token is never stored:
//! only its SHA-256 digest is, in memory and, with Redis, in
//! `{prefix}session:{digest}` so that the token works on every node (a
//! redirected or failed-over client keeps its identity).
//!
//! Lifecycle: a session unused for `MATCHD_SESSION_TTL_MS` expires (in
//! memory at the next sweep or lookup, in Redis by the key's TTL, renewed
//! by use), and every session ends `MATCHD_SESSION_MAX_AGE_MS` after it
//! was made, or when the JWT it was made from expires, whichever is first
//! (in memory and in Redis, where the value carries that deadline). When
//! `MATCHD_MAX_SESSIONS` are held, a new one evicts the least recently
//! used instead of locking everyone out. An operator kick revokes the
//! player's sessions in every node's memory and, through a
//! `{prefix}revoked:{player}` mark, in Redis. Tokens come from the
//! operating system's random source and creation fails closed if it does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use fred::prelude::{Client, Expiration, KeysInterface};
use matchd_actors::cluster::keys::Keys;
use matchd_actors::util::{anonymous_player_id, try_random_u64, unix_ms};

fn now_ms() -> u64 {
    unix_ms(std::time::SystemTime::now())
}
use matchd_protocol::PlayerId;
use sha2::{Digest, Sha256};

/// Why no session was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the operating system's random source failed")]
    NoEntropy,
}

#[derive(Clone)]
pub struct Sessions {
    /// SHA-256 hex of the token -> the session.
    by_digest: Arc<DashMap<String, Entry>>,
    max: usize,
    idle: Duration,
    max_age: Duration,
    redis: Option<SessionStore>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    player_id: PlayerId,
    last_used: Instant,
    /// The absolute end (max age, or the JWT's `exp`).
    expires: Instant,
}

impl Entry {
    fn live(&self, idle: Duration) -> bool {
        self.last_used.elapsed() <= idle && Instant::now() < self.expires
    }
}

#[derive(Clone)]
struct SessionStore {
    client: Client,
    keys: Keys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token: String,
    pub player_id: PlayerId,
    /// Unix ms at which the session ends at the latest.
    pub expires_at_ms: u64,
}

/// What Redis holds for a session: `player:expires_ms:created_ms` (a
/// bare player id from an older node is read as a session without
/// deadline, made at time 0).
fn redis_value(player: PlayerId, expires_ms: u64, created_ms: u64) -> String {
    format!("{player}:{expires_ms}:{created_ms}")
}

fn parse_redis_value(v: &str) -> Option<(PlayerId, u64, u64)> {
    let mut parts = v.split(':');
    let player = parts.next()?.parse().ok()?;
    let expires = parts.next().map_or(Some(u64::MAX), |p| p.parse().ok())?;
    let created = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some((player, expires, created))
}

/// The hex SHA-256 of a token: what is stored in its place.
pub fn digest(token: &str) -> String {
    let hash = Sha256::digest(token.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// At most `max` sessions in memory, each expiring after `idle` unused
    /// and `max_age` after it was made.
    pub fn new(max: usize, idle: Duration, max_age: Duration) -> Self {
        Self {
            by_digest: Arc::default(),
            max: max.max(1),
            idle,
            max_age,
            redis: None,
        }
    }

    /// Keeps every session in Redis too (`client` `None`: memory only).
    pub fn with_redis(mut self, client: Option<Client>, keys: Keys) -> Self {
        self.redis = client.map(|client| SessionStore { client, keys });
        self
    }

    /// The Redis TTL of a session ending at `expires_ms`: the idle
    /// lifetime, cut to what is left of its absolute one.
    fn ttl_ms(&self, expires_ms: u64) -> i64 {
        let left = expires_ms.saturating_sub(now_ms());
        (self.idle.as_millis() as u64)
            .min(left)
            .clamp(1, i64::MAX as u64) as i64
    }

    /// Like [`Sessions::create`], also written to Redis when configured. A
    /// Redis failure still gives a session, valid on this node only.
    /// `verified`: the player a JWT proved and the token's `exp` (Unix s);
    /// `None` makes an anonymous player.
    pub async fn create_shared(
        &self,
        verified: Option<(PlayerId, u64)>,
    ) -> Result<Session, SessionError> {
        let session = self.create(verified)?;
        if let Some(store) = &self.redis {
            let set = store
                .client
                .set::<(), _, _>(
                    store.keys.session(&digest(&session.token)),
                    redis_value(session.player_id, session.expires_at_ms, now_ms()),
                    Some(Expiration::PX(self.ttl_ms(session.expires_at_ms))),
                    None,
                    false,
                )
                .await;
            if let Err(e) = set {
                log::warn!("session not shared through redis (valid on this node only): {e}");
            }
        }
        Ok(session)
    }

    /// The player of `token`: from memory, else (a session made on another
    /// node) from Redis. A use renews the session.
    pub async fn player_shared(&self, token: &str) -> Option<PlayerId> {
        if token.is_empty() || token.len() > 64 {
            return None;
        }
        if let Some(p) = self.player(token) {
            return Some(p);
        }
        let store = self.redis.as_ref()?;
        let key = store.keys.session(&digest(token));
        let revoked_key = store.keys.revoked_sessions_of_key_prefix();
        let found: Option<String> = match store.client.get(&key).await {
            Ok(v) => v,
            Err(e) => {
                log::warn!("session lookup in redis failed: {e}");
                None
            }
        };
        let (player_id, expires_ms, created_ms) = parse_redis_value(&found?)?;
        if expires_ms <= now_ms() {
            return None;
        }
        // Revoked by a kick after it was made?
        let revoked: Option<u64> = match store.client.get(format!("{revoked_key}{player_id}")).await
        {
            Ok(v) => v,
            Err(e) => {
                log::warn!("session revocation check in redis failed: {e}");
                return None;
            }
        };
        if revoked.is_some_and(|at| at >= created_ms) {
            let _ = store.client.del::<(), _>(&key).await;
            return None;
        }
        if let Err(e) = store
            .client
            .pexpire::<(), _>(&key, self.ttl_ms(expires_ms), None)
            .await
        {
            log::warn!("session renewal in redis failed: {e}");
        }
        let left = Duration::from_millis(expires_ms.saturating_sub(now_ms()));
        self.insert(digest(token), player_id, left);
        Some(player_id)
    }

    /// A new session with a 128-bit random token, for the player a JWT
    /// proved (`(player, exp in Unix s)`) or a new anonymous one.
    pub fn create(&self, verified: Option<(PlayerId, u64)>) -> Result<Session, SessionError> {
        let (hi, lo) = try_random_u64()
            .zip(try_random_u64())
            .ok_or(SessionError::NoEntropy)?;
        let token = format!("{hi:016x}{lo:016x}");
        let now = now_ms();
        let mut expires_at_ms = now.saturating_add(self.max_age.as_millis() as u64);
        let player_id = match verified {
            Some((player, exp_s)) => {
                expires_at_ms = expires_at_ms.min(exp_s.saturating_mul(1000));
                player
            }
            None => anonymous_player_id(),
        };
        let left = Duration::from_millis(expires_at_ms.saturating_sub(now));
        self.insert(digest(&token), player_id, left);
        Ok(Session {
            token,
            player_id,
            expires_at_ms,
        })
    }

    fn insert(&self, digest: String, player_id: PlayerId, left: Duration) {
        if self.by_digest.len() >= self.max {
            self.sweep();
        }
        if self.by_digest.len() >= self.max {
            self.evict_least_recently_used();
        }
        let now = Instant::now();
        let entry = Entry {
            player_id,
            last_used: now,
            expires: now + left,
        };
        self.by_digest.insert(digest, entry);
    }

    /// The player of `token` if its session lives in memory; renews it.
    pub fn player(&self, token: &str) -> Option<PlayerId> {
        let mut entry = self.by_digest.get_mut(&digest(token))?;
        if !entry.live(self.idle) {
            drop(entry);
            self.by_digest.remove(&digest(token));
            return None;
        }
        entry.last_used = Instant::now();
        Some(entry.player_id)
    }

    /// Forgets every session of `player` on this node (an operator kick);
    /// returns how many.
    pub fn revoke_player(&self, player: PlayerId) -> usize {
        let before = self.by_digest.len();
        self.by_digest.retain(|_, e| e.player_id != player);
        before - self.by_digest.len()
    }

    /// Revokes, in Redis, every session of `player` made until now (the
    /// node that takes an operator's kick does this once; every node drops
    /// its copies in memory through the control message). The mark lives
    /// as long as a session can.
    pub async fn revoke_player_shared(&self, player: PlayerId) {
        let Some(store) = &self.redis else {
            return;
        };
        let key = format!("{}{player}", store.keys.revoked_sessions_of_key_prefix());
        let ttl = Expiration::PX(self.max_age.as_millis().clamp(1, i64::MAX as u128) as i64);
        if let Err(e) = store
            .client
            .set::<(), _, _>(key, now_ms(), Some(ttl), None, false)
            .await
        {
            log::warn!(player_id = player; "revocation of the player's sessions in redis failed: {e}");
        }
    }

    /// Drops the sessions idle or aged past their lifetime; returns how many.
    pub fn sweep(&self) -> usize {
        let before = self.by_digest.len();
        let idle = self.idle;
        self.by_digest.retain(|_, e| e.live(idle));
        before - self.by_digest.len()
    }

    /// Makes room for one: drops the least recently used tenth (at least
    /// one), so a full store costs one scan per many creations.
    fn evict_least_recently_used(&self) {
        let mut ages: Vec<(Instant, String)> = self
            .by_digest
            .iter()
            .map(|e| (e.value().last_used, e.key().clone()))
            .collect();
        let n = (ages.len() / 10).max(1);
        ages.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        for (_, key) in ages.into_iter().take(n) {
            self.by_digest.remove(&key);
        }
        log::info!(evicted = n; "session store full: the least recently used sessions were evicted");
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_resolve_and_are_stored_only_as_digests() {
        let s = Sessions::new(10, Duration::from_secs(60), Duration::from_secs(3600));
        let a = s.create(None).expect("session");
        let b = s.create(None).expect("session");
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 32);
        assert_eq!(s.player(&a.token), Some(a.player_id));
        assert_eq!(s.player("nope"), None);
        assert!(s
            .by_digest
            .iter()
            .all(|e| e.key() != &a.token && e.key().len() == 64));
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// Makes `token`'s session look unused for `ago`.
    fn age(s: &Sessions, token: &str, ago: Duration) {
        let mut entry = s.by_digest.get_mut(&digest(token)).expect("session");
        entry.last_used = Instant::now() - ago;
    }

    #[test]
    fn a_full_store_evicts_the_least_recently_used_instead_of_refusing() {
        let s = Sessions::new(3, Duration::from_secs(60), Duration::from_secs(3600));
        let old = s.create(None).expect("session");
        let kept = s.create(None).expect("session");
        let _third = s.create(None).expect("session");
        age(&s, &old.token, Duration::from_secs(30));
        age(&s, &kept.token, Duration::from_secs(20));
        assert!(s.player(&kept.token).is_some(), "a use renews it");
        let newest = s.create(None).expect("a full store still makes sessions");
        assert_eq!(s.len(), 3);
        assert_eq!(s.player(&old.token), None, "evicted");
        assert!(s.player(&kept.token).is_some());
        assert!(s.player(&newest.token).is_some());
    }

    #[test]
    fn idle_sessions_expire_and_kicked_players_lose_theirs() {
        let s = Sessions::new(10, Duration::from_secs(60), Duration::from_secs(3600));
        let a = s.create(None).expect("session");
        let b = s.create(None).expect("session");
        age(&s, &a.token, Duration::from_secs(61));
        assert_eq!(s.player(&a.token), None, "idle past its lifetime");
        age(&s, &b.token, Duration::from_secs(61));
        assert_eq!(s.sweep(), 1, "the sweep drops what lookups did not");
        let s = Sessions::new(10, Duration::from_secs(60), Duration::from_secs(3600));
        let a = s.create(None).expect("session");
        let b = s.create(None).expect("session");
        assert_eq!(s.revoke_player(a.player_id), 1);
        assert_eq!(s.player(&a.token), None);
        assert!(s.player(&b.token).is_some());
        assert_eq!(s.sweep(), 0);
    }

    #[test]
    fn sessions_end_at_their_max_age_or_their_jwt_expiry_even_when_used() {
        let s = Sessions::new(10, Duration::from_secs(60), Duration::from_secs(3600));
        let a = s.create(None).expect("session");
        assert!(!matchd_actors::util::is_verified_player(a.player_id));
        let mut entry = s.by_digest.get_mut(&digest(&a.token)).expect("entry");
        entry.expires = Instant::now() - Duration::from_millis(1);
        drop(entry);
        assert_eq!(s.player(&a.token), None, "used, but past its max age");
        // A JWT expiring in 5 s bounds the session.
        let exp = now_ms() / 1000 + 5;
        let v = s.create(Some((42, exp))).expect("session");
        assert_eq!(v.player_id, 42);
        assert!(v.expires_at_ms <= exp * 1000);
        assert_eq!(s.player(&v.token), Some(42));
    }

    #[test]
    fn redis_values_carry_the_deadline_and_old_ones_still_read() {
        assert_eq!(
            parse_redis_value(&redis_value(7, 100, 50)),
            Some((7, 100, 50))
        );
        assert_eq!(parse_redis_value("7"), Some((7, u64::MAX, 0)));
        assert_eq!(parse_redis_value("x:1"), None);
    }
}
