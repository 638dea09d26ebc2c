//! `Connection`: one actor per WebSocket. Decodes client frames, forwards
//! them to the player's match, writes the frames the match sends back, and
//! runs the server-side heartbeat.
//!
//! It never blocks on its match: actions are handed over with `try_send`, so
//! a match whose mailbox is full answers `busy` instead of growing memory.
//! Every client mistake is answered with an `error` frame (see
//! [`ConnError`]) and the connection stays open; only a frame over the size
//! limit (1009), a protocol violation (1002), a heartbeat timeout or a
//! client that keeps sending over its frame budget (1008, see
//! [`crate::budget`]) close it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;
use bytes::{Bytes, BytesMut};

use crate::budget::{FrameBudget, Verdict};
use crate::cluster::replica::SeatReservation;
use crate::metrics::{self as m, FrameMetrics};
use crate::node::{Engine, EngineError, LocateError, Located, MatchEntry};
use crate::session::messages::{Act, Ask, Backlog, Disconnected, Join, JoinError, Leave, ToConn};
use crate::session::MatchSession;
use matchd_protocol::codec::{self, DecodeError, Encoding, Out};
use matchd_protocol::{ClientMsg, MatchId, PlayerId, Seat, ServerMsg};

/// How many times a quick-join looks for another match when the one it was
/// given filled up in the meantime.
const QUICK_JOIN_ATTEMPTS: usize = 5;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// What a `draining` frame tells clients to wait before joining again
/// (elsewhere, through the load balancer).
pub const DRAIN_RETRY_AFTER_MS: u64 = 1000;

/// Everything a client can get wrong, mapped to the wire in [`ConnError::frame`].
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("give exactly one of match_id or ruleset (max_seats only with ruleset)")]
    InvalidJoin,
    #[error("already in match {0}; leave it first")]
    AlreadyInMatch(MatchId),
    #[error("a join is already in progress")]
    JoinInProgress,
    #[error("not in a match; join one first")]
    NotInMatch,
    #[error("no live match with id {0}")]
    MatchNotFound(MatchId),
    #[error("{0}")]
    Join(JoinError),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("the match is gone")]
    MatchGone,
    #[error("the match did not answer in time")]
    MatchBusy,
    #[error("{0}")]
    Locate(#[from] LocateError),
}

impl ConnError {
    pub fn code(&self) -> &'static str {
        match self {
            ConnError::Decode(e) => e.code(),
            ConnError::InvalidJoin => "invalid_join",
            ConnError::AlreadyInMatch(_) => "already_in_match",
            ConnError::JoinInProgress => "join_in_progress",
            ConnError::NotInMatch => "not_in_match",
            ConnError::MatchNotFound(_) => "match_not_found",
            ConnError::Join(e) => e.code(),
            ConnError::Engine(e) => e.code(),
            ConnError::MatchGone => "match_gone",
            ConnError::MatchBusy => "match_busy",
            ConnError::Locate(e) => e.code(),
        }
    }

    /// The one place a connection-level error becomes a wire frame.
    pub fn frame(&self) -> ServerMsg {
        ServerMsg::Error {
            code: self.code().into(),
            message: self.to_string(),
        }
    }
}

struct Seated {
    match_id: MatchId,
    seat: Seat,
    addr: Addr<MatchSession>,
}

/// A quick-join under way: what was asked, and the matches that filled up
/// before this connection's join reached them.
struct QuickJoinAsk {
    ruleset: String,
    max_seats: Option<u8>,
    exclude: Vec<MatchId>,
}

/// A message being reassembled from continuation frames.
struct Partial {
    text: bool,
    buf: BytesMut,
}

