//! `MatchSession`: one actor per match. Owns the authoritative game state and
//! the seats, applies actions in arrival order, numbers every event (seq grows
//! by exactly 1), encodes each event once per encoding in use and sends the
//! same bytes to every member, runs the ruleset's tick timer, keeps the last
//! events in a ring buffer and ends the match with a result.
//!
//! It must never panic on client input and never block: every call into the
//! ruleset is guarded, and a ruleset panic ends this match cleanly with reason
//! `internal_error` without touching any other match.
//!
//! The folder: this file is the actor's state and its core (seats, rules,
//! ticks, the end); `handlers.rs` its inbox handlers; `fanout.rs` how frames
//! reach members (and slow ones are dropped); `replication.rs` the Redis
//! replication state machine it drives; `rebuild.rs` the pure rebuild of a
//! match from its Redis copy; `messages.rs` its inbox and outbox.

mod fanout;
mod handlers;
mod history_out;
pub mod messages;
pub mod rebuild;
pub mod replication;

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use matchd_protocol::codec::{Encoding, Out, SharedReply};
use matchd_protocol::{Event, MatchId, MatchResult, PlayerId, Query, Seat, SeatView, ServerMsg};

use crate::cluster::replica::{Input, MatchSnapshot, Recorded, Replica, ReplicaError};
use crate::config::EngineConfig;
use crate::history::record::{Persist, Record};
use crate::metrics::{self as m, MatchMetrics};
use crate::rules::{Game, Outcome, Rejection, Ruleset};
use crate::util::unix_ms;
use crate::validation_cache::{CacheHandle, CacheKey};
use history_out::HistoryOutbox;
use messages::{Backlog, MatchInfo, MatchStopped, PlayerSeats, ToConn};
use rebuild::Rebuilt;
use replication::{NotWritten, Replication, Step, StopAfterWrite, Written, DEGRADED_RETRY};

struct Member {
    player_id: PlayerId,
    conn: Option<(u64, Recipient<ToConn>)>,
    backlog: Arc<Backlog>,
    encoding: Encoding,
    disconnected_at: Option<Instant>,
}

/// The action that caused events or the end: its seat and `client_seq`,
/// which the frames carry so its client can match them (protocol 2).
#[derive(Debug, Clone, Copy)]
struct Cause {
    seat: Seat,
    client_seq: u64,
}

/// Who ended a match: its rules (maybe through an action), the engine
/// (`abandoned`, `internal_error`), or an operator (free text).
#[derive(Debug, Clone, Copy)]
enum Ending {
    Rules(Option<Cause>),
    Engine,
    Operator,
}

/// A frame, control message or history that replication may hold back
/// until its batch is in Redis.
enum Outgoing {
    Frame {
        seat: Seat,
        conn_id: u64,
        frame: Out,
    },
    Control(Recipient<ToConn>, ToConn),
    /// Records for Postgres: held like frames, so that history never holds
    /// what a failover can undo (a batch Redis did not take, the actions a
    /// fenced node accepted before it lost the lease).
    History(Vec<Record>),
}

/// A replicated match: its Redis handle and the replication state machine.
struct Repl {
    replica: Replica,
    sm: Replication<Outgoing>,
}

pub struct MatchSession {
    id: MatchId,
    ruleset: Arc<dyn Ruleset>,
    game: Box<dyn Game>,
    info: Arc<MatchInfo>,
    cfg: Arc<EngineConfig>,
    registry: Recipient<MatchStopped>,
    cache: Option<CacheHandle>,
    seats: Vec<Option<Member>>,
    seq: u64,
    ring: VecDeque<Recorded>,
    ended: bool,
    crashed: bool,
    tick: Option<SpawnHandle>,
    empty_since: Option<Instant>,
    metrics: MatchMetrics,
    /// Per seat, the [`Game::query_version`] whose hot queries are in the cache.
    precomputed: Vec<Option<u64>>,
    /// Seats dropped as too slow, not yet announced to the others.
    dropped: Vec<Seat>,
    /// The match's history on its way to the writer; `None` keeps none.
    history: Option<HistoryOutbox>,
    seed: u64,
    /// Everyone who ever took a seat here: the players of the result.
    participants: Vec<(Seat, PlayerId)>,
    player_seats: PlayerSeats,
    repl: Option<Repl>,
    /// Rebuilt from Redis rather than created here.
    restored: bool,
    /// Stopped because another node has the match now.
    moved: bool,
}

