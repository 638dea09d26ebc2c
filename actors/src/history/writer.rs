//! `PersistenceWriter`: one actor per node, on its own Arbiter, that makes
//! match history durable.
//!
//! Every match hands it records with `try_send` ([`Persist`]) into a bounded
//! mailbox (`MATCHD_WRITER_MAILBOX`; a match holds what does not fit, see
//! `session/history_out.rs`): the match is
//! created, events, the match ended with its result. The writer buffers them
//! and flushes a batch every `flush_ms` or every `batch_rows` records, one
//! transaction per batch, through its own deadpool-postgres pool (built on
//! its Arbiter, so the connections live on that thread's runtime).
//!
//! Faults: a failed batch is retried with exponential backoff and jitter; a
//! circuit breaker (closed, open, half-open) stops trying while the database
//! is away, so a dead database costs one journal append per flush, not a
//! connection attempt per event. When the breaker is open, when a batch has
//! used up its retries, or when the buffer passes `buffer_rows`, batches go
//! to the local journal (`journal.rs`), which is replayed into Postgres once
//! it answers again, and at start-up. Without a database URL the journal is
//! the store.
//!
//! Invariants: a match never waits for the writer (`try_send`, no reply); at
//! most one database operation is in flight, so the actor's state is the
//! only bookkeeping; every write is idempotent and order-insensitive
//! (`store.rs`), so a replay may repeat or reorder batches freely. The writer
//! must never block on the network in a handler: database work runs in
//! spawned futures, only journal file I/O (on this Arbiter alone) is
//! synchronous.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::breaker::{backoff, Breaker, BreakerState};
use super::journal::{FsyncPolicy, Journal, Recovery};
use super::record::{Persist, Record};
use super::store::{Store, StoreConfig, StoreError, Written};
use crate::metrics as m;
use crate::util::{random_u64, unix_ms};

/// The writer's state, for `/ready`, tests and the benchmark.
#[derive(Message)]
#[rtype(result = "WriterStats")]
pub struct GetWriterStats;

/// Graceful shutdown: finish the batch in flight, then move everything still
/// buffered to the journal. Answers when that is done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SpillWriter;

/// Settings of the writer (filled from `DATABASE_URL`, `MATCHD_DATA_DIR`,
/// `MATCHD_WRITER_*`, `MATCHD_JOURNAL_*`, `MATCHD_BREAKER_*`).
#[derive(Clone)]
pub struct WriterConfig {
    /// Postgres to write to; `None`: the journal is the store.
    pub database_url: Option<String>,
    /// Whether ratings and win/loss stats count for anonymous players too
    /// (else only for verified ones, see [`crate::util::is_verified_player`]).
    pub rate_anonymous: bool,
    /// CA bundle for `sslmode=require` (`MATCHD_DATABASE_CA_FILE`).
    pub database_ca_file: Option<PathBuf>,
    /// Directory of `journal.log` and `dead-letter.log`.
    pub data_dir: PathBuf,
    pub flush_ms: u64,
    pub batch_rows: usize,
    /// Buffered records beyond this go to the journal at once.
    pub buffer_rows: usize,
    /// Capacity of the writer's mailbox, in messages (one per broadcast of
    /// a match); a match whose message does not fit holds its records
    /// (see `session/history_out.rs`).
    pub mailbox: usize,
    pub pool_size: usize,
    pub db_timeout_ms: u64,
    pub fsync: FsyncPolicy,
    /// Consecutive failed attempts that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe (half-open).
    pub breaker_open_ms: u64,
    /// Attempts per batch before it is moved to the journal.
    pub retries: u32,
    /// First retry delay; doubles each attempt (capped at 2 s), with jitter.
    pub backoff_ms: u64,
}

impl std::fmt::Debug for WriterConfig {
    // The database URL may hold a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterConfig")
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "(set, redacted)"),
            )
            .field("data_dir", &self.data_dir)
            .field("flush_ms", &self.flush_ms)
            .field("batch_rows", &self.batch_rows)
            .field("buffer_rows", &self.buffer_rows)
            .field("mailbox", &self.mailbox)
            .field("pool_size", &self.pool_size)
            .field("db_timeout_ms", &self.db_timeout_ms)
            .field("fsync", &self.fsync)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_open_ms", &self.breaker_open_ms)
            .field("retries", &self.retries)
            .field("backoff_ms", &self.backoff_ms)
            .finish()
    }
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            data_dir: PathBuf::from("./data"),
            flush_ms: 5,
            batch_rows: 5000,
            buffer_rows: 100_000,
            mailbox: 65_536,
            pool_size: 2,
            db_timeout_ms: 5000,
            fsync: FsyncPolicy::Always,
            breaker_failures: 3,
            breaker_open_ms: 1000,
            retries: 3,
            backoff_ms: 50,
            rate_anonymous: true,
            database_ca_file: None,
        }
    }
}

