//! The HTTP layer's one error type, [`ApiError`], and the one place it is
//! mapped to a status and `{"error":{"code","message"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use matchd_actors::cluster::nodes::AffinityError;
use matchd_actors::cluster::replica::ReplicaError;
use matchd_actors::history::store::StoreError;
use matchd_actors::node::EngineError;
use serde::Serialize;

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
    #[error("{0}")]
    BadToken(crate::identity::TokenError),
    #[error("this node takes no JWTs (MATCHD_AUTH=anonymous)")]
    JwtDisabled,
    #[error("this node admits verified players only: send Authorization: Bearer <JWT of the game's auth service>")]
    VerifiedOnly,
    #[error("unknown encoding {0:?}; use json or bincode")]
    InvalidEncoding(String),
    #[error("unsupported protocol version {0:?}; this node speaks 1 to 2")]
    InvalidProtocol(String),
    #[error("this endpoint needs a WebSocket upgrade request")]
    WebSocketRequired,
    #[error("this page's origin may not use this node (MATCHD_ALLOWED_ORIGINS)")]
    OriginNotAllowed,
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// Over a rate limit; retry after this many seconds.
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    /// A concurrent-connection cap is full.
    #[error("too many connections open from {0}; close one first")]
    TooManyConnections(&'static str),
    #[error("no secure random source; try again later")]
    NoEntropy,
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// Redis failed; the detail is logged, never sent to clients.
    #[error("redis is unreachable; try again shortly")]
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
            ApiError::BadToken(crate::identity::TokenError::Expired) => "token_expired",
            ApiError::BadToken(_) => "invalid_token",
            ApiError::JwtDisabled => "jwt_disabled",
            ApiError::VerifiedOnly => "verified_only",
            ApiError::InvalidEncoding(_) => "invalid_encoding",
            ApiError::InvalidProtocol(_) => "invalid_protocol",
            ApiError::WebSocketRequired => "websocket_required",
            ApiError::OriginNotAllowed => "origin_not_allowed",
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::NoEntropy => "entropy_unavailable",
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
        log::warn!("HTTP API: redis error: {e}");
        ApiError::Redis(AffinityError::Redis(e.to_string()))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidBody(_)
            | ApiError::InvalidMatchId(_)
            | ApiError::InvalidEncoding(_)
            | ApiError::InvalidProtocol(_)
            | ApiError::InvalidPlayerId(_)
            | ApiError::InvalidQuery(_)
            | ApiError::WebSocketRequired => StatusCode::BAD_REQUEST,
            ApiError::Engine(
                EngineError::UnknownRuleset(_) | EngineError::InvalidMaxSeats { .. },
            ) => StatusCode::BAD_REQUEST,
            ApiError::MatchNotFound(_) | ApiError::PlayerNotFound(_) | ApiError::NotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::Unauthorized
            | ApiError::BadAdminKey
            | ApiError::BadToken(_)
            | ApiError::JwtDisabled
            | ApiError::VerifiedOnly => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled | ApiError::OriginNotAllowed => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(_) | ApiError::TooManyConnections(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::NoEntropy
            | ApiError::Redis(_)
            | ApiError::Engine(_)
            | ApiError::DatabaseNotConfigured
            | ApiError::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::RateLimited(secs) => {
                res.insert_header(("Retry-After", secs.to_string()));
            }
            ApiError::TooManyConnections(_) => {
                res.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        res.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        })
    }
}
