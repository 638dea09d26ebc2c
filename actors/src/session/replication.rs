//! A match's replication to Redis as a plain state machine.
//!
//! The match tells it what happened (an input, a numbered event, the end,
//! a timer) and hands it the frames it wants to send; the machine answers
//! with the next [`Step`]: frames that may go out now, a [`Write`] to send to
//! Redis, or that the match may stop. When the write returns, the match
//! passes the result to [`Replication::written`] and gets back the frames it
//! released. The machine does no I/O, owns no actor and never calls back
//! into one, so every rule below is unit-tested on its own.
//!
//! The rules:
//! - Frames wait until the batch that made them is in Redis, so every event
//!   a client has seen survives a failover, whatever happens to Redis or to
//!   the node. One write is in flight at a time; what happens meanwhile
//!   goes into the next one, and frames go out in the order they were made.
//! - A write that fails for want of Redis (down, restarted empty, slower
//!   than the command timeout, cut off) makes the match *degraded*: frames
//!   keep waiting, pending batches are dropped, and the next write is a
//!   full snapshot that covers what the stream missed, retried every
//!   [`DEGRADED_RETRY`] at most. Its success ends the degraded mode and
//!   releases everything held, in order.
//! - Fencing (the split-brain rule): a node may accept actions for a match
//!   only while its lease is certainly still its own, i.e. until the last
//!   successful renewal (the time that write was *sent*) plus the lease TTL
//!   minus a safety margin of a fifth of the TTL ([`Replication::fenced`]).
//!   Redis starts the TTL when it runs the write, after it was sent, so the
//!   lease cannot have expired in Redis, nor another node have taken it,
//!   before this deadline. Past it the match answers `match_recovering`
//!   and freezes until a write succeeds again.
//! - A write refused because another node holds the lease means the match
//!   moved: the frames held back never reach a client, and the match stops.
//! - The lease is renewed every renewal period by a write of its own unless
//!   a snapshot renewed it; plain appends do not renew it.
//! - An ended or handed-over match stops once its last write is
//!   acknowledged and nothing is held back; a handover is cancelled when
//!   Redis does not take its snapshot.
//!
//! `F` is what the match holds back (its frames and control messages); the
//! machine only stores and returns them, in order.

use std::time::{Duration, Instant};

use crate::cluster::replica::{self, Batch, Input, MatchSnapshot, Recorded, ReplicaError, Write};
use matchd_protocol::MatchId;

/// Largest batch written to the stream; a larger one (a burst of events
/// while a write was slow) is covered by a snapshot instead, so everything
/// written stays below what the decoder reads back
/// ([`crate::rules::SNAPSHOT_LIMIT`]).
pub const MAX_BATCH_BYTES: usize = crate::rules::SNAPSHOT_LIMIT / 2;

/// Why [`Replication::begin_write`] wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotWritten {
    /// The batch is too large for the stream: build the write again with a
    /// snapshot, which covers it.
    NeedSnapshot,
    /// The snapshot itself is larger than the decoder's limit: the match
    /// cannot be replicated (it is treated as a failed write).
    TooLarge(usize),
}

/// How often a degraded match retries its snapshot write at most.
pub const DEGRADED_RETRY: Duration = Duration::from_millis(250);

/// The part of the lease TTL kept in reserve by fencing: Redis's
/// processing delay and clock-rate drift between it and this node.
pub fn fence_margin(ttl: Duration) -> Duration {
    ttl / 5
}

/// Why a replicated match stops once its last write is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopAfterWrite {
    Ended,
    Handover(String),
}

/// What the match should do next (see [`Replication::step`]).
#[derive(Debug, PartialEq)]
pub enum Step<F> {
    /// Send these now, in order, then ask again.
    Release(Vec<F>),
    /// Write to Redis: build the write with [`Replication::begin_write`],
    /// passing a snapshot of the game when `snapshot` is true.
    Write { snapshot: bool },
    /// Everything is written and sent: stop the match for this reason.
    Stop(StopAfterWrite),
    /// Nothing to do until a write returns or something happens.
    Idle,
}

/// What a finished write means for the match.
#[derive(Debug, PartialEq)]
pub enum Written<F> {
    /// Send these now, in order, then ask [`Replication::step`] again.
    Release(Vec<F>),
    /// Another node holds the lease (its id): stop; what was held back is
    /// dropped, it never reached a client.
    Moved(String),
}

