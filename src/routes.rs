//! HTTP routes. Every error leaves through [`ApiError`], the one place the
//! HTTP layer maps errors to `{"error":{"code","message"}}`.

use std::time::{Duration, Instant, SystemTime};

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actix_web_actors::ws;
use matchd_actors::affinity::{Affinity, AffinityError, GetNodes, GetRedisHealth};
use matchd_actors::connection::Connection;
use matchd_actors::control::{self, ControlMsg};
use matchd_actors::metrics as m;
use matchd_actors::protocol::codec::Encoding;
use matchd_actors::protocol::PlayerId;
use matchd_actors::registry::{EngineError, MatchEntry};
use matchd_actors::replica::ReplicaError;
use matchd_actors::store::{PlayerStats, Store, StoreError, StoredMatch};
use matchd_actors::writer::{BreakerState, GetWriterStats, PersistenceWriter};
use matchd_actors::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};

use crate::sessions::Sessions;

/// Errors of the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidBody(String),
    #[error("match id must be a positive integer, got {0:?}")]
    InvalidMatchId(String),
    #[error("no match with id {0}")]
    MatchNotFound(u64),
    #[error("player id must be a positive integer, got {0:?}")]
    InvalidPlayerId(String),
    #[error("no stats for player {0}")]
    PlayerNotFound(u64),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("match history needs a database and none is configured (DATABASE_URL)")]
    DatabaseNotConfigured,
    #[error("the match history database is not answering; try again later")]
    DatabaseUnavailable,
    #[error("a valid session token is required (Authorization: Bearer or ?token=)")]
    Unauthorized,
    #[error("unknown encoding {0:?}; use json or bincode")]
    InvalidEncoding(String),
    #[error("this endpoint needs a WebSocket upgrade request")]
    WebSocketRequired,
    #[error("session limit reached")]
    TooManySessions,
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Redis(#[from] AffinityError),
    #[error("admin endpoints are off: set MATCHD_ADMIN_KEY")]
    AdminDisabled,
    #[error("a valid admin key is required (Authorization: Bearer)")]
    BadAdminKey,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidMatchId(_) => "invalid_match_id",
            ApiError::MatchNotFound(_) => "match_not_found",
            ApiError::InvalidPlayerId(_) => "invalid_player_id",
            ApiError::PlayerNotFound(_) => "player_not_found",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::DatabaseNotConfigured => "database_not_configured",
            ApiError::DatabaseUnavailable => "database_unavailable",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidEncoding(_) => "invalid_encoding",
            ApiError::WebSocketRequired => "websocket_required",
            ApiError::TooManySessions => "too_many_sessions",
            ApiError::Engine(e) => e.code(),
            ApiError::Redis(e) => e.code(),
            ApiError::AdminDisabled => "admin_disabled",
            ApiError::BadAdminKey => "bad_admin_key",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // The detail is for operators; clients get a stable code.
        log::warn!("read API: database error: {e}");
        ApiError::DatabaseUnavailable
    }
}

impl From<ReplicaError> for ApiError {
    fn from(e: ReplicaError) -> Self {
        ApiError::Redis(AffinityError::Redis(e.to_string()))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidBody(_)
            | ApiError::InvalidMatchId(_)
            | ApiError::InvalidEncoding(_)
            | ApiError::InvalidPlayerId(_)
            | ApiError::InvalidQuery(_)
            | ApiError::WebSocketRequired => StatusCode::BAD_REQUEST,
            ApiError::Engine(EngineError::UnknownRuleset(_)) => StatusCode::BAD_REQUEST,
            ApiError::MatchNotFound(_) | ApiError::PlayerNotFound(_) | ApiError::NotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::Unauthorized | ApiError::BadAdminKey => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManySessions
            | ApiError::Redis(_)
            | ApiError::Engine(_)
            | ApiError::DatabaseNotConfigured
            | ApiError::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        })
    }
}

