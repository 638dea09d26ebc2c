//! `Store`: every SQL statement of matchd, over a deadpool-postgres pool.
//!
//! Writes are set-based (`INSERT .. SELECT .. FROM UNNEST($1::bigint[], ..)`,
//! constant SQL with one array parameter per column), one transaction per
//! batch, idempotent (`ON CONFLICT DO NOTHING` on natural keys) and
//! order-insensitive, so a batch replayed from the journal, twice or out of
//! order, changes nothing. A match's result and the players' stats are
//! written in the same transaction, and only by the transaction that moves
//! the match to `ended`, so stats are counted exactly once.
//!
//! It must never be called from a match actor: only the persistence writer
//! (on its own Arbiter) and the HTTP read routes use it.

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, NoTls, Row};

use super::rating::{elo, outcomes, Outcome, START_RATING};
use super::record::Record;
use matchd_protocol::{Event, MatchResult, PlayerId, Seat};

mod embedded {
    refinery::embed_migrations!("../schema");
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database URL: {0}")]
    Config(String),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] refinery::Error),
}

impl StoreError {
    /// Whether trying again later may succeed (the server is away,
    /// restarting, or the transaction lost a race), as opposed to a batch
    /// the database will never accept.
    pub fn retryable(&self) -> bool {
        match self {
            StoreError::Config(_) => false,
            StoreError::Pool(_) | StoreError::Migrate(_) => true,
            StoreError::Db(e) => match e.code() {
                None => true, // I/O, closed connection, timeout
                Some(code) => {
                    let c = code.code();
                    c.starts_with("08") // connection exception
                        || c.starts_with("53") // insufficient resources
                        || c.starts_with("57") // operator intervention (57P01 shutdown)
                        || c.starts_with("58") // system error
                        || *code == SqlState::T_R_SERIALIZATION_FAILURE
                        || *code == SqlState::T_R_DEADLOCK_DETECTED
                        || *code == SqlState::UNDEFINED_TABLE // not migrated yet
                }
            },
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    /// Whether ratings and stats count for anonymous players too.
    pub rate_anonymous: bool,
    pub pool_size: usize,
    /// Connect, pool wait and statement timeout.
    pub timeout: Duration,
    /// CA bundle trusted for `sslmode=require` (`MATCHD_DATABASE_CA_FILE`);
    /// `None`: the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// A pool of connections to one Postgres (primary or replica).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    rate_anonymous: bool,
    /// `SET LOCAL statement_timeout = ..`, run first in each write.
    set_local_timeout: String,
}

/// An ended (or live) match as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMatch {
    pub match_id: u64,
    pub ruleset: String,
    pub status: String,
    pub node_id: String,
    pub created_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub last_seq: Option<u64>,
    pub result: Option<MatchResult>,
    pub players: Vec<StoredPlayer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredPlayer {
    pub seat: Seat,
    pub player_id: PlayerId,
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub seat: Option<Seat>,
    pub kind: String,
    pub payload: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlayerStats {
    pub player_id: PlayerId,
    pub wins: u32,
    pub losses: u32,
    pub draws: u32,
    pub rating: f64,
}

/// What one batch wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Records in the batch.
    pub records: usize,
    /// Matches this batch moved to `ended` (stats applied).
    pub results: usize,
}

impl Store {
    /// Builds the pool; connections are made lazily, on the runtime that
    /// first asks for them (build it on the thread that will use it).
    pub fn new(cfg: &StoreConfig) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config = crate::tls::postgres_url(&cfg.url)
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Config(e.to_string()))?;
        pg.connect_timeout(cfg.timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("matchd");
        }
        // `SET` on every new connection rather than the `options` startup
        // parameter, which PgBouncer refuses in its usual configuration.
        let statement_ms = cfg.timeout.as_millis().max(1);
        let set_timeout = format!("SET statement_timeout = {statement_ms}");
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        };
        // TLS when the URL asks for it (`sslmode=require`, or libpq's
        // verifying modes): certificate and host name verified against
        // `ca_file` or the system's roots. Otherwise plain, as before (a
        // default `prefer` must not fail on a server's self-signed cert).
        let manager = if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            let tls =
                crate::tls::client_config(cfg.ca_file.as_deref()).map_err(StoreError::Config)?;
            Manager::from_config(
                pg,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            )
        } else {
            Manager::from_config(pg, NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(cfg.timeout))
            .create_timeout(Some(cfg.timeout))
            .recycle_timeout(Some(cfg.timeout))
            .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
                let sql = set_timeout.clone();
                Box::pin(async move {
                    client
                        .batch_execute(&sql)
                        .await
                        .map_err(deadpool_postgres::HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Self {
            pool,
            rate_anonymous: cfg.rate_anonymous,
            set_local_timeout: format!("SET LOCAL statement_timeout = {statement_ms}"),
        })
    }

    /// Applies pending migrations from `schema/`, each in its own
    /// transaction, tracked in `refinery_schema_history`. Returns the names
    /// of the migrations applied now.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut obj = self.pool.get().await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        let report = embedded::migrations::runner()
            .set_grouped(false)
            .run_async(client)
            .await?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }

    /// `SELECT 1`: the `/ready` check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// The `statement_timeout` a pooled connection runs with (as Postgres
    /// shows it, e.g. `5s`): set on each new connection.
    pub async fn statement_timeout(&self) -> Result<String, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.simple_query("SHOW statement_timeout").await?;
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .ok_or_else(|| StoreError::Config("SHOW statement_timeout answered no row".into()))
    }

    /// Writes one batch in one transaction. Idempotent.
    pub async fn write(&self, batch: &[Record]) -> Result<Written, StoreError> {
        let rows = Rows::from_records(batch);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // In the transaction too, for poolers in transaction mode (PgBouncer),
        // where a session's `SET` may sit on another server connection.
        tx.batch_execute(&self.set_local_timeout).await?;
        if !rows.created.id.is_empty() {
            let c = &rows.created;
            INSERT_MATCHES
                .execute(&*tx, &[&c.id, &c.ruleset, &c.node, &c.created_ms])
                .await?;
        }
        if !rows.joined.match_id.is_empty() {
            let j = &rows.joined;
            INSERT_PLAYERS.execute(&*tx, &[&j.player]).await?;
            INSERT_MATCH_PLAYERS
                .execute(&*tx, &[&j.match_id, &j.seat, &j.player])
                .await?;
        }
        if !rows.events.match_id.is_empty() {
            let e = &rows.events;
            INSERT_EVENTS
                .execute(
                    &*tx,
                    &[&e.match_id, &e.seq, &e.seat, &e.kind, &e.payload, &e.at_ms],
                )
                .await?;
        }
        let mut results = 0;
        for record in batch {
            if let Record::MatchEnded { .. } = record {
                results += end_match(&tx, record, self.rate_anonymous).await? as usize;
            }
        }
        tx.commit().await?;
        Ok(Written {
            records: batch.len(),
            results,
        })
    }

    /// A stored match with its players, or `None`.
    pub async fn get_match(&self, id: u64) -> Result<Option<StoredMatch>, StoreError> {
        let client = self.pool.get().await?;
        let Some(row) = SELECT_MATCH.query_opt(&**client, &[&to_i64(id)]).await? else {
            return Ok(None);
        };
        let players = SELECT_MATCH_PLAYERS
            .query(&**client, &[&to_i64(id)])
            .await?
            .iter()
            .map(|r| StoredPlayer {
                seat: r.get::<_, i16>(0) as Seat,
                player_id: r.get::<_, i64>(1) as u64,
                outcome: r.get(2),
            })
            .collect();
        let status: String = row.get(2);
        let reason: Option<String> = row.get(8);
        let result = reason.map(|reason| MatchResult {
            winner: row.get::<_, Option<i16>>(7).map(|w| w as Seat),
            reason,
            scores: row.get::<_, Option<Vec<i64>>>(9).unwrap_or_default(),
        });
        Ok(Some(StoredMatch {
            match_id: id,
            ruleset: row.get(1),
            status,
            node_id: row.get(3),
            created_at_ms: row.get::<_, i64>(4) as u64,
            ended_at_ms: row.get::<_, Option<i64>>(5).map(|v| v as u64),
            last_seq: row.get::<_, Option<i64>>(6).map(|v| v as u64),
            result,
            players,
        }))
    }

    /// Events of a match with `seq > after`, in order, at most `limit`.
    pub async fn events(
        &self,
        id: u64,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.pool.get().await?;
        let rows = SELECT_EVENTS
            .query(&**client, &[&to_i64(id), &to_i64(after), &(limit as i64)])
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                seq: r.get::<_, i64>(0) as u64,
                seat: r.get::<_, Option<i16>>(1).map(|s| s as Seat),
                kind: r.get(2),
                payload: r.get(3),
                at_ms: r.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    pub async fn player_stats(&self, id: u64) -> Result<Option<PlayerStats>, StoreError> {
        let client = self.pool.get().await?;
        Ok(SELECT_STATS
            .query_opt(&**client, &[&to_i64(id)])
            .await?
            .map(|r| stats_row(&r)))
    }

    /// The best-rated players, best first.
    pub async fn leaderboard(&self, limit: u32) -> Result<Vec<PlayerStats>, StoreError> {
        let client = self.pool.get().await?;
        Ok(SELECT_LEADERBOARD
            .query(&**client, &[&(limit as i64)])
            .await?
            .iter()
            .map(stats_row)
            .collect())
    }
}