/// The write in flight and what it will settle.
#[derive(Debug)]
struct InFlight {
    sent: Instant,
    renews: bool,
    /// The batch number a snapshot in it includes.
    snapshot_batch: Option<u64>,
}

#[derive(Debug)]
pub struct Replication<F> {
    match_id: MatchId,
    /// What changed since the last write.
    pending: Batch,
    /// Held back for the next write; `sealed` wait for the one in flight.
    open: Vec<F>,
    sealed: Vec<F>,
    in_flight: Option<InFlight>,
    /// The last batch number given out.
    batch_no: u64,
    /// The batch the last written snapshot includes, and the one before.
    snap_batch: u64,
    prev_snap_batch: u64,
    snapshot_due: bool,
    renew_due: bool,
    degraded: bool,
    /// When the lease was last renewed (when that write was sent).
    last_renew: Instant,
    /// When the last write was sent.
    last_attempt: Instant,
    /// The lease TTL; `None`: no fencing (tests of other rules).
    lease: Option<Duration>,
    /// The match ended: every write from now on carries its tombstone.
    ended: bool,
    stop_after: Option<StopAfterWrite>,
}

impl<F> Replication<F> {
    /// A new match: its first write is a snapshot, which takes the lease.
    pub fn new(match_id: MatchId, now: Instant) -> Self {
        Self {
            match_id,
            pending: Batch::default(),
            open: Vec::new(),
            sealed: Vec::new(),
            in_flight: None,
            batch_no: 0,
            snap_batch: 0,
            prev_snap_batch: 0,
            snapshot_due: true,
            renew_due: false,
            degraded: false,
            last_renew: now,
            last_attempt: now,
            lease: None,
            ended: false,
            stop_after: None,
        }
    }

    /// Fences the match by a lease of `ttl` (see [`Replication::fenced`]).
    pub fn with_lease(mut self, ttl: Duration) -> Self {
        self.lease = Some(ttl);
        self
    }

    /// Whether this node may no longer be sure it holds the lease: from
    /// the last successful renewal plus the TTL minus the margin on, until
    /// a write succeeds again. A fenced match accepts no action, join or
    /// tick (another node may be taking it over).
    pub fn fenced(&self, now: Instant) -> bool {
        self.lease.is_some_and(|ttl| {
            now.saturating_duration_since(self.last_renew) >= ttl - fence_margin(ttl)
        })
    }

    /// A match rebuilt from its copy, whose snapshot includes batch
    /// `snap_batch` and whose stream ends at `batch_no`.
    pub fn resumed(match_id: MatchId, now: Instant, batch_no: u64, snap_batch: u64) -> Self {
        Self {
            batch_no,
            snap_batch,
            prev_snap_batch: snap_batch,
            ..Self::new(match_id, now)
        }
    }

    fn changed(&self) -> bool {
        !self.pending.inputs.is_empty() || !self.pending.events.is_empty() || self.pending.ended
    }

    /// Whether Redis is unreachable for this match (its next write is a
    /// snapshot; frames wait for it).
    #[cfg(test)]
    pub fn is_degraded(&self) -> bool {
        self.degraded
    }

    /// Holds `item` back until the current batch is in Redis (degraded:
    /// until a snapshot is), behind everything held before it.
    pub fn hold(&mut self, item: F) {
        self.open.push(item);
    }

    /// Something that changed the match, for replay on another node.
    pub fn record_input(&mut self, input: Input) {
        self.pending.inputs.push(input);
    }

    /// An event as numbered and broadcast.
    pub fn record_event(&mut self, event: Recorded) {
        self.pending.events.push(event);
    }

    /// The match ended: write that, then stop.
    pub fn end(&mut self) {
        self.pending.ended = true;
        self.ended = true;
        self.stop_after = Some(StopAfterWrite::Ended);
    }

    /// Hand the match over (drain): a last snapshot, then stop. Refused
    /// (false) while degraded: without a snapshot in Redis nobody could
    /// take the match, so it plays on here.
    pub fn hand_over(&mut self, url: String) -> bool {
        if self.degraded {
            return false;
        }
        self.snapshot_due = true;
        self.stop_after = Some(StopAfterWrite::Handover(url));
        true
    }

