//! Sessions: a random bearer token per player. A token is never stored:
//! only its SHA-256 digest is, in memory and, with Redis, in
//! `{prefix}session:{digest}` so that the token works on every node (a
//! redirected or failed-over client keeps its identity).
//!
//! Lifecycle: a session unused for `MATCHD_SESSION_TTL_MS` expires (in
//! memory at the next sweep or lookup, in Redis by the key's TTL, renewed
//! by use). When `MATCHD_MAX_SESSIONS` are held, a new one evicts the
//! least recently used instead of locking everyone out. Tokens come from
//! the operating system's random source and creation fails closed if it
//! does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use fred::prelude::{Client, Expiration, KeysInterface};
use matchd_actors::cluster::keys::Keys;
use matchd_actors::util::{random_id, try_random_u64};
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
    redis: Option<SessionStore>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    player_id: PlayerId,
    last_used: Instant,
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
}

/// The hex SHA-256 of a token: what is stored in its place.
pub fn digest(token: &str) -> String {
    let hash = Sha256::digest(token.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// At most `max` sessions in memory, each expiring after `idle` unused.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            by_digest: Arc::default(),
            max: max.max(1),
            idle,
            redis: None,
        }
    }

    /// Keeps every session in Redis too (`client` `None`: memory only).
    pub fn with_redis(mut self, client: Option<Client>, keys: Keys) -> Self {
        self.redis = client.map(|client| SessionStore { client, keys });
        self
    }

    fn ttl(&self) -> Expiration {
        Expiration::PX(self.idle.as_millis().min(i64::MAX as u128) as i64)
    }

    /// Like [`Sessions::create`], also written to Redis when configured. A
    /// Redis failure still gives a session, valid on this node only.
    pub async fn create_shared(&self) -> Result<Session, SessionError> {
        let session = self.create()?;
        if let Some(store) = &self.redis {
            let set = store
                .client
                .set::<(), _, _>(
                    store.keys.session(&digest(&session.token)),
                    session.player_id as i64,
                    Some(self.ttl()),
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
        let found: Option<i64> = match store.client.get(&key).await {
            Ok(v) => v,
            Err(e) => {
                log::warn!("session lookup in redis failed: {e}");
                None
            }
        };
        let player_id = PlayerId::try_from(found?).ok()?;
        if let Err(e) = store
            .client
            .pexpire::<(), _>(&key, self.ttl_ms(), None)
            .await
        {
            log::warn!("session renewal in redis failed: {e}");
        }
        self.insert(digest(token), player_id);
        Some(player_id)
    }

    fn ttl_ms(&self) -> i64 {
        self.idle.as_millis().min(i64::MAX as u128) as i64
    }

    /// A new session with a 128-bit random token.
    pub fn create(&self) -> Result<Session, SessionError> {
        let (hi, lo) = try_random_u64()
            .zip(try_random_u64())
            .ok_or(SessionError::NoEntropy)?;
        let token = format!("{hi:016x}{lo:016x}");
        let player_id = random_id();
        self.insert(digest(&token), player_id);
        Ok(Session { token, player_id })
    }

    fn insert(&self, digest: String, player_id: PlayerId) {
        if self.by_digest.len() >= self.max {
            self.sweep();
        }
        if self.by_digest.len() >= self.max {
            self.evict_least_recently_used();
        }
        let entry = Entry {
            player_id,
            last_used: Instant::now(),
        };
        self.by_digest.insert(digest, entry);
    }

    /// The player of `token` if its session lives in memory; renews it.
    pub fn player(&self, token: &str) -> Option<PlayerId> {
        let mut entry = self.by_digest.get_mut(&digest(token))?;
        if entry.last_used.elapsed() > self.idle {
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

    /// Drops the sessions idle past their lifetime; returns how many.
    pub fn sweep(&self) -> usize {
        let before = self.by_digest.len();
        let idle = self.idle;
        self.by_digest.retain(|_, e| e.last_used.elapsed() <= idle);
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
        let s = Sessions::new(10, Duration::from_secs(60));
        let a = s.create().expect("session");
        let b = s.create().expect("session");
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
        let s = Sessions::new(3, Duration::from_secs(60));
        let old = s.create().expect("session");
        let kept = s.create().expect("session");
        let _third = s.create().expect("session");
        age(&s, &old.token, Duration::from_secs(30));
        age(&s, &kept.token, Duration::from_secs(20));
        assert!(s.player(&kept.token).is_some(), "a use renews it");
        let newest = s.create().expect("a full store still makes sessions");
        assert_eq!(s.len(), 3);
        assert_eq!(s.player(&old.token), None, "evicted");
        assert!(s.player(&kept.token).is_some());
        assert!(s.player(&newest.token).is_some());
    }

    #[test]
    fn idle_sessions_expire_and_kicked_players_lose_theirs() {
        let s = Sessions::new(10, Duration::from_secs(60));
        let a = s.create().expect("session");
        let b = s.create().expect("session");
        age(&s, &a.token, Duration::from_secs(61));
        assert_eq!(s.player(&a.token), None, "idle past its lifetime");
        age(&s, &b.token, Duration::from_secs(61));
        assert_eq!(s.sweep(), 1, "the sweep drops what lookups did not");
        let s = Sessions::new(10, Duration::from_secs(60));
        let a = s.create().expect("session");
        let b = s.create().expect("session");
        assert_eq!(s.revoke_player(a.player_id), 1);
        assert_eq!(s.player(&a.token), None);
        assert!(s.player(&b.token).is_some());
        assert_eq!(s.sweep(), 0);
    }
}
