//! The match actor's inbox (what connections, the registry and operators
//! send it) and outbox (what it sends connections and the registry), with
//! the state it shares with the node ([`MatchInfo`], [`PlayerSeats`]).
//! Defined here, beside the types they carry, so that no module needs the
//! actor's file to talk to it.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use dashmap::DashMap;

use matchd_protocol::codec::{Encoding, Out};
use matchd_protocol::{Action, MatchId, PlayerId, Query, Seat};

use super::MatchSession;

// ---- inbox ----

/// Take a seat (or take back the seat this player already holds).
#[derive(Message)]
#[rtype(result = "Result<JoinAck, JoinError>")]
pub struct Join {
    pub player_id: PlayerId,
    pub conn_id: u64,
    pub conn: Recipient<ToConn>,
    /// The connection's count of queued, unwritten bytes.
    pub backlog: Arc<Backlog>,
    pub encoding: Encoding,
    /// A resume: the player must hold a seat here already, and wants every
    /// event after this `seq` (the last one its client saw).
    pub resume_from: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinAck {
    pub match_id: MatchId,
    pub seat: Seat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the match has no free seat")]
    Full,
    #[error("the match no longer accepts new players")]
    Closed,
    #[error("the match has ended")]
    Ended,
    #[error("you hold no seat in this match")]
    NotMember,
    #[error(
        "the match's node cannot reach Redis to confirm it still owns the match; retry shortly"
    )]
    Recovering,
    #[error("you already hold as many seats as a player may; leave a match first")]
    TooManySeats,
}

impl JoinError {
    pub fn code(self) -> &'static str {
        match self {
            JoinError::Full => "match_full",
            JoinError::Closed => "match_closed",
            JoinError::Ended => "match_ended",
            JoinError::NotMember => "not_a_member",
            JoinError::Recovering => "match_recovering",
            JoinError::TooManySeats => "too_many_seats",
        }
    }
}

/// A player's action, answered through the member's connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Act {
    pub seat: Seat,
    pub conn_id: u64,
    pub client_seq: u64,
    pub action: Action,
    pub encoding: Encoding,
    pub received: Instant,
}

/// A player's query, answered through the member's connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ask {
    pub seat: Seat,
    pub conn_id: u64,
    pub client_seq: u64,
    pub query: Query,
    pub encoding: Encoding,
}

/// The player gives the seat up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub seat: Seat,
    pub conn_id: u64,
}

/// The player's connection is gone; the seat is held for the grace period.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnected {
    pub seat: Seat,
    pub conn_id: u64,
}

/// End the match now (operator request or node shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndMatch {
    pub reason: String,
}

/// Hand the match to another node (drain): write a last snapshot, release
/// the lease, send every member `redirect` to `url`, stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Handover {
    pub url: String,
}

// ---- outbox ----

/// Bytes a match has put in a connection's mailbox that the connection has
/// not written to its socket yet. The match adds before it sends, the
/// connection subtracts when it writes; a client that stops reading stops
/// its connection from being polled, so this grows until the match drops it.
#[derive(Debug, Default)]
pub struct Backlog(AtomicUsize);

impl Backlog {
    /// Adds `n` bytes; returns the new total.
    pub fn add(&self, n: usize) -> usize {
        self.0.fetch_add(n, Ordering::Relaxed) + n
    }

