//! Rulesets: pure game logic.
//!
//! Architecture invariant: a ruleset is a plain state machine. It gets a
//! state, an action (or a tick) and returns events or a rejection. It never
//! touches a socket, a database, a clock or a random source other than the
//! seed it was created with, so a match can be replayed, snapshotted and
//! property-tested. The actors own the state and do all I/O.
//!
//! Adding a ruleset means writing a type that implements [`Ruleset`] and
//! registering it in a [`Catalog`]; no actor changes.

pub mod sandbox;
pub mod tactics;

use std::collections::BTreeMap;
use std::sync::Arc;

use matchd_protocol::{Action, Event, MatchResult, Query, Reply, Seat, SeatView, State};

/// Why an action or query was refused. `code` is a stable snake_case string
/// that clients can match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What an accepted action or a tick produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Events in the order they happened.
    pub events: Vec<Event>,
    /// Set when the game is over; no action is accepted afterwards.
    pub ended: Option<MatchResult>,
}

impl Outcome {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn event(event: Event) -> Self {
        Self {
            events: vec![event],
            ended: None,
        }
    }
}

/// A kind of game. Shared by every match of that kind.
pub trait Ruleset: Send + Sync + 'static {
    /// Stable name used in `join` and `POST /v1/matches`.
    fn name(&self) -> &'static str;
    /// Largest number of seats, and the seat count of a match created
    /// without one.
    fn max_seats(&self) -> u8;
    /// Smallest seat count a match of this ruleset may be created with
    /// (`max_seats` in a quick-join or `POST /v1/matches`).
    fn min_seats(&self) -> u8 {
        self.max_seats()
    }
    /// Interval of the tick timer while [`Game::wants_tick`] is true.
    fn tick_ms(&self) -> Option<u64>;
    /// A new game, deterministic for a given seed.
    fn new_game(&self, seed: u64) -> Box<dyn Game>;
    /// The game [`Game::snapshot`] wrote, or `None` if `bytes` is not one
    /// (or this ruleset keeps no snapshots). Used by failover.
    fn restore(&self, bytes: &[u8]) -> Option<Box<dyn Game>> {
        let _ = bytes;
        None
    }
}

/// Largest snapshot a ruleset may decode: the decoder never allocates more.
pub const SNAPSHOT_LIMIT: usize = 1 << 20;

/// The bincode configuration of ruleset snapshots, with a bounded decoder.
pub fn snapshot_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<SNAPSHOT_LIMIT>,
> {
    bincode::config::standard().with_limit::<SNAPSHOT_LIMIT>()
}

/// Encodes a snapshot with [`snapshot_config`].
pub fn encode_snapshot<T: bincode::Encode>(state: &T) -> Option<Vec<u8>> {
    bincode::encode_to_vec(state, snapshot_config()).ok()
}

/// Decodes a snapshot with [`snapshot_config`]; trailing bytes are refused.
pub fn decode_snapshot<T: bincode::Decode<()>>(bytes: &[u8]) -> Option<T> {
    match bincode::decode_from_slice(bytes, snapshot_config()) {
        Ok((v, used)) if used == bytes.len() => Some(v),
        _ => None,
    }
}

/// The state of one game. Methods must not panic on any input; the match
/// actor still guards every call and ends the match cleanly if one does.
pub trait Game: Send {
    /// A seat was taken for the first time. May start the game.
    fn seat_joined(&mut self, seat: Seat) -> Outcome;
    /// A seat was given up for good (leave, or a disconnect past its grace).
    fn seat_left(&mut self, seat: Seat) -> Outcome;
    /// Whether a new player may take a seat now (e.g. not after a game started).
    fn accepts_players(&self) -> bool;
    /// Validates and applies one action of `seat`. A rejected action must
    /// leave the state unchanged (failover replays accepted actions only).
    fn apply(&mut self, seat: Seat, action: &Action) -> Result<Outcome, Rejection>;
    /// One tick of the ruleset's clock.
    fn tick(&mut self) -> Outcome;
    /// Whether the tick timer should run now.
    fn wants_tick(&self) -> bool;
    /// Answers a read-only query for `seat`.
    fn query(&self, seat: Seat, query: &Query) -> Result<Reply, Rejection>;
    /// Grows on every state change.
    fn version(&self) -> u64;
    /// The key under which the answer to `query` from `seat` may be
    /// memoized, or `None` when it may not be. Queries with the same answer
    /// may share a key (tactics answers `valid_cells` per unit kind, so
    /// every card of a kind maps to the first card of that kind in the
    /// hand). The default caches nothing.
    fn cache_query(&self, seat: Seat, query: &Query) -> Option<Query> {
        let _ = (seat, query);
        None
    }
    /// Grows whenever anything that `seat`'s cached answers, or its
    /// [`Game::hot_queries`], depend on changes; it may stay put when only
    /// other state moves (a clock tick, the other seat's units).
    /// Validation-cache keys use it, so a memoized answer can never go
    /// stale. The default is [`Game::version`], always safe.
    fn query_version(&self, seat: Seat) -> u64 {
        let _ = seat;
        self.version()
    }
    /// The queries `seat`'s client asks most, in [`Game::cache_query`] form:
    /// the match answers them ahead of time after each change of
    /// [`Game::query_version`], so the client's own asks are hits.
    /// Default: none.
    fn hot_queries(&self, seat: Seat) -> Vec<Query> {
        let _ = seat;
        Vec::new()
    }
    /// The state as `seat` sees it (`None`: a neutral view). `seats` is the
    /// engine's membership list, included in the view.
    fn view(&self, seat: Option<Seat>, seats: Vec<SeatView>) -> State;
    /// The whole state, for failover, restored by [`Ruleset::restore`];
    /// `None` (the default) when the game cannot be snapshotted, and then
    /// its matches are not replicated.
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }
}

/// The rulesets a node can run, by name. Cheap to clone (every connection
/// holds one through its `Engine`): the map is shared.
#[derive(Clone, Default)]
pub struct Catalog {
    rulesets: Arc<BTreeMap<&'static str, Arc<dyn Ruleset>>>,
}

impl Catalog {
    pub fn empty() -> Self {
        Self::default()
    }

    /// The rulesets that ship with matchd: `sandbox` and `tactics`.
    pub fn builtin() -> Self {
        Self::empty()
            .with(sandbox::Sandbox)
            .with(tactics::Tactics::default())
    }

    pub fn with(mut self, ruleset: impl Ruleset) -> Self {
        Arc::make_mut(&mut self.rulesets).insert(ruleset.name(), Arc::new(ruleset));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Ruleset>> {
        self.rulesets.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.rulesets.keys().copied()
    }
}

/// Rejection for an action kind this ruleset does not have.
pub(crate) fn unknown_action(ruleset: &str, action: &Action) -> Rejection {
    Rejection::new(
        "unknown_action",
        format!("{ruleset} has no action {action:?}"),
    )
}

/// Rejection for a query kind this ruleset does not have.
pub(crate) fn unknown_query(ruleset: &str, query: &Query) -> Rejection {
    Rejection::new("unknown_query", format!("{ruleset} has no query {query:?}"))
}
