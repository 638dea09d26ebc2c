//! `ValidationCache`: memoized rule checks, one shard per match arbiter.
//!
//! The actor owns its shard's store and does the upkeep (TTL sweeps, the
//! entries gauge, clearing on request). Match actors on the same arbiter read
//! and fill the store synchronously through a [`CacheHandle`], so a lookup
//! never crosses threads and never waits in a mailbox.
//!
//! Invariant: a key always contains the game's `version`, which grows on
//! every state change, so a stale verdict can never be served; capacity and
//! TTL only bound memory.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use metrics::{Counter, Histogram};
use rustc_hash::FxHashMap;

use crate::metrics as m;
use matchd_protocol::codec::SharedReply;
use matchd_protocol::{MatchId, Query, Seat};

/// What a memoized answer depends on. The ruleset is part of equality but
/// not of the hash: match ids are unique per node, so it never separates
/// two keys the other fields do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub ruleset: &'static str,
    pub match_id: MatchId,
    /// The game's [`crate::rules::Game::query_version`].
    pub version: u64,
    pub seat: Seat,
    pub query: Query,
}

impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.match_id.hash(state);
        self.version.hash(state);
        self.seat.hash(state);
        self.query.hash(state);
    }
}

struct Entry {
    reply: Rc<SharedReply>,
    at: Instant,
}

/// A bounded map with FIFO eviction and a TTL. Keys are hashed with FxHash:
/// they are built by the engine, never by a client, so a DoS-resistant
/// hasher buys nothing here and costs a third of a lookup.
pub struct Store {
    map: FxHashMap<CacheKey, Entry>,
    order: VecDeque<(CacheKey, Instant)>,
    capacity: usize,
    ttl: Duration,
    hits: u64,
    misses: u64,
    hit_counter: Counter,
    miss_counter: Counter,
    eviction_counter: Counter,
    lookup_seconds: Histogram,
}

impl Store {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            map: FxHashMap::default(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            ttl,
            hits: 0,
            misses: 0,
            hit_counter: metrics::counter!(m::CACHE_HITS),
            miss_counter: metrics::counter!(m::CACHE_MISSES),
            eviction_counter: metrics::counter!(m::CACHE_EVICTIONS),
            lookup_seconds: metrics::histogram!(m::CACHE_LOOKUP_SECONDS),
        }
    }

    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Rc<SharedReply>> {
        match self.map.get(key) {
            Some(e) if now.duration_since(e.at) < self.ttl => {
                self.hits += 1;
                self.hit_counter.increment(1);
                Some(e.reply.clone())
            }
            _ => {
                self.misses += 1;
                self.miss_counter.increment(1);
                None
            }
        }
    }

    /// Whether `key` holds a live entry; counts neither a hit nor a miss.
    pub fn contains(&self, key: &CacheKey, now: Instant) -> bool {
        self.map
            .get(key)
            .is_some_and(|e| now.duration_since(e.at) < self.ttl)
    }

    pub fn put(&mut self, key: CacheKey, reply: Rc<SharedReply>, now: Instant) {
        while self.map.len() >= self.capacity {
            if !self.evict_oldest() {
                break;
            }
        }
        self.order.push_back((key.clone(), now));
        self.map.insert(key, Entry { reply, at: now });
    }

    /// Drops the oldest entry; false when empty.
    fn evict_oldest(&mut self) -> bool {
        let Some((key, at)) = self.order.pop_front() else {
            return false;
        };
        // The order queue may hold a key that was re-inserted later; only
        // drop the map entry that this queue slot created.
        if self.map.get(&key).is_some_and(|e| e.at == at) {
            self.map.remove(&key);
            self.eviction_counter.increment(1);
        }
        true
    }

    /// Removes expired entries; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let before = self.map.len();
        while let Some((_, at)) = self.order.front() {
            if now.duration_since(*at) < self.ttl {
                break;
            }
            self.evict_oldest();
        }
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    pub fn hit_miss(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

thread_local! {
    static LOCAL: RefCell<Option<Rc<RefCell<Store>>>> = const { RefCell::new(None) };
}

/// Synchronous access to the cache shard of the current arbiter.
#[derive(Clone)]
pub struct CacheHandle(Rc<RefCell<Store>>);

impl CacheHandle {
    /// The shard of the calling thread, if a `ValidationCache` runs here.
    pub fn local() -> Option<Self> {
        LOCAL.with(|l| l.borrow().clone().map(CacheHandle))
    }

    /// Looks `key` up, timing the lookup for the latency histogram.
    pub fn get(&self, key: &CacheKey) -> Option<Rc<SharedReply>> {
        let start = Instant::now();
        let mut store = self.0.borrow_mut();
        let found = store.get(key, start);
        store.lookup_seconds.record(start.elapsed().as_secs_f64());
        found
    }

    pub fn contains(&self, key: &CacheKey) -> bool {
        self.0.borrow().contains(key, Instant::now())
    }

    pub fn put(&self, key: CacheKey, reply: Rc<SharedReply>) {
        self.0.borrow_mut().put(key, reply, Instant::now());
    }
}

/// Ask a shard for its size and counters.
#[derive(Message)]
#[rtype(result = "CacheStats")]
pub struct GetCacheStats;

#[derive(Debug, Clone, Copy, Default)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
}

