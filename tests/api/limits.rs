//! Per-connection budgets and concurrent-connection caps: under a limit
//! nothing changes; over it the documented answer comes, and the other
//! members of the match keep receiving every event in order.

use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg};

use crate::support::{spawn_app_with, TestApp, WsClient};

fn mark(client_seq: u64) -> ClientMsg {
    ClientMsg::Action {
        client_seq,
        action: Action::Mark { x: 1, y: 1 },
    }
}

/// Reads `b`'s stream up to the event answering `a_seat`'s `client_seq`,
/// checking that `seq` never skips or repeats; returns the last `seq`.
async fn follow(b: &mut WsClient, last: &mut u64, a_seat: u8, client_seq: u64) {
    loop {
        if let ServerMsg::Event {
            seq,
            seat,
            client_seq: cs,
            ..
        } = b.recv().await
        {
            assert_eq!(seq, *last + 1, "b's stream has no gap and no repeat");
            *last = seq;
            if seat == Some(a_seat) && cs == Some(client_seq) {
                return;
            }
        }
    }
}

async fn two_players(app: &TestApp) -> (WsClient, WsClient, u8, u64) {
    let id = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    let mut b = app.player(Encoding::Bincode).await;
    let ServerMsg::Joined { seat, .. } = a.join(id).await else {
        panic!("a joins")
    };
    let ServerMsg::Joined {
        seq, seat: b_seat, ..
    } = b.join(id).await
    else {
        panic!("b joins")
    };
    a.recv_until(|m| match m {
        ServerMsg::Event {
            event: Event::PlayerJoined { seat, .. },
            ..
        } => (*seat == b_seat).then_some(()),
        _ => None,
    })
    .await;
    (a, b, seat, seq)
}

