//! `Replica`: a live match's copy in Redis, so that it survives the death of
//! its node (issue #5).
//!
//! Per match, under the node's key prefix:
//! - `match:{id}:owner` is the lease: the owning node's id, with a TTL the
//!   owner renews. It is taken with set-if-absent and released with a
//!   compare-and-delete script.
//! - `match:{id}:snap` is a bincode [`MatchSnapshot`]: the game state, the
//!   members and the `seq`, written every snapshot interval.
//! - `match:{id}:log` is a Redis stream of [`Batch`]es: what changed the
//!   match since the snapshot before last (inputs to replay, events to
//!   resend). Entry ids are `{batch}-1`, numbered by the match, so a stale
//!   owner's append fails: Redis refuses ids that do not grow.
//!
//! Every write goes through one Lua script that first checks the lease, so
//! a node that lost its lease can never write. The match sends a batch's
//! frames to clients only after Redis acknowledged the batch: any event a
//! client has seen is in Redis (the guarantee in the README).

use std::sync::Arc;
use std::time::Instant;

use bincode::{Decode, Encode};
use bytes::Bytes;
use fred::prelude::{Client, KeysInterface, SetsInterface};
use fred::types::scripts::Script;
use fred::types::Value;
use metrics::{Counter, Histogram};

use super::keys::Keys;
use crate::metrics as m;
use crate::rules::{decode_snapshot, encode_snapshot};
use matchd_protocol::{Action, Event, MatchId, PlayerId, Seat};

/// How long the snapshot and stream of a match outlive its last write:
/// a match whose node died can be taken over this long (players resume
/// within the seat grace anyway), and then Redis forgets it by itself.
pub const RETENTION_MS: u64 = 10 * 60 * 1000;

/// Settings of match replication.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// Prefix of every key.
    pub prefix: String,
    /// This node's id: the value of the leases it holds.
    pub node_id: String,
    /// Lifetime of a match lease; renewed every third of it.
    pub lease_ttl_ms: u64,
    /// How often a changed match writes a full snapshot.
    pub snapshot_ms: u64,
}

/// Something that changed a match, in the order it happened; failover
/// replays these on the last snapshot (rulesets are deterministic).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Input {
    /// A player took a free seat.
    SeatJoined { seat: Seat, player_id: PlayerId },
    /// A seat was given up for good.
    SeatLeft { seat: Seat },
    /// An accepted action.
    Apply { seat: Seat, action: Action },
    /// One tick of the ruleset's clock.
    Tick,
}

/// One event as numbered and broadcast.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Recorded {
    pub seq: u64,
    pub seat: Option<Seat>,
    pub event: Event,
    /// The `client_seq` of the action that caused it (protocol 2).
    pub client_seq: Option<u64>,
}

/// A stream entry as nodes before protocol 2 wrote it (events without
/// `client_seq`), read during a rolling upgrade.
#[derive(Decode)]
struct BatchV1 {
    inputs: Vec<Input>,
    events: Vec<RecordedV1>,
    ended: bool,
}

#[derive(Decode)]
struct RecordedV1 {
    seq: u64,
    seat: Option<Seat>,
    event: Event,
}

/// Decodes a stream entry, in the current layout or the one before.
pub fn decode_batch(bytes: &[u8]) -> Option<Batch> {
    decode_snapshot::<Batch>(bytes).or_else(|| {
        let old: BatchV1 = decode_snapshot(bytes)?;
        Some(Batch {
            inputs: old.inputs,
            events: old
                .events
                .into_iter()
                .map(|e| Recorded {
                    seq: e.seq,
                    seat: e.seat,
                    event: e.event,
                    client_seq: None,
                })
                .collect(),
            ended: old.ended,
        })
    })
}

/// One stream entry: what a match did between two Redis writes.
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct Batch {
    pub inputs: Vec<Input>,
    pub events: Vec<Recorded>,
    /// The match ended in this batch.
    pub ended: bool,
}

/// The whole match at one point: restored, then the later batches replayed.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct MatchSnapshot {
    pub match_id: MatchId,
    pub ruleset: String,
    /// The last event's `seq`.
    pub seq: u64,
    /// The last batch included.
    pub batch: u64,
    pub seed: u64,
    pub created_at_ms: u64,
    /// The player in each seat.
    pub players: Vec<Option<PlayerId>>,
    /// Everyone who ever took a seat, for the match's result.
    pub participants: Vec<(Seat, PlayerId)>,
    /// [`crate::rules::Game::snapshot`].
    pub game: Vec<u8>,
}

