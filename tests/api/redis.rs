//! The node registry in Redis, against a throwaway redis-server that the
//! test stops and starts again (never the machine's shared one).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use matchd::config::Secret;
use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg};

use crate::support::{eventually, free_port, spawn_app_with, TestApp, WAIT};

/// A redis-server of the test's own on a free port; killed on drop.
pub struct TestRedis {
    child: Option<Child>,
    pub port: u16,
}

impl TestRedis {
    pub fn start() -> Self {
        let mut r = Self {
            child: None,
            port: free_port(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and waits until it accepts.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install the redis-server package)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An in-process node on `redis` under `prefix`, with node id `id` and
/// `tweak` applied last.
pub fn redis_app(
    redis: &TestRedis,
    prefix: &str,
    id: &str,
    tweak: impl FnOnce(&mut matchd::config::Config),
) -> TestApp {
    let (url, prefix, id) = (redis.url(), prefix.to_string(), id.to_string());
    spawn_app_with(
        move |c| {
            c.redis_url = Some(Secret(url));
            c.redis_prefix = prefix;
            c.engine.node_id = id;
            tweak(c);
        },
        Catalog::builtin(),
    )
}

fn node(redis: &TestRedis, prefix: &str, id: &str) -> TestApp {
    redis_app(redis, prefix, id, |c| {
        c.node_ttl_ms = 600;
        // Clients here mark as fast as they can.
        c.engine.frames_per_sec = 0;
    })
}

/// The node ids `app` lists in `GET /v1/nodes`, or `None` on an error.
async fn listed(app: &TestApp) -> Option<Vec<String>> {
    let (status, body) = app.get_json("/v1/nodes").await;
    (status == 200).then(|| {
        body["nodes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["node_id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    })
}

#[actix_rt::test]
async fn nodes_register_expire_and_survive_a_redis_outage() {
    let mut redis = TestRedis::start();
    let prefix = format!("t{}:", std::process::id());
    let a = node(&redis, &prefix, "node-a");
    let b = node(&redis, &prefix, "node-b");
    let both = vec!["node-a".to_string(), "node-b".to_string()];
    eventually("both nodes listed", WAIT, || async {
        (listed(&a).await == Some(both.clone())).then_some(())
    })
    .await;

    // Registrations carry the TTL, so a node that dies drops out...
    let pttl = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "PTTL"])
        .arg(format!("{prefix}node:node-b"))
        .output()
        .expect("redis-cli runs");
    let pttl: i64 = String::from_utf8_lossy(&pttl.stdout)
        .trim()
        .parse()
        .unwrap_or(-9);
    assert!((1..=600).contains(&pttl), "node key TTL {pttl} ms");
    // ...and one that stops leaves at once.
    b.stop().await;
    eventually("node-b deregistered", WAIT, || async {
        (listed(&a).await == Some(vec!["node-a".into()])).then_some(())
    })
    .await;
    drop(b);

    // A match in play before, during and after the outage.
    let m0 = a.create_match("sandbox").await;
    let mut q = a.player(Encoding::Json).await;
    assert!(matches!(q.join(m0).await, ServerMsg::Joined { .. }));
    let mut q_seq = q.mark(1).await;
    let port = redis.port;
    let owner = |id: u64| redis_get(port, &format!("{prefix}match:{id}:owner"));
    assert_eq!(
        owner(m0).as_deref(),
        Some("node-a"),
        "the match holds its lease"
    );

    // Redis down: the node says so, refuses the node list and what needs
    // Redis to be found, and holds the match's frames (nobody may see an
    // event Redis could not keep) until Redis is back.
    redis.stop();
    eventually("the outage shows in /ready", WAIT, || async {
        let (status, body) = a.get_json("/ready").await;
        (status == 200 && body["checks"]["redis"]["registered"] == false).then_some(())
    })
    .await;
    let (status, body) = a.get_json("/v1/nodes").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("redis_unavailable"))
    );
    let id = a.create_match("sandbox").await;
    let mut p = a.player(Encoding::Json).await;
    // A match this node does not know needs Redis to be found: refused clearly.
    assert_eq!(
        p.join(id + 1).await,
        ServerMsg::Error {
            code: "redis_unavailable".into(),
            message: "redis is unreachable; matches on other nodes cannot be reached now".into()
        }
    );
    // Sent during the outage, answered once Redis has the match: played
    // (before the fence deadline) or refused with `match_recovering` (after
    // it; this outage outlasts the 5 s lease).
    for n in 2..5 {
        q.send(&ClientMsg::Action {
            client_seq: n,
            action: Action::Mark { x: 1, y: 1 },
        })
        .await;
    }
    p.send(&ClientMsg::Join {
        match_id: Some(id),
        ruleset: None,
        max_seats: None,
    })
    .await;