pub struct Connection {
    id: u64,
    player_id: PlayerId,
    engine: Engine,
    /// Encoding of server-initiated frames until the client sends one.
    encoding: Encoding,
    /// The bincode layout this client reads (`?protocol=`; see
    /// [`Encoding::binary_for`]).
    binary: Encoding,
    last_seen: Instant,
    seated: Option<Seated>,
    joining: bool,
    /// The match a join (or resume) was sent to, until its `ToConn::Joined`
    /// seats this connection or the match refuses.
    awaiting: Option<MatchId>,
    /// Whether this client has been told that the node drains.
    told_draining: bool,
    partial: Option<Partial>,
    /// A fragmented message was dropped over budget: its remaining
    /// fragments are ignored.
    dropped_partial: bool,
    backlog: Arc<Backlog>,
    frames: FrameMetrics,
    /// What this client may still send (frames and bytes per second).
    budget: FrameBudget,
    /// Held for the connection's lifetime and dropped with it: the caller's
    /// slot in its concurrent-connection caps.
    _permit: Option<Box<dyn std::any::Any + Send>>,
}

impl Connection {
    /// A connection of `player_id` that sends `encoding` until the client
    /// sends a frame, and bincode in the layout of `protocol` (the version
    /// the client asked for; 1 if it did not).
    pub fn new(engine: Engine, player_id: PlayerId, encoding: Encoding, protocol: u32) -> Self {
        let binary = Encoding::binary_for(protocol);
        Self {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            player_id,
            encoding: if encoding.is_binary() {
                binary
            } else {
                encoding
            },
            binary,
            last_seen: Instant::now(),
            seated: None,
            joining: false,
            awaiting: None,
            told_draining: false,
            partial: None,
            dropped_partial: false,
            backlog: Arc::default(),
            frames: FrameMetrics::new(),
            budget: FrameBudget::new(
                engine.config().frames_per_sec,
                engine.config().bytes_per_sec,
                engine.config().max_message_bytes,
            ),
            _permit: None,
            engine,
        }
    }

    /// Keeps `permit` until the connection ends (a slot of a concurrency
    /// cap, released by its `Drop`).
    pub fn with_permit(mut self, permit: Box<dyn std::any::Any + Send>) -> Self {
        self._permit = Some(permit);
        self
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    fn write(&self, ctx: &mut ws::WebsocketContext<Self>, frame: Out) {
        match frame {
            Out::Text(t) => {
                self.frames.out_json.increment(1);
                ctx.text(t);
            }
            Out::Binary(b) => {
                self.frames.out_bincode.increment(1);
                ctx.binary(b);
            }
        }
    }

    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, msg: &ServerMsg, enc: Encoding) {
        self.write(ctx, codec::encode(msg, enc));
    }

    fn fail(&self, ctx: &mut ws::WebsocketContext<Self>, err: ConnError, enc: Encoding) {
        metrics::counter!(m::BAD_FRAMES, "code" => err.code()).increment(1);
        log::debug!(conn_id = self.id, code = err.code(); "client error: {err}");
        self.send(ctx, &err.frame(), enc);
    }

