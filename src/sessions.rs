//! Anonymous sessions: a random bearer token per player, kept in memory.

use std::sync::Arc;

use dashmap::DashMap;
use matchd_actors::protocol::PlayerId;
use matchd_actors::registry::{random_id, random_u64};

#[derive(Clone)]
pub struct Sessions {
    by_token: Arc<DashMap<String, PlayerId>>,
    max: usize,
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
        }
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
