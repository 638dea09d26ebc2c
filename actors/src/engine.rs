//! `Engine`: the cheap, cloneable handle the HTTP layer and the connections
//! use to reach the registry and read the directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::config::EngineConfig;
use crate::protocol::MatchId;
use crate::registry::{
    CreateMatch, Directory, EngineError, GetStats, MatchEntry, QuickJoin, Registry, RegistryStats,
};
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
        let cfg = Arc::new(cfg);
        let directory = Directory::default();
        let registry = Registry::new(cfg.clone(), catalog.clone(), directory.clone())
            .with_persist(persist)
            .start();
        Self {
            registry,
            directory,
            catalog,
            cfg,
            draining: Arc::default(),
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
