//! `/v1/sessions`: create a session (its token and player id), anonymous
//! or for the player a studio's JWT proves, and where the session's player
//! holds a seat.

use actix_web::{web, HttpRequest, HttpResponse};
use matchd_actors::node::engine::Whereabouts;
use serde::{Deserialize, Serialize};

use super::{authenticate, bearer, rate_limit, verify_jwt, ApiError, AppState, TokenQuery};
use crate::limits::Limit;

#[derive(Serialize, Deserialize)]
pub struct SessionCreated {
    pub token: String,
    pub player_id: u64,
    /// Whether a JWT proved the player (else the session is anonymous).
    #[serde(default)]
    pub verified: bool,
    /// When the session ends at the latest (Unix ms).
    #[serde(default)]
    pub expires_at_ms: u64,
}

/// `POST /v1/sessions`: with `Authorization: Bearer <JWT>` a session of the
/// verified player (`MATCHD_AUTH=jwt|both`), without one an anonymous
/// session (`MATCHD_AUTH=anonymous|both`).
pub(super) async fn create_session(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &req, Limit::Sessions)?;
    let verified = match bearer(&req) {
        Some(token) => Some(verify_jwt(&state, token)?),
        None if state.auth.anonymous() => None,
        None => return Err(ApiError::VerifiedOnly),
    };
    let s = state
        .sessions
        .create_shared(verified.map(|v| (v.player_id, v.expires_at)))
        .await
        .map_err(|e| {
            log::error!("no session made: {e}");
            ApiError::NoEntropy
        })?;
    Ok(HttpResponse::Created().json(SessionCreated {
        token: s.token,
        player_id: s.player_id,
        verified: verified.is_some(),
        expires_at_ms: s.expires_at_ms,
    }))
}

/// Where a session's player is: `match` is the seat it holds (on this node
/// or, with Redis, on any node), `null` when it holds none.
pub(super) async fn current_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, ApiError> {
    let player_id = authenticate(&state, &req, query.token.as_deref()).await?;
    let engine = &state.engine;
    let seat = engine.seat_of(player_id).await?;
    let at = match seat {
        None => serde_json::Value::Null,
        Some((match_id, seat)) => {
            let (node_id, url) = match engine.where_is(match_id).await? {
                Whereabouts::Here => (
                    Some(engine.node_id().to_string()),
                    Some(state.advertise_url.clone()),
                ),
                Whereabouts::Elsewhere { node_id, url } => (Some(node_id), url),
                Whereabouts::Unknown => (None, None),
            };
            serde_json::json!({ "match_id": match_id, "seat": seat, "node_id": node_id, "url": url })
        }
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "player_id": player_id, "match": at })))
}