/// Drop every entry of a shard.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClearCache;

/// The actor owning one shard.
pub struct ValidationCache {
    shard: usize,
    store: Rc<RefCell<Store>>,
}

impl ValidationCache {
    /// Must be called on the arbiter thread the shard serves: it publishes
    /// the store to that thread's match actors.
    pub fn new_on_this_thread(shard: usize, capacity: usize, ttl: Duration) -> Self {
        let store = Rc::new(RefCell::new(Store::new(capacity, ttl)));
        LOCAL.with(|l| *l.borrow_mut() = Some(store.clone()));
        Self { shard, store }
    }

    fn sweep_interval(&self) -> Duration {
        let ttl = self.store.borrow().ttl;
        (ttl / 2).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Actor for ValidationCache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        ctx.run_interval(self.sweep_interval(), |act, _| {
            let mut store = act.store.borrow_mut();
            store.sweep(Instant::now());
            metrics::gauge!(m::CACHE_ENTRIES, "shard" => act.shard.to_string())
                .set(store.len() as f64);
        });
    }
}

impl Supervised for ValidationCache {
    fn restarting(&mut self, _: &mut Self::Context) {
        log::warn!(shard = self.shard; "validation cache restarting; clearing it");
        self.store.borrow_mut().clear();
    }
}

impl Handler<GetCacheStats> for ValidationCache {
    type Result = MessageResult<GetCacheStats>;

    fn handle(&mut self, _: GetCacheStats, _: &mut Self::Context) -> Self::Result {
        let store = self.store.borrow();
        let (hits, misses) = store.hit_miss();
        MessageResult(CacheStats {
            entries: store.len(),
            hits,
            misses,
        })
    }
}

impl Handler<ClearCache> for ValidationCache {
    type Result = ();

    fn handle(&mut self, _: ClearCache, _: &mut Self::Context) {
        self.store.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matchd_protocol::Reply;

    fn key(version: u64) -> CacheKey {
        CacheKey {
            ruleset: "tactics",
            match_id: 1,
            version,
            seat: 0,
            query: Query::ValidCells { card: 1 },
        }
    }

    fn reply(n: i32) -> Rc<SharedReply> {
        Rc::new(SharedReply::new(Reply::Cells {
            cells: vec![[n, 0]],
        }))
    }

    fn got(s: &mut Store, k: &CacheKey, now: Instant) -> Option<Reply> {
        s.get(k, now).map(|r| r.reply().clone())
    }

    fn plain(n: i32) -> Option<Reply> {
        Some(reply(n).reply().clone())
    }

    #[test]
    fn capacity_ttl_and_versioned_keys() {
        let t0 = Instant::now();
        let mut s = Store::new(2, Duration::from_secs(10));
        s.put(key(1), reply(1), t0);
        s.put(key(2), reply(2), t0);
        assert_eq!(got(&mut s, &key(1), t0), plain(1));
        // A new version is a different key: a miss, never the old verdict.
        assert_eq!(got(&mut s, &key(3), t0), None);
        s.put(key(3), reply(3), t0);
        assert_eq!(s.len(), 2, "capacity bounds the store");
        assert_eq!(got(&mut s, &key(1), t0), None, "oldest evicted first");
        let later = t0 + Duration::from_secs(11);
        assert!(!s.contains(&key(3), later));
        assert_eq!(
            got(&mut s, &key(3), later),
            None,
            "expired entries are not served"
        );
        assert_eq!(s.sweep(later), 2);
        assert!(s.is_empty());
        assert_eq!(s.hit_miss(), (1, 3));
    }

    #[test]
    fn reinserted_key_survives_eviction_of_its_old_slot() {
        let t0 = Instant::now();
        let mut s = Store::new(2, Duration::from_secs(10));
        s.put(key(1), reply(1), t0);
        let t1 = t0 + Duration::from_millis(1);
        s.put(key(1), reply(9), t1);
        s.put(key(2), reply(2), t1);
        assert_eq!(got(&mut s, &key(1), t1), plain(9));
    }
}
