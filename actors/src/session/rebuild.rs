//! Rebuilding a match from its Redis copy: restore the last snapshot and
//! replay the later batches' inputs on it. Pure: no actor, no I/O; the
//! registry calls it and starts the match it returns.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};

use matchd_protocol::{Event, PlayerId, Seat};

use crate::cluster::replica::{Input, Recorded, Stored};
use crate::rules::{Game, Ruleset};

/// A match rebuilt from its Redis copy, ready to run (see [`rebuild`]).
pub struct Rebuilt {
    pub(super) game: Box<dyn Game>,
    pub(super) players: Vec<Option<PlayerId>>,
    pub(super) participants: Vec<(Seat, PlayerId)>,
    pub(super) seq: u64,
    pub(super) ring: VecDeque<Recorded>,
    pub(super) batch_no: u64,
    pub(super) snap_batch: u64,
    pub created_at_ms: u64,
    pub seed: u64,
}

/// Why a stored match cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    #[error("the match had ended")]
    Ended,
    #[error("the stored match does not replay: {0}")]
    Corrupt(String),
}

impl Rebuilt {
    /// The match's seat count.
    pub fn seats(&self) -> u8 {
        u8::try_from(self.players.len()).unwrap_or(u8::MAX)
    }
}

/// Records that `player` took `seat` (once per pair).
pub(super) fn add_participant(
    participants: &mut Vec<(Seat, PlayerId)>,
    seat: Seat,
    player: PlayerId,
) {
    if !participants.contains(&(seat, player)) {
        participants.push((seat, player));
    }
}

/// Appends to a ring buffer of at most `cap` events.
pub(super) fn push_ring(ring: &mut VecDeque<Recorded>, e: Recorded, cap: usize) {
    if ring.len() >= cap.max(1) {
        ring.pop_front();
    }
    ring.push_back(e);
}

