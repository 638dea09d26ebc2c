//! Many nodes, one game: real `matchd` processes sharing a throwaway
//! redis-server (never the machine's own). Redirects to the owner, `kill -9`
//! of the owner with the match rebuilt on the other node, and a drain that
//! hands every match to a peer, each checked event by event: every client
//! must see `seq` 1, 2, 3, ... with no gap and no repeat across the move.
//! The fault tests (Redis restarted, slow or cut off, `kill -9`) also give
//! the nodes a throwaway Postgres and check that the history stored there
//! is that same timeline, once (`history_is_the_timeline`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, Query, Reply, ServerMsg, State};
use serde_json::Value;

use crate::pg::TestPg;
use crate::redis::TestRedis;
use crate::support::{
    deploy_hand, ended_result, eventually, free_port, Closed, TempDir, WsClient, WAIT,
};

const ADMIN_KEY: &str = "cluster-test-key";
/// Lease and registration lifetimes of the test nodes: a dead node's
/// matches can be taken over about this long after it died.
const TTL_MS: u64 = 1000;
/// Generous bound for a failover (lease expiry plus rebuild) on a busy CI box.
const FAILOVER_WAIT: Duration = Duration::from_secs(20);

/// A `matchd` process in the cluster; killed when dropped.
struct Node {
    child: Child,
    port: u16,
    id: String,
}

impl Node {
    async fn start(redis: &TestRedis, prefix: &str, id: &str, dir: &Path) -> Self {
        Self::start_with(redis, prefix, id, dir, &[]).await
    }