    /// The renewal timer: past `every` since the last renewal, renew the
    /// lease; degraded, retry the full snapshot once [`DEGRADED_RETRY`]
    /// passed since the last attempt. True if that made a write due.
    pub fn renewal_timer(&mut self, now: Instant, every: Duration) -> bool {
        if self.degraded {
            if now.saturating_duration_since(self.last_attempt) < DEGRADED_RETRY.min(every) {
                return false;
            }
            self.snapshot_due = true;
            return true;
        }
        if now.saturating_duration_since(self.last_renew) < every {
            return false;
        }
        self.renew_due = true;
        true
    }

    /// The snapshot timer: a snapshot is due if a batch was written since
    /// the last one. True if that made a write due.
    pub fn snapshot_timer(&mut self) -> bool {
        if self.batch_no > self.snap_batch {
            self.snapshot_due = true;
            return true;
        }
        false
    }

    /// The next step.
    pub fn step(&mut self) -> Step<F> {
        if self.in_flight.is_some() {
            return Step::Idle;
        }
        // Degraded, only a snapshot is written; it covers what happens
        // meanwhile, so pending batches are dropped. Frames wait for it.
        if self.snapshot_due || (!self.degraded && (self.changed() || self.renew_due)) {
            return Step::Write {
                snapshot: self.snapshot_due,
            };
        }
        if self.degraded {
            self.pending = Batch::default();
            return Step::Idle;
        }
        if !self.open.is_empty() {
            return Step::Release(std::mem::take(&mut self.open));
        }
        match self.stop_after.take() {
            Some(stop) => Step::Stop(stop),
            None => Step::Idle,
        }
    }

    /// Builds the write that [`Step::Write`] asked for; `snapshot` is the
    /// game's snapshot (its `batch` is filled in here). Everything held
    /// back so far waits for this write. Nothing written is ever larger
    /// than the decoder reads back: a batch over [`MAX_BATCH_BYTES`] asks
    /// for a snapshot instead ([`NotWritten::NeedSnapshot`]), and a
    /// snapshot over the limit is refused ([`NotWritten::TooLarge`], which
    /// degrades the match as a failed write would).
    pub fn begin_write(
        &mut self,
        snapshot: Option<MatchSnapshot>,
        now: Instant,
    ) -> Result<Write, NotWritten> {
        let mut write = Write::default();
        let encoded_snapshot = match snapshot {
            Some(mut snap) => {
                let next_batch = self.batch_no + u64::from(self.changed() && !self.degraded);
                snap.batch = next_batch;
                let bytes = replica::encode(&snap).unwrap_or_default();
                if bytes.is_empty() || bytes.len() > crate::rules::SNAPSHOT_LIMIT {
                    self.degraded = true;
                    self.snapshot_due = false;
                    self.last_attempt = now;
                    return Err(NotWritten::TooLarge(bytes.len()));
                }
                Some((next_batch, bytes))
            }
            None => None,
        };
        if self.changed() && !self.degraded {
            let bytes = replica::encode(&self.pending).filter(|b| b.len() <= MAX_BATCH_BYTES);
            if bytes.is_none() && encoded_snapshot.is_none() {
                self.snapshot_due = true;
                return Err(NotWritten::NeedSnapshot);
            }
            self.batch_no += 1;
            self.pending = Batch::default();
            // Too large for the stream: the snapshot in this write covers it.
            write.batch = bytes.map(|b| (self.batch_no, b));
        } else {
            self.pending = Batch::default();
        }
        if let Some(snapshot) = encoded_snapshot {
            write.snapshot = Some(snapshot);
            // Keep the batches since the snapshot before the last written
            // one, so a node taking over can replay recent events to
            // resuming clients even if it reads the older snapshot.
            write.trim_below = Some(self.prev_snap_batch + 1);
        }
        write.latest_batch = self.batch_no;
        write.renew = self.renew_due || write.snapshot.is_some();
        write.ended = self.ended;
        self.last_attempt = now;
        self.in_flight = Some(InFlight {
            sent: now,
            renews: write.renew,
            snapshot_batch: write.snapshot.as_ref().map(|(n, _)| *n),
        });
        self.snapshot_due = false;
        self.renew_due = false;
        self.sealed = std::mem::take(&mut self.open);
        Ok(write)
    }

