//! `/v1/ws`: the WebSocket upgrade; every connection becomes a
//! [`Connection`] actor.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use matchd_actors::connection::Connection;
use matchd_protocol::codec::Encoding;
use serde::Deserialize;

use super::{authenticate, client_ip, rate_limit, ApiError, AppState};
use crate::limits::{Crowded, Limit};

#[derive(Deserialize)]
pub(super) struct WsQuery {
    pub(super) token: Option<String>,
    pub(super) encoding: Option<String>,
    /// The protocol version the client speaks (default 1): picks the
    /// bincode layout of server frames.
    pub(super) protocol: Option<String>,
}

pub(super) async fn websocket(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<WsQuery>,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    rate_limit(&state, &req, Limit::Upgrades)?;
    let player_id = authenticate(&state, &req, query.token.as_deref()).await?;
    let encoding = match query.encoding.as_deref() {
        None => Encoding::Json,
        Some(e) => Encoding::parse(e).ok_or_else(|| ApiError::InvalidEncoding(e.into()))?,
    };
    let protocol = match query.protocol.as_deref() {
        None => 1,
        Some(p) => p
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=matchd_protocol::PROTOCOL_VERSION).contains(v))
            .ok_or_else(|| ApiError::InvalidProtocol(p.into()))?,
    };
    // Browsers send Origin on upgrades but no CORS preflight: a page of
    // another site must not open sockets with its visitors' sessions.
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let allowed = origin.to_str().is_ok_and(|o| state.origins.allows(o, host));
        if !allowed {
            return Err(ApiError::OriginNotAllowed.into());
        }
    }
    if ws::handshake(&req).is_err() {
        return Err(ApiError::WebSocketRequired.into());
    }
    let slots = state
        .limits
        .open_connection(client_ip(&state, &req), player_id)
        .map_err(|crowded| {
            let (label, whom) = match crowded {
                Crowded::Ip => ("connections_per_ip", "this address"),
                Crowded::Player => ("connections_per_player", "this player"),
            };
            metrics::counter!(matchd_actors::metrics::RATE_LIMITED, "limit" => label).increment(1);
            ApiError::TooManyConnections(whom)
        })?;
    let actor = Connection::new(state.engine.clone(), player_id, encoding, protocol)
        .with_permit(Box::new(slots));
    ws::WsResponseBuilder::new(actor, &req, stream)
        .frame_size(state.engine.config().max_frame_bytes)
        .start()
}
