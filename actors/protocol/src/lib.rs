//! The wire protocol: every type a client sends or receives, and nothing else.
//!
//! Text frames carry these enums as JSON objects tagged by `"type"` (payloads
//! such as actions and events are tagged by `"kind"`); binary frames carry the
//! same enums encoded with bincode 2 (see [`codec`]). Internal game state and
//! actor messages never derive `Serialize`: they are converted to these types
//! at the edge, so internals can change without breaking clients.
//!
//! Compatibility rule: JSON clients may rely on field names; bincode clients
//! rely on variant and field *order*, so new variants and fields are only
//! ever appended. PROTOCOL.md (at the repository root) documents every
//! message and the byte format; `golden/vectors.json` pins both encodings.

pub mod codec;

/// The protocol version this crate speaks, sent in `welcome`. Version 2
/// appended `welcome.protocol`, `event.client_seq`, `ended.seat`,
/// `ended.client_seq` and `join.max_seats`; a bincode connection gets the
/// version-2 layout of server frames only when it asks (`?protocol=2`).
pub const PROTOCOL_VERSION: u32 = 2;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Match identifier. Always below 2^53 so JavaScript clients keep it exact.
pub type MatchId = u64;
/// Player identifier, also below 2^53.
pub type PlayerId = u64;
/// A seat inside one match, from 0.
pub type Seat = u8;

/// What an absent `welcome.protocol` means: a protocol-1 server.
fn protocol_one() -> u32 {
    1
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Join a match by id (`match_id`) or quick-join a ruleset (`ruleset`).
    /// Exactly one of the two must be given.
    Join {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        match_id: Option<MatchId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ruleset: Option<String>,
        /// Quick-join only (protocol 2): a match with exactly this many
        /// seats, within the ruleset's bounds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_seats: Option<u8>,
    },
    /// A game action; answered by an `event` (accepted) or `rejected`.
    Action { client_seq: u64, action: Action },
    /// A read-only question about the match; answered by `reply` or `rejected`.
    Query { client_seq: u64, query: Query },
    /// Leave the current match (forfeits a seat in a game that has started).
    Leave,
    /// Application-level ping, answered by `pong` with the same nonce.
    Ping { nonce: u64 },
    /// Take back this player's seat in `match_id` after a disconnect and
    /// receive every event after `last_seq` (the last one the client saw).
    Resume { match_id: MatchId, last_seq: u64 },
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First frame on every connection.
    Welcome {
        player_id: PlayerId,
        node_id: String,
        heartbeat_ms: u64,
        /// The server's protocol version ([`PROTOCOL_VERSION`]; protocol 2).
        /// Absent (a protocol-1 server) means 1.
        #[serde(default = "protocol_one")]
        protocol: u32,
    },
    /// The client now holds `seat` in `match_id`; `state` is the snapshot as
    /// of `seq` (the next event this client receives has `seq + 1`).
    Joined {
        match_id: MatchId,
        ruleset: String,
        seat: Seat,
        seq: u64,
        state: State,
    },
    /// One authoritative event; `seq` grows by exactly 1 per match.
    /// `seat` is the seat whose action caused it, absent for system events.
    Event {
        match_id: MatchId,
        seq: u64,
        #[serde(default)]
        seat: Option<Seat>,
        event: Event,
        /// The `client_seq` of the action of `seat` that caused this event;
        /// absent for events no action caused (protocol 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_seq: Option<u64>,
    },
    /// The action or query with `client_seq` was refused; the match goes on.
    Rejected {
        client_seq: u64,
        code: String,
        message: String,
    },
    /// Answer to a query.
    Reply { client_seq: u64, reply: Reply },
    /// The match is over. `ended` takes the next number after the match's
    /// last event, so events run up to `seq - 1`.
    Ended {
        match_id: MatchId,
        seq: u64,
        result: MatchResult,
        /// The seat whose action ended the match, and that action's
        /// `client_seq` (protocol 2); absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seat: Option<Seat>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_seq: Option<u64>,
    },
    /// A problem with a frame or request; the connection stays open unless
    /// the server closes it right after.
    Error { code: String, message: String },
    /// Answer to `ping`.
    Pong { nonce: u64 },
    /// Acknowledges `leave`.
    Left { match_id: MatchId },
    /// Answer to `resume`: the client holds `seat` again; the events
    /// `last_seq + 1 ..= seq` follow as `event` frames, then live ones.
    Resumed {
        match_id: MatchId,
        seat: Seat,
        last_seq: u64,
        seq: u64,
    },
    /// The node is draining (a deploy): the match under way goes on, but
    /// the next one should be joined elsewhere, after `retry_after_ms`.
    Draining { retry_after_ms: u64 },
    /// `match_id` lives on another node: reconnect to `url` (with the same
    /// session token) and `resume` there.
    Redirect {
        match_id: MatchId,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_id: Option<String>,
    },
    /// A message from the operators to every client.
    Notice { message: String },
}