    fn close(&self, ctx: &mut ws::WebsocketContext<Self>, code: ws::CloseCode, why: &str) {
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(why.into()),
        }));
        ctx.stop();
    }

    fn on_frame(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        data: Bytes,
        text: bool,
        verdict: Verdict,
    ) {
        let (decoded, enc) = if text {
            self.frames.in_json.increment(1);
            let decoded = match std::str::from_utf8(&data) {
                Ok(s) => codec::decode_json(s),
                Err(e) => Err(DecodeError::MalformedJson(e.to_string())),
            };
            (decoded, Encoding::Json)
        } else {
            self.frames.in_bincode.increment(1);
            (codec::decode_bincode(&data), self.binary)
        };
        self.encoding = enc;
        match (decoded, verdict) {
            (Ok(msg), Verdict::Accept) => self.on_message(ctx, msg, enc),
            (Err(e), Verdict::Accept) => self.fail(ctx, e.into(), enc),
            (decoded, verdict) => self.over_budget(ctx, decoded.ok(), verdict, enc),
        }
    }

    /// A frame over this connection's budget: dropped, and answered with
    /// `rejected rate_limited` (actions and queries, so the caller can tell
    /// which) or `error rate_limited`; once it persists, `error
    /// rate_limited` and close 1008. The match never sees the frame.
    fn over_budget(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        msg: Option<ClientMsg>,
        verdict: Verdict,
        enc: Encoding,
    ) {
        metrics::counter!(m::RATE_LIMITED, "limit" => "frames").increment(1);
        let cfg = self.engine.config();
        let message = format!(
            "over this connection's budget of {} frames and {} bytes per second; slow down",
            cfg.frames_per_sec, cfg.bytes_per_sec
        );
        if verdict == Verdict::Close {
            log::info!(conn_id = self.id, player_id = self.player_id; "client kept sending over its budget; closing");
            let err = ServerMsg::Error {
                code: "rate_limited".into(),
                message,
            };
            self.send(ctx, &err, enc);
            return self.close(ctx, ws::CloseCode::Policy, "rate limited");
        }
        let answer = match msg {
            Some(ClientMsg::Action { client_seq, .. } | ClientMsg::Query { client_seq, .. }) => {
                ServerMsg::Rejected {
                    client_seq,
                    code: "rate_limited".into(),
                    message,
                }
            }
            _ => ServerMsg::Error {
                code: "rate_limited".into(),
                message,
            },
        };
        self.send(ctx, &answer, enc);
    }

    fn on_message(&mut self, ctx: &mut ws::WebsocketContext<Self>, msg: ClientMsg, enc: Encoding) {
        match msg {
            ClientMsg::Ping { nonce } => self.send(ctx, &ServerMsg::Pong { nonce }, enc),
            ClientMsg::Join {
                match_id,
                ruleset,
                max_seats,
            } => self.on_join(ctx, match_id, ruleset, max_seats, None, enc),
            ClientMsg::Resume { match_id, last_seq } => {
                self.on_join(ctx, Some(match_id), None, None, Some(last_seq), enc)
            }
            ClientMsg::Action { client_seq, action } => {
                let Some(s) = &self.seated else {
                    return self.fail(ctx, ConnError::NotInMatch, enc);
                };
                let act = Act {
                    seat: s.seat,
                    conn_id: self.id,
                    client_seq,
                    action,
                    encoding: enc,
                    received: Instant::now(),
                };
                match s.addr.try_send(act) {
                    Ok(()) => {}
                    Err(SendError::Full(_)) => self.busy(ctx, client_seq, enc),
                    Err(SendError::Closed(_)) => self.match_gone(ctx, enc),
                }
            }
            ClientMsg::Query { client_seq, query } => {
                let Some(s) = &self.seated else {
                    return self.fail(ctx, ConnError::NotInMatch, enc);
                };
                let ask = Ask {
                    seat: s.seat,
                    conn_id: self.id,
                    client_seq,
                    query,
                    encoding: enc,
                };
                match s.addr.try_send(ask) {
                    Ok(()) => {}
                    Err(SendError::Full(_)) => self.busy(ctx, client_seq, enc),
                    Err(SendError::Closed(_)) => self.match_gone(ctx, enc),
                }
            }
            ClientMsg::Leave => {
                let Some(s) = self.seated.take() else {
                    return self.fail(ctx, ConnError::NotInMatch, enc);
                };
                // One leave per join, so the unbounded do_send stays bounded;
                // the match answers with `left`.
                s.addr.do_send(Leave {
                    seat: s.seat,
                    conn_id: self.id,
                });
            }
        }
    }

    fn busy(&self, ctx: &mut ws::WebsocketContext<Self>, client_seq: u64, enc: Encoding) {
        metrics::counter!(m::MAILBOX_FULL, "target" => "match", "reason" => "full").increment(1);
        let msg = ServerMsg::Rejected {
            client_seq,
            code: "busy".into(),
            message: "the match is overloaded; try again".into(),
        };
        self.send(ctx, &msg, enc);
    }

    fn match_gone(&mut self, ctx: &mut ws::WebsocketContext<Self>, enc: Encoding) {
        self.seated = None;
        self.fail(ctx, ConnError::MatchGone, enc);
    }

    /// `join` by id or ruleset, or (`resume` set) `resume` by id.
    fn on_join(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        match_id: Option<MatchId>,
        ruleset: Option<String>,
        max_seats: Option<u8>,
        resume: Option<u64>,
        enc: Encoding,
    ) {
        if let Some(s) = &self.seated {
            return self.fail(ctx, ConnError::AlreadyInMatch(s.match_id), enc);
        }
        if self.joining {
            return self.fail(ctx, ConnError::JoinInProgress, enc);
        }
        // A draining node finishes what runs, so a resume is welcome; new
        // players go elsewhere.
        if resume.is_none() && self.engine.is_draining() {
            return self.fail(ctx, EngineError::Draining.into(), enc);
        }
        match (match_id, ruleset) {
            (Some(_), None) if max_seats.is_some() => self.fail(ctx, ConnError::InvalidJoin, enc),
            (Some(id), None) => match self.engine.lookup(id) {
                Some(entry) => self.join_entry(ctx, entry, None, resume, enc),
                None if self.engine.is_replicated() => self.locate(ctx, id, resume, enc),
                None => self.fail(ctx, ConnError::MatchNotFound(id), enc),
            },
            (None, Some(ruleset)) => {
                if self.engine.ruleset(&ruleset).is_none() {
                    return self.fail(ctx, EngineError::UnknownRuleset(ruleset).into(), enc);
                }
                let ask = QuickJoinAsk {
                    ruleset,
                    max_seats,
                    exclude: Vec::new(),
                };
                self.quick_join(ctx, ask, enc);
            }
            _ => self.fail(ctx, ConnError::InvalidJoin, enc),
        }
    }

    /// A match this node does not run: ask Redis who does. The answer is a
    /// `redirect` to its owner, or the match rebuilt here (failover).
    fn locate(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: MatchId,
        resume: Option<u64>,
        enc: Encoding,
    ) {
        self.joining = true;
        let engine = self.engine.clone();
        let fut = async move { engine.locate(id).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(Located::Here(entry)) => act.join_entry(ctx, entry, None, resume, enc),
            Ok(Located::Elsewhere { node_id, url }) => {
                act.joining = false;
                metrics::counter!(m::REDIRECTS, "reason" => "owner").increment(1);
                let msg = ServerMsg::Redirect {
                    match_id: id,
                    url,
                    node_id: Some(node_id),
                };
                act.send(ctx, &msg, enc);
            }
            Err(e) => {
                act.joining = false;
                act.fail(ctx, e.into(), enc);
            }
        }));
    }

    fn quick_join(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        ask: QuickJoinAsk,
        enc: Encoding,
    ) {
        self.joining = true;
        let engine = self.engine.clone();
        let fut = async move {
            engine
                .quick_join(&ask.ruleset, ask.exclude.clone(), ask.max_seats)
                .await
                .map(|e| (e, ask))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok((entry, ask)) => act.join_entry(ctx, entry, Some(ask), None, enc),
            Err(e) => {
                act.joining = false;
                act.fail(ctx, e.into(), enc);
            }
        }));
    }

    /// Asks `entry`'s match for a seat. `quick` carries the quick-join state
    /// so a match that filled up meanwhile leads to another try; `resume`
    /// the last `seq` a resuming client saw.
    fn join_entry(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        entry: MatchEntry,
        quick: Option<QuickJoinAsk>,
        resume: Option<u64>,
        enc: Encoding,
    ) {
        self.joining = true;
        let join = Join {
            player_id: self.player_id,
            conn_id: self.id,
            conn: ctx.address().recipient(),
            backlog: self.backlog.clone(),
            encoding: enc,
            resume_from: resume,
        };
        let addr = entry.addr.clone();
        let match_id = entry.info.id;
        self.awaiting = Some(match_id);
        // With Redis, a new seat also counts against the player's seats on
        // every node (a resume takes back a seat already counted).
        let cap = self.engine.config().max_seats_per_player;
        let seats = self
            .engine
            .replica()
            .filter(|_| cap > 0 && resume.is_none())
            .cloned();
        let player = self.player_id;
        let fut = async move {
            let reserved = match &seats {
                Some(replica) => match replica.reserve_seat(player, match_id, cap).await {
                    Ok(SeatReservation::OverCap) => return Ok(Err(JoinError::TooManySeats)),
                    Ok(r) => r == SeatReservation::Reserved,
                    // Without Redis the node's own count still applies.
                    Err(_) => false,
                },
                None => false,
            };
            let res = addr
                .send(join)
                .timeout(std::time::Duration::from_secs(2))
                .await;
            if let (true, Some(replica), Ok(Err(_)) | Err(MailboxError::Closed)) =
                (reserved, &seats, &res)
            {
                let _ = replica.release_seat(player, match_id).await;
            }
            res
        };
        // `spawn`, not `wait`: frames keep flowing while the match answers.
        // The seat is taken only from `ToConn::Joined`, which arrives in
        // order with the match's frames: an action sent the moment the
        // client reads `joined` finds the connection seated, and this reply,
        // which may come later (after a `leave`, say), never seats anyone.
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.joining = false;
            if !matches!(res, Ok(Ok(_)) | Err(MailboxError::Timeout)) {
                // Refused: no `ToConn::Joined` is coming. (After a timeout
                // it may still come, and then seats.)
                act.awaiting = None;
            }
            match res {
                Ok(Ok(_)) => {}
                Ok(Err(JoinError::Full | JoinError::Closed | JoinError::Ended))
                    if quick
                        .as_ref()
                        .is_some_and(|q| q.exclude.len() + 1 < QUICK_JOIN_ATTEMPTS) =>
                {
                    if let Some(mut ask) = quick {
                        ask.exclude.push(match_id);
                        act.quick_join(ctx, ask, enc);
                    }
                }
                Ok(Err(e)) => act.fail(ctx, ConnError::Join(e), enc),
                Err(MailboxError::Timeout) => act.fail(ctx, ConnError::MatchBusy, enc),
                Err(MailboxError::Closed) => act.fail(ctx, ConnError::MatchNotFound(match_id), enc),
            }
        }));
    }

    fn on_continuation(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        item: actix_http::ws::Item,
    ) {
        let (first_text, chunk, last) = match item {
            actix_http::ws::Item::FirstText(b) => (Some(true), b, false),
            actix_http::ws::Item::FirstBinary(b) => (Some(false), b, false),
            actix_http::ws::Item::Continue(b) => (None, b, false),
            actix_http::ws::Item::Last(b) => (None, b, true),
        };
        let verdict = self.budget.take(chunk.len());
        if verdict != Verdict::Accept {
            // The message is lost as a whole; its rest is ignored until a
            // new first fragment.
            self.partial = None;
            self.dropped_partial = !last;
            let enc = self.encoding;
            return self.over_budget(ctx, None, verdict, enc);
        }
        if let Some(text) = first_text {
            self.dropped_partial = false;
            self.partial = Some(Partial {
                text,
                buf: BytesMut::new(),
            });
        }
        let Some(partial) = self.partial.as_mut() else {
            if self.dropped_partial {
                // The rest of a message dropped over budget.
                self.dropped_partial = !last;
                return;
            }
            return self.close(
                ctx,
                ws::CloseCode::Protocol,
                "continuation without a first frame",
            );
        };
        if partial.buf.len() + chunk.len() > self.engine.config().max_message_bytes {
            self.partial = None;
            return self.close(ctx, ws::CloseCode::Size, "message too large");
        }
        partial.buf.extend_from_slice(&chunk);
        if last {
            if let Some(p) = self.partial.take() {
                // The budget was taken fragment by fragment.
                self.on_frame(ctx, p.buf.freeze(), p.text, Verdict::Accept);
            }
        }
    }
}