fn stats_row(r: &tokio_postgres::Row) -> PlayerStats {
    PlayerStats {
        player_id: r.get::<_, i64>(0) as u64,
        wins: r.get::<_, i32>(1).max(0) as u32,
        losses: r.get::<_, i32>(2).max(0) as u32,
        draws: r.get::<_, i32>(3).max(0) as u32,
        rating: r.get(4),
    }
}

/// Ids are below 2^53, so they fit a bigint; clamp rather than wrap if not.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A constant statement and the types of its parameters. Run unnamed
/// (`query_typed`): nothing is prepared or cached on the server, so every
/// statement also works through a pooler in transaction mode (PgBouncer
/// before 1.21 keeps no prepared statements there), in one round trip.
struct Sql {
    text: &'static str,
    types: &'static [Type],
}

type Param<'a> = &'a (dyn ToSql + Sync);

impl Sql {
    fn bind<'a>(&self, params: &[Param<'a>]) -> Vec<(Param<'a>, Type)> {
        debug_assert_eq!(params.len(), self.types.len(), "{}", self.text);
        params
            .iter()
            .copied()
            .zip(self.types.iter().cloned())
            .collect()
    }

    async fn execute(
        &self,
        c: &impl GenericClient,
        params: &[Param<'_>],
    ) -> Result<u64, tokio_postgres::Error> {
        c.execute_typed(self.text, &self.bind(params)).await
    }

    async fn query(
        &self,
        c: &impl GenericClient,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        c.query_typed(self.text, &self.bind(params)).await
    }

    async fn query_opt(
        &self,
        c: &impl GenericClient,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        c.query_typed_opt(self.text, &self.bind(params)).await
    }
}

