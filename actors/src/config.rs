//! Engine settings shared by every actor of a node. The binary fills this
//! from `MATCHD_*` environment variables; tests build it directly.

use std::time::Duration;

/// Tunables of the engine. Defaults are production values.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Name of this node, sent in `welcome`.
    pub node_id: String,
    /// Arbiters (threads) that host match actors; 0 means one per core.
    pub arbiters: usize,
    /// Interval of the server's WebSocket pings.
    pub heartbeat_ms: u64,
    /// A client silent for this long is disconnected.
    pub client_timeout_ms: u64,
    /// Largest single WebSocket frame accepted (bigger: close 1009).
    pub max_frame_bytes: usize,
    /// Largest message reassembled from continuation frames (bigger: close 1009).
    pub max_message_bytes: usize,
    /// Mailbox capacity of a match actor; a full mailbox answers `busy`.
    pub match_mailbox: usize,
    /// Mailbox capacity of a connection actor; a client whose mailbox
    /// overflows is disconnected as too slow.
    pub connection_mailbox: usize,
    /// Events each match keeps for resume.
    pub ring_buffer: usize,
    /// A match with no connected player for this long ends as `abandoned`.
    pub empty_match_timeout_ms: u64,
    /// A disconnected seat is held this long before it is given up.
    pub seat_grace_ms: u64,
    /// Seats one player may hold at once, counting seats held for them
    /// while disconnected: in this node's matches and, with Redis, on every
    /// node; 0: no cap. Over it a join gets `too_many_seats`.
    pub max_seats_per_player: usize,
    /// Entries per validation-cache shard.
    pub cache_capacity: usize,
    /// Lifetime of a validation-cache entry.
    pub cache_ttl_ms: u64,
    /// Whether matches use the validation cache at all (off: every query is
    /// computed, for comparison in benchmarks).
    pub cache_enabled: bool,
    /// Bytes a match may have queued for one connection that the connection
    /// has not written yet; past it the client is disconnected as too slow.
    pub max_outbound_bytes: usize,
    /// Live matches this node will host at most.
    pub max_matches: usize,
    /// History records a match holds while the persistence writer's
    /// mailbox is full; past it the newest events are dropped (and counted).
    pub history_backlog: usize,
    /// Frames one connection may send per second (also the burst); 0: no
    /// limit. Over it: `rejected`/`error` `rate_limited`, and close 1008
    /// when it persists (see [`crate::budget`]).
    pub frames_per_sec: u32,
    /// Bytes one connection may send per second; 0: no limit.
    pub bytes_per_sec: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_id: "node-1".into(),
            arbiters: 0,
            heartbeat_ms: 1000,
            client_timeout_ms: 5000,
            max_frame_bytes: 64 * 1024,
            max_message_bytes: 64 * 1024,
            match_mailbox: 1024,
            connection_mailbox: 1024,
            ring_buffer: 1024,
            empty_match_timeout_ms: 30_000,
            seat_grace_ms: 30_000,
            max_seats_per_player: 4,
            cache_capacity: 65_536,
            cache_ttl_ms: 60_000,
            cache_enabled: true,
            max_outbound_bytes: 1024 * 1024,
            max_matches: 100_000,
            history_backlog: 10_000,
            frames_per_sec: 120,
            bytes_per_sec: 256 * 1024,
        }
    }
}

impl EngineConfig {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(self.client_timeout_ms)
    }

    /// Number of match arbiters to start.
    pub fn arbiter_count(&self) -> usize {
        or_cores(self.arbiters)
    }
}

/// A thread count setting: `n`, or one per core when `n` is 0.
pub fn or_cores(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
