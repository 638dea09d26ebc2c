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
use crate::registry::{MatchInfo, MatchStopped};
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

/// One recorded event, kept for resume.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub seq: u64,
    pub seat: Option<Seat>,
    pub event: Event,
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
        }
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

    /// Sends one frame to one member. A member whose connection has more
    /// than `max_outbound_bytes` queued, or whose mailbox is full, is a
    /// client that cannot keep up: it is dropped from its seat (the seat is
    /// held as disconnected) and its connection closed with 1008.
    fn send_to(&mut self, seat: usize, frame: Out) {
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
                if self.ring.len() >= self.cfg.ring_buffer.max(1) {
                    self.ring.pop_front();
                }
                self.ring.push_back(Recorded { seq, seat, event });
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
        if let Some(outcome) = self.guarded(ctx, "tick", |g| g.tick()) {
            self.apply_outcome(ctx, None, outcome);
        }
        self.metrics
            .tick_seconds
            .record(started.elapsed().as_secs_f64());
    }

    /// Ends the match: one `ended` frame to every member, then stop.
    fn finish(&mut self, ctx: &mut Context<Self>, result: MatchResult) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.seq += 1;
        let msg = ServerMsg::Ended {
            match_id: self.id,
            seq: self.seq,
            result: result.clone(),
        };
        let mut frames = EncodeOnce::new(&msg);
        for member in self.seats.iter().flatten() {
            if let Some((_, conn)) = &member.conn {
                // Control message: must arrive even past the mailbox bound.
                conn.do_send(ToConn::Detached {
                    match_id: self.id,
                    frame: Some(frames.get(member.encoding)),
                });
            }
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
                players: Vec::new(), // the writer knows who sat here
            }]));
        }
        log::info!(match_id = self.id, ruleset = self.ruleset.name(), reason = result.reason.as_str(), seq = self.seq; "match ended");
        metrics::counter!(m::MATCHES_ENDED, "ruleset" => self.ruleset.name(), "reason" => result.reason.clone())
            .increment(1);
        self.info.joinable.store(false, Ordering::Relaxed);
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
        if self
            .seats
            .get_mut(seat as usize)
            .and_then(Option::take)
            .is_none()
        {
            return;
        }
        self.broadcast(None, vec![Event::PlayerLeft { seat }]);
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
        ctx.run_interval(Duration::from_millis(250), |act, ctx| act.housekeeping(ctx));
        self.update_counts();
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
        if !self.ended {
            // Stopped without a result (the system is shutting down): tell members.
            for member in self.seats.iter().flatten() {
                if let Some((_, conn)) = &member.conn {
                    conn.do_send(ToConn::Kicked {
                        match_id: self.id,
                        code: "match_stopped",
                        message: "the match was stopped".into(),
                    });
                }
            }
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
        if let Some((_, conn)) = self.seats[seat].as_ref().and_then(|m| m.conn.as_ref()) {
            // Control message, one per join: the connection takes its seat
            // as it writes this frame, so a client that acts the moment it
            // reads `joined` is already seated.
            conn.do_send(ToConn::Joined {
                match_id: self.id,
                seat: seat_id,
                addr: ctx.address(),
                frame: encode(&first, msg.encoding),
            });
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
            if let Some(outcome) = self.guarded(ctx, "seat_joined", |g| g.seat_joined(seat_id)) {
                self.apply_outcome(ctx, None, outcome);
            }
        }
        self.update_counts();
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
                self.apply_outcome(ctx, Some(msg.seat), outcome);
                self.metrics
                    .action_seconds
                    .record(msg.received.elapsed().as_secs_f64());
            }
            Err(rejection) => self.reject(msg.seat, msg.client_seq, rejection, msg.encoding),
        }
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
    }
}

impl Handler<Leave> for MatchSession {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) {
        let Some(member) = self.member(msg.seat, msg.conn_id) else {
            return;
        };
        if let Some((_, conn)) = &member.conn {
            let left = ServerMsg::Left { match_id: self.id };
            conn.do_send(ToConn::Detached {
                match_id: self.id,
                frame: Some(encode(&left, member.encoding)),
            });
        }
        log::info!(match_id = self.id, seat = msg.seat; "player left");
        self.vacate(ctx, msg.seat);
    }
}

impl Handler<Disconnected> for MatchSession {
    type Result = ();

    fn handle(&mut self, msg: Disconnected, _: &mut Self::Context) {
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
    }
}