    // Redis back: the client reconnects by itself and the node registers again.
    redis.restart();
    eventually("node-a registered again", WAIT, || async {
        (listed(&a).await == Some(vec!["node-a".into()])).then_some(())
    })
    .await;
    let metrics = a.metrics().await;
    assert!(
        metrics.lines().any(|l| l.starts_with("matchd_redis_up 1")),
        "{metrics}"
    );
    // ...the held frames arrive, in order, and both matches take their
    // leases and write snapshots again.
    for _ in 2..5 {
        let played = q
            .recv_until(|m| match m {
                ServerMsg::Event {
                    seq,
                    event: Event::Marked { .. },
                    ..
                } => Some(Some(*seq)),
                ServerMsg::Rejected { code, .. } if code == "match_recovering" => Some(None),
                _ => None,
            })
            .await;
        if let Some(seq) = played {
            assert_eq!(seq, q_seq + 1, "played once, numbered as before, in order");
            q_seq = seq;
        }
    }
    match p.recv().await {
        ServerMsg::Joined { .. } => {}
        ServerMsg::Error { code, .. } if code == "match_recovering" => {
            assert!(matches!(p.join(id).await, ServerMsg::Joined { .. }));
        }
        other => panic!("{other:?}"),
    }
    p.send(&ClientMsg::Action {
        client_seq: 1,
        action: Action::Mark { x: 0, y: 0 },
    })
    .await;
    p.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Event {
                event: Event::Marked { .. },
                ..
            }
        )
        .then_some(())
    })
    .await;
    eventually("the matches replicated again", WAIT, || async {
        (owner(m0).as_deref() == Some("node-a") && owner(id).as_deref() == Some("node-a"))
            .then_some(())
    })
    .await;
    assert_eq!(q.mark(9).await, q_seq + 1);
}

/// `GET key` through redis-cli on the test's own server.
fn redis_get(port: u16, key: &str) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "GET", key])
        .output()
        .expect("redis-cli runs");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

#[actix_rt::test]
async fn without_redis_the_node_lists_itself() {
    let app = spawn_app_with(|_| {}, Catalog::builtin());
    let (status, body) = app.get_json("/v1/nodes").await;
    assert_eq!(status, 200);
    assert_eq!(body["redis"], false);
    assert_eq!(body["nodes"][0]["node_id"], "test-node");
    let (_, ready) = app.get_json("/ready").await;
    assert_eq!(ready["checks"]["redis"]["configured"], false);
}

