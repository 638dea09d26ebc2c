//! `Registry`: one per node, the root of the supervision tree.
//!
//! It starts one Arbiter per core with one `ValidationCache` shard each,
//! creates matches and spreads them over those Arbiters, keeps the directory
//! `match_id -> address` in a `DashMap` that any thread reads without queueing
//! behind this mailbox, runs quick-join matchmaking, removes stopped matches,
//! and notices match actors that died without stopping (a panic outside the
//! guarded ruleset calls), counting them as crashes.
//!
//! It must never do per-action work: actions go straight from a connection
//! to its match.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;

use matchd_protocol::MatchId;

use super::directory::{Directory, MatchEntry};
use super::error::EngineError;
use crate::cluster::replica::{Replica, Stored};
use crate::config::EngineConfig;
use crate::history::record::Persist;
use crate::metrics as m;
use crate::rules::{Catalog, Ruleset};
use crate::session::messages::{Handover, MatchInfo, MatchStopped, PlayerSeats};
use crate::session::rebuild::{rebuild, RebuildError, Rebuilt};
use crate::session::{MatchSession, MatchSpec};
use crate::util::{random_id, random_u64};
use crate::validation_cache::{CacheStats, GetCacheStats, ValidationCache};

/// Create a match of `ruleset`.
#[derive(Message)]
#[rtype(result = "Result<MatchEntry, EngineError>")]
pub struct CreateMatch {
    pub ruleset: String,
    /// Seats of the new match; `None`: the ruleset's `max_seats`.
    pub max_seats: Option<u8>,
}

/// Find an open match of `ruleset` (not in `exclude`), or create one.
#[derive(Message)]
#[rtype(result = "Result<MatchEntry, EngineError>")]
pub struct QuickJoin {
    pub ruleset: String,
    pub exclude: Vec<MatchId>,
    /// Only matches with exactly this many seats (and a new one has it).
    pub max_seats: Option<u8>,
}

/// Rebuild a match from its Redis copy (failover or handover), unless it
/// runs here already.
#[derive(Message)]
#[rtype(result = "Result<MatchEntry, RestoreError>")]
pub struct RestoreMatch {
    pub stored: Stored,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Rebuild(#[from] RebuildError),
}

/// Hand every live match to a peer (drain): each writes a last snapshot,
/// releases its lease and redirects its members to `url`.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct HandoverAll {
    pub url: String,
}

/// Counts for `/ready` and the metrics.
#[derive(Message)]
#[rtype(result = "RegistryStats")]
pub struct GetStats;

#[derive(Debug, Clone, Default)]
pub struct RegistryStats {
    pub matches_by_ruleset: BTreeMap<String, usize>,
    pub arbiters: usize,
    pub cache: Vec<CacheStats>,
}

pub struct Registry {
    cfg: Arc<EngineConfig>,
    catalog: Catalog,
    directory: Directory,
    arbiters: Vec<Arbiter>,
    caches: Vec<Addr<ValidationCache>>,
    next_arbiter: usize,
    persist: Option<Recipient<Persist>>,
    replica: Option<Replica>,
    seats: PlayerSeats,
    /// Live matches by ruleset, kept as matches start and stop (not
    /// rescanned from the directory).
    live: BTreeMap<&'static str, usize>,
}

impl Registry {
    pub fn new(cfg: Arc<EngineConfig>, catalog: Catalog, directory: Directory) -> Self {
        Self {
            cfg,
            catalog,
            directory,
            arbiters: Vec::new(),
            caches: Vec::new(),
            next_arbiter: 0,
            persist: None,
            replica: None,
            seats: PlayerSeats::default(),
            live: BTreeMap::new(),
        }
    }

    /// The map in which matches record who holds which seat.
    pub fn with_seats(mut self, seats: PlayerSeats) -> Self {
        self.seats = seats;
        self
    }

    /// Every match this registry creates or restores keeps a copy in Redis.
    pub fn with_replica(mut self, replica: Option<Replica>) -> Self {
        self.replica = replica;
        self
    }

    /// Every match this registry creates hands its history to `writer`.
    pub fn with_persist(mut self, writer: Option<Recipient<Persist>>) -> Self {
        self.persist = writer;
        self
    }