    pub fn sub(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Messages from a match to a connection.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum ToConn {
    /// Write this frame.
    Frame(Out),
    /// The player now holds `seat` in `match_id`; `frame` is the `joined`
    /// snapshot. Ordered with the match's frames, so the connection is
    /// seated before the client can read `joined`.
    Joined {
        match_id: MatchId,
        seat: Seat,
        addr: Addr<MatchSession>,
        frame: Out,
    },
    /// The player is no longer in `match_id` (left, or the match ended);
    /// write `frame` first if present.
    Detached {
        match_id: MatchId,
        frame: Option<Out>,
    },
    /// An operator message for every client (`notice`).
    Notice { message: String },
    /// An operator removed this player: tell it why and close (1008).
    Close { code: &'static str, message: String },
    /// The node stops now (the end of a drain): tell the client and close
    /// with 1001, so it reconnects elsewhere and resumes.
    NodeStopping,
    /// `match_id` dropped this connection from its seat.
    Kicked {
        match_id: MatchId,
        code: &'static str,
        message: String,
    },
}

/// A match actor stopped; sent from its `stopped()`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MatchStopped {
    pub id: MatchId,
}

// ---- state shared with the node ----

/// What every thread may read about a match without messaging it.
#[derive(Debug)]
pub struct MatchInfo {
    pub id: MatchId,
    pub ruleset: &'static str,
    pub max_seats: u8,
    pub occupied: AtomicU8,
    pub connected: AtomicU8,
    pub joinable: AtomicBool,
    pub created_at: SystemTime,
    pub arbiter: usize,
}

/// The seats each player holds in this node's matches, connected or in
/// their grace period: kept by the matches, read by the node (where is a
/// player now) and used to cap the seats one player may hold
/// (`EngineConfig::max_seats_per_player`).
pub type PlayerSeats = Arc<SeatBook>;

/// `player_id -> [(match_id, seat)]`, most recent seat last.
#[derive(Debug, Default)]
pub struct SeatBook {
    held: DashMap<PlayerId, Vec<(MatchId, Seat)>>,
}

impl SeatBook {
    /// `player` takes `seat` in `match_id`, unless that would make more than
    /// `cap` seats (0: no cap). Taking a seat again in a match where the
    /// player already holds one is always allowed (a rejoin).
    pub fn take(
        &self,
        player: PlayerId,
        match_id: MatchId,
        seat: Seat,
        cap: usize,
    ) -> Result<(), JoinError> {
        let mut held = self.held.entry(player).or_default();
        if let Some(i) = held.iter().position(|(m, _)| *m == match_id) {
            held.remove(i);
        } else if cap > 0 && held.len() >= cap {
            return Err(JoinError::TooManySeats);
        }
        held.push((match_id, seat));
        Ok(())
    }

    /// `player` holds `seat` in `match_id` again after a rebuild: the seat
    /// was already theirs, so no cap applies.
    pub fn restore(&self, player: PlayerId, match_id: MatchId, seat: Seat) {
        let _ = self.take(player, match_id, seat, 0);
    }

    /// `player` no longer holds a seat in `match_id`.
    pub fn free(&self, player: PlayerId, match_id: MatchId) {
        if let dashmap::Entry::Occupied(mut held) = self.held.entry(player) {
            held.get_mut().retain(|(m, _)| *m != match_id);
            if held.get().is_empty() {
                held.remove();
            }
        }
    }

    /// The seat `player` took most recently: `(match_id, seat)`.
    pub fn current(&self, player: PlayerId) -> Option<(MatchId, Seat)> {
        self.held.get(&player).and_then(|h| h.last().copied())
    }

    /// How many seats `player` holds here.
    #[cfg(test)]
    fn count(&self, player: PlayerId) -> usize {
        self.held.get(&player).map_or(0, |h| h.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seat_book_caps_new_seats_not_rejoins_and_frees_per_match() {
        let book = SeatBook::default();
        book.take(7, 1, 0, 2).expect("first");
        book.take(7, 2, 3, 2).expect("second");
        assert_eq!(book.take(7, 3, 0, 2), Err(JoinError::TooManySeats));
        assert_eq!(book.count(7), 2);
        book.take(7, 1, 0, 2).expect("a rejoin is not a new seat");
        assert_eq!(book.current(7), Some((1, 0)), "the latest seat");
        book.take(8, 3, 1, 2)
            .expect("another player is counted apart");
        book.free(7, 1);
        assert_eq!(book.current(7), Some((2, 3)));
        book.take(7, 3, 0, 2).expect("a freed seat makes room");
        book.restore(7, 4, 0);
        assert_eq!(book.count(7), 3, "a rebuilt seat is restored past the cap");
        for m in [2, 3, 4] {
            book.free(7, m);
        }
        assert_eq!((book.count(7), book.current(7)), (0, None));
        assert!(book.take(7, 5, 0, 0).is_ok(), "0: no cap");
    }
}
