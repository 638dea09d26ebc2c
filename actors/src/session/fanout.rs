//! How frames reach a match's members: the hot path of every event
//! (numbered, encoded once per encoding, the same bytes to every member),
//! private replies, resumes' replays, and what happens to a member that
//! cannot keep up (dropped from its seat, never waited for).

use std::time::Instant;

use actix::prelude::*;

use matchd_protocol::codec::{encode, EncodeOnce, Encoding, Out};
use matchd_protocol::{Event, Seat, ServerMsg};

use super::messages::ToConn;
use super::rebuild::push_ring;
use super::{Cause, MatchSession, Member, Outgoing};
use crate::cluster::replica::Recorded;
use crate::history::record::Record;
use crate::metrics as m;
use crate::util::unix_ms;

impl MatchSession {
    /// Sends one frame to one member, or, when the match is replicated,
    /// holds it until its batch is in Redis.
    pub(super) fn send_to(&mut self, seat: usize, frame: Out) {
        // The hot path: without replication the frame goes out at once,
        // with no second lookup of the member.
        let Some(r) = self.repl.as_mut() else {
            return self.send_now(seat, frame);
        };
        let Some(Some(Member {
            conn: Some((conn_id, _)),
            ..
        })) = self.seats.get(seat)
        else {
            return;
        };
        let item = Outgoing::Frame {
            seat: seat as Seat,
            conn_id: *conn_id,
            frame,
        };
        r.sm.hold(item);
    }

    /// A control message to a connection, in order with the frames.
    pub(super) fn control(&mut self, conn: Recipient<ToConn>, msg: ToConn) {
        self.out(Outgoing::Control(conn, msg));
    }

    /// Sends `item` now, or has replication hold it back.
    pub(super) fn out(&mut self, item: Outgoing) {
        match self.repl.as_mut() {
            Some(r) => r.sm.hold(item),
            None => self.release(item),
        }
    }

    /// Sends one item that replication no longer holds back; a frame only
    /// if its connection still holds the seat.
    pub(super) fn release(&mut self, item: Outgoing) {
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
            Outgoing::History(records) => {
                if let Some(outbox) = self.history.as_mut() {
                    outbox.send(records);
                }
            }
        }
    }

    /// Offers records to the history writer once their batch is in Redis
    /// (at once without replication).
    pub(super) fn record_history(&mut self, records: Vec<Record>) {
        self.out(Outgoing::History(records));
    }

    /// Every member with a connection, and that connection.
    pub(super) fn connected(&self) -> impl Iterator<Item = (&Member, &Recipient<ToConn>)> {
        self.seats
            .iter()
            .flatten()
            .filter_map(|m| m.conn.as_ref().map(|(_, conn)| (m, conn)))
    }

    /// Tells every connected member it was dropped from this match.
    pub(super) fn kick_all(&self, code: &'static str, message: &str) {
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
    pub(super) fn detach_all(&self, msg: &ServerMsg) -> Vec<(Recipient<ToConn>, ToConn)> {
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

    /// Sends one frame to one member now. A member whose connection has more
    /// than `max_outbound_bytes` queued, or whose mailbox is full, is a
    /// client that cannot keep up: it is dropped from its seat (the seat is
    /// held as disconnected) and its connection closed with 1008.
    pub(super) fn send_now(&mut self, seat: usize, frame: Out) {
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
    pub(super) fn announce_dropped(&mut self) {
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
    pub(super) fn deliver(&mut self, seat: Seat, frame: Out) {
        self.send_to(seat as usize, frame);
        self.announce_dropped();
    }

    pub(super) fn reply_to(&mut self, seat: Seat, msg: &ServerMsg, encoding: Encoding) {
        self.deliver(seat, encode(msg, encoding));
    }

    /// Numbers, records and broadcasts events; the hot path.
    pub(super) fn broadcast(&mut self, cause: Option<Cause>, events: Vec<Event>) {
        // Events of one broadcast happen at one moment: one clock read.
        let mut history = self.history.as_ref().map(|_| {
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
                seat: cause.map(|c| c.seat),
                event,
                client_seq: cause.map(|c| c.client_seq),
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
                seq,
                seat,
                event,
                client_seq,
                ..
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
                let recorded = Recorded {
                    seq,
                    seat,
                    event,
                    client_seq,
                };
                if let Some(r) = self.repl.as_mut() {
                    r.sm.record_event(recorded.clone());
                }
                push_ring(&mut self.ring, recorded, self.cfg.ring_buffer);
            }
            self.metrics.events.increment(1);
        }
        // History goes to the writer with the frames (once the batch is in
        // Redis, at once without it); the writer's mailbox is bounded, and
        // what it cannot take yet waits in the outbox (history_out.rs).
        if let Some((h, _)) = history {
            if !h.is_empty() {
                self.record_history(h);
            }
        }
        self.announce_dropped();
    }

    /// Whether every event after `last_seq` is still in the ring buffer.
    pub(super) fn can_replay(&self, last_seq: u64) -> bool {
        if last_seq > self.seq {
            return false;
        }
        last_seq == self.seq || self.ring.front().is_some_and(|e| e.seq <= last_seq + 1)
    }

    /// Sends `seat` every recorded event after `last_seq`, in order.
    pub(super) fn replay(&mut self, seat: usize, last_seq: u64, encoding: Encoding) {
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
                    client_seq: e.client_seq,
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