    /// The write in flight returned `res`.
    pub fn written(&mut self, res: Result<(), ReplicaError>) -> Written<F> {
        let Some(flight) = self.in_flight.take() else {
            return Written::Release(Vec::new());
        };
        match res {
            Ok(()) => {
                if self.degraded {
                    log::info!(match_id = self.match_id; "match replicated in redis again");
                }
                self.degraded = false;
                if flight.renews {
                    self.last_renew = flight.sent;
                }
                if let Some(n) = flight.snapshot_batch {
                    self.prev_snap_batch = self.snap_batch;
                    self.snap_batch = n;
                }
            }
            Err(ReplicaError::NotOwner(owner)) => {
                self.sealed.clear();
                self.open.clear();
                self.stop_after = None;
                return Written::Moved(owner);
            }
            Err(e) => {
                if !self.degraded {
                    log::warn!(match_id = self.match_id; "could not replicate the match: {e}; holding its frames until a snapshot is in redis");
                }
                self.degraded = true;
                // What waited for this write waits for the snapshot, ahead
                // of what came meanwhile.
                let sealed = std::mem::take(&mut self.sealed);
                self.open.splice(0..0, sealed);
                if matches!(self.stop_after, Some(StopAfterWrite::Handover(_))) {
                    log::warn!(match_id = self.match_id; "handover cancelled: redis did not take the snapshot");
                    self.stop_after = None;
                }
                return Written::Release(Vec::new());
            }
        }
        Written::Release(std::mem::take(&mut self.sealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matchd_protocol::Event;

    fn snap() -> MatchSnapshot {
        MatchSnapshot {
            match_id: 1,
            ruleset: "sandbox".into(),
            seq: 0,
            batch: 0,
            seed: 0,
            created_at_ms: 0,
            players: vec![],
            participants: vec![],
            game: vec![1, 2, 3],
        }
    }

    fn event(seq: u64) -> Recorded {
        Recorded {
            seq,
            seat: None,
            event: Event::PlayerLeft { seat: 0 },
            client_seq: None,
        }
    }

    /// A machine past its first snapshot, idle.
    fn settled(now: Instant) -> Replication<u32> {
        let mut r = Replication::new(1, now);
        assert_eq!(r.step(), Step::Write { snapshot: true });
        let w = r.begin_write(Some(snap()), now).expect("write");
        assert!(w.snapshot.is_some() && w.renew && w.batch.is_none());
        assert_eq!(r.written(Ok(())), Written::Release(vec![]));
        assert_eq!(r.step(), Step::Idle);
        r
    }

    #[test]
    fn frames_wait_for_their_batch_and_writes_do_not_overlap() {
        let now = Instant::now();
        let mut r = settled(now);
        r.record_event(event(1));
        r.hold(10);
        assert_eq!(r.step(), Step::Write { snapshot: false });
        let w = r.begin_write(None, now).expect("write");
        assert_eq!(w.batch.as_ref().map(|(n, _)| *n), Some(1));
        assert!(!w.renew, "a plain append does not renew the lease");
        // Meanwhile: more happens; it waits for the next write.
        r.record_event(event(2));
        r.hold(11);
        assert_eq!(r.step(), Step::Idle, "one write in flight at a time");
        assert_eq!(r.written(Ok(())), Written::Release(vec![10]));
        assert_eq!(r.step(), Step::Write { snapshot: false });
        let w = r.begin_write(None, now).expect("write");
        assert_eq!(w.batch.map(|(n, _)| n), Some(2));
        assert_eq!(r.written(Ok(())), Written::Release(vec![11]));
        assert_eq!(r.step(), Step::Idle);
    }

    #[test]
    fn held_items_with_nothing_to_write_go_out_at_once() {
        let now = Instant::now();
        let mut r = settled(now);
        r.hold(5);
        assert_eq!(r.step(), Step::Release(vec![5]));
        assert_eq!(r.step(), Step::Idle);
    }

    #[test]
    fn a_failed_write_degrades_and_holds_every_frame_in_order_until_a_snapshot_lands() {
        let now = Instant::now();
        let mut r = settled(now);
        r.record_event(event(1));
        r.hold(1);
        assert_eq!(r.step(), Step::Write { snapshot: false });
        r.begin_write(None, now).expect("write");
        r.hold(2); // made while the write was in flight
        let down = Err(ReplicaError::Redis("down".into()));
        assert_eq!(
            r.written(down),
            Written::Release(vec![]),
            "nothing goes out"
        );
        assert!(r.is_degraded());
        // Degraded: frames are held, batches are not written.
        r.hold(3);
        r.record_event(event(2));
        assert_eq!(r.step(), Step::Idle);
        // A snapshot timer meanwhile changes nothing to the order.
        r.snapshot_timer();
        assert_eq!(r.step(), Step::Write { snapshot: true });
        let w = r.begin_write(Some(snap()), now).expect("write");
        assert!(
            w.batch.is_none(),
            "degraded: no batch, the snapshot covers it"
        );
        r.hold(4);
        assert_eq!(
            r.written(Err(ReplicaError::Redis("still down".into()))),
            Written::Release(vec![])
        );
        // The retry comes on the renewal timer, not at once.
        assert!(!r.renewal_timer(now + Duration::from_millis(10), Duration::from_secs(1)));
        let later = now + Duration::from_secs(1);
        assert!(r.renewal_timer(later, Duration::from_millis(500)));
        assert_eq!(r.step(), Step::Write { snapshot: true });
        let w = r.begin_write(Some(snap()), later).expect("write");
        assert_eq!(w.snapshot.as_ref().map(|(n, _)| *n), Some(1));
        assert_eq!(
            r.written(Ok(())),
            Written::Release(vec![1, 2, 3, 4]),
            "all, in order"
        );
        assert!(!r.is_degraded());
        r.hold(5);
        assert_eq!(r.step(), Step::Release(vec![5]));
    }

    #[test]
    fn a_batch_too_large_for_the_stream_is_covered_by_a_snapshot() {
        let now = Instant::now();
        let mut r = settled(now);
        let big = "x".repeat(MAX_BATCH_BYTES);
        r.record_event(Recorded {
            seq: 1,
            seat: None,
            event: Event::Phase { phase: big },
            client_seq: None,
        });
        r.hold(1);
        assert_eq!(r.step(), Step::Write { snapshot: false });
        assert_eq!(
            r.begin_write(None, now).err(),
            Some(NotWritten::NeedSnapshot)
        );
        assert_eq!(r.step(), Step::Write { snapshot: true });
        let w = r.begin_write(Some(snap()), now).expect("write");
        assert!(
            w.batch.is_none(),
            "never written where it could not be read back"
        );
        assert_eq!(
            w.snapshot
                .as_ref()
                .map(|(n, b)| (*n, b.len() < crate::rules::SNAPSHOT_LIMIT)),
            Some((1, true))
        );
        assert_eq!(r.written(Ok(())), Written::Release(vec![1]));
        // A snapshot over the decoder's limit is refused: a failed write.
        let mut huge = snap();
        huge.game = vec![7; crate::rules::SNAPSHOT_LIMIT + 1];
        r.record_event(event(2));
        assert!(matches!(
            r.begin_write(Some(huge), now),
            Err(NotWritten::TooLarge(_))
        ));
        assert!(r.is_degraded());
    }

    #[test]
    fn writes_after_the_end_carry_the_tombstone() {
        let now = Instant::now();
        let mut r = settled(now);
        r.record_event(event(1));
        assert!(!r.begin_write(None, now).expect("write").ended);
        r.written(Ok(()));
        r.record_event(event(2));
        r.end();
        r.step();
        assert!(r.begin_write(None, now).expect("write").ended);
    }

    #[test]
    fn fencing_starts_before_the_lease_can_expire_and_ends_with_a_write() {
        let now = Instant::now();
        let ttl = Duration::from_millis(1000);
        let mut r = Replication::<u32>::new(1, now).with_lease(ttl);
        r.step();
        r.begin_write(Some(snap()), now).expect("write");
        r.written(Ok(()));
        assert!(!r.fenced(now + Duration::from_millis(700)));
        assert!(
            r.fenced(now + Duration::from_millis(800)),
            "ttl minus a fifth"
        );
        // Failed renewals keep it fenced; a successful one (sent at t)
        // lifts it until t + 800 ms.
        let t = now + Duration::from_millis(900);
        r.renewal_timer(t, Duration::from_millis(300));
        r.step();
        r.begin_write(None, t).expect("write");
        r.written(Err(ReplicaError::Redis("down".into())));
        assert!(r.fenced(t));
        r.renewal_timer(t + Duration::from_millis(300), Duration::from_millis(300));
        r.step();
        r.begin_write(Some(snap()), t + Duration::from_millis(300))
            .expect("write");
        r.written(Ok(()));
        assert!(!r.fenced(t + Duration::from_millis(1000)));
        assert!(r.fenced(t + Duration::from_millis(1100)));
        assert!(
            !Replication::<u32>::new(1, now).fenced(now + ttl * 100),
            "no lease, no fence"
        );
    }

    #[test]
    fn losing_the_lease_drops_what_was_held_and_moves_the_match() {
        let now = Instant::now();
        let mut r = settled(now);
        r.record_event(event(1));
        r.hold(1);
        r.step();
        r.begin_write(None, now).expect("write");
        r.hold(2);
        let lost = Err(ReplicaError::NotOwner("n2".into()));
        assert_eq!(r.written(lost), Written::Moved("n2".into()));
        assert_eq!(r.step(), Step::Idle, "nothing held back is ever released");
    }

    #[test]
    fn an_ended_match_stops_after_its_last_write() {
        let now = Instant::now();
        let mut r = settled(now);
        r.record_event(event(1));
        r.hold(7);
        r.end();
        assert_eq!(r.step(), Step::Write { snapshot: false });
        let w = r.begin_write(None, now).expect("write");
        let batch: Batch =
            crate::rules::decode_snapshot(&w.batch.expect("batch").1).expect("decodes");
        assert!(batch.ended);
        assert_eq!(r.step(), Step::Idle, "not before the write returns");
        assert_eq!(r.written(Ok(())), Written::Release(vec![7]));
        assert_eq!(r.step(), Step::Stop(StopAfterWrite::Ended));
        assert_eq!(r.step(), Step::Idle);
    }

    #[test]
    fn a_handover_writes_a_snapshot_and_is_cancelled_if_redis_fails() {
        let now = Instant::now();
        let mut r = settled(now);
        assert!(r.hand_over("ws://b".into()));
        assert_eq!(r.step(), Step::Write { snapshot: true });
        r.begin_write(Some(snap()), now).expect("write");
        assert_eq!(
            r.written(Err(ReplicaError::Redis("down".into()))),
            Written::Release(vec![])
        );
        assert_eq!(r.step(), Step::Idle, "cancelled: the match plays on");
        assert!(!r.hand_over("ws://b".into()), "refused while degraded");

        let mut r = settled(now);
        assert!(r.hand_over("ws://b".into()));
        r.step();
        r.begin_write(Some(snap()), now).expect("write");
        r.written(Ok(()));
        assert_eq!(
            r.step(),
            Step::Stop(StopAfterWrite::Handover("ws://b".into()))
        );
    }

    #[test]
    fn the_lease_is_renewed_by_its_own_write_every_period() {
        let now = Instant::now();
        let every = Duration::from_millis(300);
        let mut r = settled(now);
        assert!(!r.renewal_timer(now + Duration::from_millis(100), every));
        assert!(r.renewal_timer(now + every, every));
        assert_eq!(r.step(), Step::Write { snapshot: false });
        let w = r.begin_write(None, now + every).expect("write");
        assert!(w.renew && w.batch.is_none() && w.snapshot.is_none());
        r.written(Ok(()));
        // Renewed when that write was sent: the next one is due a period later.
        assert!(!r.renewal_timer(now + every + Duration::from_millis(10), every));
        assert!(r.renewal_timer(now + every * 2, every));
    }

    #[test]
    fn snapshots_follow_new_batches_and_keep_the_stream_since_the_one_before() {
        let now = Instant::now();
        let mut r = settled(now);
        assert!(!r.snapshot_timer(), "nothing new since the first snapshot");
        for n in 1..=2u64 {
            r.record_event(event(n));
            r.step();
            r.begin_write(None, now).expect("write");
            r.written(Ok(()));
        }
        assert!(r.snapshot_timer());
        assert_eq!(r.step(), Step::Write { snapshot: true });
        let w = r.begin_write(Some(snap()), now).expect("write");
        assert_eq!(w.snapshot.as_ref().map(|(n, _)| *n), Some(2));
        assert_eq!(w.trim_below, Some(1), "the first snapshot included batch 0");
        r.written(Ok(()));
        // Each snapshot keeps the stream since the snapshot two back (here
        // the first, at batch 0), so a node taking over can refill its
        // resume buffer even if the newest snapshot is lost.
        for n in [3u64, 4] {
            r.record_event(event(n));
            r.step();
            r.begin_write(None, now).expect("write");
            r.written(Ok(()));
            assert!(r.snapshot_timer());
            r.step();
            let w = r.begin_write(Some(snap()), now).expect("write");
            let want = if n == 3 { 1 } else { 3 };
            assert_eq!(w.trim_below, Some(want), "snapshot at batch {n}");
            r.written(Ok(()));
        }
    }
}