/// What a match's Redis copy holds, as read by a node taking it over.
#[derive(Debug, Clone)]
pub struct Stored {
    pub snapshot: MatchSnapshot,
    /// Every batch still in the stream, in order, with its number; those
    /// up to `snapshot.batch` are older and only refill the ring buffer.
    pub batches: Vec<(u64, Batch)>,
}

/// One write of a match: a batch, a snapshot, a lease renewal, or several.
#[derive(Debug, Default)]
pub struct Write {
    pub batch: Option<(u64, Vec<u8>)>,
    /// A snapshot and the batch number it includes.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// Stream entries below this batch number are removed.
    pub trim_below: Option<u64>,
    /// The match's latest batch number (guards a lease retaken after expiry).
    pub latest_batch: u64,
    /// Renew the lease (a snapshot always does).
    pub renew: bool,
    /// The match ended: write its tombstone with this write.
    pub ended: bool,
}

/// Labels of `matchd_replica_writes_total`, in the order of [`Write::kind`]
/// and of the outcome index in [`Replica::write_many`].
const WRITE_KINDS: [&str; 3] = ["snapshot", "append", "renew"];
const WRITE_OUTCOMES: [&str; 3] = ["ok", "not_owner", "error"];

impl Write {
    /// Index into [`WRITE_KINDS`].
    pub fn kind(&self) -> usize {
        match (&self.batch, &self.snapshot) {
            (_, Some(_)) => 0,
            (Some(_), None) => 1,
            (None, None) => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// Another node holds the lease (or took the match over meanwhile).
    #[error("match owned by another node ({0})")]
    NotOwner(String),
    #[error("redis: {0}")]
    Redis(String),
    #[error("the stored match is unreadable: {0}")]
    Corrupt(String),
}

impl ReplicaError {
    fn from_redis(e: fred::error::Error) -> Self {
        let text = e.to_string();
        if let Some(i) = text.find("NOTOWNER") {
            let owner = text[i + "NOTOWNER".len()..].trim().to_string();
            return ReplicaError::NotOwner(owner);
        }
        if text.contains("equal or smaller") {
            return ReplicaError::NotOwner("a newer writer".into());
        }
        ReplicaError::Redis(text)
    }
}

/// Who holds a match, as seen by [`Replica::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node holds the lease now: restore the match.
    Ours,
    /// Another node does.
    Theirs(String),
    /// Redis has no copy of this match.
    Unknown,
    /// The match ended (its tombstone is there): never rebuilt.
    Ended,
}

/// The writes of many matches in one round trip, each checking its lease
/// first. ARGV: node id, lease ttl ms, retention ms, then per write: batch
/// id or "", batch bytes, snapshot bytes or "", trim min id or "", latest
/// batch number, "1" to renew the lease, "1" if the match ended. KEYS per
/// write: owner, log, snap, tombstone. Returns one entry per write: 1, or
/// "NOTOWNER <owner>".
const WRITE_LUA: &str = r#"
local me, ttl, keep = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local owner_key, log, snap, tomb = KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4]
  local a = i * 7 + 4
  local id, batch, image, trim, latest = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local owner = redis.call('GET', owner_key)
  local renew = ARGV[a + 5] == '1'
  local refused = nil
  if owner ~= me then
    if owner or image == '' then
      refused = 'NOTOWNER ' .. tostring(owner)
    else
      -- The lease expired: retaken only with a full snapshot, and only
      -- if no other node wrote later batches meanwhile.
      local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
      if #last > 0 and tonumber(string.match(last[1][1], '^(%d+)')) > tonumber(latest) then
        refused = 'NOTOWNER a newer writer'
      end
    end
  end
  if not refused and id ~= '' then
    local r = redis.pcall('XADD', log, id, 'b', batch)
    if type(r) == 'table' and r.err then refused = 'NOTOWNER a newer writer' end
  end
  if refused then
    out[#out + 1] = refused
  else
    if image ~= '' then
      redis.call('SET', snap, image)
      if trim ~= '' then redis.call('XTRIM', log, 'MINID', trim) end
    end
    if renew or image ~= '' then
      -- The lease, and the copy's retention with it.
      redis.call('SET', owner_key, me, 'PX', ttl)
      redis.call('PEXPIRE', snap, keep)
      redis.call('PEXPIRE', log, keep)
    end
    if ARGV[a + 6] == '1' then
      redis.call('SET', tomb, '1', 'PX', keep)
    end
    out[#out + 1] = 1
  end
end
return out
"#;

/// Takes the lease of a match that has a copy and no live owner. KEYS:
/// owner, snap, tombstone. ARGV: node id, ttl ms. Returns the owner, nil,
/// or "!ENDED" for a match that ended (never rebuilt).
const CLAIM_LUA: &str = r#"
if redis.call('EXISTS', KEYS[3]) == 1 then return '!ENDED' end
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return owner end
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"#;

/// Compare-and-delete of the lease. KEYS: owner. ARGV: node id.
const RELEASE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// An ended match: its copy goes, if this node owns it. KEYS: owner, snap,
/// log. ARGV: node id.
const FORGET_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) end
return 0
"#;

/// Deletes a player's seat record if it names this match, and the match
/// from the player's seat set. KEYS: player key, seat set. ARGV:
/// "{match_id}:", match id.
const CLEAR_SEAT_LUA: &str = r#"
redis.call('SREM', KEYS[2], ARGV[2])
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Reserves a seat in match ARGV[1] for the cluster-wide cap (ARGV[2]):
/// 1 if the player already has it, 2 if reserved now, 0 if the player
/// holds the cap already. Entries of matches that no longer exist (no
/// copy, or ended) are dropped first, so a dead node's seats do not count
/// once its matches are gone. KEYS[1]: the player's seat set; ARGV[3..6]:
/// the set's lifetime (ms, from the last join), then the parts of a
/// match's snapshot and tombstone keys (`Keys::match_key_parts`).
const RESERVE_SEAT_LUA: &str = r#"
local key, id, cap = KEYS[1], ARGV[1], tonumber(ARGV[2])
local before, snap, ended = ARGV[4], ARGV[5], ARGV[6]
if redis.call('SISMEMBER', key, id) == 1 then
  redis.call('PEXPIRE', key, ARGV[3])
  return 1
end
for _, m in ipairs(redis.call('SMEMBERS', key)) do
  if redis.call('EXISTS', before .. m .. snap) == 0
     or redis.call('EXISTS', before .. m .. ended) == 1 then
    redis.call('SREM', key, m)
  end
end
if redis.call('SCARD', key) >= cap then return 0 end
redis.call('SADD', key, id)
redis.call('PEXPIRE', key, ARGV[3])
return 2
"#;

/// The snapshot and every stream entry, flattened: snap, id, bytes, id, bytes...
const LOAD_LUA: &str = r#"
local out = {redis.call('GET', KEYS[1])}
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
  table.insert(out, e[1])
  table.insert(out, e[2][2])
end
return out
"#;

type Reply = tokio::sync::oneshot::Sender<Result<(), ReplicaError>>;

/// The writes queued on this thread (one match arbiter) for the next round
/// trip, and whether a flush task runs.
#[derive(Default)]
struct Pending {
    queue: Vec<(Replica, MatchId, Write, Reply)>,
    flushing: bool,
}

thread_local! {
    static PENDING: std::cell::RefCell<Pending> = std::cell::RefCell::default();
}

/// Most writes in one script call; more wait for the next.
const MAX_WRITES_PER_CALL: usize = 256;

/// Sends this thread's queued writes, one script call at a time, until the
/// queue is empty: what queues during a round trip goes in the next call,
/// so the busier the thread, the more writes share a call.
async fn flush_thread_queue() {
    loop {
        let batch: Vec<(Replica, MatchId, Write, Reply)> = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let Some((first, ..)) = p.queue.first() else {
                p.flushing = false;
                return Vec::new();
            };
            // One call serves one node's replica (one thread may, in tests,
            // host matches of several).
            let cfg = first.cfg.clone();
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut p.queue)
                .into_iter()
                .enumerate()
                .partition(|(i, (r, ..))| *i < MAX_WRITES_PER_CALL && Arc::ptr_eq(&r.cfg, &cfg));
            p.queue = rest.into_iter().map(|(_, w)| w).collect();
            mine.into_iter().map(|(_, w)| w).collect()
        });
        let Some((replica, ..)) = batch.first() else {
            return;
        };
        let replica = replica.clone();
        let (writes, replies): (Vec<(MatchId, Write)>, Vec<Reply>) = batch
            .into_iter()
            .map(|(_, id, w, tx)| ((id, w), tx))
            .unzip();
        let results = replica.write_many(writes).await;
        for (tx, res) in replies.into_iter().zip(results) {
            let _ = tx.send(res);
        }
    }
}

