//! `MatchSession`: one actor per match. Owns the authoritative game state and
//! the seats, applies actions in arrival order, numbers every event (seq grows
//! by exactly 1), encodes each event once per encoding in use and sends the
//! same bytes to every member, runs the ruleset's tick timer, keeps the last
//! events in a ring buffer and ends the match with a result.
//!
//! It must never panic on client input and never block: every call into the
//! ruleset is guarded, and a ruleset panic ends this match cleanly with reason
//! `internal_error` without touching any other match.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::EngineConfig;
use crate::connection::{Backlog, ToConn};
use crate::metrics::{self as m, MatchMetrics};
use crate::protocol::codec::{encode, EncodeOnce, Encoding, Out, SharedReply};
use crate::protocol::{
    Action, Event, MatchId, MatchResult, PlayerId, Query, Seat, SeatView, ServerMsg,
};
use crate::registry::{MatchInfo, MatchStopped, PlayerSeats};
pub use crate::replica::Recorded;
use crate::replica::{self as repl, Batch, Input, MatchSnapshot, Replica, ReplicaError, Stored};
use crate::rules::{Game, Outcome, Rejection, Ruleset};
use crate::validation_cache::{CacheHandle, CacheKey};
use crate::writer::{unix_ms, Persist, Record};

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
}

impl JoinError {
    pub fn code(self) -> &'static str {
        match self {
            JoinError::Full => "match_full",
            JoinError::Closed => "match_closed",
            JoinError::Ended => "match_ended",
            JoinError::NotMember => "not_a_member",
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

struct Member {
    player_id: PlayerId,
    conn: Option<(u64, Recipient<ToConn>)>,
    backlog: Arc<Backlog>,
    encoding: Encoding,
    disconnected_at: Option<Instant>,
}

/// Hand the match to another node (drain): write a last snapshot, release
/// the lease, send every member `redirect` to `url`, stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Handover {
    pub url: String,
}

/// A frame or control message that waits for its batch to be in Redis.
enum Outgoing {
    Frame {
        seat: Seat,
        conn_id: u64,
        frame: Out,
    },
    Control(Recipient<ToConn>, ToConn),
}

/// Why a replicated match stops once its last write is acknowledged.
enum StopAfterWrite {
    Ended,
    Handover(String),
}

/// The match's replication state (see [`crate::replica`]).
struct Repl {
    replica: Replica,
    /// What changed since the last write.
    pending: Batch,
    /// Frames and control messages for clients, in order, waiting for the
    /// next write; `sealed` wait for the write in flight.
    open: Vec<Outgoing>,
    sealed: Vec<Outgoing>,
    in_flight: bool,
    /// The last batch number given out.
    batch_no: u64,
    /// The batch the last written snapshot includes, and the one before.
    snap_batch: u64,
    prev_snap_batch: u64,
    snapshot_due: bool,
    renew_due: bool,
    /// The last write failed for want of Redis: frames go out without
    /// waiting and only snapshots are tried, until one succeeds.
    degraded: bool,
    /// When the lease was last renewed (appends do not renew it).
    last_renew: Instant,
    stop_after: Option<StopAfterWrite>,
}

impl Repl {
    fn new(replica: Replica) -> Self {
        Self {
            replica,
            pending: Batch::default(),
            open: Vec::new(),
            sealed: Vec::new(),
            in_flight: false,
            batch_no: 0,
            snap_batch: 0,
            prev_snap_batch: 0,
            // A new match claims its lease with its first snapshot.
            snapshot_due: true,
            renew_due: false,
            degraded: false,
            last_renew: Instant::now(),
            stop_after: None,
        }
    }