    fn create(
        &mut self,
        ruleset_name: &str,
        max_seats: Option<u8>,
        ctx: &mut Context<Self>,
    ) -> Result<MatchEntry, EngineError> {
        let ruleset = self
            .catalog
            .get(ruleset_name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownRuleset(ruleset_name.into()))?;
        let seats = seat_count(&*ruleset, max_seats)?;
        if self.directory.len() >= self.cfg.max_matches {
            return Err(EngineError::TooManyMatches(self.cfg.max_matches));
        }
        let id = loop {
            let id = random_id();
            if !self.directory.contains_key(&id) {
                break id;
            }
        };
        let planned = Planned {
            id,
            ruleset,
            seats,
            seed: random_u64(),
            created_at: SystemTime::now(),
        };
        let entry = self.spawn(ctx, planned, None);
        metrics::counter!(m::MATCHES_CREATED, "ruleset" => entry.info.ruleset).increment(1);
        log::info!(match_id = id, ruleset = entry.info.ruleset, arbiter = entry.info.arbiter; "match created");
        Ok(entry)
    }

    /// Starts a match actor (new, or `rebuilt` from Redis) on the next
    /// arbiter and lists it in the directory.
    fn spawn(
        &mut self,
        ctx: &mut Context<Self>,
        planned: Planned,
        rebuilt: Option<Rebuilt>,
    ) -> MatchEntry {
        let Planned {
            id,
            ruleset,
            seats,
            seed,
            created_at,
        } = planned;
        let arbiter = self.next_arbiter % self.arbiters.len().max(1);
        self.next_arbiter = self.next_arbiter.wrapping_add(1);
        let info = Arc::new(MatchInfo {
            id,
            ruleset: ruleset.name(),
            max_seats: seats,
            occupied: AtomicU8::new(0),
            connected: AtomicU8::new(0),
            joinable: AtomicBool::new(rebuilt.is_none()),
            created_at,
            arbiter,
        });
        let spec = MatchSpec {
            id,
            ruleset,
            seed,
            info: info.clone(),
            cfg: self.cfg.clone(),
            registry: ctx.address().recipient(),
            persist: self.persist.clone(),
            replica: self.replica.clone(),
            seats: self.seats.clone(),
        };
        let make = move || match rebuilt {
            Some(rebuilt) => MatchSession::restored(spec, rebuilt),
            None => MatchSession::new(spec),
        };
        let addr = match self.arbiters.get(arbiter) {
            Some(arb) => MatchSession::start_in_arbiter(&arb.handle(), move |_| make()),
            None => make().start(),
        };
        let entry = MatchEntry { addr, info };
        self.directory.insert(id, entry.clone());
        self.count(entry.info.ruleset, 1);
        entry
    }

    /// Moves the live count of `ruleset` by `delta` and publishes it.
    fn count(&mut self, ruleset: &'static str, delta: isize) {
        let n = self.live.entry(ruleset).or_default();
        *n = n.saturating_add_signed(delta);
        metrics::gauge!(m::MATCHES_LIVE, "ruleset" => ruleset).set(*n as f64);
    }

    /// Publishes every ruleset's count (0 for those without a match).
    fn publish_counts(&mut self) {
        let names: Vec<&'static str> = self.catalog.names().collect();
        for ruleset in names {
            self.count(ruleset, 0);
        }
    }

    /// Removes entries whose actor is gone without having said so.
    fn sweep_dead(&mut self) {
        let dead: Vec<MatchEntry> = self
            .directory
            .iter()
            .filter(|e| !e.addr.connected())
            .map(|e| e.value().clone())
            .collect();
        for e in &dead {
            if self.directory.remove(&e.info.id).is_some() {
                self.count(e.info.ruleset, -1);
            }
            log::error!(match_id = e.info.id, ruleset = e.info.ruleset; "match actor died without stopping; removed");
            metrics::counter!(m::MATCH_CRASHES, "ruleset" => e.info.ruleset).increment(1);
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        let n = self.cfg.arbiter_count();
        for shard in 0..n {
            let arb = Arbiter::new();
            let (cap, ttl) = (
                self.cfg.cache_capacity,
                Duration::from_millis(self.cfg.cache_ttl_ms),
            );
            let cache = Supervisor::start_in_arbiter(&arb.handle(), move |_| {
                ValidationCache::new_on_this_thread(shard, cap, ttl)
            });
            self.caches.push(cache);
            self.arbiters.push(arb);
        }
        ctx.run_interval(Duration::from_secs(1), |act, _| act.sweep_dead());
        self.publish_counts();
        log::info!(node_id = self.cfg.node_id.as_str(), arbiters = n; "registry started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for arb in &self.arbiters {
            arb.stop();
        }
    }
}

impl Handler<CreateMatch> for Registry {
    type Result = Result<MatchEntry, EngineError>;

    fn handle(&mut self, msg: CreateMatch, ctx: &mut Self::Context) -> Self::Result {
        self.create(&msg.ruleset, msg.max_seats, ctx)
    }
}

impl Handler<QuickJoin> for Registry {
    type Result = Result<MatchEntry, EngineError>;

