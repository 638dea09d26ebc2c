//! Durable match history against a real, throwaway PostgreSQL per test:
//! exactly-once events and stats, a database outage in the middle of busy
//! matches, `kill -9` of the server with history in the journal, a corrupt
//! journal tail, and the embedded (journal-only) mode with `journal import`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use matchd::routes::{EventPage, MatchCreated, SessionCreated};
use matchd_actors::history::journal::{encode_entry, FsyncPolicy, Journal};
use matchd_actors::history::record::Record;
use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, MatchResult, Query, ServerMsg};
use serde_json::Value;

use crate::pg::{stored_seqs, TestPg};
use crate::support::{deploy_hand, eventually, free_port, spawn_app_with, TempDir, WsClient, WAIT};

const DB_WAIT: Duration = Duration::from_secs(30);

fn http() -> awc::Client {
    awc::Client::builder().timeout(WAIT).finish()
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let mut res = http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("GET");
    let body = res.body().limit(16 << 20).await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let mut res = http()
        .post(format!("{base}{path}"))
        .send_json(&body)
        .await
        .expect("POST");
    assert!(res.status().is_success(), "{path}: {}", res.status());
    serde_json::from_slice(&res.body().await.expect("body")).expect("json")
}

async fn player(base: &str, encoding: Encoding) -> WsClient {
    let s: SessionCreated =
        serde_json::from_value(post(base, "/v1/sessions", serde_json::json!({})).await)
            .expect("session");
    let mut ws = WsClient::connect_to(base, &s.token, encoding).await;
    assert!(matches!(ws.recv().await, ServerMsg::Welcome { .. }));
    ws.player_id = s.player_id;
    ws
}

async fn create_match(base: &str, ruleset: &str) -> u64 {
    let s: SessionCreated =
        serde_json::from_value(post(base, "/v1/sessions", serde_json::json!({})).await)
            .expect("session");
    let body = post(
        base,
        &format!("/v1/matches?token={}", s.token),
        serde_json::json!({ "ruleset": ruleset }),
    )
    .await;
    serde_json::from_value::<MatchCreated>(body)
        .expect("match")
        .match_id
}

/// Everything one client saw of a match: its events in seq order.
#[derive(Default)]
struct Seen {
    events: Vec<(u64, Event)>,
    ended: Option<(u64, MatchResult)>,
}

impl Seen {
    fn take(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Event { seq, event, .. } => {
                if let Some((last, _)) = self.events.last() {
                    assert_eq!(*seq, last + 1, "no gap");
                }
                self.events.push((*seq, event.clone()));
            }
            ServerMsg::Ended { seq, result, .. } => self.ended = Some((*seq, result.clone())),
            _ => {}
        }
    }

    fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |(s, _)| *s)
    }
}

async fn join(p: &mut WsClient, id: u64, seen: &mut Seen) -> u8 {
    let seat = match p.join(id).await {
        ServerMsg::Joined { seat, .. } => seat,
        other => panic!("expected joined, got {other:?}"),
    };
    settle(p, seen).await;
    seat
}

/// A state query round trip after a join: proves the seat is usable at
/// once (the connection is seated in order with `joined`).
async fn settle(p: &mut WsClient, seen: &mut Seen) {
    p.send(&ClientMsg::Query {
        client_seq: 0,
        query: Query::State,
    })
    .await;
    p.recv_until(|m| {
        seen.take(m);
        match m {
            ServerMsg::Reply { client_seq: 0, .. } => Some(()),
            ServerMsg::Error { code, .. } => panic!("unexpected error {code}"),
            _ => None,
        }
    })
    .await;
}