    /// Like [`Node::start`], with extra environment (overriding the
    /// defaults above).
    async fn start_with(
        redis: &TestRedis,
        prefix: &str,
        id: &str,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let log = std::fs::File::create(dir.join(format!("{id}.log"))).expect("log file");
        let data = dir.join(id);
        let child = Command::new(env!("CARGO_BIN_EXE_matchd"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REDIS_URL", redis.url())
            .env("MATCHD_REDIS_PREFIX", prefix)
            .env("MATCHD_NODE_ID", id)
            .env("MATCHD_BIND", format!("127.0.0.1:{port}"))
            .env(
                "MATCHD_ADVERTISE_URL",
                format!("ws://127.0.0.1:{port}/v1/ws"),
            )
            .env("MATCHD_NODE_TTL_MS", TTL_MS.to_string())
            .env("MATCHD_LEASE_TTL_MS", TTL_MS.to_string())
            .env("MATCHD_SNAPSHOT_MS", "300")
            .env("MATCHD_ADMIN_KEY", ADMIN_KEY)
            .env("MATCHD_DATA_DIR", &data)
            .env("MATCHD_WORKERS", "1")
            .env("MATCHD_ARBITERS", "1")
            .env("MATCHD_DRAIN_TIMEOUT_MS", "15000")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn matchd");
        let node = Self {
            child,
            port,
            id: id.to_string(),
        };
        let base = node.base();
        eventually("the node to be ready", WAIT, || async {
            let (status, body) = get(&base, "/ready").await?;
            (status == 200 && body["checks"]["redis"]["registered"] == true).then_some(())
        })
        .await;
        node
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/ws", self.port)
    }

    fn kill_9(&mut self) {
        // Child::kill is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself (a drain).
    async fn exited(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        eventually("the node to exit", limit, || {
            let status = child.try_wait().expect("try_wait");
            async move { status }
        })
        .await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> awc::Client {
    awc::Client::builder().timeout(WAIT).finish()
}

async fn get(base: &str, path: &str) -> Option<(u16, Value)> {
    let mut res = http().get(format!("{base}{path}")).send().await.ok()?;
    let body = res.body().await.ok()?;
    Some((
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ))
}

async fn post(base: &str, path: &str, key: Option<&str>) -> u16 {
    admin(base, path, key, serde_json::json!({})).await.0
}

async fn admin(base: &str, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = http().post(format!("{base}{path}"));
    if let Some(key) = key {
        req = req.insert_header(("Authorization", format!("Bearer {key}")));
    }
    let mut res = req.send_json(&body).await.expect("POST");
    let body = res.body().await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// `ws://host:port/v1/ws` as the `http://host:port` base the helpers use.
fn base_of(ws_url: &str) -> String {
    let rest = ws_url.strip_prefix("ws://").expect("a ws:// url");
    let host = rest.split('/').next().expect("host");
    format!("http://{host}")
}

/// The match's history in Postgres is the timeline the clients saw, once:
/// waits until the stored events are `seq` 1..=n with no gap or repeat and
/// `n` reaches every `seq` a client saw, then checks that the event stored
/// at each `seq` is the one every client got (a copy of the match that
/// made other events, such as a node cut off from Redis, left nothing
/// there). Returns `n`.
async fn history_is_the_timeline(pg: &TestPg, id: u64, players: &[&Player]) -> u64 {
    let db = pg.client().await;
    let last = players.iter().map(|p| p.seq).max().unwrap_or(0);
    let n = eventually(
        "the history in Postgres to catch up",
        FAILOVER_WAIT,
        || async {
            let (count, distinct, min, max) = crate::pg::stored_seqs(&db, id).await?;
            (max as u64 >= last && count == max && distinct == max && min == 1)
                .then_some(max as u64)
        },
    )
    .await;
    let rows = db
        .query(
            "SELECT seq, payload::text FROM match_events WHERE match_id = $1 ORDER BY seq",
            &[&(id as i64)],
        )
        .await
        .expect("events");
    let stored: std::collections::BTreeMap<u64, Event> = rows
        .iter()
        .map(|r| {
            let payload: String = r.get(1);
            let event = serde_json::from_str(&payload).expect("a stored event");
            (r.get::<_, i64>(0) as u64, event)
        })
        .collect();
    for p in players {
        for (seq, event) in &p.events {
            assert_eq!(
                stored.get(seq),
                Some(event),
                "Postgres holds another event at seq {seq} than a client saw"
            );
        }
    }
    n
}

/// A client that checks the `seq` of everything it reads: events come as
/// 1, 2, 3, ... with no gap and no repeat, across reconnects and moves.
struct Player {
    ws: WsClient,
    token: String,
    player_id: u64,
    /// The last `seq` this client has seen.
    seq: u64,
    client_seq: u64,
    /// Events seen, in order.
    events: Vec<(u64, Event)>,
    /// The seat this player holds, once joined.
    seat: Option<u8>,
    /// `(seat, client_seq)` of every event an action caused, in order.
    acks: Vec<(u8, u64)>,
}

impl Player {
    async fn new(base: &str) -> Self {
        let mut res = http()
            .post(format!("{base}/v1/sessions"))
            .send_json(&serde_json::json!({}))
            .await
            .expect("POST /v1/sessions");
        let body: Value = res.json().await.expect("session json");
        let token = body["token"].as_str().expect("token").to_string();
        let player_id = body["player_id"].as_u64().expect("player_id");
        let ws = Self::connect(base, &token).await.expect("the node answers");
        Self {
            ws,
            token,
            player_id,
            seq: 0,
            client_seq: 0,
            events: Vec::new(),
            seat: None,
            acks: Vec::new(),
        }
    }

    /// A WebSocket past its `welcome`; `None` if the node does not answer.
    async fn connect(base: &str, token: &str) -> Option<WsClient> {
        let mut ws = WsClient::try_connect_to(base, token, Encoding::Json).await?;
        match ws.next().await {
            Ok(ServerMsg::Welcome { .. }) => Some(ws),
            _ => None,
        }
    }

    /// Checks one message against the numbering so far.
    fn observe(&mut self, m: &ServerMsg) {
        match m {
            ServerMsg::Event {
                seq,
                event,
                seat,
                client_seq,
                ..
            } => {
                assert_eq!(*seq, self.seq + 1, "events must be gap-free: {event:?}");
                if let (Some(seat), Some(cs)) = (seat, client_seq) {
                    self.acks.push((*seat, *cs));
                }
                self.seq = *seq;
                self.events.push((*seq, event.clone()));
            }
            ServerMsg::Joined { seq, seat, .. } => {
                self.seq = *seq;
                self.seat = Some(*seat);
            }
            ServerMsg::Resumed { last_seq, .. } => assert_eq!(*last_seq, self.seq),
            ServerMsg::Ended { seq, .. } => assert_eq!(*seq, self.seq + 1),
            _ => {}
        }
    }

    async fn recv(&mut self) -> ServerMsg {
        let m = self.ws.recv().await;
        self.observe(&m);
        m
    }

    async fn recv_until<T>(&mut self, mut pick: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        loop {
            let m = self.recv().await;
            if let Some(t) = pick(&m) {
                return t;
            }
        }
    }

    /// Reads until it has seen event `seq`.
    async fn catch_up(&mut self, seq: u64) {
        while self.seq < seq {
            self.recv().await;
        }
    }

    async fn join(&mut self, match_id: Option<u64>, ruleset: Option<&str>) -> u64 {
        self.ws
            .send(&ClientMsg::Join {
                match_id,
                ruleset: ruleset.map(str::to_string),
                max_seats: None,
            })
            .await;
        self.recv_until(|m| match m {
            ServerMsg::Joined { match_id, .. } => Some(*match_id),
            ServerMsg::Error { code, .. } => panic!("join refused: {code}"),
            _ => None,
        })
        .await
    }

    /// Marks a cell and reads up to its event; returns that event's `seq`.
    async fn mark(&mut self) -> u64 {
        self.client_seq += 1;
        self.ws
            .send(&ClientMsg::Action {
                client_seq: self.client_seq,
                action: Action::Mark { x: 1, y: 1 },
            })
            .await;
        self.recv_until(|m| match m {
            ServerMsg::Event {
                seq,
                event: Event::Marked { .. },
                seat: Some(_),
                ..
            } => Some(*seq),
            ServerMsg::Rejected { code, .. } => panic!("mark refused: {code}"),
            _ => None,
        })
        .await
    }

    /// Like [`Player::mark`], but a refusal is returned (its code), not a
    /// failure; the event is recognised by its `client_seq`.
    async fn try_mark(&mut self) -> Result<u64, String> {
        self.client_seq += 1;
        let mine = self.client_seq;
        self.ws
            .send(&ClientMsg::Action {
                client_seq: mine,
                action: Action::Mark { x: 1, y: 1 },
            })
            .await;
        let me = self.seat;
        self.recv_until(|m| match m {
            ServerMsg::Event {
                seq,
                seat,
                client_seq: Some(cs),
                ..
            } if *cs == mine && *seat == me => Some(Ok(*seq)),
            ServerMsg::Rejected {
                code, client_seq, ..
            } if *client_seq == mine => Some(Err(code.clone())),
            _ => None,
        })
        .await
    }

    async fn act(&mut self, action: Action) {
        self.client_seq += 1;
        self.ws
            .send(&ClientMsg::Action {
                client_seq: self.client_seq,
                action,
            })
            .await;
    }

    /// Reads until the connection drops (its node died or sent it away).
    async fn until_closed(&mut self) {
        loop {
            match self.ws.next().await {
                Ok(m) => self.observe(&m),
                Err(Closed::Eof | Closed::Code(_)) => return,
            }
        }
    }

    /// Resumes `match_id` starting at node `base`, following redirects and
    /// retrying while the match is being recovered, the way a client
    /// library would. Returns the base of the node that took the resume
    /// and whether it replayed (`resumed`) rather than sent a snapshot.
    async fn resume(&mut self, base: &str, match_id: u64, limit: Duration) -> (String, bool) {
        let deadline = Instant::now() + limit;
        let start = base.to_string();
        let mut base = start.clone();
        loop {
            assert!(
                Instant::now() < deadline,
                "no node resumed match {match_id}"
            );
            let Some(ws) = Self::connect(&base, &self.token).await else {
                // A redirect to a node that just died: ask again where we began.
                base = start.clone();
                actix_rt::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            self.ws = ws;
            self.ws
                .send(&ClientMsg::Resume {
                    match_id,
                    last_seq: self.seq,
                })
                .await;
            let answer = self.recv().await;
            eprintln!("resume at {base}: {answer:?}");
            match answer {
                ServerMsg::Resumed { .. } => return (base, true),
                ServerMsg::Joined { .. } => return (base, false),
                ServerMsg::Redirect { url, .. } => base = base_of(&url),
                ServerMsg::Error { code, .. }
                    if code == "match_recovering" || code == "redis_unavailable" =>
                {
                    // Ask again where it began (the load balancer, for a
                    // real client): the owner may change meanwhile.
                    base = start.clone();
                    actix_rt::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("unexpected answer to resume: {other:?}"),
            }
        }
    }
}

/// The state of a tactics match as `p` sees it, minus what moves with time
/// or connections (the phase clock, who is connected).
async fn board(p: &mut Player) -> Value {
    p.client_seq += 1;
    let ask = p.client_seq;
    p.ws.send(&ClientMsg::Query {
        client_seq: ask,
        query: Query::State,
    })
    .await;
    let state = p
        .recv_until(|m| match m {
            ServerMsg::Reply {
                client_seq,
                reply: Reply::State { state },
            } if *client_seq == ask => Some(state.clone()),
            _ => None,
        })
        .await;
    let State::Tactics(view) = state else {
        panic!("a tactics state");
    };
    serde_json::json!({
        "phase": view.phase,
        "hand": serde_json::to_value(&view.hand).expect("json"),
        "units": serde_json::to_value(&view.units).expect("json"),
        "bases": view.bases,
        "ready": view.ready,
        "seats": view.seats.iter().map(|s| (s.seat, s.player_id)).collect::<Vec<_>>(),
    })
}

#[actix_rt::test]
async fn a_match_is_reached_through_any_node() {
    let redis = TestRedis::start();
    let dir = TempDir::new("cluster-redirect");
    let a = Node::start(&redis, "t1:", "node-a", dir.path()).await;
    let b = Node::start(&redis, "t1:", "node-b", dir.path()).await;

    let mut p1 = Player::new(&a.base()).await;
    let id = p1.join(None, Some("sandbox")).await;
    let mut p2 = Player::new(&a.base()).await;
    p2.join(Some(id), None).await;
    for _ in 0..3 {
        let seq = p1.mark().await;
        p2.catch_up(seq).await;
    }

    // An idle match keeps its lease: for three lease lifetimes nobody
    // plays, and B keeps naming A as the owner.
    let idle_until = Instant::now() + Duration::from_millis(3 * TTL_MS);
    while Instant::now() < idle_until {
        let (status, summary) = get(&b.base(), &format!("/v1/matches/{id}"))
            .await
            .expect("B answers");
        assert_eq!((status, &summary["node_id"]), (200, &Value::from("node-a")));
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }

    // Node B knows the owner: the HTTP API and a join both point to A.
    let (status, summary) = get(&b.base(), &format!("/v1/matches/{id}"))
        .await
        .expect("B answers");
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["node_id"], a.id.as_str());
    assert_eq!(summary["url"], a.ws_url().as_str());
    assert_eq!(summary["ruleset"], "sandbox");
    let mut p3 = Player::new(&b.base()).await;
    p3.ws
        .send(&ClientMsg::Join {
            match_id: Some(id),
            ruleset: None,
            max_seats: None,
        })
        .await;
    match p3.recv().await {
        ServerMsg::Redirect { match_id, url, .. } => {
            assert_eq!(match_id, id);
            assert_eq!(url, a.ws_url());
        }
        other => panic!("expected a redirect, got {other:?}"),
    }

    // Any node tells a session where its player sits.
    let (status, at) = get(
        &b.base(),
        &format!("/v1/sessions/current?token={}", p2.token),
    )
    .await
    .expect("B answers");
    assert_eq!(status, 200, "{at}");
    assert_eq!(at["match"]["match_id"], id);
    assert_eq!(at["match"]["seat"], 1);
    assert_eq!(at["match"]["node_id"], a.id.as_str());
    assert_eq!(at["match"]["url"], a.ws_url().as_str());

    // p2 drops; p1 plays on; p2 comes back through B, with a token made on
    // A, is sent to A and gets exactly the events it missed.
    p2.ws = Player::connect(&b.base(), &p2.token).await.expect("B");
    let mut last = 0;
    for _ in 0..4 {
        last = p1.mark().await;
    }
    let seen_before = p2.seq;
    let (landed, replayed) = p2.resume(&b.base(), id, WAIT).await;
    assert_eq!(landed, a.base(), "the resume ends on the owner");
    assert!(replayed, "the owner's ring buffer holds the missed events");
    p2.catch_up(last).await;
    let missed: Vec<u64> = p2
        .events
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s > seen_before)
        .collect();
    assert_eq!(missed.first(), Some(&(seen_before + 1)));
    assert!(missed.contains(&last));
    // Still live: a new action reaches both.
    let seq = p2.mark().await;
    p1.catch_up(seq).await;
}

#[actix_rt::test]
async fn kill_9_of_the_owner_moves_the_match_without_a_gap() {
    let redis = TestRedis::start();
    let pg = TestPg::start();
    let dir = TempDir::new("cluster-kill9");
    let url = pg.url();
    let db = [("DATABASE_URL", url.as_str())];
    let mut a = Node::start_with(&redis, "t2:", "node-a", dir.path(), &db).await;
    let b = Node::start_with(&redis, "t2:", "node-b", dir.path(), &db).await;

    // A tactics match on A, both hands deployed: accepted actions and
    // deploy-phase ticks are what B must replay.
    let mut p1 = Player::new(&a.base()).await;
    let id = p1.join(None, Some("tactics")).await;
    let mut p2 = Player::new(&a.base()).await;
    p2.join(Some(id), None).await;
    for p in [&mut p1, &mut p2] {
        let mut seq = p.client_seq;
        let mut seen = Vec::new();
        let (_, placed) = deploy_hand(&mut p.ws, &mut seq, &mut |m| seen.push(m.clone())).await;
        assert!(placed > 0);
        p.client_seq = seq;
        for m in &seen {
            p.observe(m);
        }
    }
    let last = p1.seq.max(p2.seq);
    p1.catch_up(last).await;
    p2.catch_up(last).await;
    let before = board(&mut p1).await;

    a.kill_9();
    p1.until_closed().await;
    p2.until_closed().await;
    let killed = Instant::now();

    // Both resume through B; once A's lease has expired B rebuilds the
    // match and replays what each missed (nothing: they saw it all).
    let (landed, replayed) = p1.resume(&b.base(), id, FAILOVER_WAIT).await;
    let failover = killed.elapsed();
    assert_eq!(landed, b.base());
    assert!(replayed, "the rebuilt ring buffer answers the resume");
    let (landed, replayed) = p2.resume(&b.base(), id, FAILOVER_WAIT).await;
    assert_eq!(landed, b.base());
    assert!(replayed);
    assert_eq!(board(&mut p1).await, before, "B holds the state A had");
    eprintln!("kill -9 to resumed on the other node: {failover:?} (lease {TTL_MS} ms)");

    // The match plays on at B: both ready, the battle starts and runs on
    // B's clock, then p2 concedes.
    p1.act(Action::Ready).await;
    p2.act(Action::Ready).await;
    let battle = p1
        .recv_until(|m| match m {
            ServerMsg::Event {
                seq,
                event: Event::Phase { phase },
                ..
            } if phase == "battle" => Some(*seq),
            _ => None,
        })
        .await;
    p1.recv_until(|m| {
        matches!(m, ServerMsg::Event { seq, event: Event::Attacked { .. }, .. } if *seq > battle)
            .then_some(())
    })
    .await;
    p2.act(Action::Concede).await;
    let ended = p1.recv_until(ended_result).await;
    assert_eq!(ended.reason, "concede");
    assert_eq!(ended.winner, Some(0));
    p2.recv_until(|m| matches!(m, ServerMsg::Ended { .. }).then_some(()))
        .await;
    // Both saw the same numbered history, without a gap (checked per frame).
    let from = p2.events.first().map_or(0, |(seq, _)| *seq);
    let (h1, h2): (Vec<_>, Vec<_>) = (
        p1.events.iter().filter(|(s, _)| *s >= from).collect(),
        p2.events.iter().collect(),
    );
    let n = h1.len().min(h2.len());
    assert!(n > 20, "a real history: {n} events");
    assert_eq!(h1[..n], h2[..n]);

    // Postgres holds that history once: what A stored before it died, and
    // what B recovered from Redis and played after.
    let stored = history_is_the_timeline(&pg, id, &[&p1, &p2]).await;
    assert_eq!(stored, p1.seq, "every event up to the end");

    // The ended match leaves nothing behind in Redis: no node claims it,
    // and the answer comes from Postgres.
    eventually("the ended match to be gone from Redis", WAIT, || async {
        let (status, body) = get(&b.base(), &format!("/v1/matches/{id}")).await?;
        (status == 200 && body["status"] == "ended").then_some(())
    })
    .await;
}

/// Drains `node` while `players` play `id`: each is redirected to `to`,
/// resumes there with nothing lost, and `node` exits by itself.
async fn drain_to(node: &mut Node, to: &Node, id: u64, players: [&mut Player; 2]) {
    assert_eq!(
        post(&node.base(), "/admin/drain", Some(ADMIN_KEY)).await,
        202
    );
    for p in players {
        let url = p
            .recv_until(|m| match m {
                ServerMsg::Redirect { match_id, url, .. } if *match_id == id => Some(url.clone()),
                _ => None,
            })
            .await;
        assert_eq!(url, to.ws_url(), "sent to the peer");
        let (landed, replayed) = p.resume(&base_of(&url), id, WAIT).await;
        assert_eq!(landed, to.base());
        assert!(replayed);
    }
    let status = node.exited(Duration::from_secs(20)).await;
    assert!(status.success(), "a drained node exits cleanly: {status}");
}

#[actix_rt::test]
async fn a_rolling_restart_moves_the_match_twice_without_loss() {
    let redis = TestRedis::start();
    let dir = TempDir::new("cluster-rolling");
    let mut a = Node::start(&redis, "t5:", "node-a", dir.path()).await;
    let mut b = Node::start(&redis, "t5:", "node-b", dir.path()).await;
    let mut p1 = Player::new(&a.base()).await;
    let id = p1.join(None, Some("tactics")).await;
    let mut p2 = Player::new(&a.base()).await;
    p2.join(Some(id), None).await;
    // A restarts: its match goes to B. Then B restarts: back to the new A.
    drain_to(&mut a, &b, id, [&mut p1, &mut p2]).await;
    let a2 = Node::start(&redis, "t5:", "node-a2", dir.path()).await;
    let before = board(&mut p1).await;
    drain_to(&mut b, &a2, id, [&mut p1, &mut p2]).await;
    assert_eq!(board(&mut p1).await, before, "the state made both moves");
    // Still one game with one numbering: ready, battle, concede.
    p1.act(Action::Ready).await;
    p2.act(Action::Ready).await;
    p1.recv_until(|m| {
        matches!(m, ServerMsg::Event { event: Event::Phase { phase }, .. } if phase == "battle")
            .then_some(())
    })
    .await;
    p1.act(Action::Concede).await;
    for p in [&mut p1, &mut p2] {
        let result = p.recv_until(ended_result).await;
        assert_eq!(
            (result.reason.as_str(), result.winner),
            ("concede", Some(1))
        );
    }
}

#[actix_rt::test]
async fn a_drain_hands_every_match_to_a_peer() {
    let redis = TestRedis::start();
    let dir = TempDir::new("cluster-drain");
    let mut a = Node::start(&redis, "t3:", "node-a", dir.path()).await;
    let b = Node::start(&redis, "t3:", "node-b", dir.path()).await;

    let mut p1 = Player::new(&a.base()).await;
    let id = p1.join(None, Some("sandbox")).await;
    let mut p2 = Player::new(&a.base()).await;
    p2.join(Some(id), None).await;
    let mut last = 0;
    for _ in 0..5 {
        last = p1.mark().await;
    }
    p2.catch_up(last).await;

    drain_to(&mut a, &b, id, [&mut p1, &mut p2]).await;
    // Play goes on at B with the same numbering.
    for _ in 0..3 {
        let seq = p2.mark().await;
        p1.catch_up(seq).await;
    }
    assert!(p1.seq > last);
    let (status, summary) = get(&b.base(), &format!("/v1/matches/{id}"))
        .await
        .expect("B answers");
    assert_eq!(status, 200);
    assert_eq!(summary["node_id"], b.id.as_str());
}

#[actix_rt::test]
async fn operator_messages_reach_the_node_that_holds_the_target() {
    let redis = TestRedis::start();
    let dir = TempDir::new("cluster-control");
    let a = Node::start(&redis, "t4:", "node-a", dir.path()).await;
    let b = Node::start(&redis, "t4:", "node-b", dir.path()).await;
    let mut p1 = Player::new(&a.base()).await;
    p1.join(None, Some("sandbox")).await;
    let mut p2 = Player::new(&b.base()).await;
    let m2 = p2.join(None, Some("sandbox")).await;

    // Every request goes to A; the targets are on A and B.
    let (status, _) = admin(&a.base(), "/admin/broadcast", Some("wrong"), Value::Null).await;
    assert_eq!(status, 401);
    eventually("both nodes subscribed", WAIT, || async {
        let body = serde_json::json!({ "message": "maintenance at noon" });
        let (status, res) = admin(&a.base(), "/admin/broadcast", Some(ADMIN_KEY), body).await;
        assert_eq!(status, 202, "{res}");
        (res["nodes"] == 2).then_some(())
    })
    .await;
    for p in [&mut p1, &mut p2] {
        let notice = p
            .recv_until(|m| match m {
                ServerMsg::Notice { message } => Some(message.clone()),
                _ => None,
            })
            .await;
        assert_eq!(notice, "maintenance at noon");
    }

    let body = serde_json::json!({ "reason": "cheating" });
    let path = format!("/admin/matches/{m2}/end");
    assert_eq!(admin(&a.base(), &path, Some(ADMIN_KEY), body).await.0, 202);
    let result = p2.recv_until(ended_result).await;
    assert_eq!(result.reason, "cheating");

    let body = serde_json::json!({ "player_id": p2.player_id, "reason": "abuse" });
    assert_eq!(
        admin(&a.base(), "/admin/kick", Some(ADMIN_KEY), body)
            .await
            .0,
        202
    );
    let code = p2
        .recv_until(|m| match m {
            ServerMsg::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(code, "kicked");
    assert!(matches!(
        p2.ws.expect_close().await,
        Some(actix_http::ws::CloseCode::Policy)
    ));
    // The other player, on the other node, plays on.
    p1.mark().await;
}

/// Each player marks about 10 times a second on its own until `until`,
/// reading everything that comes (the other's events too; every frame is
/// checked for order by [`Player::observe`]). Returns the marks played and
/// the refusals, by code.
async fn play_through(players: &mut [Player; 2], until: Instant) -> (usize, Vec<String>) {
    async fn one(p: &mut Player, until: Instant) -> (usize, Vec<String>) {
        let mut tick = actix_rt::time::interval(Duration::from_millis(100));
        let (mut n, mut refused) = (0, Vec::new());
        while Instant::now() < until {
            tick.tick().await;
            match p.try_mark().await {
                Ok(_) => n += 1,
                Err(code) => refused.push(code),
            }
        }
        (n, refused)
    }
    let [p1, p2] = players;
    let ((a, mut ra), (b, rb)) = futures_util::join!(one(p1, until), one(p2, until));
    ra.extend(rb);
    (a + b, ra)
}

/// Two players on a new sandbox match of `node` mark for 1 s, then through
/// `fault` (run alongside, on its own schedule) for 4 s, then 4 s more.
/// Every frame is checked for order as it comes; refusals may only be
/// `match_recovering`; the match goes on afterwards; and both members saw
/// every played mark once, and the history `node` stored in `pg` is that
/// timeline, once. Returns the marks played before, during and after.
async fn play_through_a_fault(
    node: &Node,
    pg: &TestPg,
    fault: impl std::future::Future<Output = ()>,
) -> (usize, usize, usize) {
    let mut p1 = Player::new(&node.base()).await;
    let id = p1.join(None, Some("sandbox")).await;
    let mut p2 = Player::new(&node.base()).await;
    p2.join(Some(id), None).await;
    let mut players = [p1, p2];
    let at = |ms| Instant::now() + Duration::from_millis(ms);
    let (before, refused) = play_through(&mut players, at(1000)).await;
    assert!(before > 5 && refused.is_empty(), "{before} {refused:?}");
    let ((), (during, refused_during)) =
        futures_util::join!(fault, play_through(&mut players, at(4000)));
    let (after, refused_after) = play_through(&mut players, at(4000)).await;
    assert!(
        after > 10,
        "the match goes on: {after} marks after the fault"
    );
    for code in refused_during.iter().chain(&refused_after) {
        assert_eq!(code, "match_recovering");
    }
    let last = players[0].seq.max(players[1].seq);
    for p in players.iter_mut() {
        p.catch_up(last).await;
    }
    let marks = players[0]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Marked { .. }))
        .count();
    assert_eq!(marks, before + during + after, "every played mark, once");
    // p2 joined after p1: its history is the end of p1's.
    let (h1, h2) = (&players[0].events, &players[1].events);
    assert_eq!(h2[..], h1[h1.len() - h2.len()..]);
    history_is_the_timeline(pg, id, &[&players[0], &players[1]]).await;
    (before, during, after)
}

/// Redis stops for 3 s and comes back empty, under two players marking on
/// a match of node B: every frame each member gets is in order with no
/// gap or repeat (checked frame by frame), every mark is played once, and
/// the match goes on. While Redis is away the match's frames wait for it
/// (nobody sees an event Redis could not keep) and, past the fence
/// deadline, actions are refused with `match_recovering`.
#[actix_rt::test]
async fn a_redis_restart_loses_no_event() {
    let mut redis = TestRedis::start();
    let pg = TestPg::start();
    let dir = TempDir::new("cluster-redis-restart");
    let db = pg.url();
    let defaults = [
        ("MATCHD_LEASE_TTL_MS", "5000"),
        ("MATCHD_SNAPSHOT_MS", "2000"),
        ("MATCHD_NODE_TTL_MS", "5000"),
        ("DATABASE_URL", db.as_str()),
    ];
    let _a = Node::start_with(&redis, "t9:", "node-a", dir.path(), &defaults).await;
    let b = Node::start_with(&redis, "t9:", "node-b", dir.path(), &defaults).await;
    let redis = &mut redis;
    let outage = async move {
        redis.stop();
        actix_rt::time::sleep(Duration::from_secs(3)).await;
        redis.restart();
    };
    let (before, during, after) = play_through_a_fault(&b, &pg, outage).await;
    eprintln!("redis restart: {before} marks before, {during} during, {after} after");
}

/// A network partition between node B and Redis while the clients still
/// reach B (a TCP proxy in between, cut and restored). B stops accepting
/// actions before its lease can expire (`rejected match_recovering`); node
/// A takes the match over only after that, from the copy in Redis; when the
/// partition heals B learns it lost the lease and sends its players on. No
/// event B made after the cut ever reaches anyone, and every client's
/// history is one gapless timeline: two nodes never both play the match.
#[actix_rt::test]
async fn a_node_cut_off_from_redis_fences_itself_and_the_match_moves_without_a_split() {
    use crate::support::TcpCut;
    let redis = TestRedis::start();
    let pg = TestPg::start();
    let proxy = TcpCut::start(redis.port);
    let dir = TempDir::new("cluster-partition");
    let db = pg.url();
    let a = Node::start_with(
        &redis,
        "t10:",
        "node-a",
        dir.path(),
        &[("DATABASE_URL", &db)],
    )
    .await;
    let via_proxy = proxy.url();
    let b = Node::start_with(
        &redis,
        "t10:",
        "node-b",
        dir.path(),
        &[("REDIS_URL", &via_proxy), ("DATABASE_URL", &db)],
    )
    .await;

    let mut p1 = Player::new(&b.base()).await;
    let id = p1.join(None, Some("sandbox")).await;
    let mut p2 = Player::new(&b.base()).await;
    p2.join(Some(id), None).await;
    for _ in 0..3 {
        let seq = p1.try_mark().await.expect("played");
        p2.catch_up(seq).await;
        let seq = p2.try_mark().await.expect("played");
        p1.catch_up(seq).await;
    }
    let cut_cs = p1.client_seq;

    proxy.cut();
    let cut = Instant::now();
    // p1 keeps acting on B; B must refuse once it cannot be sure of its lease.
    let mut refused = false;
    while !refused {
        assert!(cut.elapsed() < FAILOVER_WAIT, "B never fenced the match");
        p1.act(Action::Mark { x: 1, y: 1 }).await;
        while let Ok(frame) =
            actix_rt::time::timeout(Duration::from_millis(100), p1.ws.next()).await
        {
            match frame {
                Ok(ServerMsg::Rejected { code, .. }) => {
                    assert_eq!(code, "match_recovering");
                    refused = true;
                }
                Ok(m) => p1.observe(&m),
                Err(c) => panic!("B closed p1 during the partition: {c:?}"),
            }
        }
    }
    eprintln!("B fenced the match {:?} after the cut", cut.elapsed());

    // p2 leaves B and resumes through A: refused while B's lease runs, then
    // A rebuilds the match from Redis and plays it.
    let (landed, _) = p2.resume(&a.base(), id, FAILOVER_WAIT).await;
    assert_eq!(landed, a.base());
    let taken_over = cut.elapsed();
    let at_a = p2.try_mark().await.expect("A plays the match");
    eprintln!("A took the match over {taken_over:?} after the cut (lease {TTL_MS} ms)");

    // B still refuses: it cannot renew, so it cannot know it lost the match.
    assert_eq!(p1.try_mark().await, Err("match_recovering".into()));

    let b_last_cs = p1.client_seq;
    // The partition heals: B learns another node holds the lease and
    // tells p1 (`match_moved`); p1 resumes and lands on A.
    proxy.restore();
    let moved = loop {
        match p1.ws.next().await {
            Ok(ServerMsg::Error { code, .. }) => break code,
            Ok(m) => p1.observe(&m),
            Err(c) => panic!("closed without a reason: {c:?}"),
        }
    };
    assert_eq!(moved, "match_moved");
    let (landed, _) = p1.resume(&b.base(), id, FAILOVER_WAIT).await;
    assert_eq!(landed, a.base(), "B redirects to the owner");
    let last = p1.try_mark().await.expect("p1 plays on at A");
    p2.catch_up(last).await;
    assert!(last > at_a);

    // One timeline: same event at every seq both saw, and nothing p1 sent
    // to B after the cut ever became history.
    let p2_by_seq: std::collections::BTreeMap<u64, &Event> =
        p2.events.iter().map(|(s, e)| (*s, e)).collect();
    for (seq, e) in &p1.events {
        if let Some(other) = p2_by_seq.get(seq) {
            assert_eq!(*other, e, "seq {seq} differs between the two clients");
        }
    }
    let p1_seat = p1.seat.expect("seat");
    let ghosts: Vec<&(u8, u64)> = p2
        .acks
        .iter()
        .filter(|(seat, cs)| *seat == p1_seat && *cs > cut_cs && *cs <= b_last_cs)
        .collect();
    assert!(
        ghosts.is_empty(),
        "actions B took while cut off were played: {ghosts:?}"
    );
    // Nor stored: both nodes write history into one Postgres, and it holds
    // the one timeline, once.
    history_is_the_timeline(&pg, id, &[&p1, &p2]).await;
}

/// Runs a `matchd` on `redis` with node id `id` that is expected to refuse
/// to start; returns its exit status and log.
fn refused_start(
    redis: &TestRedis,
    prefix: &str,
    id: &str,
    data: &Path,
) -> (std::process::ExitStatus, String) {
    let out = crate::support::run_to_exit(
        Command::new(env!("CARGO_BIN_EXE_matchd"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REDIS_URL", redis.url())
            .env("MATCHD_REDIS_PREFIX", prefix)
            .env("MATCHD_NODE_ID", id)
            .env("MATCHD_BIND", format!("127.0.0.1:{}", free_port()))
            .env("MATCHD_NODE_TTL_MS", TTL_MS.to_string())
            .env("MATCHD_DATA_DIR", data),
        "a second node with a live node's id",
    );
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One node id, one live process: a second process with the id of a live
/// node refuses to start (it would take the same leases), while a restart
/// after a crash (`kill -9`: the old registration is still there but no
/// longer renewed) starts.
#[actix_rt::test]
async fn a_node_id_that_is_live_in_redis_is_refused_and_a_stale_one_is_not() {
    let redis = TestRedis::start();
    let dir = TempDir::new("cluster-node-id");
    let mut a = Node::start(&redis, "t11:", "node-a", dir.path()).await;
    let (status, log) = refused_start(&redis, "t11:", "node-a", &dir.path().join("dup"));
    assert!(!status.success(), "{log}");
    assert!(log.contains("another live node is registered"), "{log}");
    // The live node is untouched.
    let (code, body) = get(&a.base(), "/ready").await.expect("a answers");
    assert_eq!(
        (code, &body["checks"]["redis"]["registered"]),
        (200, &Value::Bool(true))
    );
    a.kill_9();
    // Its registration lives on until its TTL, unrenewed: a restart with
    // the same id goes ahead.
    let again = Node::start(&redis, "t11:", "node-a", dir.path()).await;
    let (code, _) = get(&again.base(), "/ready").await.expect("answers");
    assert_eq!(code, 200);
}

/// Redis slower than the command timeout (every reply delayed 1.5 s, the
/// timeout is 1 s) for 3 s, through a proxy, under two players marking:
/// writes time out and the match holds its frames until Redis answers in
/// time again; every member still gets every event once, in order.
#[actix_rt::test]
async fn a_slow_redis_loses_and_reorders_no_event() {
    use crate::support::TcpCut;
    let redis = TestRedis::start();
    let pg = TestPg::start();
    let proxy = TcpCut::start(redis.port);
    let dir = TempDir::new("cluster-slow-redis");
    let (via, db) = (proxy.url(), pg.url());
    let env = [
        ("REDIS_URL", via.as_str()),
        ("MATCHD_LEASE_TTL_MS", "5000"),
        ("MATCHD_NODE_TTL_MS", "5000"),
        ("DATABASE_URL", db.as_str()),
    ];
    let b = Node::start_with(&redis, "t12:", "node-b", dir.path(), &env).await;
    let fault = async {
        proxy.slow(Duration::from_millis(1500));
        actix_rt::time::sleep(Duration::from_secs(3)).await;
        proxy.slow(Duration::ZERO);
    };
    let (before, during, after) = play_through_a_fault(&b, &pg, fault).await;
    // The fault was real: writes timed out meanwhile.
    let mut res = http()
        .get(format!("{}/metrics", b.base()))
        .send()
        .await
        .expect("metrics");
    let text =
        String::from_utf8(res.body().limit(8 << 20).await.expect("body").to_vec()).expect("utf8");
    let failures: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("matchd_lease_renew_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(failures > 0.0, "no write timed out: {text}");
    eprintln!("slow redis: {before} marks before, {during} during, {after} after");
}