/// Shared state of the routes.
pub struct AppState {
    pub engine: Engine,
    pub sessions: Sessions,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    pub writer: Addr<PersistenceWriter>,
    /// `MATCHD_ADMIN_KEY`; `None` turns the admin endpoints off.
    pub admin_key: Option<String>,
    /// The node's Redis presence; `None` without `REDIS_URL`.
    pub affinity: Option<Addr<Affinity>>,
    /// This node's WebSocket URL.
    pub advertise_url: String,
    /// The node's Redis client, for control messages; `None` without Redis.
    pub redis: Option<fred::prelude::Client>,
    pub redis_prefix: String,
}

/// The read pool of one HTTP worker (`DATABASE_READ_URL`, else
/// `DATABASE_URL`); `None` when no database is configured. Each worker builds
/// its own so connections live on that worker's runtime.
pub struct Reads(pub Option<Store>);

impl Reads {
    fn store(&self) -> Result<&Store, ApiError> {
        self.0.as_ref().ok_or(ApiError::DatabaseNotConfigured)
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let not_allowed = || web::to(|| async { Err::<HttpResponse, _>(ApiError::MethodNotAllowed) });
    cfg.app_data(
        web::JsonConfig::default()
            .limit(16 * 1024)
            .error_handler(|err, _| ApiError::InvalidBody(err.to_string()).into()),
    )
    .service(
        web::resource("/v1/sessions")
            .route(web::post().to(create_session))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/v1/sessions/current")
            .route(web::get().to(current_session))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/v1/matches")
            .route(web::post().to(create_match))
            .route(web::get().to(list_matches))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/v1/matches/{id}")
            .route(web::get().to(get_match))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/v1/matches/{id}/events")
            .route(web::get().to(match_events))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/v1/players/{id}/stats")
            .route(web::get().to(player_stats))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/v1/leaderboard")
            .route(web::get().to(leaderboard))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/v1/ws")
            .route(web::get().to(websocket))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/v1/nodes")
            .route(web::get().to(nodes))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/admin/drain")
            .route(web::post().to(admin_drain))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/admin/kick")
            .route(web::post().to(admin_kick))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/admin/broadcast")
            .route(web::post().to(admin_broadcast))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/admin/matches/{id}/end")
            .route(web::post().to(admin_end_match))
            .default_service(not_allowed()),
    )
    .service(web::resource("/health").route(web::get().to(health)))
    .service(web::resource("/ready").route(web::get().to(ready)))
    .service(web::resource("/metrics").route(web::get().to(metrics_text)))
    .default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound)
    }));
}

#[derive(Serialize, Deserialize)]
pub struct SessionCreated {
    pub token: String,
    pub player_id: u64,
}

async fn create_session(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let s = state
        .sessions
        .create_shared()
        .await
        .ok_or(ApiError::TooManySessions)?;
    Ok(HttpResponse::Created().json(SessionCreated {
        token: s.token,
        player_id: s.player_id,
    }))
}

/// Where a session's player is: `match` is the seat it holds (on this node
/// or, with Redis, on any node), `null` when it holds none.
async fn current_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<WsQuery>,
) -> Result<HttpResponse, ApiError> {
    let player_id = authenticate(&state, &req, query.token.as_deref()).await?;
    let engine = &state.engine;
    let seat = engine.seat_of(player_id).await?;
    let at = match seat {
        None => serde_json::Value::Null,
        Some((match_id, seat)) => {
            let (node_id, url) = if engine.lookup(match_id).is_some() {
                (
                    Some(engine.cfg.node_id.clone()),
                    Some(state.advertise_url.clone()),
                )
            } else if let Some(replica) = &engine.replica {
                match replica.owner_url(match_id).await? {
                    Some((owner, url)) => (Some(owner), url),
                    None => (None, None),
                }
            } else {
                (None, None)
            };
            serde_json::json!({ "match_id": match_id, "seat": seat, "node_id": node_id, "url": url })
        }
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "player_id": player_id, "match": at })))
}

/// The player of a request's session token (`Authorization: Bearer`, else
/// `?token=`), known here or, with Redis, made on another node.
async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    query: Option<&str>,
) -> Result<PlayerId, ApiError> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or(query)
        .ok_or(ApiError::Unauthorized)?;
    state
        .sessions
        .player_shared(token)
        .await
        .ok_or(ApiError::Unauthorized)
}

