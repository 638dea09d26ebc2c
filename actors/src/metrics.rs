//! Names of the engine's metrics, in one place so the README list and the
//! code cannot drift apart. The binary installs the recorder.
//!
//! Per-action paths never look a metric up by name: actors resolve the
//! handles they need once ([`MatchMetrics`], [`FrameMetrics`]) and then only
//! touch atomics.

use metrics::{Counter, Histogram};

pub const CONNECTIONS_OPEN: &str = "matchd_connections_open";
pub const MATCHES_LIVE: &str = "matchd_matches_live";
pub const MATCHES_CREATED: &str = "matchd_matches_created_total";
pub const MATCHES_ENDED: &str = "matchd_matches_ended_total";
pub const MATCH_CRASHES: &str = "matchd_match_crashes_total";
pub const FRAMES_IN: &str = "matchd_frames_in_total";
pub const FRAMES_OUT: &str = "matchd_frames_out_total";
pub const BAD_FRAMES: &str = "matchd_bad_frames_total";
pub const ACTIONS_ACCEPTED: &str = "matchd_actions_accepted_total";
pub const ACTIONS_REJECTED: &str = "matchd_actions_rejected_total";
pub const ACTION_SECONDS: &str = "matchd_action_duration_seconds";
pub const TICK_SECONDS: &str = "matchd_tick_duration_seconds";
pub const EVENTS: &str = "matchd_events_total";
pub const CACHE_HITS: &str = "matchd_validation_cache_hits_total";
pub const CACHE_MISSES: &str = "matchd_validation_cache_misses_total";
pub const CACHE_EVICTIONS: &str = "matchd_validation_cache_evictions_total";
pub const CACHE_ENTRIES: &str = "matchd_validation_cache_entries";
pub const CACHE_LOOKUP_SECONDS: &str = "matchd_validation_cache_lookup_seconds";
pub const MAILBOX_FULL: &str = "matchd_mailbox_send_failures_total";
pub const SLOW_CLIENTS: &str = "matchd_slow_client_disconnects_total";
pub const HEARTBEAT_TIMEOUTS: &str = "matchd_heartbeat_timeouts_total";
pub const HTTP_SECONDS: &str = "matchd_http_request_duration_seconds";
pub const RESUMES: &str = "matchd_resumes_total";
pub const REDIS_UP: &str = "matchd_redis_up";
pub const REDIS_ERRORS: &str = "matchd_redis_errors_total";
pub const REDIS_SECONDS: &str = "matchd_redis_command_duration_seconds";
pub const EVENTS_REPLAYED: &str = "matchd_events_replayed_total";
pub const WRITER_QUEUE: &str = "matchd_writer_queue_depth";
pub const WRITER_BATCH_ROWS: &str = "matchd_writer_batch_rows";
pub const WRITER_FLUSH_SECONDS: &str = "matchd_writer_flush_duration_seconds";
pub const WRITER_ROWS: &str = "matchd_writer_rows_written_total";
pub const WRITER_RETRIES: &str = "matchd_writer_retries_total";
pub const WRITER_DEAD_LETTER: &str = "matchd_writer_dead_letter_rows_total";
pub const WRITER_BREAKER: &str = "matchd_writer_breaker_state";
pub const JOURNAL_PENDING: &str = "matchd_journal_bytes_pending";
pub const JOURNAL_ROWS: &str = "matchd_journal_rows_appended_total";
pub const JOURNAL_TORN: &str = "matchd_journal_torn_tails_total";
pub const REPLICA_WRITE_SECONDS: &str = "matchd_replica_write_duration_seconds";
pub const REPLICA_WRITES: &str = "matchd_replica_writes_total";
pub const LEASE_FAILURES: &str = "matchd_lease_renew_failures_total";
pub const LEASES_LOST: &str = "matchd_leases_lost_total";
pub const FAILOVERS: &str = "matchd_failovers_total";
pub const REDIRECTS: &str = "matchd_redirects_total";
pub const HANDOVERS: &str = "matchd_handovers_total";
pub const CONTROL_MESSAGES: &str = "matchd_control_messages_total";
pub const HISTORY_DROPPED: &str = "matchd_history_records_dropped_total";
pub const RATE_LIMITED: &str = "matchd_rate_limited_total";
pub const TOKENS_REFUSED: &str = "matchd_tokens_refused_total";
pub const JOURNAL_SKIPPED_BYTES: &str = "matchd_journal_skipped_bytes_total";
pub const JOURNAL_BROKEN: &str = "matchd_journal_unwritable";
pub const HISTORY_LOST: &str = "matchd_history_records_lost_total";
pub const FENCED_ACTIONS: &str = "matchd_fenced_actions_total";
pub const NODE_ID_CONFLICTS: &str = "matchd_node_id_conflicts_total";
pub const REPLICA_TOO_LARGE: &str = "matchd_replica_snapshot_too_large_total";