    fn changed(&self) -> bool {
        !self.pending.inputs.is_empty() || !self.pending.events.is_empty() || self.pending.ended
    }
}

/// A match rebuilt from its Redis copy, ready to run (see [`rebuild`]).
pub struct Rebuilt {
    game: Box<dyn Game>,
    players: Vec<Option<PlayerId>>,
    participants: Vec<(Seat, PlayerId)>,
    seq: u64,
    ring: VecDeque<Recorded>,
    batch_no: u64,
    snap_batch: u64,
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

/// Records that `player` took `seat` (once per pair).
fn add_participant(participants: &mut Vec<(Seat, PlayerId)>, seat: Seat, player: PlayerId) {
    if !participants.contains(&(seat, player)) {
        participants.push((seat, player));
    }
}

/// Appends to a ring buffer of at most `cap` events.
fn push_ring(ring: &mut VecDeque<Recorded>, e: Recorded, cap: usize) {
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
        players.resize(usize::from(ruleset.max_seats()), None);
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
    persist: Option<Recipient<Persist>>,
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
        let seat_count = usize::from(spec.ruleset.max_seats());
        let seats = (0..seat_count).map(|_| None).collect();
        let cache = CacheHandle::local().filter(|_| spec.cfg.cache_enabled);
        let metrics = MatchMetrics::new(spec.ruleset.name());
        // A ruleset without snapshots cannot be rebuilt: not replicated.
        let repl = spec
            .replica
            .filter(|_| game.snapshot().is_some())
            .map(Repl::new);
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
            persist: spec.persist,
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
                me.player_seats.insert(m.player_id, (me.id, i as Seat));
            }
        }
        me.participants = rebuilt.participants;
        me.seq = rebuilt.seq;
        me.ring = rebuilt.ring;
        me.restored = true;
        if let Some(r) = me.repl.as_mut() {
            r.batch_no = rebuilt.batch_no;
            r.snap_batch = rebuilt.snap_batch;
            r.prev_snap_batch = rebuilt.snap_batch;
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

    /// Sends one frame to one member, or, when the match is replicated,
    /// queues it until its batch is in Redis.
    fn send_to(&mut self, seat: usize, frame: Out) {
        if let Some(r) = self.repl.as_mut().filter(|r| !r.degraded) {
            let Some(Some(Member {
                conn: Some((conn_id, _)),
                ..
            })) = self.seats.get(seat)
            else {
                return;
            };
            r.open.push(Outgoing::Frame {
                seat: seat as Seat,
                conn_id: *conn_id,
                frame,
            });
            return;
        }
        self.send_now(seat, frame);
    }

    /// A control message to a connection, in order with the frames.
    fn control(&mut self, conn: Recipient<ToConn>, msg: ToConn) {
        match self.repl.as_mut().filter(|r| !r.degraded) {
            Some(r) => r.open.push(Outgoing::Control(conn, msg)),
            None => conn.do_send(msg),
        }
    }

    /// `player` holds `seat` here: in the node's map and, with Redis, in
    /// `{prefix}player:{id}` for every node.
    fn seat_taken(&self, player: PlayerId, seat: Seat) {
        self.player_seats.insert(player, (self.id, seat));
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
        self.player_seats.remove_if(&player, |_, (m, _)| *m == id);
        if let Some(r) = self.repl.as_ref().filter(|_| in_redis) {
            let replica = r.replica.clone();
            actix::spawn(async move {
                let _ = replica.clear_seat(player, id).await;
            });
        }
    }

    /// Every member with a connection, and that connection.
    fn connected(&self) -> impl Iterator<Item = (&Member, &Recipient<ToConn>)> {
        self.seats
            .iter()
            .flatten()
            .filter_map(|m| m.conn.as_ref().map(|(_, conn)| (m, conn)))
    }

    /// Tells every connected member it was dropped from this match.
    fn kick_all(&self, code: &'static str, message: &str) {
        for (_, conn) in self.connected() {
            conn.do_send(ToConn::Kicked {
                match_id: self.id,
                code,
                message: message.into(),
            });
        }
    }

    /// One `Detached` per connected member, carrying `msg` in its encoding
    /// (encoded once per encoding).
    fn detach_all(&self, msg: &ServerMsg) -> Vec<(Recipient<ToConn>, ToConn)> {
        let mut frames = EncodeOnce::new(msg);
        self.connected()
            .map(|(m, conn)| {
                let detached = ToConn::Detached {
                    match_id: self.id,
                    frame: Some(frames.get(m.encoding)),
                };
                (conn.clone(), detached)
            })
            .collect()
    }

    /// Records an input for replication.
    fn record(&mut self, input: Input) {
        if let Some(r) = self.repl.as_mut() {
            r.pending.inputs.push(input);
        }
    }

    /// Sends one frame to one member now. A member whose connection has more
    /// than `max_outbound_bytes` queued, or whose mailbox is full, is a
    /// client that cannot keep up: it is dropped from its seat (the seat is
    /// held as disconnected) and its connection closed with 1008.
    fn send_now(&mut self, seat: usize, frame: Out) {
        let limit = self.cfg.max_outbound_bytes;
        let Some(Some(member)) = self.seats.get_mut(seat) else {
            return;
        };
        let Some((conn_id, conn)) = &member.conn else {
            return;
        };
        let len = frame.len();
        let queued = member.backlog.add(len);
        let failed = if queued > limit {
            Some("backlog")
        } else {
            match conn.try_send(ToConn::Frame(frame)) {
                Ok(()) => None,
                Err(SendError::Full(_)) => Some("full"),
                Err(SendError::Closed(_)) => Some("closed"),
            }
        };
        let Some(reason) = failed else {
            return;
        };
        member.backlog.sub(len);
        if reason != "closed" {
            metrics::counter!(m::MAILBOX_FULL, "target" => "connection", "reason" => reason)
                .increment(1);
            metrics::counter!(m::SLOW_CLIENTS).increment(1);
            log::warn!(match_id = self.id, conn_id = *conn_id, queued_bytes = queued - len, reason = reason; "client cannot keep up; disconnecting it");
            // One control message past the bound, so the client learns why.
            conn.do_send(ToConn::Kicked {
                match_id: self.id,
                code: "slow_consumer",
                message: "the client did not read events fast enough".into(),
            });
        }
        member.conn = None;
        member.disconnected_at = Some(Instant::now());
        self.dropped.push(seat as Seat);
    }

    /// Tells the members about seats dropped by [`Self::send_to`]; called
    /// once the frame being sent has gone to everyone.
    fn announce_dropped(&mut self) {
        if self.dropped.is_empty() {
            return;
        }
        let seats = std::mem::take(&mut self.dropped);
        let events = seats
            .into_iter()
            .map(|seat| Event::PlayerDisconnected { seat })
            .collect();
        self.broadcast(None, events);
        self.update_counts();
    }

    /// One private frame to one member (a reply, a rejection).
    fn deliver(&mut self, seat: Seat, frame: Out) {
        self.send_to(seat as usize, frame);
        self.announce_dropped();
    }

    fn reply_to(&mut self, seat: Seat, msg: &ServerMsg, encoding: Encoding) {
        self.deliver(seat, encode(msg, encoding));
    }

    /// Numbers, records and broadcasts events; the hot path.
    fn broadcast(&mut self, actor_seat: Option<Seat>, events: Vec<Event>) {
        // Events of one broadcast happen at one moment: one clock read.
        let mut history = self.persist.as_ref().map(|_| {
            (
                Vec::with_capacity(events.len()),
                unix_ms(std::time::SystemTime::now()),
            )
        });
        for event in events {
            self.seq += 1;
            let msg = ServerMsg::Event {
                match_id: self.id,
                seq: self.seq,
                seat: actor_seat,
                event,
            };
            let mut frames = EncodeOnce::new(&msg);
            for seat in 0..self.seats.len() {
                let enc = match &self.seats[seat] {
                    Some(Member {
                        conn: Some(_),
                        encoding,
                        ..
                    }) => *encoding,
                    _ => continue,
                };
                let frame = frames.get(enc);
                self.send_to(seat, frame);
            }
            drop(frames);
            if let ServerMsg::Event {
                seq, seat, event, ..
            } = msg
            {
                if let Some((h, at_ms)) = history.as_mut() {
                    let (match_id, at_ms, event) = (self.id, *at_ms, event.clone());
                    h.push(Record::Event {
                        match_id,
                        seq,
                        seat,
                        at_ms,
                        event,
                    });
                }
                let recorded = Recorded { seq, seat, event };
                if let Some(r) = self.repl.as_mut() {
                    r.pending.events.push(recorded.clone());
                }
                push_ring(&mut self.ring, recorded, self.cfg.ring_buffer);
            }
            self.metrics.events.increment(1);
        }
        // History goes to the writer without waiting: it buffers or journals.
        if let (Some(writer), Some((h, _))) = (&self.persist, history) {
            if !h.is_empty() {
                writer.do_send(Persist(h));
            }
        }
        self.announce_dropped();
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
                );
                None
            }
        }
    }

    /// Applies an outcome: broadcast its events, end the match if it says so,
    /// and start or stop the tick timer as the game asks.
    fn apply_outcome(&mut self, ctx: &mut Context<Self>, seat: Option<Seat>, outcome: Outcome) {
        self.broadcast(seat, outcome.events);
        if let Some(result) = outcome.ended {
            self.finish(ctx, result);
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

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.ended {
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
    fn finish(&mut self, ctx: &mut Context<Self>, result: MatchResult) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.seq += 1;
        let ended = ServerMsg::Ended {
            match_id: self.id,
            seq: self.seq,
            result: result.clone(),
        };
        for (conn, detached) in self.detach_all(&ended) {
            // Control message: must arrive even past the mailbox bound.
            self.control(conn, detached);
        }
        if let Some(writer) = &self.persist {
            writer.do_send(Persist(vec![Record::MatchEnded {
                match_id: self.id,
                ruleset: self.ruleset.name().into(),
                node_id: self.cfg.node_id.clone(),
                created_at_ms: unix_ms(self.info.created_at),
                ended_at_ms: unix_ms(std::time::SystemTime::now()),
                last_seq: self.seq - 1,
                result: result.clone(),
                players: self.participants.clone(),
            }]));
        }
        log::info!(match_id = self.id, ruleset = self.ruleset.name(), reason = result.reason.as_str(), seq = self.seq; "match ended");
        metrics::counter!(m::MATCHES_ENDED, "ruleset" => self.ruleset.name(), "reason" => result.reason.clone())
            .increment(1);
        self.info.joinable.store(false, Ordering::Relaxed);
        match self.repl.as_mut() {
            // Stops once the end is in Redis and the frames are out.
            Some(r) => {
                r.pending.ended = true;
                r.stop_after = Some(StopAfterWrite::Ended);
                self.commit(ctx);
            }
            None => ctx.stop(),
        }
    }

    /// Makes what changed durable in Redis, then lets the frames that
    /// waited for it go; or, with nothing to write, sends what waits. One
    /// write is in flight at a time; what happens meanwhile makes the next.
    fn commit(&mut self, ctx: &mut Context<Self>) {
        loop {
            let Some(r) = self.repl.as_mut() else {
                return;
            };
            if r.in_flight {
                return;
            }
            // Degraded (Redis away), only a snapshot is written; the match
            // plays on and that snapshot covers what happens meanwhile.
            let to_write = r.snapshot_due || (!r.degraded && (r.changed() || r.renew_due));
            if !to_write {
                if r.degraded {
                    r.pending = Batch::default();
                }
                let open = std::mem::take(&mut r.open);
                if open.is_empty() {
                    break;
                }
                self.flush(open);
                continue;
            }
            self.start_write(ctx);
            return;
        }
        self.stop_if_done(ctx);
    }

    fn start_write(&mut self, ctx: &mut Context<Self>) {
        let snapshot = self
            .repl
            .as_ref()
            .filter(|r| r.snapshot_due)
            .and_then(|_| self.game.snapshot());
        let (seq, id, seed) = (self.seq, self.id, self.seed);
        let created_at_ms = unix_ms(self.info.created_at);
        let players: Vec<Option<PlayerId>> = self
            .seats
            .iter()
            .map(|s| s.as_ref().map(|m| m.player_id))
            .collect();
        let ruleset = self.ruleset.name();
        let Some(r) = self.repl.as_mut() else {
            return;
        };
        let mut write = repl::Write::default();
        if r.changed() && !r.degraded {
            r.batch_no += 1;
            let batch = std::mem::take(&mut r.pending);
            write.batch = repl::encode(&batch).map(|b| (r.batch_no, b));
        } else {
            r.pending = Batch::default();
        }
        if let Some(game) = snapshot {
            let snap = MatchSnapshot {
                match_id: id,
                ruleset: ruleset.into(),
                seq,
                batch: r.batch_no,
                seed,
                created_at_ms,
                players,
                participants: self.participants.clone(),
                game,
            };
            write.snapshot = repl::encode(&snap).map(|b| (r.batch_no, b));
            // Keep the batches since the snapshot before this one, so a
            // node taking over can replay recent events to resuming clients.
            write.trim_below = Some(r.prev_snap_batch + 1);
        }
        write.latest_batch = r.batch_no;
        write.renew = r.renew_due || write.snapshot.is_some();
        let renewing = write.renew;
        let wrote_snapshot = write.snapshot.as_ref().map(|(n, _)| *n);
        r.snapshot_due = false;
        r.renew_due = false;
        r.in_flight = true;
        r.sealed = std::mem::take(&mut r.open);
        let replica = r.replica.clone();
        let fut = async move { replica.write(id, write).await };
        let sent = Instant::now();
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if let (Ok(()), Some(r)) = (&res, act.repl.as_mut()) {
                if renewing {
                    r.last_renew = sent;
                }
            }
            act.written(ctx, res, wrote_snapshot)
        }));
    }

    fn written(
        &mut self,
        ctx: &mut Context<Self>,
        res: Result<(), ReplicaError>,
        wrote_snapshot: Option<u64>,
    ) {
        let Some(r) = self.repl.as_mut() else {
            return;
        };
        r.in_flight = false;
        match res {
            Ok(()) => {
                if r.degraded {
                    log::info!(match_id = self.id; "match replicated in redis again");
                }
                r.degraded = false;
                if let Some(n) = wrote_snapshot {
                    r.prev_snap_batch = r.snap_batch;
                    r.snap_batch = n;
                }
            }
            Err(ReplicaError::NotOwner(owner)) => {
                // Another node took this match over: what this node did
                // since its last write never reached a client. Stop here;
                // the members resume and are sent to the new owner.
                log::warn!(match_id = self.id, owner = owner.as_str(); "lost the match lease to another node; stopping the match here");
                metrics::counter!(m::LEASES_LOST).increment(1);
                r.sealed.clear();
                r.open.clear();
                self.moved = true;
                self.kick_all("match_moved", "the match moved to another node; resume it");
                ctx.stop();
                return;
            }
            Err(e) => {
                if !r.degraded {
                    log::warn!(match_id = self.id; "could not replicate the match: {e}; playing on without waiting for redis");
                }
                // The renewal timer tries a full snapshot from now on.
                r.degraded = true;
                if matches!(r.stop_after, Some(StopAfterWrite::Handover(_))) {
                    // No snapshot, no handover: the match plays on here.
                    log::warn!(match_id = self.id; "handover cancelled: redis did not take the snapshot");
                    r.stop_after = None;
                }
            }
        }
        let sealed = std::mem::take(&mut r.sealed);
        self.flush(sealed);
        self.commit(ctx);
    }

    /// Sends frames and control messages whose batch is in Redis.
    fn flush(&mut self, items: Vec<Outgoing>) {
        for item in items {
            match item {
                Outgoing::Frame {
                    seat,
                    conn_id,
                    frame,
                } => {
                    if self.member(seat, conn_id).is_some() {
                        self.send_now(usize::from(seat), frame);
                    }
                }
                Outgoing::Control(conn, msg) => conn.do_send(msg),
            }
        }
        self.announce_dropped();
    }

    /// Stops a replicated match that ended or was handed over, once
    /// nothing waits any more.
    fn stop_if_done(&mut self, ctx: &mut Context<Self>) {
        let Some(r) = self.repl.as_mut() else {
            return;
        };
        if r.in_flight || !r.open.is_empty() || r.changed() {
            return;
        }
        let Some(stop) = r.stop_after.take() else {
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
        if self.ended {
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

    fn reject(&mut self, seat: Seat, client_seq: u64, rejection: Rejection, encoding: Encoding) {
        metrics::counter!(m::ACTIONS_REJECTED, "ruleset" => self.ruleset.name(), "code" => rejection.code)
            .increment(1);
        let msg = ServerMsg::Rejected {
            client_seq,
            code: rejection.code.into(),
            message: rejection.message,
        };
        self.reply_to(seat, &msg, encoding);
    }

    /// Whether every event after `last_seq` is still in the ring buffer.
    fn can_replay(&self, last_seq: u64) -> bool {
        if last_seq > self.seq {
            return false;
        }
        last_seq == self.seq || self.ring.front().is_some_and(|e| e.seq <= last_seq + 1)
    }

    /// Sends `seat` every recorded event after `last_seq`, in order.
    fn replay(&mut self, seat: usize, last_seq: u64, encoding: Encoding) {
        let frames: Vec<Out> = self
            .ring
            .iter()
            .filter(|e| e.seq > last_seq)
            .map(|e| {
                let msg = ServerMsg::Event {
                    match_id: self.id,
                    seq: e.seq,
                    seat: e.seat,
                    event: e.event.clone(),
                };
                encode(&msg, encoding)
            })
            .collect();
        metrics::counter!(m::EVENTS_REPLAYED).increment(frames.len() as u64);
        for frame in frames {
            self.send_to(seat, frame);
        }
        self.announce_dropped();
    }
}

impl Actor for MatchSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.cfg.match_mailbox);
        ctx.run_interval(Duration::from_millis(250), |act, ctx| {
            act.housekeeping(ctx);
            act.commit(ctx);
        });
        self.update_counts();
        if let Some(r) = &self.repl {
            let cfg = r.replica.config();
            let renew_every = Duration::from_millis((cfg.lease_ttl_ms / 3).max(10));
            ctx.run_interval(renew_every, move |act, ctx| {
                if let Some(r) = act.repl.as_mut() {
                    // A degraded match renews nothing: it retries its snapshot.
                    if r.last_renew.elapsed() >= renew_every {
                        // Degraded: only a full snapshot can make the copy whole.
                        if r.degraded {
                            r.snapshot_due = true;
                        } else {
                            r.renew_due = true;
                        }
                        act.commit(ctx);
                    }
                }
            });
            ctx.run_interval(
                Duration::from_millis(cfg.snapshot_ms.max(10)),
                |act, ctx| {
                    if let Some(r) = act.repl.as_mut() {
                        if r.batch_no > r.snap_batch {
                            r.snapshot_due = true;
                            act.commit(ctx);
                        }
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
            return;
        }
        if let Some(writer) = &self.persist {
            writer.do_send(Persist(vec![Record::MatchCreated {
                match_id: self.id,
                ruleset: self.ruleset.name().into(),
                node_id: self.cfg.node_id.clone(),
                created_at_ms: unix_ms(self.info.created_at),
            }]));
        }
        log::info!(match_id = self.id, ruleset = self.ruleset.name(); "match started");
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
        self.registry.do_send(MatchStopped { id: self.id });
    }
}

impl Handler<Join> for MatchSession {
    type Result = Result<JoinAck, JoinError>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        if self.ended {
            return Err(JoinError::Ended);
        }
        let existing = self
            .seats
            .iter()
            .position(|s| s.as_ref().is_some_and(|m| m.player_id == msg.player_id));
        let (seat, rejoin) = match existing {
            Some(i) => (i, true),
            None if msg.resume_from.is_some() => return Err(JoinError::NotMember),
            None => {
                if !self.game.accepts_players() {
                    return Err(JoinError::Closed);
                }
                let free = self.seats.iter().position(Option::is_none);
                (free.ok_or(JoinError::Full)?, false)
            }
        };
        let seat_id = seat as Seat;
        if rejoin {
            let Some(member) = self.seats[seat].as_mut() else {
                return Err(JoinError::Full);
            };
            if let Some((old_id, old)) = member.conn.take() {
                if old_id != msg.conn_id {
                    old.do_send(ToConn::Kicked {
                        match_id: self.id,
                        code: "replaced",
                        message: "this seat was taken over by a newer connection".into(),
                    });
                }
            }
            member.conn = Some((msg.conn_id, msg.conn));
            member.backlog = msg.backlog;
            member.encoding = msg.encoding;
            member.disconnected_at = None;
        } else {
            self.seats[seat] = Some(Member {
                player_id: msg.player_id,
                conn: Some((msg.conn_id, msg.conn)),
                backlog: msg.backlog,
                encoding: msg.encoding,
                disconnected_at: None,
            });
        }
        self.empty_since = None;
        self.seat_taken(msg.player_id, seat_id);
        // What the client gets first: `resumed` followed by the events it
        // missed, when the ring buffer still holds them all, else the
        // `joined` snapshot. Both go through the same mailbox as the events
        // that follow, so the client sees them in `seq` order.
        let replay = msg.resume_from.filter(|&last| self.can_replay(last));
        let first = match replay {
            Some(last_seq) => ServerMsg::Resumed {
                match_id: self.id,
                seat: seat_id,
                last_seq,
                seq: self.seq,
            },
            None => ServerMsg::Joined {
                match_id: self.id,
                ruleset: self.ruleset.name().into(),
                seat: seat_id,
                seq: self.seq,
                state: self.game.view(Some(seat_id), self.seat_views()),
            },
        };
        if let Some((_, conn)) = self.seats[seat].as_ref().and_then(|m| m.conn.clone()) {
            // Control message, one per join: the connection takes its seat
            // as it writes this frame, so a client that acts the moment it
            // reads `joined` is already seated.
            let joined = ToConn::Joined {
                match_id: self.id,
                seat: seat_id,
                addr: ctx.address(),
                frame: encode(&first, msg.encoding),
            };
            self.control(conn, joined);
        }
        if msg.resume_from.is_some() {
            let outcome = if replay.is_some() {
                "replayed"
            } else {
                "snapshot"
            };
            metrics::counter!(m::RESUMES, "outcome" => outcome).increment(1);
        }
        if let Some(last_seq) = replay {
            self.replay(seat, last_seq, msg.encoding);
        }
        log::info!(match_id = self.id, player_id = msg.player_id, seat = seat_id, conn_id = msg.conn_id; "player joined");
        if rejoin {
            self.broadcast(None, vec![Event::PlayerReconnected { seat: seat_id }]);
        } else {
            self.broadcast(
                None,
                vec![Event::PlayerJoined {
                    seat: seat_id,
                    player_id: msg.player_id,
                }],
            );
            self.record(Input::SeatJoined {
                seat: seat_id,
                player_id: msg.player_id,
            });
            add_participant(&mut self.participants, seat_id, msg.player_id);
            if let Some(outcome) = self.guarded(ctx, "seat_joined", |g| g.seat_joined(seat_id)) {
                self.apply_outcome(ctx, None, outcome);
            }
        }
        self.update_counts();
        self.commit(ctx);
        Ok(JoinAck {
            match_id: self.id,
            seat: seat_id,
        })
    }
}

impl Handler<Act> for MatchSession {
    type Result = ();

    fn handle(&mut self, msg: Act, ctx: &mut Self::Context) {
        if self.member(msg.seat, msg.conn_id).is_none() {
            return; // a stale connection; its frames no longer count
        }
        if let Some(Some(m)) = self.seats.get_mut(msg.seat as usize) {
            m.encoding = msg.encoding;
        }
        if self.ended {
            let r = Rejection::new("match_ended", "the match has ended");
            self.reject(msg.seat, msg.client_seq, r, msg.encoding);
            return;
        }
        let action = msg.action;
        let Some(result) = self.guarded(ctx, "apply", |g| g.apply(msg.seat, &action)) else {
            return;
        };
        match result {
            Ok(outcome) => {
                self.metrics.accepted.increment(1);
                self.record(Input::Apply {
                    seat: msg.seat,
                    action,
                });
                self.apply_outcome(ctx, Some(msg.seat), outcome);
                self.metrics
                    .action_seconds
                    .record(msg.received.elapsed().as_secs_f64());
            }
            Err(rejection) => self.reject(msg.seat, msg.client_seq, rejection, msg.encoding),
        }
        self.commit(ctx);
    }
}

impl Handler<Ask> for MatchSession {
    type Result = ();

    fn handle(&mut self, msg: Ask, ctx: &mut Self::Context) {
        if self.member(msg.seat, msg.conn_id).is_none() {
            return;
        }
        if let Query::State = msg.query {
            let state = self.game.view(Some(msg.seat), self.seat_views());
            let reply = ServerMsg::Reply {
                client_seq: msg.client_seq,
                reply: crate::protocol::Reply::State { state },
            };
            self.reply_to(msg.seat, &reply, msg.encoding);
            self.commit(ctx);
            return;
        }
        let (seat, client_seq, encoding) = (msg.seat, msg.client_seq, msg.encoding);
        let normalized = match self.cache {
            Some(_) => {
                let query = &msg.query;
                let Some(n) = self.guarded(ctx, "cache_query", |g| g.cache_query(seat, query))
                else {
                    return;
                };
                n
            }
            None => None,
        };
        let cached = self.cache.clone().zip(normalized);
        let frame = match cached {
            Some((cache, normalized)) => {
                let key = self.cache_key(seat, normalized);
                let shared = match cache.get(&key) {
                    Some(shared) => Ok(shared),
                    None => {
                        let query = &msg.query;
                        let Some(answer) = self.guarded(ctx, "query", |g| g.query(seat, query))
                        else {
                            return;
                        };
                        answer.map(|reply| {
                            let shared = Rc::new(SharedReply::new(reply));
                            cache.put(key, shared.clone());
                            shared
                        })
                    }
                };
                shared.map(|s| s.frame(client_seq, encoding))
            }
            None => {
                let query = msg.query;
                let Some(answer) = self.guarded(ctx, "query", |g| g.query(seat, &query)) else {
                    return;
                };
                answer.map(|reply| encode(&ServerMsg::Reply { client_seq, reply }, encoding))
            }
        };
        match frame {
            Ok(frame) => self.deliver(seat, frame),
            Err(rejection) => self.reject(seat, client_seq, rejection, encoding),
        }
        self.commit(ctx);
    }
}

impl Handler<Leave> for MatchSession {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) {
        let Some(member) = self.member(msg.seat, msg.conn_id) else {
            return;
        };
        if let Some((_, conn)) = member.conn.clone() {
            let left = ServerMsg::Left { match_id: self.id };
            let detached = ToConn::Detached {
                match_id: self.id,
                frame: Some(encode(&left, member.encoding)),
            };
            self.control(conn, detached);
        }
        log::info!(match_id = self.id, seat = msg.seat; "player left");
        self.vacate(ctx, msg.seat);
        self.commit(ctx);
    }
}

