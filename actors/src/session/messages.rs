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
}

impl JoinError {
    pub fn code(self) -> &'static str {
        match self {
            JoinError::Full => "match_full",
            JoinError::Closed => "match_closed",
            JoinError::Ended => "match_ended",
            JoinError::NotMember => "not_a_member",
            JoinError::Recovering => "match_recovering",
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

/// `player_id -> (match_id, seat)` for the seats held in this node's
/// matches (connected or not), kept by the matches.
pub type PlayerSeats = Arc<DashMap<PlayerId, (MatchId, Seat)>>;
