//! Match history from the database: a match's stored events (paged), a
//! player's stats, the leaderboard.

use actix_web::{web, HttpResponse};
use matchd_actors::history::store::PlayerStats;
use serde::{Deserialize, Serialize};

use super::{parse_match_id, query_num, ApiError, Reads};

#[derive(Deserialize)]
pub(super) struct PageQuery {
    pub(super) after: Option<String>,
    pub(super) limit: Option<String>,
}

/// One stored event, for replays.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: u64,
    #[serde(default)]
    pub seat: Option<u8>,
    pub at_ms: u64,
    pub event: matchd_protocol::Event,
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

pub(super) async fn match_events(
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

pub(super) async fn player_stats(
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
pub(super) struct LimitQuery {
    pub(super) limit: Option<String>,
}

pub(super) async fn leaderboard(
    reads: web::Data<Reads>,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query_num("limit", query.limit.as_deref(), 10, 100)?.max(1);
    let players = reads.store()?.leaderboard(limit as u32).await?;
    Ok(HttpResponse::Ok().json(Leaderboard {
        players: players.into_iter().map(StatsBody::from).collect(),
    }))
}