struct Scripts {
    write: Script,
    claim: Script,
    release: Script,
    forget: Script,
    load: Script,
    clear_seat: Script,
    reserve_seat: Script,
}

/// What [`Replica::reserve_seat`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatReservation {
    /// The player already counts a seat in this match (a rejoin).
    AlreadyHeld,
    /// Counted now; release it if the join is refused.
    Reserved,
    /// The player holds the cap already, on some nodes.
    OverCap,
}

/// The handle every match of a replicated node holds; cheap to clone.
#[derive(Clone)]
pub struct Replica {
    client: Client,
    keys: Keys,
    cfg: Arc<ReplicaConfig>,
    scripts: Arc<Scripts>,
    write_seconds: Histogram,
    lease_failures: Counter,
    /// `matchd_replica_writes_total` by kind and outcome, resolved once.
    writes: Arc<[[Counter; 3]; 3]>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("cfg", &self.cfg).finish()
    }
}

impl Replica {
    /// `client` is the node's Redis client (connected by `Affinity`).
    pub fn new(client: Client, cfg: ReplicaConfig) -> Self {
        Self {
            client,
            keys: Keys::new(&cfg.prefix),
            cfg: Arc::new(cfg),
            scripts: Arc::new(Scripts {
                write: Script::from_lua(WRITE_LUA),
                claim: Script::from_lua(CLAIM_LUA),
                release: Script::from_lua(RELEASE_LUA),
                forget: Script::from_lua(FORGET_LUA),
                load: Script::from_lua(LOAD_LUA),
                clear_seat: Script::from_lua(CLEAR_SEAT_LUA),
                reserve_seat: Script::from_lua(RESERVE_SEAT_LUA),
            }),
            write_seconds: metrics::histogram!(m::REPLICA_WRITE_SECONDS),
            lease_failures: metrics::counter!(m::LEASE_FAILURES),
            writes: Arc::new(WRITE_KINDS.map(|kind| {
                WRITE_OUTCOMES.map(|outcome| {
                    metrics::counter!(m::REPLICA_WRITES, "kind" => kind, "outcome" => outcome)
                })
            })),
        }
    }

