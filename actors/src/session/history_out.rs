//! The match's outbox to the persistence writer, which has a bounded
//! mailbox (`MATCHD_WRITER_MAILBOX`).
//!
//! What a full writer mailbox means: the writer is stalled (its thread is
//! busy with journal I/O), and the match never waits for it. The match
//! keeps its records, in order, and offers them again with its next
//! records and on its housekeeping tick (every 250 ms), all in one message.
//! It keeps at most `MATCHD_HISTORY_BACKLOG` records this way; past that it
//! drops its newest *event* records (never the match's creation or end),
//! counts them in `matchd_history_records_dropped_total` and logs once per
//! episode. The match itself plays on either way. A match that stops
//! hands what it still holds to the writer whatever its mailbox holds
//! (once per match, so that queue is bounded by the number of matches).

use actix::prelude::*;
use metrics::Counter;

use crate::history::record::{Persist, Record};
use crate::metrics as m;
use matchd_protocol::MatchId;

pub struct HistoryOutbox {
    match_id: MatchId,
    writer: Recipient<Persist>,
    held: Vec<Record>,
    backlog: usize,
    dropped: Counter,
    /// Records are being dropped (logged once per episode).
    dropping: bool,
}

impl HistoryOutbox {
    pub fn new(match_id: MatchId, writer: Recipient<Persist>, backlog: usize) -> Self {
        Self {
            match_id,
            writer,
            held: Vec::new(),
            backlog: backlog.max(1),
            dropped: metrics::counter!(m::HISTORY_DROPPED),
            dropping: false,
        }
    }

    /// Hands `records` to the writer after anything still held.
    pub fn send(&mut self, mut records: Vec<Record>) {
        if self.held.is_empty() {
            self.offer(records);
        } else {
            self.held.append(&mut records);
            self.retry();
        }
    }