#[derive(Deserialize)]
pub struct CreateMatchBody {
    pub ruleset: String,
}

#[derive(Serialize, Deserialize)]
pub struct MatchCreated {
    pub match_id: u64,
}

async fn create_match(
    state: web::Data<AppState>,
    body: web::Json<CreateMatchBody>,
) -> Result<HttpResponse, ApiError> {
    let entry = state.engine.create_match(&body.ruleset).await?;
    Ok(HttpResponse::Created().json(MatchCreated {
        match_id: entry.info.id,
    }))
}

/// A match as the HTTP API shows it: live from the node, or ended from the
/// database (then with `ended_at_ms`, `result` and `players`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MatchSummary {
    pub match_id: u64,
    pub ruleset: String,
    pub status: String,
    pub seats_taken: u8,
    pub max_seats: u8,
    pub connected: u8,
    pub joinable: bool,
    /// The node that runs the match (a live match), or ran it.
    pub node_id: String,
    /// A live match: the WebSocket URL of its node, where clients join or
    /// resume it (other nodes answer those with `redirect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<matchd_actors::protocol::MatchResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<Vec<PlayerInMatch>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PlayerInMatch {
    pub seat: u8,
    pub player_id: u64,
    /// `win`, `loss`, `draw`, or absent (no contest, or not ended).
    #[serde(default)]
    pub outcome: Option<String>,
}

fn summary(e: &MatchEntry, node_id: &str, url: &str) -> MatchSummary {
    use std::sync::atomic::Ordering::Relaxed;
    let i = &e.info;
    MatchSummary {
        match_id: i.id,
        ruleset: i.ruleset.to_string(),
        status: "live".into(),
        seats_taken: i.occupied.load(Relaxed),
        max_seats: i.max_seats,
        connected: i.connected.load(Relaxed),
        joinable: i.joinable.load(Relaxed),
        node_id: node_id.to_string(),
        url: Some(url.to_string()),
        created_at_ms: i
            .created_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        ended_at_ms: None,
        result: None,
        players: None,
    }
}

fn stored_summary(m: StoredMatch, engine: &Engine) -> MatchSummary {
    let max_seats = engine.catalog.get(&m.ruleset).map_or(0, |r| r.max_seats());
    MatchSummary {
        match_id: m.match_id,
        seats_taken: m.players.len().min(u8::MAX as usize) as u8,
        max_seats,
        ruleset: m.ruleset,
        status: m.status,
        connected: 0,
        joinable: false,
        node_id: m.node_id,
        url: None,
        created_at_ms: m.created_at_ms,
        ended_at_ms: m.ended_at_ms,
        result: m.result,
        players: Some(
            m.players
                .into_iter()
                .map(|p| PlayerInMatch {
                    seat: p.seat,
                    player_id: p.player_id,
                    outcome: p.outcome,
                })
                .collect(),
        ),
    }
}

#[derive(Serialize, Deserialize)]
pub struct MatchList {
    pub matches: Vec<MatchSummary>,
}

async fn list_matches(state: web::Data<AppState>) -> HttpResponse {
    let node = &state.engine.cfg.node_id;
    let matches = state
        .engine
        .list()
        .iter()
        .map(|e| summary(e, node, &state.advertise_url))
        .collect();
    HttpResponse::Ok().json(MatchList { matches })
}

fn parse_match_id(raw: String) -> Result<u64, ApiError> {
    match raw.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::InvalidMatchId(raw)),
    }
}

/// A live match from this node; otherwise the stored one. Without a database
/// an unknown id stays a plain 404 (this node has never heard of it).
async fn get_match(
    state: web::Data<AppState>,
    reads: web::Data<Reads>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_match_id(path.into_inner())?;
    if let Some(entry) = state.engine.lookup(id) {
        let (node, url) = (&state.engine.cfg.node_id, &state.advertise_url);
        return Ok(HttpResponse::Ok().json(summary(&entry, node, url)));
    }
    if let Some(remote) = remote_summary(&state, id).await? {
        return Ok(HttpResponse::Ok().json(remote));
    }
    let Some(store) = reads.0.as_ref() else {
        return Err(ApiError::MatchNotFound(id));
    };
    let stored = store
        .get_match(id)
        .await?
        .ok_or(ApiError::MatchNotFound(id))?;
    Ok(HttpResponse::Ok().json(stored_summary(stored, &state.engine)))
}