/// Actions of every shipped ruleset. A ruleset rejects kinds it does not
/// know with code `unknown_action`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// sandbox: add one to the cell (x, y).
    Mark { x: i32, y: i32 },
    /// tactics: deploy card `card` on the player's own side at (x, y).
    Place { card: u32, x: i32, y: i32 },
    /// tactics: the player has finished deploying.
    Ready,
    /// tactics: give up; the opponent wins.
    Concede,
}

/// Queries of every shipped ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Query {
    /// tactics: the cells of the asking player's side where `card` may be placed now.
    ValidCells { card: u32 },
    /// any ruleset: the current state as seen by the asking seat.
    State,
}

/// Replies to queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// Cells as `[x, y]` pairs in the asking player's own coordinates.
    Cells {
        cells: Vec<[i32; 2]>,
    },
    State {
        state: State,
    },
}

/// Events of the engine and of every shipped ruleset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    // -- membership, emitted by the engine for every ruleset --
    PlayerJoined {
        seat: Seat,
        player_id: PlayerId,
    },
    PlayerLeft {
        seat: Seat,
    },
    PlayerDisconnected {
        seat: Seat,
    },
    PlayerReconnected {
        seat: Seat,
    },
    // -- sandbox --
    Marked {
        x: i32,
        y: i32,
        count: u32,
    },
    // -- tactics --
    /// The game entered `phase` (`deploy` or `battle`).
    Phase {
        phase: String,
    },
    Placed {
        seat: Seat,
        card: u32,
        unit: String,
        unit_id: u32,
        x: i32,
        y: i32,
        hp: i32,
    },
    PlayerReady {
        seat: Seat,
    },
    /// `unit_id` hit `target_unit` (or the base of seat `target_seat` when
    /// `target_unit` is absent), leaving it with `hp`.
    Attacked {
        unit_id: u32,
        target_seat: Seat,
        #[serde(default)]
        target_unit: Option<u32>,
        damage: i32,
        hp: i32,
    },
    Destroyed {
        unit_id: u32,
    },
}

/// Outcome of a match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct MatchResult {
    /// The winning seat; absent for a draw or a match without a winner.
    #[serde(default)]
    pub winner: Option<Seat>,
    /// Why it ended: `base_destroyed`, `time_limit`, `concede`, `forfeit`,
    /// `abandoned`, `internal_error`, ...
    pub reason: String,
    /// Ruleset-specific scores per seat (tactics: base hit points).
    #[serde(default)]
    pub scores: Vec<i64>,
}

/// A player's view of a match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum State {
    Sandbox {
        width: i32,
        height: i32,
        /// Row-major counts, `cells[y * width + x]`.
        cells: Vec<u32>,
        seats: Vec<SeatView>,
    },
    Tactics(TacticsView),
}

/// Who sits where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct SeatView {
    pub seat: Seat,
    pub player_id: PlayerId,
    pub connected: bool,
}

/// The tactics state as one seat sees it: its own hand, the opponent's hand size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct TacticsView {
    /// `waiting`, `deploy`, `battle` or `ended`.
    pub phase: String,
    /// Ticks (100 ms each) played in the current phase.
    pub tick: u32,
    /// The seat this view is for (absent for a spectator's view).
    #[serde(default)]
    pub you: Option<Seat>,
    pub hand: Vec<CardView>,
    pub opponent_hand_size: u32,
    pub units: Vec<UnitView>,
    pub bases: [i32; 2],
    pub ready: [bool; 2],
    pub seats: Vec<SeatView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct CardView {
    pub card: u32,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct UnitView {
    pub unit_id: u32,
    pub seat: Seat,
    pub unit: String,
    pub x: i32,
    pub y: i32,
    pub hp: i32,
}