/// A whole tactics match: the attacker deploys its hand, both ready, the
/// battle runs until the defender's open base falls.
async fn play_tactics(base: &str) -> (u64, [WsClient; 2], Seen, MatchResult) {
    let id = create_match(base, "tactics").await;
    let mut a = player(base, Encoding::Json).await;
    let mut d = player(base, Encoding::Bincode).await;
    let mut seen = Seen::default();
    let mut d_seen = Seen::default();
    let a_seat = join(&mut a, id, &mut seen).await;
    join(&mut d, id, &mut d_seen).await;
    a.recv_until(|m| {
        seen.take(m);
        matches!(m, ServerMsg::Event { event: Event::Phase { phase }, .. } if phase == "deploy")
            .then_some(())
    })
    .await;
    let mut cs = 10;
    deploy_hand(&mut a, &mut cs, &mut |m| seen.take(m)).await;
    for p in [&mut a, &mut d] {
        p.send(&ClientMsg::Action {
            client_seq: 500,
            action: Action::Ready,
        })
        .await;
    }
    let result = a
        .recv_until(|m| {
            seen.take(m);
            match m {
                ServerMsg::Ended { result, .. } => Some(result.clone()),
                _ => None,
            }
        })
        .await;
    d.recv_until(|m| {
        d_seen.take(m);
        matches!(m, ServerMsg::Ended { .. }).then_some(())
    })
    .await;
    assert_eq!(result.winner, Some(a_seat));
    (id, [a, d], seen, result)
}

/// A tactics match that seat 1 concedes at once; returns (id, winner id,
/// loser id, last event seq).
async fn conceded_match(base: &str) -> (u64, u64, u64, u64) {
    let id = create_match(base, "tactics").await;
    let mut a = player(base, Encoding::Json).await;
    let mut b = player(base, Encoding::Json).await;
    let mut seen = Seen::default();
    join(&mut a, id, &mut seen).await;
    let mut b_seen = Seen::default();
    assert_eq!(join(&mut b, id, &mut b_seen).await, 1);
    b.send(&ClientMsg::Action {
        client_seq: 1,
        action: Action::Concede,
    })
    .await;
    let (ended, result) = a
        .recv_until(|m| {
            seen.take(m);
            match m {
                ServerMsg::Ended { seq, result, .. } => Some((*seq, result.clone())),
                _ => None,
            }
        })
        .await;
    assert_eq!(
        (result.winner, result.reason.as_str()),
        (Some(0), "concede")
    );
    (id, a.player_id, b.player_id, ended - 1)
}

/// A sandbox match with one player marking: returns its client.
async fn sandbox_player(base: &str) -> (u64, WsClient, Seen) {
    let id = create_match(base, "sandbox").await;
    let mut p = player(base, Encoding::Bincode).await;
    let mut seen = Seen::default();
    join(&mut p, id, &mut seen).await;
    assert!(
        matches!(seen.events.first(), Some((1, Event::PlayerJoined { .. }))),
        "settling saw the join"
    );
    (id, p, seen)
}

/// Marks until `until`, each mark awaited; returns how many.
async fn mark_until(p: &mut WsClient, seen: &mut Seen, until: Instant) -> usize {
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        p.send(&ClientMsg::Action {
            client_seq: n as u64,
            action: Action::Mark {
                x: (n % 5) as i32,
                y: (n % 3) as i32,
            },
        })
        .await;
        p.recv_until(|m| {
            seen.take(m);
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
    }
    n
}

async fn marks_for(players: &mut [(u64, WsClient, Seen)], d: Duration) -> usize {
    let until = Instant::now() + d;
    join_all(
        players
            .iter_mut()
            .map(|(_, p, seen)| mark_until(p, seen, until)),
    )
    .await
    .into_iter()
    .sum()
}

/// Waits until the match is ended in the database; returns its last_seq.
async fn await_ended(db: &tokio_postgres::Client, id: u64) -> u64 {
    eventually("the match to be ended in Postgres", DB_WAIT, || async {
        let row = db
            .query_opt(
                "SELECT last_seq FROM matches WHERE match_id = $1 AND status = 'ended'",
                &[&(id as i64)],
            )
            .await
            .ok()??;
        Some(row.get::<_, i64>(0) as u64)
    })
    .await
}

/// Waits until exactly `n` events of match `id` are stored.
async fn await_events(db: &tokio_postgres::Client, id: u64, n: u64) {
    let got = eventually("events in Postgres", DB_WAIT, || async {
        let (count, distinct, _, max) = stored_seqs(db, id).await?;
        (count as u64 >= n && max as u64 >= n).then_some((count, distinct, max))
    })
    .await;
    assert_eq!(
        got,
        (n as i64, n as i64, n as i64),
        "every event exactly once"
    );
}

async fn stats(db: &tokio_postgres::Client, player: u64) -> (i32, i32, i32, f64) {
    let row = db
        .query_one(
            "SELECT wins, losses, draws, rating FROM player_stats WHERE player_id = $1",
            &[&(player as i64)],
        )
        .await
        .expect("stats row");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// The events the API replays, all pages.
async fn replay(base: &str, id: u64) -> Vec<(u64, Event)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/v1/matches/{id}/events?after={after}&limit=1000");
        // After a Postgres restart the read pool reconnects on demand; on a
        // starved CI box that may outlast the 1 s database timeout once.
        let body = eventually("the read API to answer", DB_WAIT, || async {
            let (status, body) = get(base, &path).await;
            if status == 503 && body["error"]["code"] == "database_unavailable" {
                return None;
            }
            assert_eq!(status, 200, "{body}");
            Some(body)
        })
        .await;
        let page: EventPage = serde_json::from_value(body).expect("page");
        out.extend(page.events.iter().map(|e| (e.seq, e.event.clone())));
        match page.next_after {
            Some(n) => after = n,
            None => return out,
        }
    }
}