/// A live match another node owns, from its lease and snapshot in Redis.
async fn remote_summary(state: &AppState, id: u64) -> Result<Option<MatchSummary>, ApiError> {
    let Some(replica) = &state.engine.replica else {
        return Ok(None);
    };
    let Some((owner, url)) = replica.owner_url(id).await? else {
        return Ok(None);
    };
    let Some(stored) = replica.load(id).await? else {
        return Ok(None);
    };
    let snap = stored.snapshot;
    let max_seats = state
        .engine
        .catalog
        .get(&snap.ruleset)
        .map_or(0, |r| r.max_seats());
    Ok(Some(MatchSummary {
        match_id: id,
        seats_taken: snap.players.iter().flatten().count() as u8,
        max_seats,
        ruleset: snap.ruleset,
        status: "live".into(),
        connected: 0,
        joinable: false,
        node_id: owner,
        url,
        created_at_ms: snap.created_at_ms,
        ended_at_ms: None,
        result: None,
        players: None,
    }))
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
}

fn query_num(name: &str, raw: Option<&str>, default: u64, max: u64) -> Result<u64, ApiError> {
    match raw {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::InvalidQuery(format!(
                "{name} must be an integer from 0 to {max}, got {v:?}"
            ))),
        },
    }
}

/// One stored event, for replays.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: u64,
    #[serde(default)]
    pub seat: Option<u8>,
    pub at_ms: u64,
    pub event: matchd_actors::protocol::Event,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EventPage {
    pub match_id: u64,
    pub events: Vec<EventRecord>,
    /// Pass as `after` to get the next page; absent when this page was short.
    #[serde(default)]
    pub next_after: Option<u64>,
}

/// Most events one page returns.
pub const MAX_EVENT_PAGE: u64 = 1000;