    pub fn config(&self) -> &ReplicaConfig {
        &self.cfg
    }

    pub fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    /// Runs one of the scripts (loading it into Redis first if needed).
    async fn eval<R: fred::types::FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R, ReplicaError> {
        script
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(ReplicaError::from_redis)
    }

    /// Performs one write of match `id`; fails with `NotOwner` when another
    /// node holds its lease. Writes of the matches on one thread are
    /// coalesced: while one round trip is in flight the next ones queue,
    /// and all of them go to Redis together in the next (one script call).
    pub async fn write(&self, id: MatchId, w: Write) -> Result<(), ReplicaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start_flush = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            p.queue.push((self.clone(), id, w, tx));
            !std::mem::replace(&mut p.flushing, true)
        });
        if start_flush {
            actix::spawn(flush_thread_queue());
        }
        rx.await
            .unwrap_or_else(|_| Err(ReplicaError::Redis("write dropped".into())))
    }

    /// Sends `writes` (all of this replica's node) in one script call.
    async fn write_many(&self, writes: Vec<(MatchId, Write)>) -> Vec<Result<(), ReplicaError>> {
        let started = Instant::now();
        let n = writes.len();
        let mut keys = Vec::with_capacity(n * 4);
        let mut args: Vec<Value> = Vec::with_capacity(3 + n * 7);
        args.push(self.cfg.node_id.as_str().into());
        args.push((self.cfg.lease_ttl_ms as i64).into());
        args.push((RETENTION_MS as i64).into());
        let mut kinds = Vec::with_capacity(n);
        for (id, w) in writes {
            kinds.push(w.kind());
            keys.push(self.keys.match_owner(id));
            keys.push(self.keys.match_log(id));
            keys.push(self.keys.match_snapshot(id));
            keys.push(self.keys.match_ended(id));
            let empty = || Value::Bytes(Bytes::new());
            let (batch_id, batch) = match w.batch {
                Some((n, bytes)) => (format!("{n}-1"), Value::Bytes(bytes.into())),
                None => (String::new(), empty()),
            };
            args.push(batch_id.into());
            args.push(batch);
            args.push(match w.snapshot {
                Some((_, bytes)) => Value::Bytes(bytes.into()),
                None => empty(),
            });
            args.push(
                w.trim_below
                    .map(|n| format!("{n}-0"))
                    .unwrap_or_default()
                    .into(),
            );
            args.push((w.latest_batch as i64).into());
            args.push(if w.renew { "1" } else { "0" }.into());
            args.push(if w.ended { "1" } else { "0" }.into());
        }
        let res: Result<Vec<Value>, _> = self
            .scripts
            .write
            .evalsha_with_reload(&self.client, keys, args)
            .await;
        self.write_seconds.record(started.elapsed().as_secs_f64());
        let results: Vec<Result<(), ReplicaError>> = match res {
            Ok(values) if values.len() == n => values
                .iter()
                .map(|v| match v.as_str() {
                    Some(text) if text.starts_with("NOTOWNER") => Err(ReplicaError::NotOwner(
                        text["NOTOWNER".len()..].trim().to_string(),
                    )),
                    _ => Ok(()),
                })
                .collect(),
            Ok(values) => {
                let e = ReplicaError::Redis(format!("{} answers for {n} writes", values.len()));
                vec![Err(e); n]
            }
            Err(e) => vec![Err(ReplicaError::from_redis(e)); n],
        };
        for (kind, res) in kinds.into_iter().zip(&results) {
            let outcome = match res {
                Ok(()) => 0,
                Err(ReplicaError::NotOwner(_)) => 1,
                Err(_) => {
                    self.lease_failures.increment(1);
                    2
                }
            };
            self.writes[kind][outcome].increment(1);
        }
        results
    }

    /// Takes the lease of match `id` if it has a copy and no other owner.
    pub async fn claim(&self, id: MatchId) -> Result<Claim, ReplicaError> {
        let keys = vec![
            self.keys.match_owner(id),
            self.keys.match_snapshot(id),
            self.keys.match_ended(id),
        ];
        let args: Vec<Value> = vec![
            self.cfg.node_id.as_str().into(),
            (self.cfg.lease_ttl_ms as i64).into(),
        ];
        let owner: Option<String> = self.eval(&self.scripts.claim, keys, args).await?;
        Ok(match owner {
            None => Claim::Unknown,
            Some(o) if o == "!ENDED" => Claim::Ended,
            Some(o) if o == self.cfg.node_id => Claim::Ours,
            Some(o) => Claim::Theirs(o),
        })
    }

    /// The node holding match `id`'s lease, if any.
    pub async fn owner(&self, id: MatchId) -> Result<Option<String>, ReplicaError> {
        self.client
            .get(self.keys.match_owner(id))
            .await
            .map_err(ReplicaError::from_redis)
    }

    /// Records that `player` holds `seat` in match `id` (session affinity:
    /// any node can tell a returning player where its game is).
    pub async fn set_seat(
        &self,
        player: PlayerId,
        id: MatchId,
        seat: Seat,
    ) -> Result<(), ReplicaError> {
        self.client
            .set::<(), _, _>(
                self.keys.player(player),
                format!("{id}:{seat}"),
                Some(fred::types::Expiration::PX(RETENTION_MS as i64)),
                None,
                false,
            )
            .await
            .map_err(ReplicaError::from_redis)
    }

    /// `player` left match `id`: forget its seat unless it sits elsewhere
    /// now, and drop the match from the player's seat set.
    pub async fn clear_seat(&self, player: PlayerId, id: MatchId) -> Result<(), ReplicaError> {
        let keys = vec![self.keys.player(player), self.keys.seats(player)];
        let args: Vec<Value> = vec![format!("{id}:").into(), id.to_string().into()];
        let _: i64 = self.eval(&self.scripts.clear_seat, keys, args).await?;
        Ok(())
    }

    /// Counts a seat for `player` in match `id` against `cap` seats on
    /// every node (see [`SeatReservation`]).
    pub async fn reserve_seat(
        &self,
        player: PlayerId,
        id: MatchId,
        cap: usize,
    ) -> Result<SeatReservation, ReplicaError> {
        let keys = vec![self.keys.seats(player)];
        let (before, snapshot, ended) = self.keys.match_key_parts();
        let args: Vec<Value> = vec![
            id.to_string().into(),
            (cap as i64).into(),
            (RETENTION_MS as i64).into(),
            before.into(),
            snapshot.into(),
            ended.into(),
        ];
        let n: i64 = self.eval(&self.scripts.reserve_seat, keys, args).await?;
        Ok(match n {
            0 => SeatReservation::OverCap,
            1 => SeatReservation::AlreadyHeld,
            _ => SeatReservation::Reserved,
        })
    }

    /// Takes back a reservation whose join was refused.
    pub async fn release_seat(&self, player: PlayerId, id: MatchId) -> Result<(), ReplicaError> {
        let _: i64 = self
            .client
            .srem(self.keys.seats(player), id.to_string())
            .await
            .map_err(ReplicaError::from_redis)?;
        Ok(())
    }

    /// The match and seat `player` holds, on any node.
    pub async fn seat_of(&self, player: PlayerId) -> Result<Option<(MatchId, Seat)>, ReplicaError> {
        let raw: Option<String> = self
            .client
            .get(self.keys.player(player))
            .await
            .map_err(ReplicaError::from_redis)?;
        Ok(raw.and_then(|v| {
            let (id, seat) = v.split_once(':')?;
            Some((id.parse().ok()?, seat.parse().ok()?))
        }))
    }

    /// The WebSocket URL node `node_id` registered, if it is registered.
    pub async fn node_url(&self, node_id: &str) -> Result<Option<String>, ReplicaError> {
        let raw: Option<String> = self
            .client
            .get(self.keys.node(node_id))
            .await
            .map_err(ReplicaError::from_redis)?;
        Ok(raw
            .and_then(|v| serde_json::from_str::<super::nodes::NodeInfo>(&v).ok())
            .map(|n| n.url)
            .filter(|u| plausible_ws_url(u)))
    }

    /// The node holding match `id`'s lease and, if it is registered, its URL.
    pub async fn owner_url(
        &self,
        id: MatchId,
    ) -> Result<Option<(String, Option<String>)>, ReplicaError> {
        let Some(owner) = self.owner(id).await? else {
            return Ok(None);
        };
        let url = self.node_url(&owner).await?;
        Ok(Some((owner, url)))
    }

    /// Gives the lease of match `id` up, if this node holds it.
    pub async fn release(&self, id: MatchId) -> Result<(), ReplicaError> {
        let keys = vec![self.keys.match_owner(id)];
        let args: Vec<Value> = vec![self.cfg.node_id.as_str().into()];
        let _: i64 = self.eval(&self.scripts.release, keys, args).await?;
        Ok(())
    }

    /// Removes the copy of an ended match, if this node owns it.
    pub async fn forget(&self, id: MatchId) -> Result<(), ReplicaError> {
        let keys = vec![
            self.keys.match_owner(id),
            self.keys.match_snapshot(id),
            self.keys.match_log(id),
        ];
        let args: Vec<Value> = vec![self.cfg.node_id.as_str().into()];
        let _: i64 = self.eval(&self.scripts.forget, keys, args).await?;
        Ok(())
    }

    /// Reads the snapshot and stream of match `id`; `None` if there is no snapshot.
    pub async fn load(&self, id: MatchId) -> Result<Option<Stored>, ReplicaError> {
        let keys = vec![self.keys.match_snapshot(id), self.keys.match_log(id)];
        let values: Vec<Value> = self.eval(&self.scripts.load, keys, Vec::new()).await?;
        decode_stored(&values)
    }
}