/// Everything a new match needs.
pub struct MatchSpec {
    pub id: MatchId,
    pub ruleset: Arc<dyn Ruleset>,
    pub seed: u64,
    pub info: Arc<MatchInfo>,
    pub cfg: Arc<EngineConfig>,
    pub registry: Recipient<MatchStopped>,
    /// The node's persistence writer; `None` keeps no history.
    pub persist: Option<Recipient<Persist>>,
    /// Redis replication for failover; `None` when the node runs alone.
    pub replica: Option<Replica>,
    /// The node's `player -> seat` map, kept up to date by the match.
    pub seats: PlayerSeats,
}

impl MatchSession {
    /// Builds the actor; call on the arbiter that will run it so it picks up
    /// that arbiter's validation-cache shard.
    pub fn new(spec: MatchSpec) -> Self {
        let game = spec.ruleset.new_game(spec.seed);
        let seat_count = usize::from(spec.info.max_seats);
        let seats = (0..seat_count).map(|_| None).collect();
        let cache = CacheHandle::local().filter(|_| spec.cfg.cache_enabled);
        let metrics = MatchMetrics::new(spec.ruleset.name());
        let history = spec
            .persist
            .map(|w| HistoryOutbox::new(spec.id, w, spec.cfg.history_backlog));
        // A ruleset without snapshots cannot be rebuilt: not replicated.
        let repl = spec
            .replica
            .filter(|_| game.snapshot().is_some())
            .map(|replica| Repl {
                sm: Replication::new(spec.id, Instant::now())
                    .with_lease(Duration::from_millis(replica.config().lease_ttl_ms)),
                replica,
            });
        Self {
            id: spec.id,
            ruleset: spec.ruleset,
            game,
            info: spec.info,
            cfg: spec.cfg,
            registry: spec.registry,
            cache,
            seats,
            seq: 0,
            ring: VecDeque::new(),
            ended: false,
            crashed: false,
            tick: None,
            empty_since: Some(Instant::now()),
            metrics,
            precomputed: vec![None; seat_count],
            dropped: Vec::new(),
            history,
            seed: spec.seed,
            participants: Vec::new(),
            player_seats: spec.seats,
            repl,
            restored: false,
            moved: false,
        }
    }

    /// A match [`rebuild`] made from its Redis copy: every seat held as
    /// disconnected (for the grace period), numbering going on from `seq`.
    pub fn restored(spec: MatchSpec, rebuilt: Rebuilt) -> Self {
        let mut me = Self::new(spec);
        me.game = rebuilt.game;
        let now = Instant::now();
        for (slot, player) in me.seats.iter_mut().zip(rebuilt.players) {
            *slot = player.map(|player_id| Member {
                player_id,
                conn: None,
                backlog: Arc::default(),
                encoding: Encoding::Json,
                disconnected_at: Some(now),
            });
        }
        for (i, member) in me.seats.iter().enumerate() {
            if let Some(m) = member {
                me.player_seats.restore(m.player_id, me.id, i as Seat);
            }
        }
        me.participants = rebuilt.participants;
        me.seq = rebuilt.seq;
        me.ring = rebuilt.ring;
        me.restored = true;
        if let Some(r) = me.repl.as_mut() {
            let ttl = Duration::from_millis(r.replica.config().lease_ttl_ms);
            r.sm =
                Replication::resumed(me.id, Instant::now(), rebuilt.batch_no, rebuilt.snap_batch)
                    .with_lease(ttl);
        }
        me
    }