async fn match_events(
    reads: web::Data<Reads>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_match_id(path.into_inner())?;
    let after = query_num("after", query.after.as_deref(), 0, i64::MAX as u64)?;
    let limit = query_num("limit", query.limit.as_deref(), 100, MAX_EVENT_PAGE)?.max(1);
    let store = reads.store()?;
    let rows = store.events(id, after, limit as u32).await?;
    if rows.is_empty() && store.get_match(id).await?.is_none() {
        return Err(ApiError::MatchNotFound(id));
    }
    let events: Vec<EventRecord> = rows
        .into_iter()
        .filter_map(|r| {
            let event = serde_json::from_str(&r.payload)
                .map_err(|e| log::error!(match_id = id, seq = r.seq; "stored event does not decode: {e}"))
                .ok()?;
            Some(EventRecord {
                seq: r.seq,
                seat: r.seat,
                at_ms: r.at_ms,
                event,
            })
        })
        .collect();
    let next_after = (events.len() as u64 == limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(HttpResponse::Ok().json(EventPage {
        match_id: id,
        events,
        next_after,
    }))
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StatsBody {
    pub player_id: u64,
    pub wins: u32,
    pub losses: u32,
    pub draws: u32,
    pub rating: f64,
}

impl From<PlayerStats> for StatsBody {
    fn from(s: PlayerStats) -> Self {
        Self {
            player_id: s.player_id,
            wins: s.wins,
            losses: s.losses,
            draws: s.draws,
            rating: s.rating,
        }
    }
}

async fn player_stats(
    reads: web::Data<Reads>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = match raw.parse::<u64>() {
        Ok(id) if id > 0 => id,
        _ => return Err(ApiError::InvalidPlayerId(raw)),
    };
    let stats = reads
        .store()?
        .player_stats(id)
        .await?
        .ok_or(ApiError::PlayerNotFound(id))?;
    Ok(HttpResponse::Ok().json(StatsBody::from(stats)))
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Leaderboard {
    pub players: Vec<StatsBody>,
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<String>,
}

async fn leaderboard(
    reads: web::Data<Reads>,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query_num("limit", query.limit.as_deref(), 10, 100)?.max(1);
    let players = reads.store()?.leaderboard(limit as u32).await?;
    Ok(HttpResponse::Ok().json(Leaderboard {
        players: players.into_iter().map(StatsBody::from).collect(),
    }))
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
    encoding: Option<String>,
}

async fn websocket(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<WsQuery>,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let player_id = authenticate(&state, &req, query.token.as_deref()).await?;
    let encoding = match query.encoding.as_deref() {
        None => Encoding::Json,
        Some(e) => Encoding::parse(e).ok_or_else(|| ApiError::InvalidEncoding(e.into()))?,
    };
    if ws::handshake(&req).is_err() {
        return Err(ApiError::WebSocketRequired.into());
    }
    let actor = Connection::new(state.engine.clone(), player_id, encoding);
    ws::WsResponseBuilder::new(actor, &req, stream)
        .frame_size(state.engine.cfg.max_frame_bytes)
        .start()
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The database check of `/ready`: informational, it does not make the node
/// unready, because matches go on and their history waits in the journal.
async fn database_check(state: &AppState, reads: &Reads) -> serde_json::Value {
    let writer = state
        .writer
        .send(GetWriterStats)
        .timeout(Duration::from_secs(1))
        .await
        .ok();
    let read_ok = match reads.0.as_ref() {
        None => None,
        Some(store) => Some(
            actix_web::rt::time::timeout(Duration::from_secs(1), store.ping())
                .await
                .is_ok_and(|r| r.is_ok()),
        ),
    };
    let configured = writer.as_ref().is_some_and(|w| w.database);
    let write_ok = writer
        .as_ref()
        .map(|w| w.database && w.last_error.is_none() && w.breaker == BreakerState::Closed);
    serde_json::json!({
        "configured": configured,
        "ok": configured && write_ok == Some(true) && read_ok != Some(false),
        "read_ok": read_ok,
        "writer": writer.map(|w| serde_json::json!({
            "breaker": w.breaker.as_str(),
            "queue_depth": w.queue_depth,
            "journal_bytes_pending": w.journal_bytes_pending,
            "rows_written": w.rows_written,
            "rows_journaled": w.rows_journaled,
            "last_error": w.last_error,
        })),
    })
}

/// `GET /v1/nodes`: the live nodes from Redis, or this one alone without it.
async fn nodes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(affinity) = &state.affinity else {
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "redis": false,
            "nodes": [{
                "node_id": state.engine.cfg.node_id,
                "url": state.advertise_url,
                "matches": state.engine.directory.len(),
            }],
        })));
    };
    let nodes = affinity
        .send(GetNodes)
        .timeout(std::time::Duration::from_secs(2))
        .await
        .map_err(|e| ApiError::Redis(AffinityError::Redis(e.to_string())))??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "redis": true, "nodes": nodes })))
}

/// `POST /admin/drain`: stop taking new matches and players, tell every
/// client, fail `/ready`, and stop once no match has a connected player
/// (or after `MATCHD_DRAIN_TIMEOUT_MS`). Idempotent.
/// The `/admin/*` guard: `Authorization: Bearer <MATCHD_ADMIN_KEY>`.
fn check_admin(state: &AppState, req: &actix_web::HttpRequest) -> Result<(), ApiError> {
    let key = state.admin_key.as_deref().ok_or(ApiError::AdminDisabled)?;
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_secret(given.as_bytes(), key.as_bytes()) {
        return Err(ApiError::BadAdminKey);
    }
    Ok(())
}