/// A WebSocket upgrade written by hand, for the status line, headers and
/// body of a refusal (the WebSocket client shows only the status).
fn raw_upgrade(app: &TestApp, token: &str) -> String {
    use std::io::{Read, Write};
    let addr = app.base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "GET /v1/ws?token={token} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_rt::test]
async fn a_client_over_its_frame_budget_is_refused_then_closed_and_the_others_see_everything() {
    let app = spawn_app_with(|c| c.engine.frames_per_sec = 10, Catalog::builtin());
    let (mut a, mut b, a_seat, mut b_last) = two_players(&app).await;

    // A burst of 20 actions: the budget's burst (10 frames, plus what
    // refills meanwhile) is played, the rest is refused; each gets exactly
    // one answer.
    let sent = 20u64;
    for cs in 1..=sent {
        a.send(&mark(cs)).await;
    }
    let (mut played, mut refused) = (Vec::new(), 0u64);
    while (played.len() as u64) + refused < sent {
        match a.recv().await {
            ServerMsg::Event {
                client_seq: Some(cs),
                ..
            } => played.push(cs),
            ServerMsg::Rejected { code, .. } => {
                assert_eq!(code, "rate_limited");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        refused > 0,
        "20 frames at once exceed a budget of 10 per second"
    );
    // The join took one frame of the burst of 10.
    assert!(played.len() >= 9, "the burst is played: {played:?}");
    // b saw every played action, in order, and nothing else of a's.
    follow(&mut b, &mut b_last, a_seat, *played.last().expect("played")).await;

    // a keeps flooding: the refusals pass the tolerance, the server says so
    // and closes with 1008.
    let mut saw_error = false;
    let before = played.len();
    for cs in sent + 1..=sent + 200 {
        a.send(&mark(cs)).await;
    }
    loop {
        match a.next().await {
            Ok(ServerMsg::Error { code, .. }) => {
                assert_eq!(code, "rate_limited");
                saw_error = true;
            }
            Ok(ServerMsg::Event { client_seq, .. }) => {
                if let Some(cs) = client_seq {
                    played.push(cs);
                }
            }
            Ok(ServerMsg::Rejected { code, .. }) => assert_eq!(code, "rate_limited"),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(closed) => {
                assert_eq!(
                    closed,
                    crate::support::Closed::Code(Some(awc::ws::CloseCode::Policy))
                );
                break;
            }
        }
    }
    assert!(saw_error, "an error frame comes before the close");

    // b still plays and sees every event a got played, in order.
    for &cs in &played[before..] {
        follow(&mut b, &mut b_last, a_seat, cs).await;
    }
    b.send(&mark(1)).await;
    let b_seat = a_seat ^ 1;
    loop {
        if let ServerMsg::Event {
            seq, seat, event, ..
        } = b.recv().await
        {
            assert_eq!(seq, b_last + 1);
            b_last = seq;
            if seat == Some(b_seat) && matches!(event, Event::Marked { .. }) {
                break;
            }
        }
    }
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("matchd_rate_limited_total{limit=\"frames\"}")),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn a_client_within_its_budget_is_never_refused() {
    let app = spawn_app_with(|c| c.engine.frames_per_sec = 20, Catalog::builtin());
    let (mut a, mut b, a_seat, mut b_last) = two_players(&app).await;
    // One action at a time, each waited for: 15 frames stay within a burst
    // of 20 whatever the timing.
    for cs in 1..=15 {
        a.send(&mark(cs)).await;
        match a.recv().await {
            ServerMsg::Event { client_seq, .. } => assert_eq!(client_seq, Some(cs)),
            other => panic!("{other:?}"),
        }
        follow(&mut b, &mut b_last, a_seat, cs).await;
    }
}

#[actix_rt::test]
async fn the_byte_budget_refuses_what_exceeds_it() {
    let app = spawn_app_with(
        |c| {
            c.engine.frames_per_sec = 0;
            c.engine.bytes_per_sec = 1000;
            c.engine.max_message_bytes = 40_000;
        },
        Catalog::builtin(),
    );
    let mut a = app.player(Encoding::Json).await;
    // A ping padded to 30 kB: the bucket holds one such message (it holds
    // at least the largest message), not two in a row.
    let padded = |nonce: u64| {
        format!(
            "{{\"type\":\"ping\",\"nonce\":{nonce}{}}}",
            " ".repeat(30_000)
        )
    };
    a.send_text(&padded(1)).await;
    assert_eq!(a.recv().await, ServerMsg::Pong { nonce: 1 });
    a.send_text(&padded(2)).await;
    assert_eq!(a.expect_error().await, "rate_limited");
}

/// The status of a WebSocket upgrade with `token` (a socket that opens is
/// closed again at once).
async fn upgrade_status(app: &TestApp, token: &str) -> u16 {
    let url = app.url(&format!("/v1/ws?token={token}"));
    crate::support::upgrade_status_of(awc::Client::new().ws(url)).await
}

#[actix_rt::test]
async fn connections_per_player_and_per_ip_are_capped_and_freed_on_close() {
    let app = spawn_app_with(
        |c| {
            c.limits.conns_per_player = 2;
            c.limits.conns_per_ip = 3;
        },
        Catalog::builtin(),
    );
    let one = app.new_session().await.token;
    let mut first = WsClient::connect(&app, &one, Encoding::Json).await;
    let _second = WsClient::connect(&app, &one, Encoding::Json).await;
    assert_eq!(
        upgrade_status(&app, &one).await,
        429,
        "a third socket of one player"
    );
    // Over HTTP: the stable code and Retry-After.
    let answer = raw_upgrade(&app, &one);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\"too_many_connections\""), "{answer}");

    // Another player from the same address takes the third place of the IP.
    let other = app.new_session().await.token;
    let _third = WsClient::connect(&app, &other, Encoding::Json).await;
    assert_eq!(
        upgrade_status(&app, &other).await,
        429,
        "a fourth socket from one IP"
    );

    // Closing a socket frees its places.
    first.recv().await; // welcome
    first.send(&ClientMsg::Leave).await;
    drop(first);
    crate::support::eventually(
        "the closed socket's place is free again",
        std::time::Duration::from_secs(10),
        || async { (upgrade_status(&app, &one).await == 101).then_some(()) },
    )
    .await;
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("matchd_rate_limited_total{limit=\"connections_per_player\"}")),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn seats_per_player_are_capped_counting_seats_held_while_disconnected() {
    let app = spawn_app_with(|c| c.engine.max_seats_per_player = 2, Catalog::builtin());
    let token = app.new_session().await.token;
    let (a, b, c) = (
        app.create_match("sandbox").await,
        app.create_match("sandbox").await,
        app.create_match("sandbox").await,
    );
    // Another player in `a` sees the first seat go into its grace period.
    let mut other = app.player(Encoding::Bincode).await;
    assert!(matches!(other.join(a).await, ServerMsg::Joined { .. }));
    let mut first = app.connect_as(&token).await;
    let ServerMsg::Joined { seat: held, .. } = first.join(a).await else {
        panic!("the first seat")
    };
    drop(first);
    other
        .recv_until(|m| match m {
            ServerMsg::Event {
                event: Event::PlayerDisconnected { seat },
                ..
            } => (*seat == held).then_some(()),
            _ => None,
        })
        .await;

    let mut second = app.connect_as(&token).await;
    assert!(
        matches!(second.join(b).await, ServerMsg::Joined { .. }),
        "the second seat is within the cap"
    );
    let mut third = app.connect_as(&token).await;
    assert_eq!(
        third.join(c).await,
        ServerMsg::Error {
            code: "too_many_seats".into(),
            message: "you already hold as many seats as a player may; leave a match first".into(),
        },
        "a third seat, with one of the two held for a disconnected socket"
    );
    // Taking back a seat already held is not a new one.
    third
        .send(&ClientMsg::Resume {
            match_id: a,
            last_seq: 0,
        })
        .await;
    let resumed = third
        .recv_until(|m| match m {
            ServerMsg::Resumed { seat, .. } | ServerMsg::Joined { seat, .. } => Some(*seat),
            _ => None,
        })
        .await;
    assert_eq!(resumed, held);
    // Leaving a match frees a seat for another.
    second.send(&ClientMsg::Leave).await;
    second
        .recv_until(|m| matches!(m, ServerMsg::Left { .. }).then_some(()))
        .await;
    assert!(
        matches!(second.join(c).await, ServerMsg::Joined { .. }),
        "a seat again after leaving one"
    );
    // The other member of `a` saw its match go on as usual: the seat came back.
    other
        .recv_until(|m| match m {
            ServerMsg::Event {
                event: Event::PlayerReconnected { seat },
                ..
            } => (*seat == held).then_some(()),
            _ => None,
        })
        .await;
}

#[actix_rt::test]
async fn a_full_session_store_evicts_the_least_recently_used_and_idle_sessions_expire() {
    const IDLE_MS: u64 = 600;
    let app = spawn_app_with(
        |c| {
            c.max_sessions = 2;
            c.session_ttl_ms = IDLE_MS;
        },
        Catalog::builtin(),
    );
    let first = app.new_session().await.token;
    let second = app.new_session().await.token;
    assert_eq!(upgrade_status(&app, &first).await, 101, "first used last");
    // A third session fits: the least recently used one makes room.
    let third = app.new_session().await.token;
    assert_eq!(upgrade_status(&app, &second).await, 401, "evicted");
    assert_eq!(upgrade_status(&app, &first).await, 101);
    assert_eq!(upgrade_status(&app, &third).await, 101);
    // The idle timeout itself is what is tested here, so time passes: past
    // it, unused sessions are gone, and a new one is made as usual.
    actix_rt::time::sleep(std::time::Duration::from_millis(IDLE_MS * 2)).await;
    assert_eq!(upgrade_status(&app, &first).await, 401, "idle too long");
    assert_eq!(upgrade_status(&app, &third).await, 401, "idle too long");
    let fresh = app.new_session().await.token;
    assert_eq!(upgrade_status(&app, &fresh).await, 101);
}