impl WriterConfig {
    pub fn journal_path(&self) -> PathBuf {
        self.data_dir.join("journal.log")
    }

    pub fn dead_letter_path(&self) -> PathBuf {
        self.data_dir.join("dead-letter.log")
    }

    pub fn store_config(&self, url: &str) -> StoreConfig {
        StoreConfig {
            rate_anonymous: self.rate_anonymous,
            ca_file: self.database_ca_file.clone(),
            url: url.to_string(),
            pool_size: self.pool_size,
            timeout: Duration::from_millis(self.db_timeout_ms),
        }
    }
}

/// The writer's state as `/ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterStats {
    /// A database URL is configured.
    pub database: bool,
    /// Records buffered in memory (including a batch in flight).
    pub queue_depth: usize,
    /// Journal bytes not yet in Postgres (embedded mode: the whole journal).
    pub journal_bytes_pending: u64,
    pub breaker: BreakerState,
    pub rows_written: u64,
    pub rows_journaled: u64,
    pub last_error: Option<String>,
    /// Why the journal cannot be written (unwritable or full data
    /// directory); `None` while it works.
    pub journal_error: Option<String>,
    /// Records lost because neither Postgres nor the journal took them and
    /// the in-memory spill was full.
    pub records_lost: u64,
}

impl WriterStats {
    /// History is only in memory: the journal is broken and Postgres is not
    /// taking writes (absent, or its breaker not closed).
    pub fn at_risk(&self) -> bool {
        self.journal_error.is_some() && (!self.database || self.breaker != BreakerState::Closed)
    }
}

/// How often a broken journal is tried again.
const JOURNAL_RETRY: Duration = Duration::from_secs(1);

enum Source {
    /// From the in-memory buffer.
    Direct,
    /// From the journal, ending at this offset.
    Replay { end: u64 },
}

pub struct PersistenceWriter {
    cfg: WriterConfig,
    store: Option<Store>,
    journal: Option<Journal>,
    dead_letter: Option<Journal>,
    /// Journal offset up to which everything is in Postgres.
    replay_cursor: u64,
    replay_turn: bool,
    buffer: Vec<Record>,
    in_flight: usize,
    busy: bool,
    migrated: bool,
    breaker: Breaker,
    rows_written: u64,
    rows_journaled: u64,
    last_error: Option<String>,
    shutting_down: Vec<oneshot::Sender<()>>,
    draining: bool,
    /// Why the journal is not usable (logged once when it breaks).
    journal_error: Option<String>,
    /// When a broken journal was last tried.
    journal_tried: Instant,
    records_lost: u64,
}