/// The lease is the fence: a node that lost it can neither append nor
/// overwrite the snapshot, even with a stream id that would still fit.
#[actix_rt::test]
async fn a_stale_owner_can_never_write() {
    use matchd_actors::cluster::nodes::connected_client;
    use matchd_actors::cluster::replica::{
        encode, Batch, Claim, MatchSnapshot, Replica, ReplicaConfig, ReplicaError, Write,
    };
    let redis = TestRedis::start();
    let client = connected_client(&redis.url(), None)
        .await
        .expect("connects");
    let node = |id: &str| {
        let cfg = ReplicaConfig {
            prefix: "fence:".into(),
            node_id: id.into(),
            lease_ttl_ms: 60_000,
            snapshot_ms: 1_000,
        };
        Replica::new(client.clone(), cfg)
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let snapshot = |batch: u64| MatchSnapshot {
        match_id: 1,
        ruleset: "sandbox".into(),
        seq: 0,
        batch,
        seed: 0,
        created_at_ms: 0,
        players: vec![None; 8],
        participants: Vec::new(),
        game: Vec::new(),
    };
    let with_snapshot = |batch: u64| Write {
        snapshot: encode(&snapshot(batch)).map(|s| (batch, s)),
        latest_batch: batch,
        ..Write::default()
    };
    let append = |batch: u64| Write {
        batch: encode(&Batch::default()).map(|b| (batch, b)),
        latest_batch: batch,
        ..Write::default()
    };
    let not_owner = |r: Result<(), ReplicaError>| matches!(r, Err(ReplicaError::NotOwner(_)));

    // A creates the match (its first snapshot takes the lease) and appends.
    a.write(1, with_snapshot(0)).await.expect("lease taken");
    a.write(1, append(1)).await.expect("appended");
    assert_eq!(b.claim(1).await, Ok(Claim::Theirs("node-a".into())));
    assert!(not_owner(b.write(1, append(2)).await), "B holds no lease");
    assert_eq!(b.claim(99).await, Ok(Claim::Unknown), "no copy, no claim");

    // A's lease runs out (A is cut off); B takes the match over and goes on.
    let port = redis.port;
    let del = |key: &str| {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DEL", key])
            .output()
            .expect("redis-cli runs");
    };
    del("fence:match:1:owner");
    assert_eq!(b.claim(1).await, Ok(Claim::Ours));
    b.write(1, append(2)).await.expect("the new owner appends");

    // A comes back: refused, whatever it tries.
    assert!(not_owner(a.write(1, append(2)).await));
    assert!(not_owner(a.write(1, with_snapshot(1)).await));
    del("fence:match:1:owner");
    assert!(
        not_owner(a.write(1, with_snapshot(1)).await),
        "an expired lease is not retaken behind a newer writer"
    );
    a.release(1).await.expect("a no-op");
    let stored = b.load(1).await.expect("loads").expect("present");
    let ids: Vec<u64> = stored.batches.iter().map(|(n, _)| *n).collect();
    assert_eq!(ids, vec![1, 2], "only the owners' batches");
    assert_eq!(stored.snapshot.batch, 0, "A's stale snapshot never landed");
}

/// An ended match stays ended: its last write leaves a tombstone in Redis,
/// and no node rebuilds it, even if a copy were left behind.
#[actix_rt::test]
async fn an_ended_match_leaves_a_tombstone_and_is_never_rebuilt() {
    let redis = TestRedis::start();
    let prefix = format!("e{}:", std::process::id());
    let quick = |id: &'static str| {
        let (url, prefix) = (redis.url(), prefix.clone());
        spawn_app_with(
            move |c| {
                c.redis_url = Some(Secret(url));
                c.redis_prefix = prefix;
                c.engine.node_id = id.into();
                c.engine.empty_match_timeout_ms = 100;
            },
            Catalog::builtin(),
        )
    };
    let (a, b) = (quick("node-a"), quick("node-b"));
    let id = a.create_match("sandbox").await;
    // Nobody joins: the match ends as abandoned.
    let port = redis.port;
    let tomb = format!("{prefix}match:{id}:ended");
    eventually("the tombstone", WAIT, || async {
        (redis_get(port, &tomb).as_deref() == Some("1")).then_some(())
    })
    .await;
    // Even with a copy left behind (as a node that lost its lease would
    // leave it), the match is not rebuilt anywhere.
    let snap = format!("{prefix}match:{id}:snap");
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "SET", &snap, "stale copy"])
        .output()
        .expect("redis-cli");
    assert!(out.status.success());
    let mut p = b.player(Encoding::Json).await;
    assert_eq!(
        p.join(id).await,
        ServerMsg::Error {
            code: "match_ended".into(),
            message: "the match had ended".into(),
        }
    );
    let (status, _) = b.get_json(&format!("/v1/matches/{id}")).await;
    assert_ne!(status, 200);
}

