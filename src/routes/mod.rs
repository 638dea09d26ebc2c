//! HTTP routes, one module per resource. Every error leaves through
//! [`ApiError`] (`error.rs`), the one place the HTTP layer maps errors to
//! `{"error":{"code","message"}}`.

mod admin;
mod assets;
mod error;
mod history;
mod matches;
mod probes;
mod sessions;
mod ws;

use std::time::Instant;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use matchd_actors::cluster::keys::Keys;
use matchd_actors::cluster::nodes::Affinity;
use matchd_actors::history::store::Store;
use matchd_actors::history::writer::PersistenceWriter;
use matchd_actors::metrics as m;
use matchd_actors::Engine;
use matchd_protocol::PlayerId;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::sessions::Sessions;
use admin::{admin_broadcast, admin_drain, admin_end_match, admin_kick};
pub use admin::{apply_control, check_kick_reason, BroadcastBody, EndBody, KickBody};
pub use error::ApiError;
use history::{leaderboard, match_events, player_stats};
pub use history::{EventPage, EventRecord, Leaderboard, StatsBody, MAX_EVENT_PAGE};
use matches::{create_match, get_match, list_matches};
pub use matches::{CreateMatchBody, MatchCreated, MatchList, MatchSummary, PlayerInMatch};
use probes::{health, metrics_text, nodes, ready};
pub use sessions::SessionCreated;
use sessions::{create_session, current_session};
use ws::websocket;

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
    /// The names of the node's Redis keys and channels.
    pub redis_keys: Keys,
    /// Seals the control messages this node publishes.
    pub control_key: Option<matchd_actors::cluster::control::ControlKey>,
    /// Web pages that may use this node from a browser.
    pub origins: crate::origins::OriginPolicy,
    /// How long a client may take to send a request body it started.
    pub body_timeout: std::time::Duration,
    /// Per-client-IP rate limits.
    pub limits: std::sync::Arc<crate::limits::Limits>,
    /// The port of the admin listener (`MATCHD_ADMIN_BIND`), if any.
    pub admin_port: Option<u16>,
    /// Which identities this node accepts (`MATCHD_AUTH`).
    pub auth: crate::identity::AuthMode,
    /// The JWT checker; `None` when `MATCHD_AUTH=anonymous`.
    pub verifier: Option<std::sync::Arc<crate::identity::Verifier>>,
}

/// The read pool of one HTTP worker (`DATABASE_READ_URL`, else
/// `DATABASE_URL`); `None` when no database is configured. Each worker builds
/// its own so connections live on that worker's runtime.
pub struct Reads(pub Option<Store>);

impl Reads {
    pub(crate) fn store(&self) -> Result<&Store, ApiError> {
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
    .configure(assets::configure)
    .service(web::resource("/health").route(web::get().to(health)))
    .service(web::resource("/ready").route(web::get().to(ready)))
    .service(web::resource("/metrics").route(web::get().to(metrics_text)))
    .default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound)
    }));
}

/// The request's client IP (see [`crate::limits::Limits::client_ip`]).
pub(crate) fn client_ip(state: &AppState, req: &HttpRequest) -> Option<std::net::IpAddr> {
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    state
        .limits
        .client_ip(req.peer_addr().map(|a| a.ip()), forwarded)
}

/// Takes one from the request's client IP budget of `what`; 429
/// `rate_limited` with `Retry-After` when it is spent.
pub(crate) fn rate_limit(
    state: &AppState,
    req: &HttpRequest,
    what: crate::limits::Limit,
) -> Result<(), ApiError> {
    let Some(ip) = client_ip(state, req) else {
        return Ok(());
    };
    state.limits.check(what, ip).map_err(|wait| {
        metrics::counter!(m::RATE_LIMITED, "limit" => what.as_str()).increment(1);
        ApiError::RateLimited(wait.as_secs().max(1))
    })
}

/// `?token=`: a session token in the query string (for clients that cannot
/// set `Authorization`, such as a browser's WebSocket).
#[derive(serde::Deserialize)]
pub(crate) struct TokenQuery {
    pub(crate) token: Option<String>,
}