impl PersistenceWriter {
    /// Starts the writer on a new Arbiter under a `Supervisor`. Keep the
    /// returned Arbiter alive as long as the node runs.
    pub fn start(cfg: WriterConfig) -> (Addr<Self>, Arbiter) {
        let arbiter = Arbiter::new();
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| Self::new(cfg));
        (addr, arbiter)
    }

    /// Opens the journal (recovering a torn tail) and builds the pool. Call
    /// on the thread that will run the actor.
    pub fn new(cfg: WriterConfig) -> Self {
        let (journal, journal_error) = match Journal::open(&cfg.journal_path(), cfg.fsync) {
            Ok((j, recovery)) => {
                note_recovery(&j, recovery);
                (Some(j), None)
            }
            Err(e) => {
                log::error!("cannot open the journal; match history goes to the database, or to memory (at most MATCHD_WRITER_BUFFER_ROWS records) while the database is away: {e}");
                metrics::gauge!(m::JOURNAL_BROKEN).set(1.0);
                (None, Some(e.to_string()))
            }
        };
        let store =
            cfg.database_url
                .as_deref()
                .and_then(|url| match Store::new(&cfg.store_config(url)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        log::error!("DATABASE_URL unusable, falling back to the journal: {e}");
                        None
                    }
                });
        let breaker = Breaker::new(
            cfg.breaker_failures,
            Duration::from_millis(cfg.breaker_open_ms),
        );
        Self {
            cfg,
            store,
            journal,
            dead_letter: None,
            replay_cursor: 0,
            replay_turn: false,
            buffer: Vec::new(),
            in_flight: 0,
            busy: false,
            migrated: false,
            breaker,
            rows_written: 0,
            rows_journaled: 0,
            last_error: None,
            shutting_down: Vec::new(),
            draining: false,
            journal_error,
            journal_tried: Instant::now(),
            records_lost: 0,
        }
    }

    fn journal_pending(&self) -> u64 {
        match (&self.journal, &self.store) {
            (Some(j), Some(_)) => j.len().saturating_sub(self.replay_cursor),
            (Some(j), None) => j.len(),
            (None, _) => 0,
        }
    }

    fn stats(&self) -> WriterStats {
        WriterStats {
            database: self.store.is_some(),
            queue_depth: self.buffer.len() + self.in_flight,
            journal_bytes_pending: self.journal_pending(),
            breaker: self.breaker.state(),
            rows_written: self.rows_written,
            rows_journaled: self.rows_journaled,
            last_error: self.last_error.clone(),
            journal_error: self.journal_error.clone(),
            records_lost: self.records_lost,
        }
    }

    fn publish(&self) {
        metrics::gauge!(m::WRITER_QUEUE).set((self.buffer.len() + self.in_flight) as f64);
        metrics::gauge!(m::WRITER_BREAKER).set(self.breaker.state().gauge());
        metrics::gauge!(m::JOURNAL_PENDING).set(self.journal_pending() as f64);
    }

    /// Appends records to the journal in entries of at most `batch_rows`.
    /// On failure the records are kept (returned to the buffer, which
    /// [`Self::bound_buffer`] keeps bounded).
    fn journal_append(&mut self, mut records: Vec<Record>) {
        if self.journal.is_none() && self.journal_tried.elapsed() >= JOURNAL_RETRY {
            self.journal_tried = Instant::now();
            if let Ok((j, recovery)) = Journal::open(&self.cfg.journal_path(), self.cfg.fsync) {
                note_recovery(&j, recovery);
                self.journal = Some(j);
            }
        }
        let Some(journal) = self.journal.as_mut() else {
            // No journal: keep them in memory and hope for the database.
            self.buffer.splice(0..0, records);
            self.bound_buffer();
            return;
        };
        let mut done = 0;
        for part in records.chunks(self.cfg.batch_rows.max(1)) {
            if let Err(e) = journal.append(&part) {
                if self.journal_error.is_none() {
                    log::error!(
                        "journal append failed (unwritable or full data directory?); history stays in memory, at most MATCHD_WRITER_BUFFER_ROWS records, and goes to the database when it answers: {e}"
                    );
                    metrics::gauge!(m::JOURNAL_BROKEN).set(1.0);
                }
                self.journal_error = Some(e.to_string());
                self.journal_tried = Instant::now();
                self.buffer.splice(0..0, records.drain(done..));
                self.bound_buffer();
                return;
            }
            done += part.len();
            self.rows_journaled += part.len() as u64;
            metrics::counter!(m::JOURNAL_ROWS).increment(part.len() as u64);
        }
        if self.journal_error.take().is_some() {
            log::info!("the journal takes writes again");
            metrics::gauge!(m::JOURNAL_BROKEN).set(0.0);
        }
    }

    /// Keeps the in-memory buffer within `buffer_rows` when neither the
    /// database nor the journal takes records: the newest ones past the
    /// bound are dropped (each match's history keeps a gapless prefix),
    /// counted and alerted on.
    fn bound_buffer(&mut self) {
        let cap = self.cfg.buffer_rows.max(1);
        if self.buffer.len() > cap {
            let lost = (self.buffer.len() - cap) as u64;
            self.buffer.truncate(cap);
            if self.records_lost == 0 {
                log::error!("match history lost: neither the database nor the journal takes records and the in-memory spill is full (counted in matchd_history_records_lost_total)");
            }
            self.records_lost += lost;
            metrics::counter!(m::HISTORY_LOST).increment(lost);
        }
    }

    fn spill_buffer(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        // A broken journal is tried again once per JOURNAL_RETRY, not at
        // every tick.
        if self.journal_error.is_some() && self.journal_tried.elapsed() < JOURNAL_RETRY {
            self.bound_buffer();
            return;
        }
        let all = std::mem::take(&mut self.buffer);
        self.journal_append(all);
    }

    /// Decides what to do next; called by the timer, by a full buffer and
    /// when an operation finishes.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.store.is_none() || self.draining {
            self.spill_buffer();
            return;
        }
        if self.buffer.len() > self.cfg.buffer_rows {
            self.spill_buffer();
        }
        if self.busy {
            return;
        }
        if !self.breaker.allows(Instant::now()) {
            // Open: the database costs nothing per event.
            self.spill_buffer();
            return;
        }
        if !self.migrated {
            // Start-up: migrate before anything else (an empty batch is a
            // migration and an empty transaction).
            self.start_op(Vec::new(), Source::Direct, 0, ctx);
            return;
        }
        let pending = self.journal_pending();
        if pending > 0 && (self.buffer.is_empty() || self.replay_turn) {
            self.replay_turn = false;
            self.start_replay(ctx);
            return;
        }
        if !self.buffer.is_empty() {
            self.replay_turn = true;
            let n = self.cfg.batch_rows.max(1).min(self.buffer.len());
            let batch: Vec<Record> = self.buffer.drain(..n).collect();
            self.start_op(batch, Source::Direct, 0, ctx);
        }
    }

    fn start_replay(&mut self, ctx: &mut Context<Self>) {
        let Some(journal) = self.journal.as_ref() else {
            return;
        };
        let rows = self.cfg.batch_rows.max(1);
        match journal.read_from::<Vec<Record>>(self.replay_cursor, rows, 64 << 20, Vec::len) {
            Ok((entries, end)) => {
                let batch: Vec<Record> = entries.into_iter().flatten().collect();
                if batch.is_empty() {
                    self.replay_cursor = end;
                    self.replay_done();
                } else {
                    self.start_op(batch, Source::Replay { end }, 0, ctx);
                }
            }
            Err(e) => {
                // The journal was checked when it was opened and is only
                // appended to since: this is disk corruption. Keep the file
                // for an operator and go on with a fresh one.
                log::error!(
                    "journal unreadable at offset {}: {e}; moving it aside",
                    self.replay_cursor
                );
                self.last_error = Some(e.to_string());
                self.move_journal_aside();
            }
        }
    }

    fn move_journal_aside(&mut self) {
        let path = self.cfg.journal_path();
        let aside = path.with_extension(format!("unreadable-{}", unix_ms(SystemTime::now())));
        self.journal = None;
        if let Err(e) = std::fs::rename(&path, &aside) {
            log::error!("could not move the journal aside: {e}");
        }
        self.journal = Journal::open(&path, self.cfg.fsync).ok().map(|(j, _)| j);
        self.replay_cursor = 0;
    }

    /// Everything in the journal is in Postgres: empty it.
    fn replay_done(&mut self) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        if self.replay_cursor < journal.len() {
            return;
        }
        let bytes = journal.len();
        match journal.clear() {
            Ok(()) => {
                if bytes > 0 {
                    log::info!(bytes = bytes; "journal replayed into Postgres and emptied");
                }
                self.replay_cursor = 0;
            }
            Err(e) => log::error!("could not empty the replayed journal: {e}"),
        }
    }

    fn start_op(
        &mut self,
        batch: Vec<Record>,
        source: Source,
        attempt: u32,
        ctx: &mut Context<Self>,
    ) {
        let Some(store) = self.store.clone() else {
            self.journal_append(batch);
            return;
        };
        self.busy = true;
        self.in_flight = batch.len();
        let migrate = !self.migrated;
        let started = Instant::now();
        let fut = async move {
            if migrate {
                if let Err(e) = store.migrate().await {
                    return (batch, false, Err(e));
                }
            }
            let result = store.write(&batch).await;
            (batch, true, result)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(batch, migrated, result), act, ctx| {
                    act.migrated |= migrated;
                    act.finish_op(batch, source, attempt, started, result, ctx);
                }),
        );
    }

    fn finish_op(
        &mut self,
        batch: Vec<Record>,
        source: Source,
        attempt: u32,
        started: Instant,
        result: Result<Written, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        match result {
            Ok(written) => {
                self.breaker.success();
                if self.last_error.take().is_some() {
                    log::info!("database writes succeed again");
                }
                if written.records > 0 {
                    self.rows_written += written.records as u64;
                    metrics::counter!(m::WRITER_ROWS).increment(written.records as u64);
                    metrics::histogram!(m::WRITER_BATCH_ROWS).record(written.records as f64);
                    metrics::histogram!(m::WRITER_FLUSH_SECONDS)
                        .record(now.duration_since(started).as_secs_f64());
                }
                if let Source::Replay { end } = source {
                    self.replay_cursor = end;
                    self.replay_done();
                }
            }
            Err(e) if !e.retryable() => {
                // The database refuses this batch for good: keep it aside so
                // it does not block everything behind it.
                log::error!(rows = batch.len(); "database rejected a batch; moving it to the dead-letter file: {e}");
                metrics::counter!(m::WRITER_DEAD_LETTER).increment(batch.len() as u64);
                self.last_error = Some(e.to_string());
                self.dead_letter(&batch);
                if let Source::Replay { end } = source {
                    self.replay_cursor = end;
                    self.replay_done();
                }
            }
            Err(e) => {
                self.breaker.failure(now);
                if self.last_error.is_none() {
                    log::warn!(attempt = attempt, breaker = self.breaker.state().as_str(); "database write failed: {e}");
                }
                self.last_error = Some(e.to_string());
                let closed = self.breaker.state() == BreakerState::Closed;
                if attempt + 1 < self.cfg.retries && closed && !self.draining {
                    metrics::counter!(m::WRITER_RETRIES).increment(1);
                    let delay = backoff(self.cfg.backoff_ms, attempt, random_u64());
                    ctx.run_later(delay, move |act, ctx| {
                        if act.draining {
                            act.give_up(batch, source);
                            act.after_op(ctx);
                        } else {
                            act.start_op(batch, source, attempt + 1, ctx);
                        }
                    });
                    return; // still busy
                }
                self.give_up(batch, source);
            }
        }
        self.after_op(ctx);
    }

    /// A batch that used up its retries: buffered records go to the
    /// journal; a replayed one simply stays where it is.
    fn give_up(&mut self, batch: Vec<Record>, source: Source) {
        if let Source::Direct = source {
            self.journal_append(batch);
        }
    }

    fn after_op(&mut self, ctx: &mut Context<Self>) {
        self.busy = false;
        self.in_flight = 0;
        if self.draining {
            self.spill_buffer();
            for tx in self.shutting_down.drain(..) {
                let _ = tx.send(());
            }
            return;
        }
        // More work waiting: go on at once rather than at the next tick.
        if self.buffer.len() >= self.cfg.batch_rows || self.journal_pending() > 0 {
            self.pump(ctx);
        }
    }

    fn dead_letter(&mut self, batch: &Vec<Record>) {
        if self.dead_letter.is_none() {
            self.dead_letter = Journal::open(&self.cfg.dead_letter_path(), FsyncPolicy::Always)
                .map_err(|e| log::error!("cannot open the dead-letter file: {e}"))
                .ok()
                .map(|(j, _)| j);
        }
        if let Some(j) = self.dead_letter.as_mut() {
            if let Err(e) = j.append(batch) {
                log::error!("dead-letter append failed: {e}");
            }
        }
    }
}

