//! `Engine`: the cheap, cloneable handle the HTTP layer and the connections
//! use to reach the registry and read the directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use dashmap::DashMap;

use matchd_protocol::{MatchId, PlayerId, Seat};

use super::directory::{Directory, MatchEntry};
use super::error::{EngineError, LocateError};
use super::registry::{
    CreateMatch, GetStats, HandoverAll, QuickJoin, Registry, RegistryStats, RestoreError,
    RestoreMatch,
};
use crate::cluster::control::ControlMsg;
use crate::cluster::replica::{Claim, MatchSnapshot, Replica, ReplicaError};
use crate::config::EngineConfig;
use crate::history::record::Persist;
use crate::rules::{Catalog, Ruleset};
use crate::session::messages::{PlayerSeats, ToConn};
use crate::session::rebuild::RebuildError;

/// How long a caller waits for the registry before answering `engine_unavailable`.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Engine {
    registry: Addr<Registry>,
    directory: Directory,
    catalog: Catalog,
    cfg: Arc<EngineConfig>,
    /// Set once the node drains: no new matches, no new players.
    draining: Arc<AtomicBool>,
    /// Redis replication; `None` when the node runs alone.
    replica: Option<Replica>,
    /// Every open connection, by connection id: the targets of operator
    /// kicks and broadcasts.
    pub(super) connections: Arc<DashMap<u64, (PlayerId, Recipient<ToConn>)>>,
    /// Who holds a seat in which of this node's matches.
    seats: PlayerSeats,
}

/// Where a match lives, as [`Engine::where_is`] sees it without taking it
/// over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whereabouts {
    /// On this node.
    Here,
    /// On `node_id` (its lease in Redis), reachable at `url` if that node
    /// is registered.
    Elsewhere {
        node_id: String,
        url: Option<String>,
    },
    /// No live match with this id is known.
    Unknown,
}

/// A live match of another node, as its Redis copy describes it.
#[derive(Debug, Clone)]
pub struct RemoteMatch {
    pub node_id: String,
    pub url: Option<String>,
    pub snapshot: MatchSnapshot,
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
            Claim::Ended => Err(LocateError::Ended),
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

    /// Where match `id` lives, without taking it over (for reads: the
    /// session lookup, the match summary). [`Engine::locate`] is the one
    /// for joining.
    pub async fn where_is(&self, id: MatchId) -> Result<Whereabouts, ReplicaError> {
        if self.lookup(id).is_some() {
            return Ok(Whereabouts::Here);
        }
        let Some(replica) = &self.replica else {
            return Ok(Whereabouts::Unknown);
        };
        Ok(match replica.owner_url(id).await? {
            Some((node_id, url)) => Whereabouts::Elsewhere { node_id, url },
            None => Whereabouts::Unknown,
        })
    }

    /// A live match another node owns, from its lease and snapshot in
    /// Redis; `None` if it is here, unknown or has no snapshot.
    pub async fn remote_match(&self, id: MatchId) -> Result<Option<RemoteMatch>, ReplicaError> {
        let Whereabouts::Elsewhere { node_id, url } = self.where_is(id).await? else {
            return Ok(None);
        };
        let Some(replica) = &self.replica else {
            return Ok(None);
        };
        Ok(replica.load(id).await?.map(|stored| RemoteMatch {
            node_id,
            url,
            snapshot: stored.snapshot,
        }))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    /// The ruleset called `name`, if this node has it.
    pub fn ruleset(&self, name: &str) -> Option<&Arc<dyn Ruleset>> {
        self.catalog.get(name)
    }

    /// Redis replication, when the node runs with Redis.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// Whether matches are replicated to Redis (so a match not found here
    /// may live on another node).
    pub fn is_replicated(&self) -> bool {
        self.replica.is_some()
    }

    /// How many matches live on this node.
    pub fn live_matches(&self) -> usize {
        self.directory.len()
    }

    /// A function that counts this node's live matches (the node
    /// registration reports it), without holding the engine.
    pub fn match_counter(&self) -> impl Fn() -> u64 + Send + 'static {
        let directory = self.directory.clone();
        move || directory.len() as u64
    }

    /// A connection opened (`conn_id`, for `player`): a target of kicks and
    /// broadcasts until [`Engine::connection_closed`].
    pub fn connection_opened(&self, conn_id: u64, player: PlayerId, conn: Recipient<ToConn>) {
        self.connections.insert(conn_id, (player, conn));
    }

    pub fn connection_closed(&self, conn_id: u64) {
        self.connections.remove(&conn_id);
    }

    /// Applies an operator control message to this node; how many local
    /// targets it reached.
    pub fn apply_control(&self, msg: &ControlMsg) -> usize {
        super::control::apply(self, msg)
    }

    /// Tells every open connection that the node stops (`error
    /// node_stopping`, close 1001); how many were told. One message per
    /// connection, once, at the end of a drain.
    pub fn close_connections(&self) -> usize {
        let targets: Vec<Recipient<ToConn>> = self
            .connections
            .iter()
            .map(|e| e.value().1.clone())
            .collect();
        for conn in &targets {
            conn.do_send(ToConn::NodeStopping);
        }
        targets.len()
    }

    /// Asks every live match to hand itself over to the node at `url`
    /// (drain); how many were asked.
    pub async fn hand_over_all(&self, url: String) -> Result<usize, EngineError> {
        self.registry
            .send(HandoverAll { url })
            .timeout(REGISTRY_TIMEOUT)
            .await
            .map_err(|_| EngineError::Unavailable)
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
        if let Some(found) = self.seats.current(player) {
            return Ok(Some(found));
        }
        match &self.replica {
            Some(replica) => replica.seat_of(player).await,
            None => Ok(None),
        }
    }

    /// At most `limit` live matches with ids above `after`, ordered by id
    /// (a page of [`Engine::list`], without sorting the whole directory).
    pub fn list_page(&self, after: MatchId, limit: usize) -> Vec<MatchEntry> {
        use std::collections::BinaryHeap;
        let limit = limit.max(1);
        // The `limit` smallest ids above `after`: a max-heap of that size.
        let mut heap: BinaryHeap<MatchId> = BinaryHeap::with_capacity(limit + 1);
        for id in self
            .directory
            .iter()
            .map(|e| *e.key())
            .filter(|id| *id > after)
        {
            heap.push(id);
            if heap.len() > limit {
                heap.pop();
            }
        }
        heap.into_sorted_vec()
            .into_iter()
            .filter_map(|id| self.lookup(id))
            .collect()
    }

    /// A new match of `ruleset` with `max_seats` seats (default: the
    /// ruleset's most).
    pub async fn create_match(
        &self,
        ruleset: &str,
        max_seats: Option<u8>,
    ) -> Result<MatchEntry, EngineError> {
        if self.is_draining() {
            return Err(EngineError::Draining);
        }
        self.registry
            .send(CreateMatch {
                ruleset: ruleset.into(),
                max_seats,
            })
            .timeout(REGISTRY_TIMEOUT)
            .await
            .map_err(|_| EngineError::Unavailable)?
    }

    pub async fn quick_join(
        &self,
        ruleset: &str,
        exclude: Vec<MatchId>,
        max_seats: Option<u8>,
    ) -> Result<MatchEntry, EngineError> {
        if self.is_draining() {
            return Err(EngineError::Draining);
        }
        self.registry
            .send(QuickJoin {
                ruleset: ruleset.into(),
                exclude,
                max_seats,
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