/// The token of `Authorization: Bearer`, if any.
pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The player a JWT proves; 401 with the reason when it proves nothing,
/// or when this node takes no JWTs.
pub(crate) fn verify_jwt(
    state: &AppState,
    token: &str,
) -> Result<crate::identity::Verified, ApiError> {
    let verifier = state.verifier.as_ref().ok_or(ApiError::JwtDisabled)?;
    verifier.verify(token).map_err(|e| {
        metrics::counter!(m::TOKENS_REFUSED, "reason" => e.label()).increment(1);
        ApiError::BadToken(e)
    })
}

/// The player of a request's token (`Authorization: Bearer`, else
/// `?token=`): a session token known here or, with Redis, made on another
/// node; or (`MATCHD_AUTH=jwt|both`) a studio's JWT itself.
pub(crate) async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    query: Option<&str>,
) -> Result<PlayerId, ApiError> {
    let token = bearer(req).or(query).ok_or(ApiError::Unauthorized)?;
    if state.verifier.is_some() && crate::identity::looks_like_jwt(token) {
        return verify_jwt(state, token).map(|v| v.player_id);
    }
    state
        .sessions
        .player_shared(token)
        .await
        .ok_or(ApiError::Unauthorized)
}

pub(crate) fn parse_match_id(raw: String) -> Result<u64, ApiError> {
    match raw.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::InvalidMatchId(raw)),
    }
}

pub(crate) fn query_num(
    name: &str,
    raw: Option<&str>,
    default: u64,
    max: u64,
) -> Result<u64, ApiError> {
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

/// Reads a request body of at most `limit` bytes within
/// `MATCHD_BODY_TIMEOUT_MS`: a body trickled in slowly is refused (408
/// `body_timeout`), a larger one too (413 `body_too_large`), without
/// buffering more than `limit`.
pub(crate) async fn read_body(
    state: &AppState,
    payload: web::Payload,
    limit: usize,
) -> Result<actix_web::web::Bytes, ApiError> {
    let read = payload.to_bytes_limited(limit);
    match actix_web::rt::time::timeout(state.body_timeout, read).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Err(_)) => Err(ApiError::BodyTooLarge(limit)),
        Ok(Ok(Err(e))) => Err(ApiError::InvalidBody(e.to_string())),
        Ok(Ok(Ok(body))) => Ok(body),
    }
}

/// CORS for the HTTP API from `MATCHD_ALLOWED_ORIGINS`: preflights of the
/// allowed origins are answered, other origins get no CORS headers (and
/// actix-cors refuses their requests). `/v1/ws` is left to its handler,
/// which answers a refused origin with 403 `origin_not_allowed` (browsers
/// send no preflight for WebSockets).
pub fn cors(origins: crate::origins::OriginPolicy) -> actix_cors::Cors {
    use actix_web::http::{header, Method};
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, head| {
            let host = head
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            head.uri.path() == "/v1/ws" || origin.to_str().is_ok_and(|o| origins.allows(o, host))
        })
        .allowed_methods([Method::GET, Method::POST])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(3600)
}

/// Headers on every answer: no MIME sniffing, no framing by other sites,
/// no referrer leaking tokens in URLs.
pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
}

/// Middleware body: with `MATCHD_ADMIN_BIND`, `/admin/*` and `/metrics`
/// exist only on the admin listener; the public one answers 404.
pub async fn admin_gate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let admin_only = req.path().starts_with("/admin/") || req.path() == "/metrics";
    let admin_port = admin_only
        .then(|| {
            req.app_data::<web::Data<AppState>>()
                .and_then(|s| s.admin_port)
        })
        .flatten();
    if let Some(port) = admin_port {
        if req.app_config().local_addr().port() != port {
            let res = actix_web::ResponseError::error_response(&ApiError::NotFound);
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Middleware body: records the request duration by route pattern and status.
pub async fn observe<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    // A fixed set: made-up methods must not each become a series.
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    };
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