/// Every metric name above; the README's metrics table must list each one.
pub const ALL: &[&str] = &[
    CONNECTIONS_OPEN,
    MATCHES_LIVE,
    MATCHES_CREATED,
    MATCHES_ENDED,
    MATCH_CRASHES,
    FRAMES_IN,
    FRAMES_OUT,
    BAD_FRAMES,
    ACTIONS_ACCEPTED,
    ACTIONS_REJECTED,
    ACTION_SECONDS,
    TICK_SECONDS,
    EVENTS,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_EVICTIONS,
    CACHE_ENTRIES,
    CACHE_LOOKUP_SECONDS,
    MAILBOX_FULL,
    SLOW_CLIENTS,
    HEARTBEAT_TIMEOUTS,
    HTTP_SECONDS,
    RESUMES,
    EVENTS_REPLAYED,
    REDIS_UP,
    REDIS_ERRORS,
    REDIS_SECONDS,
    WRITER_QUEUE,
    WRITER_BATCH_ROWS,
    WRITER_FLUSH_SECONDS,
    WRITER_ROWS,
    WRITER_RETRIES,
    WRITER_DEAD_LETTER,
    WRITER_BREAKER,
    JOURNAL_PENDING,
    JOURNAL_ROWS,
    JOURNAL_TORN,
    REPLICA_WRITE_SECONDS,
    REPLICA_WRITES,
    LEASE_FAILURES,
    LEASES_LOST,
    FAILOVERS,
    REDIRECTS,
    HANDOVERS,
    CONTROL_MESSAGES,
    HISTORY_DROPPED,
    RATE_LIMITED,
    TOKENS_REFUSED,
    JOURNAL_SKIPPED_BYTES,
    JOURNAL_BROKEN,
    HISTORY_LOST,
    FENCED_ACTIONS,
    NODE_ID_CONFLICTS,
    REPLICA_TOO_LARGE,
];