const INSERT_MATCHES: Sql = Sql {
    text: "\
INSERT INTO matches (match_id, ruleset, status, node_id, created_at)
SELECT m, r, 'live', n, to_timestamp(c / 1000.0)
FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS t(m, r, n, c)
ON CONFLICT (match_id) DO NOTHING",
    types: &[
        Type::INT8_ARRAY,
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
        Type::INT8_ARRAY,
    ],
};

const INSERT_PLAYERS: Sql = Sql {
    text: "\
INSERT INTO players (player_id)
SELECT DISTINCT p FROM UNNEST($1::bigint[]) AS t(p)
ON CONFLICT (player_id) DO NOTHING",
    types: &[Type::INT8_ARRAY],
};

const INSERT_MATCH_PLAYERS: Sql = Sql {
    text: "\
INSERT INTO match_players (match_id, seat, player_id)
SELECT m, s, p FROM UNNEST($1::bigint[], $2::smallint[], $3::bigint[]) AS t(m, s, p)
ON CONFLICT (match_id, seat, player_id) DO NOTHING",
    types: &[Type::INT8_ARRAY, Type::INT2_ARRAY, Type::INT8_ARRAY],
};

const INSERT_EVENTS: Sql = Sql {
    text: "\
INSERT INTO match_events (match_id, seq, seat, kind, payload, at)
SELECT m, s, st, k, p::jsonb, to_timestamp(a / 1000.0)
FROM UNNEST($1::bigint[], $2::bigint[], $3::smallint[], $4::text[], $5::text[], $6::bigint[])
  AS t(m, s, st, k, p, a)
ON CONFLICT (match_id, seq) DO NOTHING",
    types: &[
        Type::INT8_ARRAY,
        Type::INT8_ARRAY,
        Type::INT2_ARRAY,
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
        Type::INT8_ARRAY,
    ],
};

