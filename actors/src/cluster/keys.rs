//! Every Redis key and channel name matchd uses, in one place. All of them
//! start with the node's configured prefix (`MATCHD_REDIS_PREFIX`), so
//! several clusters (or tests) can share one Redis.
//!
//! | key | type | written by | holds |
//! |---|---|---|---|
//! | `{p}match:{id}:owner` | string, TTL | [`super::replica`] | the lease: the owning node's id |
//! | `{p}match:{id}:snap` | bytes | [`super::replica`] | bincode `MatchSnapshot` |
//! | `{p}match:{id}:log` | stream | [`super::replica`] | bincode `Batch` per entry, id `{batch}-1` |
//! | `{p}match:{id}:ended` | string, TTL | [`super::replica`] | the tombstone of an ended match |
//! | `{p}player:{id}` | string | [`super::replica`] | `{match_id}:{seat}` the player holds |
//! | `{p}seats:{id}` | set, TTL | [`super::replica`] | ids of the matches where the player holds (or is taking) a seat, for the cluster-wide seat cap |
//! | `{p}node:{id}` | string, TTL | [`super::nodes`] | JSON `NodeInfo` of a live node |
//! | `{p}node-ids` | set | [`super::nodes`] | ids of registered nodes |
//! | `{p}session:{token}` | string, TTL | the binary's session store | the player id of a session token |
//! | `{p}revoked:{player}` | string, TTL | the binary's session store | when the player's sessions were revoked (Unix ms) |
//! | `{p}control` | pub/sub channel | [`super::control`] | JSON `ControlMsg` |

use std::sync::Arc;

use matchd_protocol::{MatchId, PlayerId};

const SNAPSHOT: &str = ":snap";
const ENDED: &str = ":ended";

/// The key names under one prefix; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: Arc<str>,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lease of match `id`.
    pub fn match_owner(&self, id: MatchId) -> String {
        format!("{}match:{id}:owner", self.prefix)
    }

    /// The tombstone of an ended match: written with its last batch, kept
    /// as long as a copy could be, so an ended match is never rebuilt.
    pub fn match_ended(&self, id: MatchId) -> String {
        format!("{}match:{id}{ENDED}", self.prefix)
    }

    /// The last snapshot of match `id`.
    pub fn match_snapshot(&self, id: MatchId) -> String {
        format!("{}match:{id}{SNAPSHOT}", self.prefix)
    }

    /// For a script that names matches it reads from a set: the key of
    /// match `id`'s snapshot is `before + id + snapshot`, of its tombstone
    /// `before + id + ended`: `(before, snapshot, ended)`.
    pub fn match_key_parts(&self) -> (String, &'static str, &'static str) {
        (format!("{}match:", self.prefix), SNAPSHOT, ENDED)
    }

    /// The stream of batches of match `id`.
    pub fn match_log(&self, id: MatchId) -> String {
        format!("{}match:{id}:log", self.prefix)
    }

    /// The seat `player` holds, on any node.
    pub fn player(&self, player: PlayerId) -> String {
        format!("{}player:{player}", self.prefix)
    }

    /// The matches where `player` holds a seat, on any node.
    pub fn seats(&self, player: PlayerId) -> String {
        format!("{}seats:{player}", self.prefix)
    }

    /// The registration of node `id`.
    pub fn node(&self, id: &str) -> String {
        format!("{}node:{id}", self.prefix)
    }

    /// The set of registered node ids.
    pub fn node_ids(&self) -> String {
        format!("{}node-ids", self.prefix)
    }

    /// A session token (the binary stores only what the session needs).
    pub fn session(&self, token: &str) -> String {
        format!("{}session:{token}", self.prefix)
    }

    /// The prefix of `{prefix}revoked:{player}`: when the player's sessions
    /// were last revoked (Unix ms); sessions made before it are void.
    pub fn revoked_sessions_of_key_prefix(&self) -> String {
        format!("{}revoked:", self.prefix)
    }

    /// The pub/sub channel of operator control messages.
    pub fn control(&self) -> String {
        format!("{}control", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_starts_with_the_prefix_and_names_its_subject() {
        let k = Keys::new("mx:");
        assert_eq!(k.match_owner(7), "mx:match:7:owner");
        assert_eq!(k.match_snapshot(7), "mx:match:7:snap");
        assert_eq!(k.match_log(7), "mx:match:7:log");
        assert_eq!(k.player(9), "mx:player:9");
        assert_eq!(k.node("n1"), "mx:node:n1");
        assert_eq!(k.node_ids(), "mx:node-ids");
        assert_eq!(k.session("ab"), "mx:session:ab");
        assert_eq!(k.control(), "mx:control");
        assert_eq!(k.seats(9), "mx:seats:9");
        assert_eq!(k.match_ended(7), "mx:match:7:ended");
        // What a script builds from the parts is the same key.
        let (before, snap, ended) = k.match_key_parts();
        assert_eq!(format!("{before}7{snap}"), k.match_snapshot(7));
        assert_eq!(format!("{before}7{ended}"), k.match_ended(7));
    }
}