/// Registers help texts with whatever recorder is installed.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS_OPEN, "WebSocket connections open");
    describe_gauge!(MATCHES_LIVE, "Live matches by ruleset");
    describe_counter!(MATCHES_CREATED, "Matches created by ruleset");
    describe_counter!(MATCHES_ENDED, "Matches ended by ruleset and reason");
    describe_counter!(
        MATCH_CRASHES,
        "Matches ended because their ruleset panicked or their actor died"
    );
    describe_counter!(FRAMES_IN, "WebSocket frames received by encoding");
    describe_counter!(FRAMES_OUT, "WebSocket frames sent by encoding");
    describe_counter!(BAD_FRAMES, "Client frames answered with an error, by code");
    describe_counter!(ACTIONS_ACCEPTED, "Actions accepted by ruleset");
    describe_counter!(ACTIONS_REJECTED, "Actions rejected by ruleset and code");
    describe_histogram!(
        ACTION_SECONDS,
        Unit::Seconds,
        "Action handling time in the match: receipt to broadcast"
    );
    describe_histogram!(
        TICK_SECONDS,
        Unit::Seconds,
        "Duration of one ruleset tick including broadcast"
    );
    describe_counter!(EVENTS, "Match events produced by ruleset");
    describe_counter!(CACHE_HITS, "Validation cache hits");
    describe_counter!(CACHE_MISSES, "Validation cache misses");
    describe_counter!(
        CACHE_EVICTIONS,
        "Validation cache entries evicted by capacity or TTL"
    );
    describe_gauge!(CACHE_ENTRIES, "Validation cache entries by shard");
    describe_histogram!(
        CACHE_LOOKUP_SECONDS,
        Unit::Seconds,
        "Time to look a query up in the validation cache (hit or miss)"
    );
    describe_counter!(
        MAILBOX_FULL,
        "Mailbox sends that failed, by target and reason"
    );
    describe_counter!(
        SLOW_CLIENTS,
        "Connections closed because their outbound backlog passed its byte or message bound"
    );
    describe_counter!(
        HEARTBEAT_TIMEOUTS,
        "Connections closed for missing heartbeats"
    );
    describe_counter!(RESUMES, "Resumes served, by outcome (replayed, snapshot)");
    describe_counter!(EVENTS_REPLAYED, "Events sent again to resuming clients");
    describe_gauge!(
        REDIS_UP,
        "1 while the node's registration in Redis is current, else 0"
    );
    describe_counter!(REDIS_ERRORS, "Redis commands that failed or timed out");
    describe_histogram!(
        REDIS_SECONDS,
        Unit::Seconds,
        "Redis round trips of the node registration"
    );
    describe_histogram!(
        HTTP_SECONDS,
        Unit::Seconds,
        "HTTP request duration by route and status"
    );
    describe_gauge!(
        WRITER_QUEUE,
        "Records buffered in the persistence writer, including a batch in flight"
    );
    describe_histogram!(WRITER_BATCH_ROWS, "Records per batch written to Postgres");
    describe_histogram!(
        WRITER_FLUSH_SECONDS,
        Unit::Seconds,
        "Time to write one batch to Postgres (one transaction)"
    );
    describe_counter!(WRITER_ROWS, "Records written to Postgres");
    describe_counter!(
        WRITER_RETRIES,
        "Batch writes retried after a transient failure"
    );
    describe_counter!(
        WRITER_DEAD_LETTER,
        "Records Postgres refused for good, kept in dead-letter.log"
    );
    describe_gauge!(
        WRITER_BREAKER,
        "Database circuit breaker: 0 closed, 1 half-open, 2 open"
    );
    describe_gauge!(JOURNAL_PENDING, "Journal bytes not yet in Postgres");
    describe_counter!(JOURNAL_ROWS, "Records appended to the local journal");
    describe_counter!(
        JOURNAL_TORN,
        "Torn or corrupt journal tails skipped at start-up"
    );
    describe_histogram!(
        REPLICA_WRITE_SECONDS,
        Unit::Seconds,
        "Redis round trip of one replica write (stream append, snapshot or lease renewal)"
    );
    describe_counter!(
        REPLICA_WRITES,
        "Replica writes by kind (append, snapshot, renew) and outcome (ok, error, not_owner)"
    );
    describe_counter!(
        LEASE_FAILURES,
        "Match lease renewals or replica writes that failed (Redis unreachable or slow)"
    );
    describe_counter!(
        LEASES_LOST,
        "Matches stopped here because another node holds their lease"
    );
    describe_counter!(
        FAILOVERS,
        "Matches rebuilt here from their Redis snapshot and stream, by outcome"
    );
    describe_counter!(
        REDIRECTS,
        "redirect frames sent, by reason (owner, handover)"
    );
    describe_counter!(
        HANDOVERS,
        "Matches snapshotted and released to a peer while draining"
    );
    describe_counter!(
        CONTROL_MESSAGES,
        "Cross-node control messages, by kind and direction (sent, applied)"
    );
    describe_counter!(
        HISTORY_DROPPED,
        "History records a match dropped because the persistence writer's mailbox stayed full"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 and frames refused over a connection budget, by limit (sessions, matches, upgrades, connections_per_ip, connections_per_player, frames)"
    );
    describe_counter!(
        TOKENS_REFUSED,
        "JWTs refused, by reason (expired, invalid, wrong_audience, bad_subject)"
    );
    describe_counter!(
        JOURNAL_SKIPPED_BYTES,
        Unit::Bytes,
        "Damaged journal bytes skipped when the journal was opened (the damaged original is kept aside)"
    );
    describe_gauge!(
        JOURNAL_BROKEN,
        "1 while the journal cannot be written (unwritable or full data directory), else 0"
    );
    describe_counter!(
        HISTORY_LOST,
        "History records lost because neither Postgres nor the journal took them and the in-memory spill was full"
    );
    describe_counter!(
        FENCED_ACTIONS,
        "Actions refused with match_recovering because the node could not renew the match's lease in time (fencing)"
    );
    describe_counter!(
        NODE_ID_CONFLICTS,
        "Registrations refused because another live process holds this node id (the node then exits)"
    );
    describe_counter!(
        REPLICA_TOO_LARGE,
        "Snapshot writes refused because the snapshot is larger than the decoder's limit (the match cannot be replicated)"
    );
    // Present from the start, so an alert on its first increase can fire.
    metrics::counter!(HISTORY_DROPPED).absolute(0);
    metrics::counter!(HISTORY_LOST).absolute(0);
    metrics::gauge!(JOURNAL_BROKEN).set(0.0);
}

