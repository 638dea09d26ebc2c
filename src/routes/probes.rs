//! Probes and telemetry: `/health`, `/ready` (with the registry, database
//! and Redis checks), `/metrics`, and `/v1/nodes`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use matchd_actors::cluster::nodes::{AffinityError, GetNodes, GetRedisHealth};
use matchd_actors::history::breaker::BreakerState;
use matchd_actors::history::writer::GetWriterStats;

use super::{ApiError, AppState, Reads};

pub(super) async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The database check of `/ready`. Postgres being away does not make the
/// node unready (matches go on and their history waits in the journal); the
/// journal being broken too does (`history_at_risk`: history is only in
/// memory, so new matches should go to another node).
pub(super) async fn database_check(state: &AppState, reads: &Reads) -> serde_json::Value {
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
        "writer": writer.as_ref().map(|w| serde_json::json!({
            "breaker": w.breaker.as_str(),
            "queue_depth": w.queue_depth,
            "journal_bytes_pending": w.journal_bytes_pending,
            "rows_written": w.rows_written,
            "rows_journaled": w.rows_journaled,
            "last_error": w.last_error,
            "journal_error": w.journal_error,
            "records_lost": w.records_lost,
        })),
        "journal_ok": writer.as_ref().map(|w| w.journal_error.is_none()),
        "history_at_risk": writer.as_ref().is_some_and(|w| w.at_risk()),
    })
}

/// `GET /v1/nodes`: the live nodes from Redis, or this one alone without it.
pub(super) async fn nodes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(affinity) = &state.affinity else {
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "redis": false,
            "nodes": [{
                "node_id": state.engine.node_id(),
                "url": state.advertise_url,
                "matches": state.engine.live_matches(),
            }],
        })));
    };
    let nodes = affinity
        .send(GetNodes)
        .timeout(std::time::Duration::from_secs(2))
        .await
        .map_err(|e| ApiError::Redis(AffinityError::Redis(e.to_string())))?
        .inspect_err(|e| log::warn!("node list: {e}"))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "redis": true, "nodes": nodes })))
}

/// The Redis check of `/ready`: informational, like the database's. Without
/// Redis the node keeps serving the matches it has.
pub(super) async fn redis_check(state: &AppState) -> serde_json::Value {
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

pub(super) async fn ready(state: web::Data<AppState>, reads: web::Data<Reads>) -> HttpResponse {
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
    let database = database_check(&state, &reads).await;
    let mut degraded = Vec::new();
    if database["journal_ok"] == false {
        degraded.push("journal_unwritable");
    }
    let at_risk = database["history_at_risk"] == true;
    if at_risk {
        degraded.push("history_in_memory_only");
    }
    let ok = ok && !draining && !at_risk;
    let body = serde_json::json!({
        "ready": ok,
        "draining": draining,
        "degraded": degraded,
        "node_id": state.engine.node_id(),
        "uptime_s": state.started.elapsed().as_secs(),
        "checks": {
            "registry": detail,
            "database": database,
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

pub(super) async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
