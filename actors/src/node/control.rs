//! Applies operator control messages ([`ControlMsg`]: kick, end a match,
//! broadcast) to this node's connections and matches. The messages travel
//! between nodes through [`crate::cluster::control`].

use crate::cluster::control::ControlMsg;
use crate::metrics as m;
use crate::session::messages::{EndMatch, ToConn};

use super::engine::Engine;

/// Applies `msg` to this node; returns how many local targets it reached
/// (connections kicked or told, matches ended).
pub fn apply(engine: &Engine, msg: &ControlMsg) -> usize {
    metrics::counter!(m::CONTROL_MESSAGES, "kind" => msg.kind(), "direction" => "applied")
        .increment(1);
    match msg {
        ControlMsg::Kick { player_id, reason } => {
            let targets: Vec<_> = engine
                .connections
                .iter()
                .filter(|e| e.value().0 == *player_id)
                .map(|e| e.value().1.clone())
                .collect();
            for conn in &targets {
                conn.do_send(ToConn::Close {
                    code: "kicked",
                    message: reason
                        .clone()
                        .unwrap_or_else(|| "removed by an operator".into()),
                });
            }
            if !targets.is_empty() {
                log::info!(player_id = *player_id, connections = targets.len(); "player kicked");
            }
            targets.len()
        }
        ControlMsg::EndMatch { match_id, reason } => match engine.lookup(*match_id) {
            Some(entry) => {
                entry.addr.do_send(EndMatch {
                    reason: reason.clone().unwrap_or_else(|| "ended_by_operator".into()),
                });
                log::info!(match_id = *match_id; "match ended by an operator");
                1
            }
            None => 0,
        },
        ControlMsg::Broadcast { message } => {
            let targets: Vec<_> = engine
                .connections
                .iter()
                .map(|e| e.value().1.clone())
                .collect();
            for conn in &targets {
                // One frame per operator request: bounded by the requests.
                conn.do_send(ToConn::Notice {
                    message: message.clone(),
                });
            }
            targets.len()
        }
    }
}
