//! Property: whatever a random tactics game does, every answer the
//! validation cache would serve equals the answer computed from the state at
//! that moment. This is what keys on `Game::cache_query` (one key per unit
//! kind), the per-seat `Game::query_version` and the precomputed hot
//! queries must guarantee.

use std::rc::Rc;
use std::time::{Duration, Instant};

use matchd_actors::rules::tactics::{TacticsConfig, TacticsGame};
use matchd_actors::rules::Game;
use matchd_actors::testing::{CacheKey, CacheStore as Store};
use matchd_protocol::codec::SharedReply;
use matchd_protocol::{Action, Query, State};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Tick(u8),
    Place { seat: u8, card: u8, x: i32, y: i32 },
    Ready(u8),
    Ask { seat: u8, card: u8 },
    Concede(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..12).prop_map(Op::Tick),
        6 => (0u8..3, 0u8..20, -1i32..6, -1i32..4)
            .prop_map(|(seat, card, x, y)| Op::Place { seat, card, x, y }),
        1 => (0u8..2).prop_map(Op::Ready),
        4 => (0u8..3, 0u8..20).prop_map(|(seat, card)| Op::Ask { seat, card }),
        1 => (0u8..60).prop_map(Op::Concede),
    ]
}

/// Card ids in `seat`'s hand, as the seat sees them.
fn hand(game: &TacticsGame, seat: u8) -> Vec<u32> {
    match game.view(Some(seat), Vec::new()) {
        State::Tactics(v) => v.hand.iter().map(|c| c.card).collect(),
        State::Sandbox { .. } => Vec::new(),
    }
}

/// Picks a card: mostly one from the hand, sometimes any id (maybe unknown).
fn card_id(game: &TacticsGame, seat: u8, pick: u8) -> u32 {
    let cards = hand(game, seat);
    if pick < 15 && !cards.is_empty() {
        cards[pick as usize % cards.len()]
    } else {
        u32::from(pick)
    }
}

/// The cache as the match uses it: keys from `cache_query` and the seat's
/// `query_version`, filled by precomputing hot queries and by asks.
struct Cached {
    store: Store,
    precomputed: [Option<u64>; 2],
}

impl Cached {
    fn key(game: &TacticsGame, seat: u8, normalized: Query) -> CacheKey {
        CacheKey {
            ruleset: "tactics",
            match_id: 1,
            version: game.query_version(seat),
            seat,
            query: normalized,
        }
    }

    /// What the match does after every state change.
    fn precompute(&mut self, game: &TacticsGame, now: Instant) {
        for seat in 0..2u8 {
            let v = game.query_version(seat);
            if self.precomputed[seat as usize] == Some(v) {
                continue;
            }
            self.precomputed[seat as usize] = Some(v);
            for query in game.hot_queries(seat) {
                if let Ok(reply) = game.query(seat, &query) {
                    let key = Self::key(game, seat, query);
                    self.store.put(key, Rc::new(SharedReply::new(reply)), now);
                }
            }
        }
    }

    /// What the match does for a client's query.
    fn ask(&mut self, game: &TacticsGame, seat: u8, query: Query, now: Instant) {
        let fresh = game.query(seat, &query);
        let Some(normalized) = game.cache_query(seat, &query) else {
            return;
        };
        let key = Self::key(game, seat, normalized);
        match self.store.get(&key, now) {
            Some(hit) => assert_eq!(Ok(hit.reply().clone()), fresh, "served stale {key:?}"),
            None => {
                if let Ok(reply) = fresh {
                    self.store.put(key, Rc::new(SharedReply::new(reply)), now);
                }
            }
        }
    }

    /// Every answer the cache would serve now, for any seat and card,
    /// equals the plain answer.
    fn check_all(&mut self, game: &TacticsGame, now: Instant) {
        for seat in 0..3u8 {
            for card in 0..20u32 {
                let query = Query::ValidCells { card };
                let Some(normalized) = game.cache_query(seat, &query) else {
                    continue;
                };
                let key = Self::key(game, seat, normalized);
                if let Some(hit) = self.store.get(&key, now) {
                    assert_eq!(
                        Ok(hit.reply().clone()),
                        game.query(seat, &query),
                        "cache disagrees for card {card} under {key:?}"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn cached_answers_equal_fresh_ones(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..250)) {
        let config = TacticsConfig { deploy_ticks: 40, battle_ticks: 400, ..TacticsConfig::default() };
        let mut game = TacticsGame::new(config, seed);
        let now = Instant::now();
        let mut cache = Cached { store: Store::new(4096, Duration::from_secs(3600)), precomputed: [None; 2] };
        let _ = game.seat_joined(0);
        let _ = game.seat_joined(1);
        cache.precompute(&game, now);
        let mut hits_checked = 0u64;
        for op in ops {
            match op {
                Op::Tick(n) => {
                    for _ in 0..n {
                        let _ = game.tick();
                    }
                }
                Op::Place { seat, card, x, y } => {
                    let card = card_id(&game, seat, card);
                    let _ = game.apply(seat, &Action::Place { card, x, y });
                }
                Op::Ready(seat) => {
                    let _ = game.apply(seat, &Action::Ready);
                }
                Op::Ask { seat, card } => {
                    let card = card_id(&game, seat, card);
                    cache.ask(&game, seat, Query::ValidCells { card }, now);
                }
                Op::Concede(n) => {
                    if n == 0 {
                        let _ = game.apply(0, &Action::Concede);
                    }
                }
            }
            cache.precompute(&game, now);
            cache.check_all(&game, now);
            hits_checked += cache.store.hit_miss().0;
        }
        prop_assert!(hits_checked > 0, "the property never compared a cached answer");
    }
}
