//! `Engine`: the cheap, cloneable handle the HTTP layer and the connections
//! use to reach the registry and read the directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use dashmap::DashMap;

use crate::config::EngineConfig;
use crate::connection::ToConn;
use crate::match_session::RebuildError;
use crate::protocol::{MatchId, PlayerId, Seat};
use crate::registry::{
    CreateMatch, Directory, EngineError, GetStats, MatchEntry, PlayerSeats, QuickJoin, Registry,
    RegistryStats, RestoreError, RestoreMatch,
};
use crate::replica::{Claim, Replica, ReplicaError};
use crate::rules::Catalog;
use crate::writer::Persist;

/// How long a caller waits for the registry before answering `engine_unavailable`.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Engine {
    pub registry: Addr<Registry>,
    pub directory: Directory,
    pub catalog: Catalog,
    pub cfg: Arc<EngineConfig>,
    /// Set once the node drains: no new matches, no new players.
    draining: Arc<AtomicBool>,
    /// Redis replication; `None` when the node runs alone.
    pub replica: Option<Replica>,
    /// Every open connection, by connection id: the targets of operator
    /// kicks and broadcasts.
    pub connections: Arc<DashMap<u64, (PlayerId, Recipient<ToConn>)>>,
    /// Who holds a seat in which of this node's matches.
    pub seats: PlayerSeats,
}

/// Where a match is, as [`Engine::locate`] found it.
#[derive(Clone)]
pub enum Located {
    Here(MatchEntry),
    /// Another node owns it: the client should go to `url`.
    Elsewhere {
        node_id: String,
        url: String,
    },
}

/// Why [`Engine::locate`] found no match to join.
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
    #[error("the match's copy in redis cannot be rebuilt: {0}")]
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
            ReplicaError::Corrupt(m) => LocateError::Corrupt(m),
            other => LocateError::Redis(other.to_string()),
        }
    }
}

impl Engine {
    /// Starts the registry (and through it the arbiters and cache shards) on
    /// the current arbiter. Call from inside a running actix `System`.
    pub fn start(cfg: EngineConfig, catalog: Catalog) -> Self {
        Self::start_with(cfg, catalog, None)
    }

    /// Like [`Engine::start`], with every match's history sent to `persist`
    /// (the node's `PersistenceWriter`).
    pub fn start_with(
        cfg: EngineConfig,
        catalog: Catalog,
        persist: Option<Recipient<Persist>>,
    ) -> Self {
        Self::start_replicated(cfg, catalog, persist, None)
    }

    /// Like [`Engine::start_with`], every match also keeping a copy in
    /// Redis through `replica`, so any node can take it over.
    pub fn start_replicated(
        cfg: EngineConfig,
        catalog: Catalog,
        persist: Option<Recipient<Persist>>,
        replica: Option<Replica>,
    ) -> Self {
        let cfg = Arc::new(cfg);
        let directory = Directory::default();
        let seats = PlayerSeats::default();
        let registry = Registry::new(cfg.clone(), catalog.clone(), directory.clone())
            .with_persist(persist)
            .with_replica(replica.clone())
            .with_seats(seats.clone())
            .start();
        Self {
            registry,
            directory,
            catalog,
            cfg,
            draining: Arc::default(),
            replica,
            connections: Arc::default(),
            seats,
        }
    }

    /// Finds match `id`: here, on another node (by its lease in Redis), or,
    /// when its node is gone (lease expired), rebuilt here from its
    /// snapshot and stream (failover).
    pub async fn locate(&self, id: MatchId) -> Result<Located, LocateError> {
        if let Some(entry) = self.lookup(id) {
            return Ok(Located::Here(entry));
        }
        let Some(replica) = &self.replica else {
            return Err(LocateError::NotFound(id));
        };
        let claim = if self.is_draining() {
            // A draining node takes no match over; it only points the way.
            match replica.owner(id).await? {
                Some(owner) if owner != replica.node_id() => Claim::Theirs(owner),
                _ => return Err(EngineError::Draining.into()),
            }
        } else {
            replica.claim(id).await?
        };
        match claim {
            Claim::Unknown => Err(LocateError::NotFound(id)),
            Claim::Theirs(node_id) => match replica.node_url(&node_id).await? {
                Some(url) => Ok(Located::Elsewhere { node_id, url }),
                None => Err(LocateError::Recovering),
            },
            Claim::Ours => {
                let Some(stored) = replica.load(id).await? else {
                    let _ = replica.release(id).await;
                    return Err(LocateError::NotFound(id));
                };
                let restored = self
                    .registry
                    .send(RestoreMatch { stored })
                    .timeout(REGISTRY_TIMEOUT)
                    .await
                    .map_err(|_| EngineError::Unavailable)?;
                match restored {
                    Ok(entry) => Ok(Located::Here(entry)),
                    Err(RestoreError::Rebuild(RebuildError::Ended)) => {
                        let _ = replica.forget(id).await;
                        Err(LocateError::Ended)
                    }
                    Err(RestoreError::Rebuild(RebuildError::Corrupt(m))) => {
                        let _ = replica.release(id).await;
                        Err(LocateError::Corrupt(m))
                    }
                    Err(RestoreError::Engine(e)) => {
                        let _ = replica.release(id).await;
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// From now on the node takes no new matches and no new players;
    /// matches under way go on. Returns false if it was draining already.
    pub fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::SeqCst)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Live matches that someone is still connected to.
    pub fn busy_matches(&self) -> usize {
        self.directory
            .iter()
            .filter(|e| e.info.connected.load(Ordering::Relaxed) > 0)
            .count()
    }

    /// The directory entry of a live match, read without messaging anyone.
    pub fn lookup(&self, id: MatchId) -> Option<MatchEntry> {
        self.directory.get(&id).map(|e| e.value().clone())
    }

    /// The seat `player` holds, in a match of this node or (with Redis) of
    /// any node: `(match_id, seat)`.
    pub async fn seat_of(&self, player: PlayerId) -> Result<Option<(MatchId, Seat)>, ReplicaError> {
        if let Some(found) = self.seats.get(&player).map(|e| *e.value()) {
            return Ok(Some(found));
        }
        match &self.replica {
            Some(replica) => replica.seat_of(player).await,
            None => Ok(None),
        }
    }

    /// Every live match, ordered by id.
    pub fn list(&self) -> Vec<MatchEntry> {
        let mut all: Vec<MatchEntry> = self.directory.iter().map(|e| e.value().clone()).collect();
        all.sort_by_key(|e| e.info.id);
        all
    }

    pub async fn create_match(&self, ruleset: &str) -> Result<MatchEntry, EngineError> {
        if self.is_draining() {
            return Err(EngineError::Draining);
        }
        self.registry
            .send(CreateMatch {
                ruleset: ruleset.into(),
            })
            .timeout(REGISTRY_TIMEOUT)
            .await
            .map_err(|_| EngineError::Unavailable)?
    }

    pub async fn quick_join(
        &self,
        ruleset: &str,
        exclude: Vec<MatchId>,
    ) -> Result<MatchEntry, EngineError> {
        if self.is_draining() {
            return Err(EngineError::Draining);
        }
        self.registry
            .send(QuickJoin {
                ruleset: ruleset.into(),
                exclude,
            })
            .timeout(REGISTRY_TIMEOUT)
            .await
            .map_err(|_| EngineError::Unavailable)?
    }

    pub async fn stats(&self) -> Result<RegistryStats, EngineError> {
        self.registry
            .send(GetStats)
            .timeout(REGISTRY_TIMEOUT)
            .await
            .map_err(|_| EngineError::Unavailable)
    }
}