/// Inserts or ends the match; returns a row only if this statement moved it
/// to `ended`, which is what makes the stats update exactly-once.
const END_MATCH: Sql = Sql {
    text: "\
INSERT INTO matches AS old (match_id, ruleset, status, node_id, created_at, ended_at, last_seq, winner, reason, scores)
VALUES ($1, $2, 'ended', $3, to_timestamp($4::bigint / 1000.0), to_timestamp($5::bigint / 1000.0), $6, $7, $8, $9)
ON CONFLICT (match_id) DO UPDATE
  SET status = 'ended', ended_at = EXCLUDED.ended_at, last_seq = EXCLUDED.last_seq,
      winner = EXCLUDED.winner, reason = EXCLUDED.reason, scores = EXCLUDED.scores
  WHERE old.status <> 'ended'
RETURNING match_id",
    types: &[Type::INT8, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8, Type::INT8, Type::INT2, Type::TEXT, Type::INT8_ARRAY],
};

const UPSERT_OUTCOMES: Sql = Sql {
    text: "\
INSERT INTO match_players (match_id, seat, player_id, outcome)
SELECT $1, s, p, o FROM UNNEST($2::smallint[], $3::bigint[], $4::text[]) AS t(s, p, o)
ON CONFLICT (match_id, seat, player_id) DO UPDATE SET outcome = EXCLUDED.outcome",
    types: &[
        Type::INT8,
        Type::INT2_ARRAY,
        Type::INT8_ARRAY,
        Type::TEXT_ARRAY,
    ],
};

const LOCK_RATINGS: Sql = Sql {
    text: "\
SELECT player_id, rating FROM player_stats WHERE player_id = ANY($1::bigint[])
ORDER BY player_id FOR UPDATE",
    types: &[Type::INT8_ARRAY],
};

const UPSERT_STATS: Sql = Sql {
    text: "\
INSERT INTO player_stats AS old (player_id, wins, losses, draws, rating, updated_at)
SELECT p, w, l, d, r, now()
FROM UNNEST($1::bigint[], $2::int[], $3::int[], $4::int[], $5::float8[]) AS t(p, w, l, d, r)
ON CONFLICT (player_id) DO UPDATE
  SET wins = old.wins + EXCLUDED.wins, losses = old.losses + EXCLUDED.losses,
      draws = old.draws + EXCLUDED.draws, rating = EXCLUDED.rating, updated_at = now()",
    types: &[
        Type::INT8_ARRAY,
        Type::INT4_ARRAY,
        Type::INT4_ARRAY,
        Type::INT4_ARRAY,
        Type::FLOAT8_ARRAY,
    ],
};

const SELECT_MATCH: Sql = Sql {
    text: "\
SELECT match_id, ruleset, status, node_id,
       (extract(epoch FROM created_at) * 1000)::bigint,
       (extract(epoch FROM ended_at) * 1000)::bigint,
       last_seq, winner, reason, scores
FROM matches WHERE match_id = $1",
    types: &[Type::INT8],
};