    fn seat_views(&self) -> Vec<SeatView> {
        self.seats
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref().map(|m| SeatView {
                    seat: i as Seat,
                    player_id: m.player_id,
                    connected: m.conn.is_some(),
                })
            })
            .collect()
    }

    /// The member behind `seat` if `conn_id` is its current connection.
    fn member(&self, seat: Seat, conn_id: u64) -> Option<&Member> {
        self.seats
            .get(seat as usize)?
            .as_ref()
            .filter(|m| m.conn.as_ref().is_some_and(|(id, _)| *id == conn_id))
    }

    fn update_counts(&self) {
        let occupied = self.seats.iter().filter(|s| s.is_some()).count() as u8;
        let connected = self
            .seats
            .iter()
            .filter(|s| s.as_ref().is_some_and(|m| m.conn.is_some()))
            .count() as u8;
        self.info.occupied.store(occupied, Ordering::Relaxed);
        self.info.connected.store(connected, Ordering::Relaxed);
        self.info.joinable.store(
            !self.ended && self.game.accepts_players() && (occupied as usize) < self.seats.len(),
            Ordering::Relaxed,
        );
    }

    /// `player` holds `seat` here (already in the node's [`SeatBook`]):
    /// with Redis, also in `{prefix}player:{id}` for every node.
    fn seat_taken(&self, player: PlayerId, seat: Seat) {
        if let Some(r) = &self.repl {
            let (replica, id) = (r.replica.clone(), self.id);
            actix::spawn(async move {
                let _ = replica.set_seat(player, id, seat).await;
            });
        }
    }

    /// `player` no longer holds a seat here.
    fn seat_freed(&self, player: PlayerId, in_redis: bool) {
        let id = self.id;
        self.player_seats.free(player, id);
        if let Some(r) = self.repl.as_ref().filter(|_| in_redis) {
            let replica = r.replica.clone();
            actix::spawn(async move {
                let _ = replica.clear_seat(player, id).await;
            });
        }
    }

    /// Records an input for replication.
    fn record(&mut self, input: Input) {
        if let Some(r) = self.repl.as_mut() {
            r.sm.record_input(input);
        }
    }

    /// Calls into the ruleset; a panic ends the match instead of the actor.
    fn guarded<T>(
        &mut self,
        ctx: &mut Context<Self>,
        what: &str,
        f: impl FnOnce(&mut dyn Game) -> T,
    ) -> Option<T> {
        let game = &mut *self.game;
        match catch_unwind(AssertUnwindSafe(|| f(game))) {
            Ok(v) => Some(v),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!(match_id = self.id, ruleset = self.ruleset.name(); "ruleset panicked in {what}: {msg}; ending the match");
                metrics::counter!(m::MATCH_CRASHES, "ruleset" => self.ruleset.name()).increment(1);
                self.crashed = true;
                self.finish(
                    ctx,
                    MatchResult {
                        winner: None,
                        reason: "internal_error".into(),
                        scores: Vec::new(),
                    },
                    Ending::Engine,
                );
                None
            }
        }
    }

    /// Applies an outcome: broadcast its events, end the match if it says so,
    /// and start or stop the tick timer as the game asks.
    fn apply_outcome(&mut self, ctx: &mut Context<Self>, cause: Option<Cause>, outcome: Outcome) {
        self.broadcast(cause, outcome.events);
        if let Some(result) = outcome.ended {
            self.finish(ctx, result, Ending::Rules(cause));
            return;
        }
        self.sync_ticker(ctx);
        self.update_counts();
        self.precompute(ctx);
    }

    fn cache_key(&self, seat: Seat, query: Query) -> CacheKey {
        CacheKey {
            ruleset: self.ruleset.name(),
            match_id: self.id,
            version: self.game.query_version(seat),
            seat,
            query,
        }
    }

    /// For every seated player whose query version changed, answers the
    /// queries its client asks most into the cache, so its asks are hits.
    fn precompute(&mut self, ctx: &mut Context<Self>) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        for index in 0..self.seats.len() {
            if self.ended || self.seats[index].is_none() {
                continue;
            }
            let seat = index as Seat;
            let version = self.game.query_version(seat);
            if self.precomputed[index] == Some(version) {
                continue;
            }
            self.precomputed[index] = Some(version);
            let Some(hot) = self.guarded(ctx, "hot_queries", |g| g.hot_queries(seat)) else {
                return;
            };
            for query in hot {
                let key = self.cache_key(seat, query);
                if cache.contains(&key) {
                    continue;
                }
                match self.guarded(ctx, "query", |g| g.query(seat, &key.query)) {
                    Some(Ok(reply)) => cache.put(key, Rc::new(SharedReply::new(reply))),
                    Some(Err(_)) => {}
                    None => return,
                }
            }
        }
    }

    fn sync_ticker(&mut self, ctx: &mut Context<Self>) {
        let wants = !self.ended && !self.crashed && self.game.wants_tick();
        match (wants, self.tick, self.ruleset.tick_ms()) {
            (true, None, Some(ms)) => {
                let handle = ctx.run_interval(Duration::from_millis(ms.max(1)), |act, ctx| {
                    act.on_tick(ctx)
                });
                self.tick = Some(handle);
            }
            (false, Some(handle), _) => {
                ctx.cancel_future(handle);
                self.tick = None;
            }
            _ => {}
        }
    }

    /// Whether this node cannot be sure it still holds the match's lease
    /// (see [`replication`]): no action, join, tick or seat expiry then.
    pub(super) fn fenced(&self) -> bool {
        self.repl
            .as_ref()
            .is_some_and(|r| r.sm.fenced(Instant::now()))
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.ended || self.fenced() {
            // Fenced, the game's clock stops: another node may be taking
            // the match over from the last copy.
            return;
        }
        let started = Instant::now();
        self.record(Input::Tick);
        if let Some(outcome) = self.guarded(ctx, "tick", |g| g.tick()) {
            self.apply_outcome(ctx, None, outcome);
        }
        self.metrics
            .tick_seconds
            .record(started.elapsed().as_secs_f64());
        self.commit(ctx);
    }

    /// Ends the match: one `ended` frame to every member, then stop.
    fn finish(&mut self, ctx: &mut Context<Self>, result: MatchResult, how: Ending) {
        let cause = match how {
            Ending::Rules(cause) => cause,
            Ending::Engine | Ending::Operator => None,
        };
        if self.ended {
            return;
        }
        self.ended = true;
        self.seq += 1;
        let ended = ServerMsg::Ended {
            match_id: self.id,
            seq: self.seq,
            result: result.clone(),
            seat: cause.map(|c| c.seat),
            client_seq: cause.map(|c| c.client_seq),
        };
        for (conn, detached) in self.detach_all(&ended) {
            // Control message: must arrive even past the mailbox bound.
            self.control(conn, detached);
        }
        if self.history.is_some() {
            self.record_history(vec![Record::MatchEnded {
                match_id: self.id,
                ruleset: self.ruleset.name().into(),
                node_id: self.cfg.node_id.clone(),
                created_at_ms: unix_ms(self.info.created_at),
                ended_at_ms: unix_ms(std::time::SystemTime::now()),
                last_seq: self.seq - 1,
                result: result.clone(),
                players: self.participants.clone(),
            }]);
        }
        log::info!(match_id = self.id, ruleset = self.ruleset.name(), reason = result.reason.as_str(), seq = self.seq; "match ended");
        // Operator text never becomes a label value (one series per text).
        let label = match how {
            Ending::Operator => "operator".to_string(),
            Ending::Rules(_) | Ending::Engine => result.reason.clone(),
        };
        metrics::counter!(m::MATCHES_ENDED, "ruleset" => self.ruleset.name(), "reason" => label)
            .increment(1);
        self.info.joinable.store(false, Ordering::Relaxed);
        match self.repl.as_mut() {
            // Stops once the end is in Redis and the frames are out.
            Some(r) => {
                r.sm.end();
                self.commit(ctx);
            }
            None => ctx.stop(),
        }
    }

    /// Drives replication: sends what it releases, starts the write it asks
    /// for, stops the match when everything is written (see
    /// [`replication`] for the rules).
    fn commit(&mut self, ctx: &mut Context<Self>) {
        loop {
            let Some(r) = self.repl.as_mut() else {
                return;
            };
            match r.sm.step() {
                Step::Release(items) => self.flush(items),
                Step::Write { snapshot } => return self.start_write(ctx, snapshot),
                Step::Stop(why) => return self.stop_replicated(ctx, why),
                Step::Idle => return,
            }
        }
    }

    fn start_write(&mut self, ctx: &mut Context<Self>, with_snapshot: bool) {
        let snapshot = with_snapshot
            .then(|| self.game.snapshot())
            .flatten()
            .map(|game| MatchSnapshot {
                match_id: self.id,
                ruleset: self.ruleset.name().into(),
                seq: self.seq,
                batch: 0, // set by the state machine
                seed: self.seed,
                created_at_ms: unix_ms(self.info.created_at),
                players: self
                    .seats
                    .iter()
                    .map(|s| s.as_ref().map(|m| m.player_id))
                    .collect(),
                participants: self.participants.clone(),
                game,
            });
        let Some(r) = self.repl.as_mut() else {
            return;
        };
        let write = match r.sm.begin_write(snapshot, Instant::now()) {
            Ok(w) => w,
            // A batch too large for the stream: a snapshot covers it.
            Err(NotWritten::NeedSnapshot) => return self.start_write(ctx, true),
            Err(NotWritten::TooLarge(bytes)) => {
                metrics::counter!(m::REPLICA_TOO_LARGE).increment(1);
                log::error!(match_id = self.id, bytes = bytes; "the match's snapshot is larger than a node can read back; it cannot be replicated and holds its frames (a ruleset whose state grows without bound?)");
                return;
            }
        };
        let (replica, id) = (r.replica.clone(), self.id);
        let fut = async move { replica.write(id, write).await };
        ctx.spawn(
            fut.into_actor(self)
                .map(|res, act, ctx| act.written(ctx, res)),
        );
    }

    fn written(&mut self, ctx: &mut Context<Self>, res: Result<(), ReplicaError>) {
        let Some(r) = self.repl.as_mut() else {
            return;
        };
        match r.sm.written(res) {
            Written::Release(items) => {
                self.flush(items);
                self.commit(ctx);
            }
            Written::Moved(owner) => {
                // Another node took this match over: what this node did
                // since its last write never reached a client. Stop here;
                // the members resume and are sent to the new owner.
                log::warn!(match_id = self.id, owner = owner.as_str(); "lost the match lease to another node; stopping the match here");
                metrics::counter!(m::LEASES_LOST).increment(1);
                self.moved = true;
                self.kick_all("match_moved", "the match moved to another node; resume it");
                ctx.stop();
            }
        }
    }

    /// Sends what replication released, in order.
    fn flush(&mut self, items: Vec<Outgoing>) {
        for item in items {
            self.release(item);
        }
        self.announce_dropped();
    }

    /// Stops a replicated match that ended or was handed over, once its
    /// last write is acknowledged and nothing is held back.
    fn stop_replicated(&mut self, ctx: &mut Context<Self>, stop: StopAfterWrite) {
        let Some(r) = self.repl.as_ref() else {
            return;
        };
        let (replica, id) = (r.replica.clone(), self.id);
        match stop {
            StopAfterWrite::Ended => {
                actix::spawn(async move {
                    if let Err(e) = replica.forget(id).await {
                        log::warn!(match_id = id; "could not remove the ended match from redis: {e}");
                    }
                });
            }
            StopAfterWrite::Handover(url) => {
                self.moved = true;
                metrics::counter!(m::HANDOVERS).increment(1);
                let redirect = ServerMsg::Redirect {
                    match_id: id,
                    url,
                    node_id: None,
                };
                let members = self.detach_all(&redirect);
                metrics::counter!(m::REDIRECTS, "reason" => "handover")
                    .increment(members.len() as u64);
                log::info!(match_id = id, seq = self.seq; "match handed over");
                // The lease goes first, so the peer can take the match as
                // soon as a redirected member asks it.
                actix::spawn(async move {
                    if let Err(e) = replica.release(id).await {
                        log::warn!(match_id = id; "could not release the match lease: {e}");
                    }
                    for (conn, msg) in members {
                        conn.do_send(msg);
                    }
                });
            }
        }
        ctx.stop();
    }

    fn housekeeping(&mut self, ctx: &mut Context<Self>) {
        if let Some(history) = self.history.as_mut() {
            history.retry();
        }
        if self.ended || self.fenced() {
            return;
        }
        let now = Instant::now();
        let grace = Duration::from_millis(self.cfg.seat_grace_ms);
        let expired: Vec<Seat> = self
            .seats
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let m = s.as_ref()?;
                let since = m.disconnected_at?;
                (m.conn.is_none() && now.duration_since(since) >= grace).then_some(i as Seat)
            })
            .collect();
        for seat in expired {
            log::info!(match_id = self.id, seat = seat; "seat grace expired; giving the seat up");
            self.vacate(ctx, seat);
            if self.ended {
                return;
            }
        }
        let anyone = self
            .seats
            .iter()
            .any(|s| s.as_ref().is_some_and(|m| m.conn.is_some()));
        if anyone {
            self.empty_since = None;
        } else {
            let since = *self.empty_since.get_or_insert(now);
            if now.duration_since(since) >= Duration::from_millis(self.cfg.empty_match_timeout_ms) {
                self.finish(
                    ctx,
                    MatchResult {
                        winner: None,
                        reason: "abandoned".into(),
                        scores: Vec::new(),
                    },
                    Ending::Engine,
                );
            }
        }
    }

    /// Frees a seat for good and tells the ruleset.
    fn vacate(&mut self, ctx: &mut Context<Self>, seat: Seat) {
        let Some(member) = self.seats.get_mut(seat as usize).and_then(Option::take) else {
            return;
        };
        self.seat_freed(member.player_id, true);
        self.broadcast(None, vec![Event::PlayerLeft { seat }]);
        self.record(Input::SeatLeft { seat });
        if let Some(outcome) = self.guarded(ctx, "seat_left", |g| g.seat_left(seat)) {
            self.apply_outcome(ctx, None, outcome);
        }
        self.update_counts();
    }

    /// The history a match offers when it starts: its creation and, when
    /// it was rebuilt from Redis, the events its ring buffer was refilled
    /// with from the stream (the most recent `ring_buffer`). The
    /// node that lost it may have died before its writer stored them;
    /// history writes are idempotent, so events already stored stay as
    /// they were (an event stored only now carries the takeover's time).
    fn history_at_start(&mut self) {
        if self.history.is_none() {
            return;
        }
        let (match_id, at_ms) = (self.id, unix_ms(std::time::SystemTime::now()));
        let mut records = vec![Record::MatchCreated {
            match_id,
            ruleset: self.ruleset.name().into(),
            node_id: self.cfg.node_id.clone(),
            created_at_ms: unix_ms(self.info.created_at),
        }];
        if self.restored {
            records.extend(self.ring.iter().map(|e| Record::Event {
                match_id,
                seq: e.seq,
                seat: e.seat,
                at_ms,
                event: e.event.clone(),
            }));
        }
        self.record_history(records);
    }

    fn reject(&mut self, seat: Seat, client_seq: u64, rejection: Rejection, encoding: Encoding) {
        self.metrics.rejected(rejection.code).increment(1);
        let msg = ServerMsg::Rejected {
            client_seq,
            code: rejection.code.into(),
            message: rejection.message,
        };
        self.reply_to(seat, &msg, encoding);
    }
}

