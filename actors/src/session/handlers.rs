//! The match actor's inbox: joins and resumes, actions, queries, leaves,
//! disconnects, operator ends and handovers.

use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;

use matchd_protocol::codec::{encode, SharedReply};
use matchd_protocol::{Event, MatchResult, Query, Seat, ServerMsg};

use super::messages::{
    Act, Ask, Disconnected, EndMatch, Handover, Join, JoinAck, JoinError, Leave, ToConn,
};
use super::rebuild::add_participant;
use super::{Cause, Ending, MatchSession, Member};
use crate::cluster::replica::Input;
use crate::metrics as m;
use crate::rules::Rejection;

impl Handler<Join> for MatchSession {
    type Result = Result<JoinAck, JoinError>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        if self.ended {
            return Err(JoinError::Ended);
        }
        if self.fenced() {
            return Err(JoinError::Recovering);
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
        // Counted before the seat is filled: seats held in their grace
        // period count too, so reconnecting elsewhere frees nothing.
        self.player_seats.take(
            msg.player_id,
            self.id,
            seat_id,
            self.cfg.max_seats_per_player,
        )?;
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
        if self.fenced() {
            metrics::counter!(m::FENCED_ACTIONS).increment(1);
            // Not held behind the frames waiting for Redis: the refusal
            // changes nothing in the match and must reach the client now.
            self.metrics.rejected("match_recovering").increment(1);
            let refusal = ServerMsg::Rejected {
                client_seq: msg.client_seq,
                code: "match_recovering".into(),
                message: "this node cannot confirm with Redis that it still owns the match; retry shortly".into(),
            };
            self.send_now(usize::from(msg.seat), encode(&refusal, msg.encoding));
            self.commit(ctx);
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
                let cause = Cause {
                    seat: msg.seat,
                    client_seq: msg.client_seq,
                };
                self.apply_outcome(ctx, Some(cause), outcome);
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
                reply: matchd_protocol::Reply::State { state },
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
            Ending::Operator,
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
        let handed = self.repl.as_mut().is_some_and(|r| r.sm.hand_over(msg.url));
        if !handed {
            log::warn!(match_id = self.id; "cannot hand over a match that is not replicated; it plays on here");
            return;
        }
        self.commit(ctx);
    }
}