const SELECT_MATCH_PLAYERS: Sql = Sql {
    text: "\
SELECT seat, player_id, outcome FROM match_players WHERE match_id = $1 ORDER BY seat, player_id",
    types: &[Type::INT8],
};

const SELECT_EVENTS: Sql = Sql {
    text: "\
SELECT seq, seat, kind, payload::text, (extract(epoch FROM at) * 1000)::bigint
FROM match_events WHERE match_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    types: &[Type::INT8, Type::INT8, Type::INT8],
};

const SELECT_STATS: Sql = Sql {
    text: "\
SELECT player_id, wins, losses, draws, rating FROM player_stats WHERE player_id = $1",
    types: &[Type::INT8],
};

const SELECT_LEADERBOARD: Sql = Sql {
    text: "\
SELECT player_id, wins, losses, draws, rating FROM player_stats
ORDER BY rating DESC, player_id LIMIT $1",
    types: &[Type::INT8],
};

/// Ends one match; applies outcomes and stats if this call ended it.
async fn end_match(
    tx: &deadpool_postgres::Transaction<'_>,
    record: &Record,
    rate_anonymous: bool,
) -> Result<bool, StoreError> {
    let Record::MatchEnded {
        match_id,
        ruleset,
        node_id,
        created_at_ms,
        ended_at_ms,
        last_seq,
        result,
        players,
    } = record
    else {
        return Ok(false);
    };
    let scores: Vec<i64> = result.scores.clone();
    let ended = END_MATCH
        .query_opt(
            &**tx,
            &[
                &to_i64(*match_id),
                ruleset,
                node_id,
                &to_i64(*created_at_ms),
                &to_i64(*ended_at_ms),
                &to_i64(*last_seq),
                &result.winner.map(i16::from),
                &result.reason,
                &scores,
            ],
        )
        .await?
        .is_some();
    if !ended {
        return Ok(false); // already ended by an earlier (replayed) batch
    }
    let outcomes = outcomes(result, players);
    if outcomes.is_empty() {
        return Ok(true);
    }
    let ids: Vec<i64> = outcomes.iter().map(|o| to_i64(o.player_id)).collect();
    INSERT_PLAYERS.execute(&**tx, &[&ids]).await?;
    let seats: Vec<i16> = outcomes.iter().map(|o| i16::from(o.seat)).collect();
    let labels: Vec<Option<&str>> = outcomes.iter().map(|o| o.outcome.label()).collect();
    UPSERT_OUTCOMES
        .execute(&**tx, &[&to_i64(*match_id), &seats, &ids, &labels])
        .await?;

    let mut ratings: BTreeMap<u64, f64> = LOCK_RATINGS
        .query(&**tx, &[&ids])
        .await?
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, f64>(1)))
        .collect();
    let rated: Vec<(u64, f64, Outcome)> = outcomes
        .iter()
        .filter(|o| o.outcome != Outcome::NoContest)
        // Anonymous players are free to make: their games count only when
        // the operator says so, else one person could farm a rating.
        .filter(|o| rate_anonymous || crate::util::is_verified_player(o.player_id))
        .map(|o| {
            let r = *ratings.entry(o.player_id).or_insert(START_RATING);
            (o.player_id, r, o.outcome)
        })
        .collect();
    if rated.is_empty() {
        return Ok(true);
    }
    let new = elo(&rated.iter().map(|(_, r, o)| (*r, *o)).collect::<Vec<_>>());
    let p: Vec<i64> = rated.iter().map(|(id, _, _)| to_i64(*id)).collect();
    let w: Vec<i32> = rated
        .iter()
        .map(|(_, _, o)| (*o == Outcome::Win) as i32)
        .collect();
    let l: Vec<i32> = rated
        .iter()
        .map(|(_, _, o)| (*o == Outcome::Loss) as i32)
        .collect();
    let d: Vec<i32> = rated
        .iter()
        .map(|(_, _, o)| (*o == Outcome::Draw) as i32)
        .collect();
    UPSERT_STATS.execute(&**tx, &[&p, &w, &l, &d, &new]).await?;
    Ok(true)
}