impl Actor for MatchSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.cfg.match_mailbox);
        // Held for the first write, like everything the match sends.
        self.history_at_start();
        ctx.run_interval(Duration::from_millis(250), |act, ctx| {
            act.housekeeping(ctx);
            act.commit(ctx);
        });
        self.update_counts();
        if let Some(r) = &self.repl {
            let cfg = r.replica.config();
            let renew_every = Duration::from_millis((cfg.lease_ttl_ms / 3).max(10));
            // Often enough for a degraded match's quicker retries.
            let timer = renew_every.min(DEGRADED_RETRY);
            ctx.run_interval(timer, move |act, ctx| {
                let due = act
                    .repl
                    .as_mut()
                    .is_some_and(|r| r.sm.renewal_timer(Instant::now(), renew_every));
                if due {
                    act.commit(ctx);
                }
            });
            ctx.run_interval(
                Duration::from_millis(cfg.snapshot_ms.max(10)),
                |act, ctx| {
                    if act.repl.as_mut().is_some_and(|r| r.sm.snapshot_timer()) {
                        act.commit(ctx);
                    }
                },
            );
            // The first write: a new match's lease and snapshot, or a
            // rebuilt match's fresh snapshot.
            self.commit(ctx);
            if self.restored {
                self.sync_ticker(ctx);
            }
        }
        if self.restored {
            log::info!(match_id = self.id, ruleset = self.ruleset.name(), seq = self.seq; "match rebuilt from redis");
        } else {
            log::info!(match_id = self.id, ruleset = self.ruleset.name(); "match started");
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // An ended match frees its seats everywhere; one that moved or
        // stopped with the node keeps them in Redis for its next owner.
        let players: Vec<PlayerId> = self.seats.iter().flatten().map(|m| m.player_id).collect();
        for player in players {
            self.seat_freed(player, self.ended);
        }
        if !self.ended && !self.moved {
            // Stopped without a result (the system is shutting down): tell members.
            self.kick_all("match_stopped", "the match was stopped");
        }
        self.info.joinable.store(false, Ordering::Relaxed);
        if let Some(history) = self.history.as_mut() {
            history.close();
        }
        self.registry.do_send(MatchStopped { id: self.id });
    }
}