/// Parses what `LOAD_LUA` returned.
pub fn decode_stored(values: &[Value]) -> Result<Option<Stored>, ReplicaError> {
    let corrupt = |what: &str| ReplicaError::Corrupt(what.to_string());
    let Some(first) = values.first() else {
        return Ok(None);
    };
    let Some(snap_bytes) = first.as_bytes() else {
        return Ok(None);
    };
    let snapshot: MatchSnapshot = decode_snapshot(snap_bytes).ok_or_else(|| corrupt("snapshot"))?;
    let mut batches = Vec::new();
    for pair in values[1..].chunks(2) {
        let [id, bytes] = pair else {
            return Err(corrupt("stream entry"));
        };
        let id = id.as_str().ok_or_else(|| corrupt("stream id"))?;
        let n: u64 = id
            .split('-')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt("stream id"))?;
        let batch: Batch = bytes
            .as_bytes()
            .and_then(decode_batch)
            .ok_or_else(|| corrupt("stream entry"))?;
        batches.push((n, batch));
    }
    Ok(Some(Stored { snapshot, batches }))
}

/// Encodes a batch or snapshot for Redis (bincode, bounded decoder).
pub fn encode<T: Encode>(value: &T) -> Option<Vec<u8>> {
    encode_snapshot(value)
}