/// The handles a match touches per action or tick, resolved once per match.
#[derive(Clone)]
pub struct MatchMetrics {
    ruleset: &'static str,
    pub accepted: Counter,
    pub events: Counter,
    pub action_seconds: Histogram,
    pub tick_seconds: Histogram,
    /// `matchd_actions_rejected_total` by code, each resolved on its
    /// first use (rejection codes are a ruleset's fixed `&'static str`s).
    rejected: Vec<(&'static str, Counter)>,
}

impl MatchMetrics {
    pub fn new(ruleset: &'static str) -> Self {
        Self {
            ruleset,
            accepted: metrics::counter!(ACTIONS_ACCEPTED, "ruleset" => ruleset),
            events: metrics::counter!(EVENTS, "ruleset" => ruleset),
            action_seconds: metrics::histogram!(ACTION_SECONDS, "ruleset" => ruleset),
            tick_seconds: metrics::histogram!(TICK_SECONDS, "ruleset" => ruleset),
            rejected: Vec::new(),
        }
    }

    /// The rejection counter of `code`, without a by-name lookup after the
    /// first.
    pub fn rejected(&mut self, code: &'static str) -> &Counter {
        let i = match self.rejected.iter().position(|(c, _)| *c == code) {
            Some(i) => i,
            None => {
                let counter =
                    metrics::counter!(ACTIONS_REJECTED, "ruleset" => self.ruleset, "code" => code);
                self.rejected.push((code, counter));
                self.rejected.len() - 1
            }
        };
        &self.rejected[i].1
    }
}

/// Frame counters by encoding, resolved once per connection.
#[derive(Clone)]
pub struct FrameMetrics {
    pub in_json: Counter,
    pub in_bincode: Counter,
    pub out_json: Counter,
    pub out_bincode: Counter,
}

impl FrameMetrics {
    pub fn new() -> Self {
        Self {
            in_json: metrics::counter!(FRAMES_IN, "encoding" => "json"),
            in_bincode: metrics::counter!(FRAMES_IN, "encoding" => "bincode"),
            out_json: metrics::counter!(FRAMES_OUT, "encoding" => "json"),
            out_bincode: metrics::counter!(FRAMES_OUT, "encoding" => "bincode"),
        }
    }
}

impl Default for FrameMetrics {
    fn default() -> Self {
        Self::new()
    }
}
