//! `loadtest failover`: measures how long a match is gone when its node is
//! killed. One player on node A (`--url`) plays a sandbox match; the tool
//! sends `kill -9` to A's process (`--kill-pid`), watches A's lease on the
//! match in Redis until it expires, and meanwhile resumes through node B
//! (`--via`) every `--retry`, the way a client library would. It reports
//! kill → lease expiry, expiry → `resumed` (the match rebuilt on B) and
//! expiry → the first new event (playing again), and checks that the
//! resumed stream continues the numbering without a gap.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use matchd_actors::cluster::nodes::connected_client;
use matchd_actors::cluster::replica::{Replica, ReplicaConfig};
use matchd_protocol::codec::{decode_server_json, encode_client_json};
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::http;
use crate::mailbox::check_loopback;
use crate::ws::{resolve, Ws};

#[derive(Debug, Clone)]
pub struct Opts {
    /// `http://host:port` of node A, whose process is killed.
    pub url: String,
    /// `http://host:port` of node B, where the client resumes.
    pub via: String,
    /// The cluster's Redis (`redis://127.0.0.1:port`) and key prefix.
    pub redis: String,
    pub prefix: String,
    /// Process id of node A.
    pub kill_pid: u32,
    /// How often the client retries its resume.
    pub retry: Duration,
    /// Marks played before the kill.
    pub marks: usize,
}

#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub match_id: u64,
    pub retry_ms: u64,
    /// `kill -9` sent to the lease gone (expired, or taken by B).
    pub kill_to_expiry_ms: f64,
    /// Lease expiry to `resumed` from B.
    pub expiry_to_resumed_ms: f64,
    /// Lease expiry to the first event of an action sent after the resume.
    pub expiry_to_playing_ms: f64,
    pub resume_attempts: u32,
    /// `seq` the client had seen before the kill, and where B went on.
    pub last_seq_before: u64,
    pub resumed_at_seq: u64,
}

async fn open(url: &str, token: &str) -> Result<Ws, String> {
    let (sa, host) = resolve(url)?;
    let stream = http::connect_from(sa, None)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let ws_url = format!("ws://{host}/v1/ws?token={token}");
    let (mut ws, _) = tokio_tungstenite::client_async(ws_url, stream)
        .await
        .map_err(|e| format!("handshake {url}: {e}"))?;
    match next(&mut ws).await? {
        ServerMsg::Welcome { .. } => Ok(ws),
        other => Err(format!("expected welcome, got {other:?}")),
    }
}

async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<(), String> {
    ws.send(Message::text(encode_client_json(msg)))
        .await
        .map_err(|e| e.to_string())
}

async fn next(ws: &mut Ws) -> Result<ServerMsg, String> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| "no frame within 10 s".to_string())?;
        match frame {
            Some(Ok(Message::Text(t))) => {
                return decode_server_json(t.as_str()).map_err(|e| e.to_string())
            }
            Some(Ok(Message::Close(_))) | None => return Err("closed".into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// Marks a cell; returns the `seq` of its event, checking the numbering.
async fn mark(ws: &mut Ws, client_seq: u64, seq: &mut u64) -> Result<u64, String> {
    send(
        ws,
        &ClientMsg::Action {
            client_seq,
            action: Action::Mark { x: 1, y: 1 },
        },
    )
    .await?;
    loop {
        match next(ws).await? {
            ServerMsg::Event { seq: s, event, .. } => {
                if s != *seq + 1 {
                    return Err(format!("gap: seq {s} after {seq}"));
                }
                *seq = s;
                if matches!(event, Event::Marked { .. }) {
                    return Ok(s);
                }
            }
            ServerMsg::Rejected { code, .. } => return Err(format!("mark rejected: {code}")),
            _ => {}
        }
    }
}

pub fn run(opts: Opts) -> Result<FailoverReport, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(drive(opts))
}

async fn drive(opts: Opts) -> Result<FailoverReport, String> {
    check_loopback(&opts.redis).map_err(|e| e.to_string())?;
    let (a, _) = resolve(&opts.url)?;
    let token = http::new_session(a, None).await?;
    let mut ws = open(&opts.url, &token).await?;
    send(
        &mut ws,
        &ClientMsg::Join {
            match_id: None,
            ruleset: Some("sandbox".into()),
            max_seats: None,
        },
    )
    .await?;
    let (match_id, mut seq) = loop {
        match next(&mut ws).await? {
            ServerMsg::Joined { match_id, seq, .. } => break (match_id, seq),
            ServerMsg::Error { code, .. } => return Err(format!("join refused: {code}")),
            _ => {}
        }
    };
    let mut client_seq = 0;
    for _ in 0..opts.marks {
        client_seq += 1;
        mark(&mut ws, client_seq, &mut seq).await?;
    }
    let redis = connected_client(&opts.redis, None)
        .await
        .map_err(|e| e.to_string())?;
    let leases = Replica::new(
        redis,
        ReplicaConfig {
            prefix: opts.prefix.clone(),
            node_id: "loadtest-observer".into(),
            lease_ttl_ms: 1,
            snapshot_ms: 1,
        },
    );
    let owner = leases.owner(match_id).await.map_err(|e| e.to_string())?;
    let first_owner = owner.ok_or("the match holds no lease")?;

    let status = std::process::Command::new("kill")
        .args(["-9", &opts.kill_pid.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("kill -9 {} failed", opts.kill_pid));
    }
    let killed = Instant::now();
    drop(ws);
    let last_seq_before = seq;

    // Watch the lease while the client retries its resume through B.
    let watch = {
        tokio::spawn(async move {
            loop {
                let owner = leases.owner(match_id).await.unwrap_or(None);
                if owner.as_deref() != Some(first_owner.as_str()) {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut attempts = 0u32;
    let (mut ws, resumed_at, resumed_seq) = loop {
        attempts += 1;
        if killed.elapsed() > Duration::from_secs(60) {
            return Err("no node resumed the match within 60 s".into());
        }
        if let Ok(mut ws) = open(&opts.via, &token).await {
            send(
                &mut ws,
                &ClientMsg::Resume {
                    match_id,
                    last_seq: seq,
                },
            )
            .await?;
            match next(&mut ws).await? {
                ServerMsg::Resumed { seq: now, .. } => break (ws, Instant::now(), now),
                ServerMsg::Joined { .. } => return Err("a snapshot instead of a replay".into()),
                ServerMsg::Redirect { .. } => {}
                ServerMsg::Error { code, .. } if code == "match_recovering" => {}
                other => return Err(format!("unexpected answer to resume: {other:?}")),
            }
        }
        tokio::time::sleep(opts.retry).await;
    };
    // Events after the resume: the replay (none expected), then live ones.
    client_seq += 1;
    mark(&mut ws, client_seq, &mut seq).await?;
    let playing = Instant::now();
    let expired = watch.await.map_err(|e| e.to_string())?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(FailoverReport {
        match_id,
        retry_ms: opts.retry.as_millis() as u64,
        kill_to_expiry_ms: ms(expired.duration_since(killed)),
        expiry_to_resumed_ms: ms(resumed_at.saturating_duration_since(expired)),
        expiry_to_playing_ms: ms(playing.saturating_duration_since(expired)),
        resume_attempts: attempts,
        last_seq_before,
        resumed_at_seq: resumed_seq,
    })
}
