//! Errors of the node layer, each with a stable code (mapped to the wire
//! by the connection and the HTTP routes).

use matchd_protocol::MatchId;

use crate::cluster::replica::ReplicaError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown ruleset {0:?}")]
    UnknownRuleset(String),
    #[error("this node hosts its maximum of {0} matches")]
    TooManyMatches(usize),
    #[error("the engine is not answering")]
    Unavailable,
    #[error("this node is draining and takes no new matches or players")]
    Draining,
    #[error("a {ruleset} match has {min} to {max} seats, not {asked}")]
    InvalidMaxSeats {
        ruleset: String,
        min: u8,
        max: u8,
        asked: u8,
    },
}

impl EngineError {
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::UnknownRuleset(_) => "unknown_ruleset",
            EngineError::TooManyMatches(_) => "too_many_matches",
            EngineError::Unavailable => "engine_unavailable",
            EngineError::Draining => "draining",
            EngineError::InvalidMaxSeats { .. } => "invalid_max_seats",
        }
    }
}

/// Why [`super::Engine::locate`] found no match to join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error("no live match with id {0}")]
    NotFound(MatchId),
    #[error("the match had ended")]
    Ended,
    #[error("the match's node is gone and its lease has not expired yet; retry shortly")]
    Recovering,
    #[error("redis is unreachable; matches on other nodes cannot be reached now")]
    Redis(String),
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The detail is logged where it is found, never sent to clients.
    #[error("the match's copy in redis cannot be rebuilt")]
    Corrupt(String),
}

impl LocateError {
    pub fn code(&self) -> &'static str {
        match self {
            LocateError::NotFound(_) => "match_not_found",
            LocateError::Ended => "match_ended",
            LocateError::Recovering => "match_recovering",
            LocateError::Redis(_) => "redis_unavailable",
            LocateError::Engine(e) => e.code(),
            LocateError::Corrupt(_) => "match_unrecoverable",
        }
    }
}

impl From<ReplicaError> for LocateError {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::Corrupt(m) => {
                log::error!("a match's copy in redis is unreadable: {m}");
                LocateError::Corrupt(m)
            }
            other => LocateError::Redis(other.to_string()),
        }
    }
}
