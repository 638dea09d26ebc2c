//! `cache` mode: what a `valid_cells` answer costs with and without the
//! validation cache, on real tactics positions.
//!
//! Uncached, the match computes the answer from the game state and encodes
//! the `reply` frame. Cached, it looks the key up and frames the answer's
//! stored encoding with the client's `client_seq`. Both produce the same
//! bytes (a unit test of the codec checks that).

use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use matchd_actors::rules::tactics::{TacticsConfig, TacticsGame};
use matchd_actors::rules::Game;
use matchd_actors::testing::{CacheKey, CacheStore as Store};
use matchd_protocol::codec::{encode, Encoding, SharedReply};
use matchd_protocol::{Action, Query, Reply, ServerMsg, State};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheReport {
    pub mode: String,
    pub positions: usize,
    pub samples: usize,
    pub encoding: String,
    /// Compute the cells and encode the frame.
    pub uncached_ns: f64,
    /// Build the key (normalise the query), look it up, frame the stored encoding.
    pub cached_ns: f64,
    pub ratio: f64,
    /// The answer alone, without framing: compute vs lookup.
    pub compute_only_ns: f64,
    pub lookup_only_ns: f64,
}

impl CacheReport {
    pub fn table(&self) -> String {
        format!(
            "  {:<28} {} positions, {} (seat, card) samples, {}\n  {:<28} {:.0} ns\n  {:<28} {:.0} ns\n  {:<28} {:.1}x cheaper\n  {:<28} compute {:.0} ns vs lookup {:.0} ns\n",
            "valid_cells answers",
            self.positions,
            self.samples,
            self.encoding,
            "uncached (compute+encode)",
            self.uncached_ns,
            "cached (lookup+frame)",
            self.cached_ns,
            "cached answer",
            self.ratio,
            "without framing",
            self.compute_only_ns,
            self.lookup_only_ns,
        )
    }
}

fn hand(game: &TacticsGame, seat: u8) -> Vec<u32> {
    match game.view(Some(seat), Vec::new()) {
        State::Tactics(v) => v.hand.iter().map(|c| c.card).collect(),
        State::Sandbox { .. } => Vec::new(),
    }
}

/// Plays `n` deterministic games into the battle (units on both sides, some
/// ticks fought) and returns those positions.
pub fn positions(n: usize) -> Vec<TacticsGame> {
    let mut out = Vec::with_capacity(n);
    let mut seed = 1u64;
    while out.len() < n {
        seed += 1;
        let mut g = TacticsGame::new(TacticsConfig::default(), seed);
        let _ = g.seat_joined(0);
        let _ = g.seat_joined(1);
        for seat in 0..2u8 {
            for (i, card) in hand(&g, seat)
                .into_iter()
                .enumerate()
                .take(4 + (seed % 3) as usize)
            {
                let cells = match g.query(seat, &Query::ValidCells { card }) {
                    Ok(Reply::Cells { cells }) => cells,
                    _ => continue,
                };
                if let Some(&[x, y]) = cells.get((seed as usize + i) % cells.len().max(1)) {
                    let _ = g.apply(seat, &Action::Place { card, x, y });
                }
            }
        }
        let _ = g.apply(0, &Action::Ready);
        let _ = g.apply(1, &Action::Ready);
        for _ in 0..(seed % 40) {
            let _ = g.tick();
        }
        if g.wants_tick() {
            out.push(g);
        }
    }
    out
}

fn per_op(start: Instant, ops: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / ops.max(1) as f64
}

/// Runs for about `budget` and reports the per-answer costs.
pub fn run(n_positions: usize, encoding: Encoding, budget: Duration) -> CacheReport {
    let games = positions(n_positions);
    let samples: Vec<(usize, u8, u32)> = games
        .iter()
        .enumerate()
        .flat_map(|(i, g)| {
            (0..2u8).flat_map(move |seat| hand(g, seat).into_iter().map(move |c| (i, seat, c)))
        })
        .collect();
    let key = |i: usize, seat: u8, card: u32| {
        let query = Query::ValidCells { card };
        CacheKey {
            ruleset: "tactics",
            match_id: i as u64,
            version: games[i].query_version(seat),
            seat,
            query: games[i].cache_query(seat, &query).unwrap_or(query),
        }
    };
    let now = Instant::now();
    let mut store = Store::new(samples.len() * 2, Duration::from_secs(3600));
    for &(i, seat, card) in &samples {
        if let Ok(reply) = games[i].query(seat, &Query::ValidCells { card }) {
            let shared = Rc::new(SharedReply::new(reply));
            // Fill the encoded form once, as the first hit would.
            let _ = shared.frame(0, encoding);
            store.put(key(i, seat, card), shared, now);
        }
    }
    // What a hit costs in the match: normalise the query, look it up, frame it.
    let keys: Vec<CacheKey> = samples.iter().map(|&(i, s, c)| key(i, s, c)).collect();
    let rounds = |quarter: Duration, one_round: &mut dyn FnMut()| -> (Instant, usize) {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < quarter {
            one_round();
            n += 1;
        }
        (start, n)
    };
    let quarter = budget / 4;
    let len = samples.len();

    let (t, n) = rounds(quarter, &mut || {
        for (seq, &(i, seat, card)) in samples.iter().enumerate() {
            if let Ok(reply) = games[i].query(seat, &Query::ValidCells { card }) {
                let msg = ServerMsg::Reply {
                    client_seq: seq as u64,
                    reply,
                };
                black_box(encode(&msg, encoding));
            }
        }
    });
    let uncached_ns = per_op(t, n * len);

    let (t, n) = rounds(quarter, &mut || {
        for (seq, &(i, seat, card)) in samples.iter().enumerate() {
            if let Some(shared) = store.get(&key(i, seat, card), now) {
                black_box(shared.frame(seq as u64, encoding));
            }
        }
    });
    let cached_ns = per_op(t, n * len);

    let (t, n) = rounds(quarter, &mut || {
        for &(i, seat, card) in &samples {
            let _ = black_box(games[i].query(seat, &Query::ValidCells { card }));
        }
    });
    let compute_only_ns = per_op(t, n * len);

    let (t, n) = rounds(quarter, &mut || {
        for k in &keys {
            black_box(store.get(k, now));
        }
    });
    let lookup_only_ns = per_op(t, n * len);

    CacheReport {
        mode: "cache".into(),
        positions: games.len(),
        samples: len,
        encoding: encoding.as_str().into(),
        uncached_ns,
        cached_ns,
        ratio: uncached_ns / cached_ns.max(f64::MIN_POSITIVE),
        compute_only_ns,
        lookup_only_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_battles_with_units() {
        let games = positions(5);
        assert_eq!(games.len(), 5);
        for g in &games {
            match g.view(None, Vec::new()) {
                State::Tactics(v) => {
                    assert_eq!(v.phase, "battle");
                    assert!(!v.units.is_empty());
                }
                State::Sandbox { .. } => panic!("not tactics"),
            }
        }
    }

    #[test]
    fn a_short_run_reports_both_costs() {
        let r = run(3, Encoding::Json, Duration::from_millis(40));
        assert!(r.samples > 0);
        assert!(r.uncached_ns > 0.0 && r.cached_ns > 0.0);
    }
}