    fn handle(&mut self, msg: QuickJoin, ctx: &mut Self::Context) -> Self::Result {
        if self.catalog.get(&msg.ruleset).is_none() {
            return Err(EngineError::UnknownRuleset(msg.ruleset));
        }
        // Fill the fullest open match first so rooms start quickly. A match
        // may fill up between this check and the join; the connection then
        // asks again with that match excluded.
        let best = self
            .directory
            .iter()
            .filter(|e| {
                let i = &e.info;
                i.ruleset == msg.ruleset
                    && i.joinable.load(Ordering::Relaxed)
                    && i.occupied.load(Ordering::Relaxed) < i.max_seats
                    && !msg.exclude.contains(&i.id)
                    && msg.max_seats.is_none_or(|n| n == i.max_seats)
                    && e.addr.connected()
            })
            .max_by_key(|e| {
                (
                    e.info.occupied.load(Ordering::Relaxed),
                    std::cmp::Reverse(e.info.created_at),
                )
            })
            .map(|e| e.value().clone());
        match best {
            Some(entry) => Ok(entry),
            None => self.create(&msg.ruleset, msg.max_seats, ctx),
        }
    }
}

impl Handler<RestoreMatch> for Registry {
    type Result = Result<MatchEntry, RestoreError>;

    fn handle(&mut self, msg: RestoreMatch, ctx: &mut Self::Context) -> Self::Result {
        let snap = &msg.stored.snapshot;
        let id = snap.match_id;
        if let Some(entry) = self.directory.get(&id).map(|e| e.value().clone()) {
            return Ok(entry); // restored already, by an earlier request
        }
        let ruleset = self
            .catalog
            .get(&snap.ruleset)
            .cloned()
            .ok_or_else(|| EngineError::UnknownRuleset(snap.ruleset.clone()))?;
        if self.directory.len() >= self.cfg.max_matches {
            return Err(EngineError::TooManyMatches(self.cfg.max_matches).into());
        }
        let rebuilt = match rebuild(&*ruleset, msg.stored, self.cfg.ring_buffer) {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!(m::FAILOVERS, "outcome" => "failed").increment(1);
                log::error!(match_id = id; "cannot rebuild the match from redis: {e}");
                return Err(e.into());
            }
        };
        let created_at = SystemTime::UNIX_EPOCH + Duration::from_millis(rebuilt.created_at_ms);
        let (seed, seats) = (rebuilt.seed, rebuilt.seats());
        let planned = Planned {
            id,
            ruleset,
            seats,
            seed,
            created_at,
        };
        let entry = self.spawn(ctx, planned, Some(rebuilt));
        metrics::counter!(m::FAILOVERS, "outcome" => "restored").increment(1);
        Ok(entry)
    }
}

impl Handler<HandoverAll> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: HandoverAll, _: &mut Self::Context) -> usize {
        let mut n = 0;
        for e in self.directory.iter() {
            e.addr.do_send(Handover {
                url: msg.url.clone(),
            });
            n += 1;
        }
        n
    }
}

impl Handler<MatchStopped> for Registry {
    type Result = ();

    fn handle(&mut self, msg: MatchStopped, _: &mut Self::Context) {
        if let Some((_, entry)) = self.directory.remove(&msg.id) {
            self.count(entry.info.ruleset, -1);
        }
    }
}

impl Handler<GetStats> for Registry {
    type Result = ResponseFuture<RegistryStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let mut matches_by_ruleset: BTreeMap<String, usize> =
            self.catalog.names().map(|n| (n.to_string(), 0)).collect();
        for (ruleset, n) in &self.live {
            matches_by_ruleset.insert(ruleset.to_string(), *n);
        }
        let caches = self.caches.clone();
        let arbiters = self.arbiters.len();
        Box::pin(async move {
            let mut cache = Vec::with_capacity(caches.len());
            for c in caches {
                let stats = c
                    .send(GetCacheStats)
                    .timeout(Duration::from_secs(1))
                    .await
                    .unwrap_or_default();
                cache.push(stats);
            }
            RegistryStats {
                matches_by_ruleset,
                arbiters,
                cache,
            }
        })
    }
}

/// What the registry decided about a match before starting it.
struct Planned {
    id: MatchId,
    ruleset: Arc<dyn Ruleset>,
    seats: u8,
    seed: u64,
    created_at: SystemTime,
}

/// The seat count of a new match: `asked`, if within the ruleset's bounds,
/// else the ruleset's default.
fn seat_count(ruleset: &dyn Ruleset, asked: Option<u8>) -> Result<u8, EngineError> {
    let (min, max) = (ruleset.min_seats().max(1), ruleset.max_seats());
    match asked {
        None => Ok(max),
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(asked) => Err(EngineError::InvalidMaxSeats {
            ruleset: ruleset.name().into(),
            min,
            max,
            asked,
        }),
    }
}