fn note_recovery(journal: &Journal, recovery: Recovery) {
    if recovery.torn_bytes > 0 {
        metrics::counter!(m::JOURNAL_TORN).increment(1);
        metrics::counter!(m::JOURNAL_SKIPPED_BYTES).increment(recovery.torn_bytes);
    }
    if recovery.entries > 0 {
        log::info!(path:% = journal.path().display(), entries = recovery.entries, bytes = recovery.valid_bytes; "journal holds match history not yet in Postgres");
    }
}

impl Actor for PersistenceWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.cfg.mailbox.max(1));
        let every = Duration::from_millis(self.cfg.flush_ms.max(1));
        ctx.run_interval(every, |act, ctx| {
            act.pump(ctx);
            if let Some(j) = act.journal.as_mut() {
                if let Err(e) = j.tick() {
                    log::error!("journal fsync failed: {e}");
                }
            }
            act.publish();
        });
        log::info!(
            database = self.store.is_some(),
            journal:% = self.cfg.journal_path().display(),
            pending_bytes = self.journal_pending();
            "persistence writer started"
        );
    }
}

impl Supervised for PersistenceWriter {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The state (buffer, journal, cursor) survives a restart; move what
        // is buffered to the journal so nothing depends on this instance.
        self.busy = false;
        self.in_flight = 0;
        self.spill_buffer();
    }
}

impl Handler<Persist> for PersistenceWriter {
    type Result = ();

    fn handle(&mut self, msg: Persist, ctx: &mut Self::Context) {
        self.buffer.extend(msg.0);
        if self.buffer.len() >= self.cfg.batch_rows {
            self.pump(ctx);
        }
        if self.journal_error.is_some() {
            self.bound_buffer();
        }
    }
}

impl Handler<GetWriterStats> for PersistenceWriter {
    type Result = MessageResult<GetWriterStats>;

    fn handle(&mut self, _: GetWriterStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<SpillWriter> for PersistenceWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: SpillWriter, _: &mut Self::Context) -> Self::Result {
        self.draining = true;
        self.spill_buffer();
        if !self.busy {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.shutting_down.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