/// A batch flattened into one array per column.
#[derive(Default)]
struct Rows {
    created: Created,
    joined: Joined,
    events: Events,
}

#[derive(Default)]
struct Created {
    id: Vec<i64>,
    ruleset: Vec<String>,
    node: Vec<String>,
    created_ms: Vec<i64>,
}

#[derive(Default)]
struct Joined {
    match_id: Vec<i64>,
    seat: Vec<i16>,
    player: Vec<i64>,
}

#[derive(Default)]
struct Events {
    match_id: Vec<i64>,
    seq: Vec<i64>,
    seat: Vec<Option<i16>>,
    kind: Vec<&'static str>,
    payload: Vec<String>,
    at_ms: Vec<i64>,
}

impl Rows {
    fn from_records(batch: &[Record]) -> Self {
        let mut rows = Rows::default();
        let n = batch.len();
        rows.events.match_id.reserve(n);
        rows.events.seq.reserve(n);
        rows.events.seat.reserve(n);
        rows.events.kind.reserve(n);
        rows.events.payload.reserve(n);
        rows.events.at_ms.reserve(n);
        for record in batch {
            match record {
                Record::MatchCreated {
                    match_id,
                    ruleset,
                    node_id,
                    created_at_ms,
                } => {
                    rows.created.id.push(to_i64(*match_id));
                    rows.created.ruleset.push(ruleset.clone());
                    rows.created.node.push(node_id.clone());
                    rows.created.created_ms.push(to_i64(*created_at_ms));
                }
                Record::Event {
                    match_id,
                    seq,
                    seat,
                    at_ms,
                    event,
                } => {
                    if let Event::PlayerJoined { seat, player_id } = event {
                        rows.joined.match_id.push(to_i64(*match_id));
                        rows.joined.seat.push(i16::from(*seat));
                        rows.joined.player.push(to_i64(*player_id));
                    }
                    let e = &mut rows.events;
                    e.match_id.push(to_i64(*match_id));
                    e.seq.push(to_i64(*seq));
                    e.seat.push(seat.map(i16::from));
                    e.kind.push(event_kind(event));
                    e.payload
                        .push(serde_json::to_string(event).unwrap_or_else(|_| String::from("{}")));
                    e.at_ms.push(to_i64(*at_ms));
                }
                Record::MatchEnded { .. } => {}
            }
        }
        rows
    }
}

/// The `kind` tag of an event, as in its JSON.
pub fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::PlayerJoined { .. } => "player_joined",
        Event::PlayerLeft { .. } => "player_left",
        Event::PlayerDisconnected { .. } => "player_disconnected",
        Event::PlayerReconnected { .. } => "player_reconnected",
        Event::Marked { .. } => "marked",
        Event::Phase { .. } => "phase",
        Event::Placed { .. } => "placed",
        Event::PlayerReady { .. } => "player_ready",
        Event::Attacked { .. } => "attacked",
        Event::Destroyed { .. } => "destroyed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kind_matches_the_json_tag() {
        let events = [
            Event::PlayerJoined {
                seat: 0,
                player_id: 1,
            },
            Event::PlayerLeft { seat: 0 },
            Event::PlayerDisconnected { seat: 0 },
            Event::PlayerReconnected { seat: 0 },
            Event::Marked {
                x: 0,
                y: 0,
                count: 1,
            },
            Event::Phase {
                phase: "deploy".into(),
            },
            Event::PlayerReady { seat: 1 },
            Event::Destroyed { unit_id: 3 },
        ];
        for e in events {
            let json: serde_json::Value = serde_json::to_value(&e).expect("json");
            assert_eq!(json["kind"], event_kind(&e), "{e:?}");
        }
    }

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        assert!(!StoreError::Config("x".into()).retryable());
    }
}