impl Handler<Disconnected> for MatchSession {
    type Result = ();

    fn handle(&mut self, msg: Disconnected, ctx: &mut Self::Context) {
        if self.member(msg.seat, msg.conn_id).is_none() {
            return;
        }
        if let Some(Some(member)) = self.seats.get_mut(msg.seat as usize) {
            member.conn = None;
            member.disconnected_at = Some(Instant::now());
        }
        log::info!(match_id = self.id, seat = msg.seat, conn_id = msg.conn_id; "player disconnected; holding the seat");
        self.broadcast(None, vec![Event::PlayerDisconnected { seat: msg.seat }]);
        self.update_counts();
        self.commit(ctx);
    }
}

impl Handler<EndMatch> for MatchSession {
    type Result = ();

    fn handle(&mut self, msg: EndMatch, ctx: &mut Self::Context) {
        self.finish(
            ctx,
            MatchResult {
                winner: None,
                reason: msg.reason,
                scores: Vec::new(),
            },
        );
        self.commit(ctx);
    }
}

impl Handler<Handover> for MatchSession {
    type Result = ();

    fn handle(&mut self, msg: Handover, ctx: &mut Self::Context) {
        if self.ended {
            return;
        }
        let Some(r) = self.repl.as_mut().filter(|r| !r.degraded) else {
            log::warn!(match_id = self.id; "cannot hand over a match that is not replicated; it plays on here");
            return;
        };
        r.snapshot_due = true;
        r.stop_after = Some(StopAfterWrite::Handover(msg.url));
        self.commit(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Reply, State};
    use crate::rules::tactics::Tactics;

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
