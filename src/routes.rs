//! HTTP routes. Every error leaves through [`ApiError`], the one place the
//! HTTP layer maps errors to `{"error":{"code","message"}}`.

use std::time::{Instant, SystemTime};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actix_web_actors::ws;
use matchd_actors::connection::Connection;
use matchd_actors::metrics as m;
use matchd_actors::protocol::codec::Encoding;
use matchd_actors::registry::{EngineError, MatchEntry};
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
    #[error("no live match with id {0}")]
    MatchNotFound(u64),
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
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidEncoding(_) => "invalid_encoding",
            ApiError::WebSocketRequired => "websocket_required",
            ApiError::TooManySessions => "too_many_sessions",
            ApiError::Engine(e) => e.code(),
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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidBody(_)
            | ApiError::InvalidMatchId(_)
            | ApiError::InvalidEncoding(_)
            | ApiError::WebSocketRequired => StatusCode::BAD_REQUEST,
            ApiError::Engine(EngineError::UnknownRuleset(_)) => StatusCode::BAD_REQUEST,
            ApiError::MatchNotFound(_) | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManySessions | ApiError::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
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
        web::resource("/v1/ws")
            .route(web::get().to(websocket))
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
    let s = state.sessions.create().ok_or(ApiError::TooManySessions)?;
    Ok(HttpResponse::Created().json(SessionCreated {
        token: s.token,
        player_id: s.player_id,
    }))
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

/// A live match as the HTTP API shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MatchSummary {
    pub match_id: u64,
    pub ruleset: String,
    pub status: String,
    pub seats_taken: u8,
    pub max_seats: u8,
    pub connected: u8,
    pub joinable: bool,
    pub node_id: String,
    pub created_at_ms: u64,
}

fn summary(e: &MatchEntry, node_id: &str) -> MatchSummary {
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
        created_at_ms: i
            .created_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
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
        .map(|e| summary(e, node))
        .collect();
    HttpResponse::Ok().json(MatchList { matches })
}

async fn get_match(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id: u64 = raw
        .parse()
        .map_err(|_| ApiError::InvalidMatchId(raw.clone()))?;
    let entry = state.engine.lookup(id).ok_or(ApiError::MatchNotFound(id))?;
    Ok(HttpResponse::Ok().json(summary(&entry, &state.engine.cfg.node_id)))
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
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let token = bearer
        .or(query.token.as_deref())
        .ok_or(ApiError::Unauthorized)?;
    let player_id = state.sessions.player(token).ok_or(ApiError::Unauthorized)?;
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

async fn ready(state: web::Data<AppState>) -> HttpResponse {
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
    let body = serde_json::json!({
        "ready": ok,
        "node_id": state.engine.cfg.node_id,
        "uptime_s": state.started.elapsed().as_secs(),
        "checks": { "registry": detail },
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
