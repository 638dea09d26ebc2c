//! Operator control messages: kick a player, end a match, broadcast a
//! notice to every client. With Redis they travel over pub/sub on
//! `{prefix}control` ([`super::keys::Keys::control`]), so each reaches whichever node holds its target;
//! without, they apply to this node only.

use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Value;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use matchd_protocol::{MatchId, PlayerId};

use super::keys::Keys;
use crate::metrics as m;

/// Longest notice an operator may broadcast.
pub const MAX_NOTICE_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlMsg {
    /// Close every connection of `player_id` (error `kicked`, close 1008).
    Kick {
        player_id: PlayerId,
        #[serde(default)]
        reason: Option<String>,
    },
    /// End `match_id` now with result reason `reason` (default `ended_by_operator`).
    EndMatch {
        match_id: MatchId,
        #[serde(default)]
        reason: Option<String>,
    },
    /// A `notice` frame to every connected client.
    Broadcast { message: String },
}

impl ControlMsg {
    pub fn kind(&self) -> &'static str {
        match self {
            ControlMsg::Kick { .. } => "kick",
            ControlMsg::EndMatch { .. } => "end_match",
            ControlMsg::Broadcast { .. } => "broadcast",
        }
    }
}

/// Publishes `msg` to every node (this one included, through its
/// subscription); returns how many nodes were subscribed.
pub async fn publish(
    client: &fred::prelude::Client,
    keys: &Keys,
    msg: &ControlMsg,
) -> Result<u64, fred::error::Error> {
    let body = serde_json::to_string(msg).unwrap_or_default();
    let receivers: i64 = client.publish(keys.control(), body).await?;
    metrics::counter!(m::CONTROL_MESSAGES, "kind" => msg.kind(), "direction" => "sent")
        .increment(1);
    Ok(receivers.max(0) as u64)
}

/// Listens on the control channel with `subscriber` and hands what arrives
/// to `apply`, on the current Arbiter (the node layer applies it: this
/// layer knows no connection or match). fred reconnects (its policy) and
/// `manage_subscriptions` subscribes again after each reconnect.
pub fn listen(
    subscriber: fred::clients::SubscriberClient,
    keys: Keys,
    apply: impl Fn(&ControlMsg) + 'static,
) {
    actix::spawn(async move {
        let mut rx = subscriber.message_rx();
        drop(subscriber.connect());
        let _resubscribe = subscriber.manage_subscriptions();
        let ch = keys.control();
        let mut delay = std::time::Duration::from_millis(100);
        // The first subscription waits for Redis; later ones are fred's.
        while let Err(e) = subscriber.subscribe(ch.clone()).await {
            log::warn!("control channel: cannot subscribe yet ({e}); retrying");
            actix::clock::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(5));
        }
        log::info!(channel = ch.as_str(); "listening for control messages");
        loop {
            match rx.recv().await {
                Ok(message) => {
                    let text = match &message.value {
                        Value::String(s) => s.to_string(),
                        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                        _ => continue,
                    };
                    match serde_json::from_str::<ControlMsg>(&text) {
                        Ok(msg) => apply(&msg),
                        Err(e) => log::warn!("control channel: ignoring a malformed message: {e}"),
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    log::warn!(skipped = n; "control channel: fell behind; messages were skipped");
                    metrics::counter!(m::CONTROL_MESSAGES, "kind" => "skipped", "direction" => "lagged")
                        .increment(n);
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}