/// Whether a registered node URL may be handed to a client in a
/// `redirect` (with the client's token following it): `ws://` or `wss://`,
/// a host, the `/v1/ws` path, no whitespace or control characters, at most
/// 512 bytes. Whatever else a registration in Redis says is not passed on.
pub fn plausible_ws_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"));
    let Some(rest) = rest else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    url.len() <= 512
        && !host.is_empty()
        && !host.contains('@')
        && rest[host.len()..].ends_with("/v1/ws")
        && url.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_websocket_urls_of_the_api_are_passed_to_clients() {
        for ok in [
            "ws://127.0.0.1:8080/v1/ws",
            "wss://game.example.com/matchd/v1/ws",
        ] {
            assert!(plausible_ws_url(ok), "{ok}");
        }
        for bad in [
            "http://evil.example/v1/ws",
            "ws://evil.example/steal",
            "ws:///v1/ws",
            "ws://user@evil.example/v1/ws",
            "ws://a b/v1/ws",
            "javascript:alert(1)",
            "",
        ] {
            assert!(!plausible_ws_url(bad), "{bad}");
        }
        assert!(!plausible_ws_url(&format!(
            "ws://{}/v1/ws",
            "a".repeat(600)
        )));
    }

    #[test]
    fn batches_and_snapshots_round_trip() {
        let batch = Batch {
            inputs: vec![
                Input::SeatJoined {
                    seat: 0,
                    player_id: 7,
                },
                Input::Apply {
                    seat: 0,
                    action: Action::Mark { x: 1, y: 1 },
                },
                Input::Tick,
            ],
            events: vec![Recorded {
                seq: 3,
                seat: Some(0),
                event: Event::Marked {
                    x: 1,
                    y: 1,
                    count: 1,
                },
                client_seq: Some(9),
            }],
            ended: false,
        };
        let bytes = encode(&batch).expect("encodes");
        assert_eq!(decode_batch(&bytes), Some(batch.clone()));
        // A batch written before events carried client_seq still reads.
        #[derive(Encode)]
        struct OldRecorded {
            seq: u64,
            seat: Option<Seat>,
            event: Event,
        }
        #[derive(Encode)]
        struct OldBatch {
            inputs: Vec<Input>,
            events: Vec<OldRecorded>,
            ended: bool,
        }
        let old = OldBatch {
            inputs: batch.inputs.clone(),
            events: batch
                .events
                .iter()
                .map(|e| OldRecorded {
                    seq: e.seq,
                    seat: e.seat,
                    event: e.event.clone(),
                })
                .collect(),
            ended: true,
        };
        let mut expected = batch.clone();
        expected.events[0].client_seq = None;
        expected.ended = true;
        assert_eq!(
            decode_batch(&encode(&old).expect("encodes")),
            Some(expected)
        );
        let snap = MatchSnapshot {
            match_id: 9,
            ruleset: "sandbox".into(),
            seq: 3,
            batch: 1,
            seed: 5,
            created_at_ms: 1,
            players: vec![Some(7), None],
            participants: vec![(0, 7)],
            game: vec![1, 2, 3],
        };
        let bytes = encode(&snap).expect("encodes");
        let values = vec![
            Value::Bytes(bytes.into()),
            Value::String("2-1".into()),
            Value::Bytes(encode(&Batch::default()).expect("encodes").into()),
        ];
        let stored = decode_stored(&values).expect("decodes").expect("present");
        assert_eq!(stored.snapshot, snap);
        assert_eq!(stored.batches, vec![(2, Batch::default())]);
        assert_eq!(
            decode_stored(&[Value::Null]).expect("decodes").map(|_| ()),
            None
        );
        assert!(decode_stored(&[Value::Bytes(Bytes::from_static(b"junk"))]).is_err());
    }
}