/// Sends a control message to every node through Redis pub/sub, or, on a
/// node without Redis, applies it here.
async fn control(state: &AppState, msg: ControlMsg) -> Result<HttpResponse, ApiError> {
    match &state.redis {
        Some(client) => {
            let nodes = control::publish(client, &state.redis_prefix, &msg)
                .await
                .map_err(|e| ApiError::Redis(AffinityError::Redis(e.to_string())))?;
            Ok(HttpResponse::Accepted().json(serde_json::json!({
                "kind": msg.kind(),
                "published": true,
                "nodes": nodes,
            })))
        }
        None => {
            let reached = control::apply(&state.engine, &msg);
            Ok(HttpResponse::Accepted().json(serde_json::json!({
                "kind": msg.kind(),
                "published": false,
                "reached": reached,
            })))
        }
    }
}

/// An admin request's JSON body, read after the key was checked.
fn admin_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidBody(e.to_string()))
}

#[derive(Deserialize)]
pub struct KickBody {
    pub player_id: u64,
    #[serde(default)]
    pub reason: Option<String>,
}

async fn admin_kick(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let KickBody { player_id, reason } = admin_body(&body)?;
    control(&state, ControlMsg::Kick { player_id, reason }).await
}

#[derive(Deserialize)]
pub struct BroadcastBody {
    pub message: String,
}

async fn admin_broadcast(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let message = admin_body::<BroadcastBody>(&body)?.message;
    if message.is_empty() || message.len() > control::MAX_NOTICE_BYTES {
        return Err(ApiError::InvalidBody(format!(
            "message must be 1 to {} bytes",
            control::MAX_NOTICE_BYTES
        )));
    }
    control(&state, ControlMsg::Broadcast { message }).await
}

#[derive(Deserialize, Default)]
pub struct EndBody {
    #[serde(default)]
    pub reason: Option<String>,
}

async fn admin_end_match(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let match_id = parse_match_id(path.into_inner())?;
    let reason = match body.is_empty() {
        true => None,
        false => admin_body::<EndBody>(&body)?.reason,
    };
    if reason
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > 64)
    {
        return Err(ApiError::InvalidBody("reason must be 1 to 64 bytes".into()));
    }
    control(&state, ControlMsg::EndMatch { match_id, reason }).await
}

async fn admin_drain(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    if state.engine.start_draining() {
        log::info!("drain requested through /admin/drain");
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "draining": true,
        "busy_matches": state.engine.busy_matches(),
    })))
}

/// Compares without stopping at the first difference, so timing does not
/// tell how much of a guessed key was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The Redis check of `/ready`: informational, like the database's. Without
/// Redis the node keeps serving the matches it has.
async fn redis_check(state: &AppState) -> serde_json::Value {
    let Some(affinity) = &state.affinity else {
        return serde_json::json!({ "configured": false });
    };
    match affinity
        .send(GetRedisHealth)
        .timeout(std::time::Duration::from_secs(1))
        .await
    {
        Ok(h) => serde_json::json!({
            "configured": true,
            "connected": h.connected,
            "registered": h.registered,
            "last_error": h.last_error,
        }),
        Err(e) => {
            serde_json::json!({ "configured": true, "connected": false, "last_error": e.to_string() })
        }
    }
}

async fn ready(state: web::Data<AppState>, reads: web::Data<Reads>) -> HttpResponse {
    let draining = state.engine.is_draining();
    let (ok, detail) = match state.engine.stats().await {
        Ok(stats) => (
            true,
            serde_json::json!({
                "ok": true,
                "arbiters": stats.arbiters,
                "matches": stats.matches_by_ruleset,
                "cache_entries": stats.cache.iter().map(|c| c.entries).sum::<usize>(),
            }),
        ),
        Err(e) => (false, serde_json::json!({ "ok": false, "error": e.code() })),
    };
    let ok = ok && !draining;
    let body = serde_json::json!({
        "ready": ok,
        "draining": draining,
        "node_id": state.engine.cfg.node_id,
        "uptime_s": state.started.elapsed().as_secs(),
        "checks": {
            "registry": detail,
            "database": database_check(&state, &reads).await,
            "redis": redis_check(&state).await,
        },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(body)
}

async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// Middleware body: records the request duration by route pattern and status.
pub async fn observe<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16().to_string();
    metrics::histogram!(m::HTTP_SECONDS, "route" => route, "method" => method, "status" => status)
        .record(started.elapsed().as_secs_f64());
    Ok(res)
}