/// Control messages must be sealed with the cluster key: one published on
/// Redis by anyone else (here, a plain kick) is refused, counted and not
/// applied, while the admin API's sealed kick works.
#[actix_rt::test]
async fn unsealed_control_messages_are_refused() {
    let redis = TestRedis::start();
    let prefix = format!("k{}:", std::process::id());
    let (url, p2) = (redis.url(), prefix.clone());
    let a = spawn_app_with(
        move |c| {
            c.redis_url = Some(Secret(url));
            c.redis_prefix = p2;
            c.engine.node_id = "node-a".into();
            c.admin_key = Some(Secret("admin".into()));
            c.cluster_key = Some(Secret("the cluster key".into()));
        },
        Catalog::builtin(),
    );
    let mut p = a.player(Encoding::Json).await;
    eventually("a listens for control messages", WAIT, || async {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &redis.port.to_string(),
                "PUBSUB",
                "NUMSUB",
                &format!("{prefix}control"),
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (text.lines().nth(1).map(str::trim) == Some("1")).then_some(())
    })
    .await;
    let forged = format!("{{\"kind\":\"kick\",\"player_id\":{}}}", p.player_id);
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "PUBLISH",
            &format!("{prefix}control"),
            &forged,
        ])
        .output()
        .expect("redis-cli");
    assert!(out.status.success());
    eventually("the forged message to be refused", WAIT, || async {
        let metrics = a.metrics().await;
        metrics
            .lines()
            .any(|l| {
                l.starts_with(
                    "matchd_control_messages_total{kind=\"refused\",direction=\"malformed\"}",
                )
            })
            .then_some(())
    })
    .await;
    p.ping(1).await; // still connected, not kicked
    let res = a
        .client()
        .post(a.url("/admin/kick"))
        .insert_header(("Authorization", "Bearer admin"))
        .send_json(&serde_json::json!({"player_id": p.player_id}))
        .await
        .expect("kick");
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(p.expect_error().await, "kicked");
}

/// With Redis the seat cap counts a player's seats on every node: a seat
/// on node a and one on node b fill a cap of 2, so a third join is refused
/// with `too_many_seats` on b (which holds only one of them); leaving the
/// seat on a makes room on b.
#[actix_rt::test]
async fn the_seat_cap_counts_a_players_seats_on_every_node() {
    let redis = TestRedis::start();
    let node = |id| {
        redis_app(&redis, "seatcap:", id, |c| {
            c.engine.max_seats_per_player = 2
        })
    };
    let (a, b) = (node("a"), node("b"));
    let token = a.new_session().await.token;
    let on_a = a.create_match("sandbox").await;
    let (on_b, third) = (
        b.create_match("sandbox").await,
        b.create_match("sandbox").await,
    );
    let mut at_a = a.connect_as(&token).await;
    assert!(matches!(at_a.join(on_a).await, ServerMsg::Joined { .. }));
    let mut at_b = b.connect_as(&token).await;
    assert!(matches!(at_b.join(on_b).await, ServerMsg::Joined { .. }));
    let mut more = b.connect_as(&token).await;
    assert!(
        matches!(more.join(third).await, ServerMsg::Error { code, .. } if code == "too_many_seats"),
        "a third seat, the first one on another node"
    );
    at_a.send(&ClientMsg::Leave).await;
    at_a.recv_until(|m| matches!(m, ServerMsg::Left { .. }).then_some(()))
        .await;
    drop((at_a, more));
    eventually(
        "the seat left on a to make room on b",
        Duration::from_secs(10),
        || async {
            let mut ws = b.connect_as(&token).await;
            matches!(ws.join(third).await, ServerMsg::Joined { .. }).then_some(())
        },
    )
    .await;
}
