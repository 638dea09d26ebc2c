//! Operator control messages: kick a player, end a match, broadcast a
//! notice to every client. With Redis they travel over pub/sub on
//! `{prefix}control` ([`super::keys::Keys::control`]), so each reaches whichever node holds its target;
//! without, they apply to this node only.
//!
//! Whoever can publish on Redis must not be able to kick players or end
//! matches: every message is sealed with HMAC-SHA256 under the cluster key
//! (`MATCHD_CLUSTER_KEY`, else the admin key), as
//! `{mac hex}.{unix ms}.{json}`, and a node applies only messages of at
//! most [`MAX_CONTROL_BYTES`] whose MAC checks out and whose time is within
//! [`MAX_SKEW_MS`] of its clock (a replay is possible within that window;
//! every message is harmless to apply twice). Without a key a node sends
//! and applies none.

use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Value;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use matchd_protocol::{MatchId, PlayerId};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::keys::Keys;
use crate::metrics as m;
use crate::util::unix_ms;

/// Largest sealed control message a node reads.
pub const MAX_CONTROL_BYTES: usize = 16 * 1024;

/// How far a message's time may be from the receiver's clock.
pub const MAX_SKEW_MS: u64 = 60_000;

/// The shared key of the cluster's control messages.
#[derive(Clone)]
pub struct ControlKey(Vec<u8>);

impl ControlKey {
    pub fn new(key: &[u8]) -> Self {
        Self(key.to_vec())
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(signed.as_bytes());
        mac
    }

    /// `msg` sealed at `now_ms`: `{mac hex}.{now_ms}.{json}`.
    pub fn seal(&self, msg: &ControlMsg, now_ms: u64) -> String {
        let signed = format!(
            "{now_ms}.{}",
            serde_json::to_string(msg).unwrap_or_default()
        );
        let tag = self.mac(&signed).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}.{signed}")
    }

    /// The message in `text` if it is authentic, fresh and small enough.
    pub fn open(&self, text: &str, now_ms: u64) -> Result<ControlMsg, Refused> {
        if text.len() > MAX_CONTROL_BYTES {
            return Err(Refused::TooLarge);
        }
        let (hex, signed) = text.split_once('.').ok_or(Refused::Malformed)?;
        let tag: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("x"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| Refused::Malformed)?;
        self.mac(signed)
            .verify_slice(&tag)
            .map_err(|_| Refused::BadMac)?;
        let (ts, json) = signed.split_once('.').ok_or(Refused::Malformed)?;
        let ts: u64 = ts.parse().map_err(|_| Refused::Malformed)?;
        if ts.abs_diff(now_ms) > MAX_SKEW_MS {
            return Err(Refused::Stale);
        }
        serde_json::from_str(json).map_err(|_| Refused::Malformed)
    }
}

/// Why a control message was not applied (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TooLarge,
    Malformed,
    BadMac,
    Stale,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::TooLarge => "too_large",
            Refused::Malformed => "malformed",
            Refused::BadMac => "bad_mac",
            Refused::Stale => "stale",
        }
    }
}

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
    key: &ControlKey,
    msg: &ControlMsg,
) -> Result<u64, fred::error::Error> {
    let body = key.seal(msg, unix_ms(std::time::SystemTime::now()));
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
    key: ControlKey,
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
                    match key.open(&text, unix_ms(std::time::SystemTime::now())) {
                        Ok(msg) => apply(&msg),
                        Err(why) => {
                            log::warn!(reason = why.as_str(); "control channel: ignoring a message that is not a valid sealed control message");
                            metrics::counter!(m::CONTROL_MESSAGES, "kind" => "refused", "direction" => why.as_str())
                                .increment(1);
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sealed_fresh_small_messages_open() {
        let key = ControlKey::new(b"cluster key");
        let msg = ControlMsg::Kick {
            player_id: 7,
            reason: Some("spam".into()),
        };
        let now = 1_700_000_000_000;
        let sealed = key.seal(&msg, now);
        assert_eq!(key.open(&sealed, now + 1000), Ok(msg.clone()));
        assert_eq!(
            ControlKey::new(b"another key").open(&sealed, now),
            Err(Refused::BadMac)
        );
        let forged = sealed.replace("\"player_id\":7", "\"player_id\":8");
        assert_eq!(key.open(&forged, now), Err(Refused::BadMac));
        assert_eq!(
            key.open(&sealed, now + MAX_SKEW_MS + 1),
            Err(Refused::Stale)
        );
        let unsealed = serde_json::to_string(&msg).expect("json");
        assert!(key.open(&unsealed, now).is_err());
        assert_eq!(
            key.open(&"a".repeat(MAX_CONTROL_BYTES + 1), now),
            Err(Refused::TooLarge)
        );
        assert_eq!(key.open("zz.1.{}", now), Err(Refused::Malformed));
    }
}
