//! `/admin/*`: drain, kick, broadcast, end a match. Every handler checks
//! the admin key before it reads the body.

use actix_web::{web, HttpResponse};
use matchd_actors::cluster::control::{self, ControlMsg};
use matchd_actors::cluster::nodes::AffinityError;
use serde::Deserialize;

use super::{parse_match_id, read_body, ApiError, AppState};

/// The `/admin/*` guard: `Authorization: Bearer <MATCHD_ADMIN_KEY>`.
pub(super) fn check_admin(state: &AppState, req: &actix_web::HttpRequest) -> Result<(), ApiError> {
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
pub(super) async fn control(state: &AppState, msg: ControlMsg) -> Result<HttpResponse, ApiError> {
    match (&state.redis, &state.control_key) {
        (Some(client), Some(key)) => {
            let nodes = control::publish(client, &state.redis_keys, key, &msg)
                .await
                .map_err(|e| {
                    log::warn!("control message not published: {e}");
                    ApiError::Redis(AffinityError::Redis(e.to_string()))
                })?;
            Ok(HttpResponse::Accepted().json(serde_json::json!({
                "kind": msg.kind(),
                "published": true,
                "nodes": nodes,
            })))
        }
        _ => {
            let reached = apply_control(&state.engine, &state.sessions, &msg);
            Ok(HttpResponse::Accepted().json(serde_json::json!({
                "kind": msg.kind(),
                "published": false,
                "reached": reached,
            })))
        }
    }
}

/// Largest admin request body: the key is checked before any of it is read.
const ADMIN_BODY_LIMIT: usize = 8 * 1024;
/// Longest kick reason; a longer one is refused, not cut.
const MAX_KICK_REASON: usize = 256;

/// An admin request's JSON body, read (bounded in size and time) only after
/// the key was checked.
async fn admin_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let body = read_body(state, payload, ADMIN_BODY_LIMIT).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))
}

/// A kick's reason, if given, is 1 to [`MAX_KICK_REASON`] bytes.
pub fn check_kick_reason(reason: Option<&str>) -> Result<(), ApiError> {
    if reason.is_some_and(|r| r.is_empty() || r.len() > MAX_KICK_REASON) {
        return Err(ApiError::InvalidBody(format!(
            "reason must be 1 to {MAX_KICK_REASON} bytes"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct KickBody {
    pub player_id: u64,
    #[serde(default)]
    pub reason: Option<String>,
}

pub(super) async fn admin_kick(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let KickBody { player_id, reason } = admin_body(&state, body).await?;
    check_kick_reason(reason.as_deref())?;
    // Sessions in Redis first, so no node can resolve one again once the
    // control message has dropped the copies in memory.
    state.sessions.revoke_player_shared(player_id).await;
    control(&state, ControlMsg::Kick { player_id, reason }).await
}

#[derive(Deserialize)]
pub struct BroadcastBody {
    pub message: String,
}

pub(super) async fn admin_broadcast(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let message = admin_body::<BroadcastBody>(&state, body).await?.message;
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

pub(super) async fn admin_end_match(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let match_id = parse_match_id(path.into_inner())?;
    let body = read_body(&state, body, ADMIN_BODY_LIMIT).await?;
    let reason = match body.is_empty() {
        true => None,
        false => {
            serde_json::from_slice::<EndBody>(&body)
                .map_err(|e| ApiError::InvalidBody(e.to_string()))?
                .reason
        }
    };
    if reason
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > 64)
    {
        return Err(ApiError::InvalidBody("reason must be 1 to 64 bytes".into()));
    }
    control(&state, ControlMsg::EndMatch { match_id, reason }).await
}

/// `POST /admin/drain`: stop taking new matches and players, tell every
/// client, fail `/ready`, and stop once no match has a connected player
/// (or after `MATCHD_DRAIN_TIMEOUT_MS`). Idempotent.
pub(super) async fn admin_drain(
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
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Applies an operator control message on this node: the engine's part
/// (connections, matches), and a kick also revokes the player's sessions
/// held in this node's memory. Returns how many targets it reached.
pub fn apply_control(
    engine: &matchd_actors::Engine,
    sessions: &crate::sessions::Sessions,
    msg: &ControlMsg,
) -> usize {
    if let ControlMsg::Kick { player_id, .. } = msg {
        sessions.revoke_player(*player_id);
    }
    engine.apply_control(msg)
}