impl Actor for Connection {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.engine.config().connection_mailbox);
        metrics::gauge!(m::CONNECTIONS_OPEN).increment(1.0);
        log::debug!(conn_id = self.id, player_id = self.player_id; "connection opened");
        let welcome = ServerMsg::Welcome {
            player_id: self.player_id,
            node_id: self.engine.config().node_id.clone(),
            heartbeat_ms: self.engine.config().heartbeat_ms,
            protocol: matchd_protocol::PROTOCOL_VERSION,
        };
        self.send(ctx, &welcome, self.encoding);
        self.engine
            .connection_opened(self.id, self.player_id, ctx.address().recipient());
        let timeout = self.engine.config().client_timeout();
        ctx.run_interval(self.engine.config().heartbeat(), move |act, ctx| {
            if act.engine.is_draining() && !act.told_draining {
                act.told_draining = true;
                let msg = ServerMsg::Draining {
                    retry_after_ms: DRAIN_RETRY_AFTER_MS,
                };
                act.send(ctx, &msg, act.encoding);
            }
            if act.last_seen.elapsed() > timeout {
                metrics::counter!(m::HEARTBEAT_TIMEOUTS).increment(1);
                log::info!(conn_id = act.id, player_id = act.player_id; "client silent past the timeout; closing");
                act.close(ctx, ws::CloseCode::Away, "heartbeat timeout");
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!(m::CONNECTIONS_OPEN).decrement(1.0);
        self.engine.connection_closed(self.id);
        if let Some(s) = self.seated.take() {
            // Must arrive so the seat is marked disconnected; one per connection.
            s.addr.do_send(Disconnected {
                seat: s.seat,
                conn_id: self.id,
            });
        }
        log::debug!(conn_id = self.id, player_id = self.player_id; "connection closed");
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Connection {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match item {
            Ok(ws::Message::Text(t)) => {
                let verdict = self.budget.take(t.len());
                self.on_frame(ctx, t.into_bytes(), true, verdict)
            }
            Ok(ws::Message::Binary(b)) => {
                let verdict = self.budget.take(b.len());
                self.on_frame(ctx, b, false, verdict)
            }
            Ok(ws::Message::Continuation(item)) => self.on_continuation(ctx, item),
            Ok(ws::Message::Ping(b)) => match self.budget.take(b.len()) {
                Verdict::Accept => ctx.pong(&b),
                Verdict::Refuse => {}
                Verdict::Close => {
                    let enc = self.encoding;
                    self.over_budget(ctx, None, Verdict::Close, enc);
                }
            },
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                metrics::counter!(m::BAD_FRAMES, "code" => "frame_too_large").increment(1);
                self.close(ctx, ws::CloseCode::Size, "frame too large");
            }
            Err(e) => {
                metrics::counter!(m::BAD_FRAMES, "code" => "protocol_error").increment(1);
                log::debug!(conn_id = self.id; "websocket protocol error: {e}");
                self.close(ctx, ws::CloseCode::Protocol, "protocol error");
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<ToConn> for Connection {
    type Result = ();

    fn handle(&mut self, msg: ToConn, ctx: &mut Self::Context) {
        match msg {
            ToConn::Frame(frame) => {
                self.backlog.sub(frame.len());
                self.write(ctx, frame);
            }
            ToConn::Joined {
                match_id,
                seat,
                addr,
                frame,
            } => {
                if self.awaiting == Some(match_id) && self.seated.is_none() {
                    self.awaiting = None;
                    self.joining = false;
                    self.seated = Some(Seated {
                        match_id,
                        seat,
                        addr,
                    });
                }
                self.write(ctx, frame);
            }
            ToConn::Detached { match_id, frame } => {
                if self.seated.as_ref().is_some_and(|s| s.match_id == match_id) {
                    self.seated = None;
                }
                if let Some(frame) = frame {
                    self.write(ctx, frame);
                }
            }
            ToConn::Notice { message } => {
                self.send(ctx, &ServerMsg::Notice { message }, self.encoding);
            }
            ToConn::NodeStopping => {
                let msg = ServerMsg::Error {
                    code: "node_stopping".into(),
                    message: "this node is stopping; reconnect and resume".into(),
                };
                self.send(ctx, &msg, self.encoding);
                self.close(ctx, ws::CloseCode::Away, "node stopping");
            }
            ToConn::Close { code, message } => {
                let msg = ServerMsg::Error {
                    code: code.into(),
                    message,
                };
                self.send(ctx, &msg, self.encoding);
                self.close(ctx, ws::CloseCode::Policy, code);
            }
            ToConn::Kicked {
                match_id,
                code,
                message,
            } => {
                if self.seated.as_ref().is_some_and(|s| s.match_id == match_id) {
                    self.seated = None;
                }
                let msg = ServerMsg::Error {
                    code: code.into(),
                    message,
                };
                self.send(ctx, &msg, self.encoding);
                if code == "slow_consumer" {
                    self.close(ctx, ws::CloseCode::Policy, "too slow");
                }
            }
        }
    }
}