async fn writer_check(base: &str) -> Value {
    let (_, body) = get(base, "/ready").await;
    body["checks"]["database"].clone()
}

#[actix_rt::test]
async fn a_full_tactics_match_lands_with_every_event_once_and_the_stats() {
    let pg = TestPg::start();
    a_full_tactics_match_lands(&pg, pg.url()).await;
}

/// The same through PgBouncer in transaction mode, with its default
/// `ignore_startup_parameters` (it refuses `options`) and two server
/// connections handed out in turn (`server_round_robin`), so a statement
/// prepared on one connection and run on the other would fail.
#[actix_rt::test]
async fn a_full_tactics_match_lands_through_pgbouncer_in_transaction_mode() {
    let pg = TestPg::start();
    let bouncer = crate::pg::TestPgBouncer::start(&pg);
    bouncer.open_server_connections(2).await;
    a_full_tactics_match_lands(&pg, bouncer.url()).await;
    let log = bouncer.log();
    assert!(
        !log.contains("unsupported startup parameter"),
        "PgBouncer refused a startup parameter: {log}"
    );
}

/// A tactics match played on a node whose database is `url` (Postgres
/// itself or a pooler in front of `pg`): every event once, the result,
/// the stats and the read API, checked in `pg`.
async fn a_full_tactics_match_lands(pg: &TestPg, url: String) {
    let app = spawn_app_with(
        |c| {
            c.persist.database_url = Some(url.clone());
            c.read_database_url = Some(matchd::config::Secret(url.clone()));
        },
        Catalog::builtin(),
    );
    let (id, [a, d], seen, result) = play_tactics(&app.base).await;
    let db = pg.client().await;
    let last_seq = await_ended(&db, id).await;
    assert_eq!(last_seq, seen.last_seq(), "last_seq is the last event");
    await_events(&db, id, last_seq).await;
    let (_, _, min, _) = stored_seqs(&db, id).await.expect("events");
    assert_eq!(min, 1);

    // The replay API gives back exactly what the players saw.
    assert_eq!(replay(&app.base, id).await, seen.events);
    let (status, body) = get(
        &app.base,
        &format!("/v1/matches/{id}/events?after=2&limit=3"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: EventPage = serde_json::from_value(body).expect("page");
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!((seqs, page.next_after), (vec![3, 4, 5], Some(5)));

    // The ended match answers from Postgres with its result and players.
    let (status, body) = get(&app.base, &format!("/v1/matches/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ended");
    let stored: MatchResult = serde_json::from_value(body["result"].clone()).expect("result");
    assert_eq!(stored, result);
    let outcomes: BTreeMap<u64, String> = body["players"]
        .as_array()
        .expect("players")
        .iter()
        .map(|p| {
            (
                p["player_id"].as_u64().expect("id"),
                p["outcome"].as_str().expect("outcome").to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        BTreeMap::from([(a.player_id, "win".into()), (d.player_id, "loss".into())])
    );

    // Stats in the same transaction as the result, counted once.
    assert_eq!(stats(&db, a.player_id).await, (1, 0, 0, 1016.0));
    assert_eq!(stats(&db, d.player_id).await, (0, 1, 0, 984.0));
    let (status, body) = get(&app.base, &format!("/v1/players/{}/stats", a.player_id)).await;
    assert_eq!((status, body["wins"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = get(&app.base, "/v1/leaderboard?limit=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["players"][0]["player_id"], a.player_id);
    let (status, body) = get(&app.base, "/v1/players/1/stats").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("player_not_found"))
    );
    let (status, body) = get(&app.base, "/v1/leaderboard?limit=lots").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );

    // Migrations ran once, tracked by refinery.
    let n: i64 = db
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .expect("history")
        .get(0);
    assert_eq!(n, 1);
    let check = writer_check(&app.base).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["writer"]["breaker"], "closed", "{check}");
}

#[actix_rt::test]
async fn anonymous_players_are_not_rated_when_only_verified_ones_count() {
    let pg = TestPg::start();
    let url = pg.url();
    let app = spawn_app_with(
        |c| {
            c.persist.database_url = Some(url.clone());
            c.read_database_url = Some(matchd::config::Secret(url.clone()));
            // What MATCHD_AUTH=jwt|both defaults to (MATCHD_RATE_ANONYMOUS=off).
            c.persist.rate_anonymous = false;
        },
        Catalog::builtin(),
    );
    let (id, [a, d], _, _) = play_tactics(&app.base).await;
    let db = pg.client().await;
    await_ended(&db, id).await;
    // The result and who played are history; no rating or stats moved.
    let (status, body) = get(&app.base, &format!("/v1/matches/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["players"].as_array().map(Vec::len), Some(2), "{body}");
    let ids = vec![a.player_id as i64, d.player_id as i64];
    let rated: i64 = db
        .query_one(
            "SELECT count(*) FROM player_stats WHERE player_id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(rated, 0, "anonymous players farm no rating");
    let (status, body) = get(&app.base, &format!("/v1/players/{}/stats", a.player_id)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("player_not_found"))
    );
}

/// A node on the test Postgres `url` that notices an outage quickly
/// (breaker, backoff, `db_timeout_ms`), whose players mark as fast as they
/// can.
fn outage_ready(c: &mut matchd::config::Config, url: &str, db_timeout_ms: u64) {
    c.persist.database_url = Some(url.to_string());
    c.read_database_url = Some(matchd::config::Secret(url.to_string()));
    c.persist.breaker_open_ms = 200;
    c.persist.backoff_ms = 10;
    c.persist.db_timeout_ms = db_timeout_ms;
    c.engine.frames_per_sec = 0;
}

#[actix_rt::test]
async fn a_postgres_outage_in_busy_matches_loses_and_duplicates_nothing() {
    let pg = TestPg::start();
    let url = pg.url();
    let app = spawn_app_with(
        |c| {
            outage_ready(c, &url, 1000);
            c.engine.empty_match_timeout_ms = 100;
        },
        Catalog::builtin(),
    );
    let base = app.base.clone();
    let mut players = Vec::new();
    for _ in 0..6 {
        players.push(sandbox_player(&base).await);
    }
    let before = marks_for(&mut players, Duration::from_millis(800)).await;

    pg.stop();
    let during = marks_for(&mut players, Duration::from_millis(1500)).await;
    // Results while the database is away: stats must not double later.
    let conceded = [conceded_match(&base).await, conceded_match(&base).await];
    let (status, body) = get(&base, "/v1/leaderboard").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    let during = during + marks_for(&mut players, Duration::from_millis(1500)).await;
    let check = writer_check(&base).await;
    assert_eq!(check["ok"], false, "{check}");
    assert!(
        check["writer"]["rows_journaled"].as_u64() > Some(0),
        "the outage went to the journal: {check}"
    );
    pg.start_server();

    let after = marks_for(&mut players, Duration::from_millis(800)).await;
    assert!(
        before > 0 && during > 0 && after > 0,
        "{before} {during} {after}"
    );
    for (_, p, _) in players.iter_mut() {
        p.send(&ClientMsg::Leave).await;
    }

    let db = pg.client().await;
    for (id, _, seen) in &players {
        let last_seq = await_ended(&db, *id).await;
        assert_eq!(last_seq, seen.last_seq() + 1, "the marks, then player_left");
        await_events(&db, *id, last_seq).await;
        let stored = replay(&base, *id).await;
        assert_eq!(&stored[..seen.events.len()], &seen.events[..]);
    }
    for (id, winner, loser, last_seq) in conceded {
        assert_eq!(await_ended(&db, id).await, last_seq);
        await_events(&db, id, last_seq).await;
        assert_eq!(stats(&db, winner).await, (1, 0, 0, 1016.0));
        assert_eq!(stats(&db, loser).await, (0, 1, 0, 984.0));
    }
    eventually(
        "the journal to be replayed and emptied",
        DB_WAIT,
        || async {
            let c = writer_check(&base).await;
            (c["writer"]["journal_bytes_pending"] == 0 && c["writer"]["queue_depth"] == 0)
                .then_some(())
        },
    )
    .await;
}

/// A `matchd` server process, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(pg: &TestPg, data: &Path, log: &str) -> Self {
        let port = free_port();
        let out = std::fs::File::create(data.join(log)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_matchd"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", pg.url())
            .env("MATCHD_DATA_DIR", data)
            .env("MATCHD_BIND", format!("127.0.0.1:{port}"))
            .env("MATCHD_WORKERS", "1")
            .env("MATCHD_ARBITERS", "1")
            .env("MATCHD_JOURNAL_FSYNC", "always")
            // The players mark as fast as they can.
            .env("MATCHD_CONN_FRAMES_PER_SEC", "0")
            .env("MATCHD_BREAKER_OPEN_MS", "200")
            .env("MATCHD_WRITER_BACKOFF_MS", "10")
            .env("MATCHD_DB_TIMEOUT_MS", "1000")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn matchd");
        let base = format!("http://127.0.0.1:{port}");
        let server = Self { child, base };
        eventually("matchd to serve", WAIT, || async {
            let res = http().get(format!("{}/health", server.base)).send().await;
            res.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        server
    }

    fn kill_9(&mut self) {
        // Child::kill is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_rt::test]
async fn kill_9_with_history_in_the_journal_loses_nothing() {
    let pg = TestPg::init(); // the database is down from the start
    let data = TempDir::new("kill9");
    let mut server = Server::start(&pg, data.path(), "first.log").await;
    let base = server.base.clone();

    let mut players = Vec::new();
    for _ in 0..3 {
        players.push(sandbox_player(&base).await);
    }
    marks_for(&mut players, Duration::from_millis(700)).await;
    let (tid, winner, loser, t_last) = conceded_match(&base).await;
    // Everything the clients saw: per sandbox match created + events; the
    // tactics match created + events + ended.
    let expected: u64 = players
        .iter()
        .map(|(_, _, s)| 1 + s.last_seq())
        .sum::<u64>()
        + t_last
        + 2;
    eventually("every record to be in the journal", DB_WAIT, || async {
        let c = writer_check(&base).await;
        let w = &c["writer"];
        (w["rows_journaled"].as_u64() == Some(expected) && w["queue_depth"] == 0).then_some(())
    })
    .await;
    let sandbox: Vec<(u64, u64)> = players
        .iter()
        .map(|(id, _, seen)| (*id, seen.last_seq()))
        .collect();
    server.kill_9();
    drop(players);

    pg.start_server();
    let restarted = Server::start(&pg, data.path(), "second.log").await;
    let db = pg.client().await;
    for (id, n) in sandbox.into_iter().chain([(tid, t_last)]) {
        await_events(&db, id, n).await;
        let created: i64 = db
            .query_one(
                "SELECT count(*) FROM matches WHERE match_id = $1",
                &[&(id as i64)],
            )
            .await
            .expect("matches")
            .get(0);
        assert_eq!(created, 1);
    }
    assert_eq!(await_ended(&db, tid).await, t_last);
    assert_eq!(stats(&db, winner).await, (1, 0, 0, 1016.0));
    assert_eq!(stats(&db, loser).await, (0, 1, 0, 984.0));
    eventually("the replayed journal to be emptied", DB_WAIT, || async {
        let c = writer_check(&restarted.base).await;
        (c["writer"]["journal_bytes_pending"] == 0).then_some(())
    })
    .await;
    assert_eq!(
        std::fs::metadata(data.path().join("journal.log"))
            .expect("journal")
            .len(),
        0
    );
}

fn sample_records(match_id: u64, events: u64) -> Vec<Record> {
    let mut v = vec![Record::MatchCreated {
        match_id,
        ruleset: "sandbox".into(),
        node_id: "old-node".into(),
        created_at_ms: 1_700_000_000_000,
    }];
    v.extend((1..=events).map(|seq| Record::Event {
        match_id,
        seq,
        seat: Some(0),
        at_ms: 1_700_000_000_000 + seq,
        event: Event::Marked {
            x: 1,
            y: 1,
            count: seq as u32,
        },
    }));
    v
}

#[actix_rt::test]
async fn a_corrupt_journal_entry_is_skipped_and_the_rest_replayed() {
    let pg = TestPg::start();
    let data = TempDir::new("torn");
    let path = data.path().join("journal.log");
    {
        let (mut j, _) = Journal::open(&path, FsyncPolicy::Always).expect("journal");
        j.append(&sample_records(41, 10)).expect("append");
        j.append(&sample_records(42, 5)).expect("append");
        j.append(&sample_records(43, 5)).expect("append");
    }
    // Damage the middle entry's payload and add half an entry at the end.
    let mut bytes = std::fs::read(&path).expect("read");
    let first = encode_entry(&sample_records(41, 10)).expect("enc").len();
    bytes[first + 12] ^= 0x55;
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &bytes).expect("write");

    let url = pg.url();
    let dir = data.path().to_path_buf();
    let app = spawn_app_with(
        |c| {
            c.persist.database_url = Some(url.clone());
            c.persist.data_dir = dir.clone();
        },
        Catalog::builtin(),
    );
    let db = pg.client().await;
    await_events(&db, 41, 10).await;
    await_events(&db, 43, 5).await;
    let (count, ..) = stored_seqs(&db, 42).await.expect("events");
    assert_eq!(count, 0, "the corrupt entry is skipped, not guessed at");
    // The damaged original is kept for an operator.
    let kept: Vec<_> = std::fs::read_dir(data.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("journal.log.damaged-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the damaged journal is kept aside");
    assert_eq!(std::fs::read(kept[0].path()).expect("kept"), bytes);
    eventually("the journal to be emptied", DB_WAIT, || async {
        let c = writer_check(&app.base).await;
        (c["writer"]["journal_bytes_pending"] == 0).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn without_a_database_the_journal_keeps_history_for_a_later_import() {
    let data = TempDir::new("embedded");
    let dir = data.path().to_path_buf();
    let app = spawn_app_with(|c| c.persist.data_dir = dir.clone(), Catalog::builtin());
    for path in [
        "/v1/matches/1/events",
        "/v1/players/1/stats",
        "/v1/leaderboard",
    ] {
        let (status, body) = get(&app.base, path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("database_not_configured")),
            "{path}: {body}"
        );
    }
    let (id, winner, loser, last) = conceded_match(&app.base).await;
    eventually("the match in the journal", WAIT, || async {
        let c = writer_check(&app.base).await;
        (c["writer"]["rows_journaled"].as_u64() == Some(last + 2) && c["configured"] == false)
            .then_some(())
    })
    .await;
    drop(app);

    let pg = TestPg::start();
    let import = || {
        let out = Command::new(env!("CARGO_BIN_EXE_matchd"))
            .args(["journal", "import"])
            .arg(data.path().join("journal.log"))
            .env("DATABASE_URL", pg.url())
            .env("RUST_LOG", "warn")
            .output()
            .expect("matchd journal import");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = import();
    assert!(
        first.contains(&format!("imported {} records", last + 2)),
        "{first}"
    );
    let again = import();
    assert!(again.contains("0 new results"), "idempotent: {again}");
    let db = pg.client().await;
    assert_eq!(await_ended(&db, id).await, last);
    await_events(&db, id, last).await;
    assert_eq!(stats(&db, winner).await, (1, 0, 0, 1016.0));
    assert_eq!(stats(&db, loser).await, (0, 1, 0, 984.0));
}

/// Without a database the journal is the only store: a data directory that
/// cannot be written is refused at start, with the reason.
#[test]
fn an_unwritable_data_dir_without_a_database_is_refused_at_start() {
    let tmp = TempDir::new("unwritable");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let out = crate::support::run_to_exit(
        Command::new(env!("CARGO_BIN_EXE_matchd"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MATCHD_DATA_DIR", file.join("data"))
            .env("MATCHD_BIND", format!("127.0.0.1:{}", free_port())),
        "the node on an unwritable data directory",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("MATCHD_DATA_DIR"), "{stderr}");
}

/// A full disk (the journal is /dev/full) while Postgres is away: matches
/// play on, `/ready` says why it is not ready, history stays in a bounded
/// in-memory spill whose overflow is counted, and what the spill kept
/// reaches Postgres, gapless, once it is back.
#[actix_rt::test]
async fn a_full_disk_with_the_database_away_is_reported_bounded_and_counted() {
    let pg = TestPg::init(); // down from the start
    let data = TempDir::new("full");
    std::os::unix::fs::symlink("/dev/full", data.path().join("journal.log")).expect("symlink");
    let (url, dir) = (pg.url(), data.path().to_path_buf());
    let app = spawn_app_with(
        |c| {
            outage_ready(c, &url, 500);
            c.persist.data_dir = dir.clone();
            c.persist.batch_rows = 10;
            c.persist.buffer_rows = 40;
        },
        Catalog::builtin(),
    );
    let base = app.base.clone();
    let mut players = vec![sandbox_player(&base).await];
    let mut played = 0;
    while played < 120 {
        played += marks_for(&mut players, Duration::from_millis(200)).await;
    }
    // Every event reached the player: the match never waited for storage.
    let (id, _, seen) = &players[0];
    let last = seen.last_seq();
    assert!(last as usize > played, "{last} events for {played} marks");

    let ready = eventually("/ready to report the risk", DB_WAIT, || async {
        let (status, body) = get(&base, "/ready").await;
        let lost = body["checks"]["database"]["writer"]["records_lost"].as_u64()?;
        (status == 503 && lost > 0).then_some(body)
    })
    .await;
    let degraded = ready["degraded"].as_array().expect("degraded");
    assert!(
        degraded.contains(&Value::from("journal_unwritable")),
        "{ready}"
    );
    assert!(
        degraded.contains(&Value::from("history_in_memory_only")),
        "{ready}"
    );
    assert!(
        ready["checks"]["database"]["writer"]["journal_error"].is_string(),
        "{ready}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("matchd_history_records_lost_total ")),
        "{metrics}"
    );

    // Postgres is back: the spill drains into it; the node is ready again
    // (still degraded: the journal stays unwritable).
    pg.start_server();
    let ready = eventually("the node to be ready again", DB_WAIT, || async {
        let (status, body) = get(&base, "/ready").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(
        ready["degraded"],
        serde_json::json!(["journal_unwritable"]),
        "{ready}"
    );
    let db = pg.client().await;
    let (count, distinct, min, max) = eventually("the spill in Postgres", DB_WAIT, || async {
        let got = stored_seqs(&db, *id).await?;
        (got.0 > 0).then_some(got)
    })
    .await;
    // What was kept is each match's oldest history, without a gap; the
    // newest records were the ones lost, and counted.
    assert_eq!((min, distinct, max), (1, count, count), "a gapless prefix");
    assert!((count as u64) < last, "the overflow was dropped, not kept");
}

/// The statement timeout is set with `SET` on each new connection (what
/// PgBouncer in transaction mode accepts), not as a startup parameter.
#[actix_rt::test]
async fn pooled_connections_run_with_the_statement_timeout() {
    let pg = TestPg::start();
    let store =
        matchd_actors::history::store::Store::new(&matchd_actors::history::store::StoreConfig {
            url: pg.url(),
            pool_size: 1,
            timeout: Duration::from_millis(1500),
            rate_anonymous: true,
            ca_file: None,
        })
        .expect("store");
    assert_eq!(store.statement_timeout().await.expect("show"), "1500ms");
}