/// Restores the snapshot and replays the later batches' inputs on it. The
/// replayed game must produce the recorded events' count and `seq`s.
pub fn rebuild(
    ruleset: &dyn Ruleset,
    stored: Stored,
    ring_len: usize,
) -> Result<Rebuilt, RebuildError> {
    let corrupt = |m: String| RebuildError::Corrupt(m);
    let snap = stored.snapshot;
    let run = move || -> Result<Rebuilt, RebuildError> {
        let mut game = ruleset
            .restore(&snap.game)
            .ok_or_else(|| corrupt("the game snapshot does not decode".into()))?;
        let mut players = snap.players.clone();
        // The match's own seat count (it may have fewer than the most).
        let seats = players.len().clamp(
            usize::from(ruleset.min_seats().max(1)),
            usize::from(ruleset.max_seats()),
        );
        players.resize(seats, None);
        let mut participants = snap.participants.clone();
        let mut seq = snap.seq;
        let mut ring = VecDeque::new();
        let mut batch_no = snap.batch;
        for (n, batch) in stored.batches {
            if batch.ended {
                return Err(RebuildError::Ended);
            }
            if n > snap.batch {
                let mut produced = 0usize;
                for input in batch.inputs {
                    let outcome = match input {
                        Input::SeatJoined { seat, player_id } => {
                            if let Some(p) = players.get_mut(usize::from(seat)) {
                                *p = Some(player_id);
                            }
                            add_participant(&mut participants, seat, player_id);
                            produced += 1; // player_joined
                            game.seat_joined(seat)
                        }
                        Input::SeatLeft { seat } => {
                            if let Some(p) = players.get_mut(usize::from(seat)) {
                                *p = None;
                            }
                            produced += 1; // player_left
                            game.seat_left(seat)
                        }
                        Input::Apply { seat, action } => {
                            game.apply(seat, &action).map_err(|r| {
                                corrupt(format!("a recorded action is refused now: {}", r.code))
                            })?
                        }
                        Input::Tick => game.tick(),
                    };
                    produced += outcome.events.len();
                }
                let engine_events = batch
                    .events
                    .iter()
                    .filter(|e| {
                        matches!(
                            e.event,
                            Event::PlayerDisconnected { .. } | Event::PlayerReconnected { .. }
                        )
                    })
                    .count();
                if produced + engine_events != batch.events.len() {
                    return Err(corrupt(format!(
                        "batch {n} replays to {} events, {} recorded",
                        produced + engine_events,
                        batch.events.len()
                    )));
                }
                batch_no = n;
            }
            for e in batch.events {
                if n > snap.batch {
                    if e.seq != seq + 1 {
                        return Err(corrupt(format!("seq {} follows {seq}", e.seq)));
                    }
                    seq = e.seq;
                }
                push_ring(&mut ring, e, ring_len);
            }
        }
        // Resume replays from the ring, so it must end at `seq` without a
        // hole (a snapshot written after an outage covers events the
        // stream never got): keep only the gap-free tail.
        let mut expect = seq;
        let keep = ring
            .iter()
            .rev()
            .take_while(|e| {
                let fits = e.seq == expect;
                expect = expect.wrapping_sub(1);
                fits
            })
            .count();
        ring.drain(..ring.len() - keep);
        Ok(Rebuilt {
            game,
            players,
            participants,
            seq,
            ring,
            batch_no,
            snap_batch: snap.batch,
            created_at_ms: snap.created_at_ms,
            seed: snap.seed,
        })
    };
    catch_unwind(AssertUnwindSafe(run))
        .unwrap_or_else(|_| Err(RebuildError::Corrupt("the ruleset panicked".into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::replica::{Batch, MatchSnapshot};
    use crate::rules::tactics::Tactics;
    use matchd_protocol::{Action, Query};
    use matchd_protocol::{Reply, State};

    /// Plays `inputs` on `game` the way the match does and records the
    /// batch it would write: the engine's membership events, then the
    /// ruleset's, numbered from `seq`.
    fn play(game: &mut dyn Game, seq: &mut u64, inputs: Vec<Input>) -> Batch {
        let mut events = Vec::new();
        for input in &inputs {
            let mut out = Vec::new();
            let outcome = match input {
                Input::SeatJoined { seat, player_id } => {
                    out.push(Event::PlayerJoined {
                        seat: *seat,
                        player_id: *player_id,
                    });
                    game.seat_joined(*seat)
                }
                Input::SeatLeft { seat } => {
                    out.push(Event::PlayerLeft { seat: *seat });
                    game.seat_left(*seat)
                }
                Input::Apply { seat, action } => game.apply(*seat, action).expect("accepted"),
                Input::Tick => game.tick(),
            };
            out.extend(outcome.events);
            for event in out {
                *seq += 1;
                events.push(Recorded {
                    seq: *seq,
                    seat: None,
                    event,
                    client_seq: None,
                });
            }
        }
        Batch {
            inputs,
            events,
            ended: false,
        }
    }

    /// Every placement `seat` can make now, first cell of each card.
    fn placements(game: &dyn Game, seat: Seat) -> Vec<Action> {
        let State::Tactics(view) = game.view(Some(seat), Vec::new()) else {
            panic!("tactics");
        };
        view.hand
            .iter()
            .filter_map(
                |c| match game.query(seat, &Query::ValidCells { card: c.card }) {
                    Ok(Reply::Cells { cells }) => cells.first().map(|[x, y]| Action::Place {
                        card: c.card,
                        x: *x,
                        y: *y,
                    }),
                    _ => None,
                },
            )
            .collect()
    }

    #[test]
    fn rebuild_replays_the_stream_on_the_snapshot() {
        let ruleset = Tactics::default();
        let mut game = ruleset.new_game(42);
        let mut seq = 0;
        let mut batches = Vec::new();
        let joins = vec![
            Input::SeatJoined {
                seat: 0,
                player_id: 7,
            },
            Input::SeatJoined {
                seat: 1,
                player_id: 8,
            },
        ];
        batches.push((1, play(&mut *game, &mut seq, joins)));
        // The snapshot includes batch 1; batches 2.. are replayed on it.
        let snapshot = MatchSnapshot {
            match_id: 1,
            ruleset: "tactics".into(),
            seq,
            batch: 1,
            seed: 42,
            created_at_ms: 0,
            players: vec![Some(7), Some(8)],
            participants: vec![(0, 7), (1, 8)],
            game: game.snapshot().expect("snapshots"),
        };
        for n in 2..6 {
            let seat = (n % 2) as Seat;
            let mut inputs = vec![Input::Tick, Input::Tick];
            if let Some(action) = placements(&*game, seat).into_iter().next() {
                inputs.push(Input::Apply { seat, action });
            }
            batches.push((n, play(&mut *game, &mut seq, inputs)));
        }
        let applied = batches.iter().flat_map(|(_, b)| &b.inputs);
        assert!(applied.filter(|i| matches!(i, Input::Apply { .. })).count() >= 3);
        let stored = Stored {
            snapshot: snapshot.clone(),
            batches: batches.clone(),
        };
        let rebuilt = rebuild(&ruleset, stored, 1024).expect("rebuilds");
        assert_eq!(rebuilt.game.snapshot(), game.snapshot());
        assert_eq!(rebuilt.seq, seq);
        assert_eq!(rebuilt.batch_no, 5);
        assert_eq!(rebuilt.players, vec![Some(7), Some(8)]);
        assert_eq!(rebuilt.participants, vec![(0, 7), (1, 8)]);
        // The ring holds every event still in the stream, older ones too.
        let ring: Vec<u64> = rebuilt.ring.iter().map(|e| e.seq).collect();
        assert_eq!(ring, (1..=seq).collect::<Vec<_>>());

        // Events the stream missed (an outage before the snapshot): the
        // ring keeps only what ends at the snapshot's seq without a hole.
        let mut outage = snapshot.clone();
        outage.seq += 5;
        let later: Vec<_> = batches[1..]
            .iter()
            .map(|(n, b)| {
                let mut b = b.clone();
                b.events.iter_mut().for_each(|e| e.seq += 5);
                (*n, b)
            })
            .collect();
        let mut with_hole = vec![batches[0].clone()];
        with_hole.extend(later);
        let stored = Stored {
            snapshot: outage,
            batches: with_hole,
        };
        let rebuilt = rebuild(&ruleset, stored, 1024).expect("rebuilds");
        let ring: Vec<u64> = rebuilt.ring.iter().map(|e| e.seq).collect();
        assert_eq!(ring.first().copied(), Some(snapshot.seq + 6));
        assert_eq!(ring.last().copied(), Some(seq + 5));

        // A lost input shows as a replay that does not match the record.
        let mut broken = batches.clone();
        broken[2].1.inputs.pop();
        let stored = Stored {
            snapshot: snapshot.clone(),
            batches: broken,
        };
        assert!(matches!(
            rebuild(&ruleset, stored, 1024),
            Err(RebuildError::Corrupt(_))
        ));
        // An ended match is not brought back.
        let mut ended = batches;
        ended[4].1.ended = true;
        let stored = Stored {
            snapshot,
            batches: ended,
        };
        assert_eq!(
            rebuild(&ruleset, stored, 1024).err(),
            Some(RebuildError::Ended)
        );
    }
}
