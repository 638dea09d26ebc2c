//! `/v1/matches`: create a match, list this node's live matches, and one
//! match (live here, live on another node, or ended in the database).

use std::time::SystemTime;

use actix_web::{web, HttpRequest, HttpResponse};
use matchd_actors::history::store::StoredMatch;
use matchd_actors::node::MatchEntry;
use matchd_actors::Engine;
use serde::{Deserialize, Serialize};

use super::history::PageQuery;
use super::{
    authenticate, parse_match_id, query_num, rate_limit, read_body, ApiError, AppState, Reads,
    TokenQuery,
};
use crate::limits::Limit;

/// Largest `POST /v1/matches` body.
const CREATE_BODY_LIMIT: usize = 4 * 1024;

#[derive(Deserialize)]
pub struct CreateMatchBody {
    pub ruleset: String,
    /// Seats of the match, within the ruleset's bounds (default: its most).
    #[serde(default)]
    pub max_seats: Option<u8>,
}

#[derive(Serialize, Deserialize)]
pub struct MatchCreated {
    pub match_id: u64,
}

/// `POST /v1/matches`: needs a session (anyone with one may create
/// matches; a node's `MATCHD_MAX_MATCHES` bounds them).
pub(super) async fn create_match(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &req, Limit::Matches)?;
    authenticate(&state, &req, query.token.as_deref()).await?;
    let body = read_body(&state, body, CREATE_BODY_LIMIT).await?;
    let body: CreateMatchBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    let entry = state
        .engine
        .create_match(&body.ruleset, body.max_seats)
        .await?;
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
    pub result: Option<matchd_protocol::MatchResult>,
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

pub(super) fn summary(e: &MatchEntry, node_id: &str, url: &str) -> MatchSummary {
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

pub(super) fn stored_summary(m: StoredMatch, engine: &Engine) -> MatchSummary {
    let max_seats = engine.ruleset(&m.ruleset).map_or(0, |r| r.max_seats());
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
    /// Pass as `after` for the next page; absent when this page was short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// Most matches one page of `GET /v1/matches` returns.
pub const MAX_MATCH_PAGE: u64 = 1000;

/// `GET /v1/matches?after=ID&limit=N`: this node's live matches by id, a
/// page at a time (default 100, at most 1000); `next_after` is set when
/// the page was full.
pub(super) async fn list_matches(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let after = query_num("after", query.after.as_deref(), 0, u64::MAX)?;
    let limit = query_num("limit", query.limit.as_deref(), 100, MAX_MATCH_PAGE)?.max(1);
    let node = state.engine.node_id();
    let page = state.engine.list_page(after, limit as usize);
    let next_after = (page.len() as u64 == limit)
        .then(|| page.last().map(|e| e.info.id))
        .flatten();
    let matches = page
        .iter()
        .map(|e| summary(e, node, &state.advertise_url))
        .collect();
    Ok(HttpResponse::Ok().json(MatchList {
        matches,
        next_after,
    }))
}

/// A live match from this node; otherwise the stored one. Without a database
/// an unknown id stays a plain 404 (this node has never heard of it).
pub(super) async fn get_match(
    state: web::Data<AppState>,
    reads: web::Data<Reads>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_match_id(path.into_inner())?;
    if let Some(entry) = state.engine.lookup(id) {
        let (node, url) = (state.engine.node_id(), &state.advertise_url);
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
pub(super) async fn remote_summary(
    state: &AppState,
    id: u64,
) -> Result<Option<MatchSummary>, ApiError> {
    let Some(remote) = state.engine.remote_match(id).await? else {
        return Ok(None);
    };
    let (owner, url, snap) = (remote.node_id, remote.url, remote.snapshot);
    let max_seats = state
        .engine
        .ruleset(&snap.ruleset)
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