    /// Offers what is held again (the housekeeping tick).
    pub fn retry(&mut self) {
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.offer(held);
        }
    }

    /// Records held because the writer's mailbox was full.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn offer(&mut self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        match self.writer.try_send(Persist(records)) {
            Ok(()) => {
                if self.dropping {
                    self.dropping = false;
                    log::info!(match_id = self.match_id; "the persistence writer takes this match's history again");
                }
            }
            Err(SendError::Full(Persist(records))) => {
                self.held = records;
                self.enforce_backlog();
            }
            Err(SendError::Closed(Persist(records))) => {
                self.drop_records(records.len(), "the persistence writer is gone");
            }
        }
    }

    /// Past the backlog, drops the newest event records (the match's
    /// creation and end are never dropped).
    fn enforce_backlog(&mut self) {
        let mut excess = self.held.len().saturating_sub(self.backlog);
        if excess == 0 {
            return;
        }
        let mut dropped = 0;
        let mut i = self.held.len();
        while excess > 0 && i > 0 {
            i -= 1;
            if matches!(self.held[i], Record::Event { .. }) {
                self.held.remove(i);
                excess -= 1;
                dropped += 1;
            }
        }
        self.drop_records(dropped, "the persistence writer's mailbox stays full");
    }

    fn drop_records(&mut self, n: usize, why: &str) {
        if n == 0 {
            return;
        }
        self.dropped.increment(n as u64);
        if !self.dropping {
            self.dropping = true;
            log::error!(match_id = self.match_id, records = n; "match history lost: {why}");
        }
    }

    /// The match stops: what is held goes to the writer even past its
    /// mailbox bound (once per match).
    pub fn close(&mut self) {
        let held = std::mem::take(&mut self.held);
        if !held.is_empty() {
            self.writer.do_send(Persist(held));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A writer stand-in whose handler blocks until the test releases it,
    /// like a writer stuck in journal I/O; it reports what it received.
    struct Stalled {
        gate: mpsc::Receiver<()>,
        got: mpsc::Sender<Vec<Record>>,
    }

    impl Actor for Stalled {
        type Context = Context<Self>;

        fn started(&mut self, ctx: &mut Self::Context) {
            ctx.set_mailbox_capacity(1);
        }
    }

    impl Handler<Persist> for Stalled {
        type Result = ();

        fn handle(&mut self, msg: Persist, _: &mut Self::Context) {
            let _ = self.gate.recv();
            let _ = self.got.send(msg.0);
        }
    }

    fn event(seq: u64) -> Record {
        Record::Event {
            match_id: 1,
            seq,
            seat: None,
            at_ms: 0,
            event: matchd_protocol::Event::PlayerLeft { seat: 0 },
        }
    }

    fn created() -> Record {
        Record::MatchCreated {
            match_id: 1,
            ruleset: "sandbox".into(),
            node_id: "n".into(),
            created_at_ms: 0,
        }
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Event { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    /// A stalled writer on its own arbiter: its handler opens once per
    /// token sent on the gate and reports each message on `got`.
    struct StalledWriter {
        gate: mpsc::Sender<()>,
        got: mpsc::Receiver<Vec<Record>>,
        arbiter: Arbiter,
        outbox: HistoryOutbox,
    }

    fn stalled_writer(backlog: usize) -> StalledWriter {
        let (gate, gate_rx) = mpsc::channel();
        let (got_tx, got) = mpsc::channel();
        let arbiter = Arbiter::new();
        let writer = Stalled::start_in_arbiter(&arbiter.handle(), move |_| Stalled {
            gate: gate_rx,
            got: got_tx,
        });
        let outbox = HistoryOutbox::new(1, writer.recipient(), backlog);
        StalledWriter {
            gate,
            got,
            arbiter,
            outbox,
        }
    }

    #[actix_rt::test]
    async fn a_full_writer_mailbox_holds_records_in_order_then_drops_the_newest_events() {
        let StalledWriter {
            gate,
            got,
            arbiter,
            outbox: mut out,
        } = stalled_writer(5);
        // The first message is taken and blocks the handler; the second
        // fills the mailbox of one. Neither send waits.
        out.send(vec![created()]);
        let mut sent = 1;
        // Offer until the mailbox is full (the handler may not have taken
        // the first message yet).
        let mut seq = 0;
        while out.held() == 0 {
            seq += 1;
            out.send(vec![event(seq)]);
            sent += 1;
            assert!(sent < 100, "the mailbox never filled");
        }
        let first_held = seq;
        // Held in order, up to the backlog of 5; then the newest events go.
        for _ in 0..9 {
            seq += 1;
            out.send(vec![event(seq)]);
        }
        assert_eq!(out.held(), 5);
        // Release the writer: it gets everything taken before, then what
        // was held (the oldest five of those offered while full), in order.
        for _ in 0..100 {
            gate.send(()).expect("gate");
        }
        let mut received = Vec::new();
        let take = |received: &mut Vec<Record>| {
            let batch = got
                .recv_timeout(Duration::from_secs(10))
                .expect("the writer handles its next message");
            received.extend(batch);
        };
        // A refused offer means a message is queued, so one will arrive.
        while out.held() > 0 {
            take(&mut received);
            out.retry();
        }
        while seqs(&received).last() != Some(&(first_held + 4)) {
            take(&mut received);
        }
        assert!(matches!(
            received.first(),
            Some(Record::MatchCreated { .. })
        ));
        let got_seqs = seqs(&received);
        let want: Vec<u64> = (1..first_held + 5).collect();
        assert_eq!(got_seqs, want, "in order, no duplicate, the newest dropped");
        assert_eq!(out.held(), 0);
        arbiter.stop();
    }

    #[actix_rt::test]
    async fn the_match_creation_and_end_are_never_dropped() {
        // The gate never opens: the writer takes one message and stalls.
        let StalledWriter {
            gate: _gate,
            got: _got,
            arbiter,
            outbox: mut out,
        } = stalled_writer(2);
        let mut seq = 0;
        while out.held() == 0 {
            seq += 1;
            out.send(vec![event(seq)]);
        }
        out.send(vec![created()]);
        for _ in 0..5 {
            seq += 1;
            out.send(vec![event(seq)]);
        }
        assert!(out.held() <= 2);
        assert!(out
            .held
            .iter()
            .any(|r| matches!(r, Record::MatchCreated { .. })));
        arbiter.stop();
    }
}
