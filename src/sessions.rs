//! Anonymous sessions: a random bearer token per player, kept in memory
//! and, with Redis, in `{prefix}session:{token}` so that the token works on
//! every node (a redirected or failed-over client keeps its identity).

use std::sync::Arc;

use dashmap::DashMap;
use fred::prelude::{Client, Expiration, KeysInterface};
use matchd_actors::cluster::keys::Keys;
use matchd_actors::util::{random_id, random_u64};
use matchd_protocol::PlayerId;

#[derive(Clone)]
pub struct Sessions {
    by_token: Arc<DashMap<String, PlayerId>>,
    max: usize,
    redis: Option<SessionStore>,
}

#[derive(Clone)]
struct SessionStore {
    client: Client,
    keys: Keys,
    ttl_ms: u64,
}

impl SessionStore {
    fn key(&self, token: &str) -> String {
        self.keys.session(token)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token: String,
    pub player_id: PlayerId,
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Self {
            by_token: Arc::default(),
            max,
            redis: None,
        }
    }

    /// Keeps every session in Redis too (`client` `None`: memory only).
    pub fn with_redis(mut self, client: Option<Client>, keys: Keys, ttl_ms: u64) -> Self {
        self.redis = client.map(|client| SessionStore {
            client,
            keys,
            ttl_ms,
        });
        self
    }

    /// Like [`Sessions::create`], also written to Redis when configured. A
    /// Redis failure still gives a session, valid on this node only.
    pub async fn create_shared(&self) -> Option<Session> {
        let session = self.create()?;
        if let Some(store) = &self.redis {
            let set = store
                .client
                .set::<(), _, _>(
                    store.key(&session.token),
                    session.player_id as i64,
                    Some(Expiration::PX(store.ttl_ms as i64)),
                    None,
                    false,
                )
                .await;
            if let Err(e) = set {
                log::warn!("session not shared through redis (valid on this node only): {e}");
            }
        }
        Some(session)
    }

    /// The player of `token`: from memory, else (a session made on another
    /// node) from Redis.
    pub async fn player_shared(&self, token: &str) -> Option<PlayerId> {
        if let Some(p) = self.player(token) {
            return Some(p);
        }
        let store = self.redis.as_ref()?;
        if token.len() > 64 {
            return None;
        }
        let found: Option<i64> = match store.client.get(store.key(token)).await {
            Ok(v) => v,
            Err(e) => {
                log::warn!("session lookup in redis failed: {e}");
                None
            }
        };
        let player_id = PlayerId::try_from(found?).ok()?;
        if self.by_token.len() < self.max {
            self.by_token.insert(token.to_string(), player_id);
        }
        Some(player_id)
    }

    /// A new session with a 128-bit random token, or `None` when full.
    pub fn create(&self) -> Option<Session> {
        if self.by_token.len() >= self.max {
            return None;
        }
        let token = format!("{:016x}{:016x}", random_u64(), random_u64());
        let player_id = random_id();
        self.by_token.insert(token.clone(), player_id);
        Some(Session { token, player_id })
    }

    pub fn player(&self, token: &str) -> Option<PlayerId> {
        self.by_token.get(token).map(|p| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_resolve() {
        let s = Sessions::new(3);
        let a = s.create().expect("room");
        let b = s.create().expect("room");
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 32);
        assert_eq!(s.player(&a.token), Some(a.player_id));
        assert_eq!(s.player("nope"), None);
        s.create().expect("room");
        assert!(s.create().is_none(), "bounded");
    }
}
