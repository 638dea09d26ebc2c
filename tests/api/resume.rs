//! Resume after a disconnect: the missed events are replayed from the ring
//! buffer, or a `joined` snapshot is sent when they are older than it.

use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg};

use crate::support::{spawn_app, spawn_app_with, TestApp, WsClient};

/// A new connection for an existing session, past `welcome`.
async fn connect(app: &TestApp, token: &str, encoding: Encoding) -> WsClient {
    let mut ws = WsClient::connect(app, token, encoding).await;
    assert!(matches!(ws.recv().await, ServerMsg::Welcome { .. }));
    ws
}

async fn mark(p: &mut WsClient, client_seq: u64) {
    p.send(&ClientMsg::Action {
        client_seq,
        action: Action::Mark { x: 1, y: 1 },
    })
    .await;
}

/// Reads until an event of this kind; returns its seq.
async fn seq_of(p: &mut WsClient, want: fn(&Event) -> bool) -> u64 {
    p.recv_until(|m| match m {
        ServerMsg::Event { seq, event, .. } if want(event) => Some(*seq),
        _ => None,
    })
    .await
}

fn marked(e: &Event) -> bool {
    matches!(e, Event::Marked { .. })
}

#[actix_rt::test]
async fn resume_replays_exactly_the_missed_events_then_goes_live() {
    let app = spawn_app();
    let id = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    let b_session = app.new_session().await;
    let mut b = connect(&app, &b_session.token, Encoding::Bincode).await;
    assert!(matches!(a.join(id).await, ServerMsg::Joined { .. }));
    let b_seat = match b.join(id).await {
        ServerMsg::Joined { seat, .. } => seat,
        other => panic!("expected joined, got {other:?}"),
    };
    mark(&mut b, 1).await;
    let seen = seq_of(&mut b, marked).await;
    drop(b);

    seq_of(&mut a, |e| matches!(e, Event::PlayerDisconnected { .. })).await;
    let mut last = 0;
    for n in 1..=3 {
        mark(&mut a, n).await;
        last = seq_of(&mut a, marked).await;
    }

    let mut b = connect(&app, &b_session.token, Encoding::Bincode).await;
    b.send(&ClientMsg::Resume {
        match_id: id,
        last_seq: seen,
    })
    .await;
    match b.recv().await {
        ServerMsg::Resumed {
            match_id,
            seat,
            last_seq,
            seq,
        } => assert_eq!((match_id, seat, last_seq, seq), (id, b_seat, seen, last)),
        other => panic!("expected resumed, got {other:?}"),
    }
    let mut replayed = Vec::new();
    for expected in seen + 1..=last {
        match b.recv().await {
            ServerMsg::Event { seq, event, .. } => {
                assert_eq!(seq, expected, "replayed in order, no gap");
                replayed.push(event);
            }
            other => panic!("expected a replayed event, got {other:?}"),
        }
    }
    assert!(matches!(
        replayed[0],
        Event::PlayerDisconnected { seat } if seat == b_seat
    ));
    assert_eq!(replayed.iter().filter(|e| marked(e)).count(), 3);
    // Then the live stream, in sequence: b's return, then a new mark.
    match b.recv().await {
        ServerMsg::Event {
            seq,
            event: Event::PlayerReconnected { seat },
            ..
        } => assert_eq!((seq, seat), (last + 1, b_seat)),
        other => panic!("expected player_reconnected, got {other:?}"),
    }
    mark(&mut b, 2).await;
    assert_eq!(seq_of(&mut b, marked).await, last + 2);
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("matchd_resumes_total{outcome=\"replayed\"}")),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn resume_past_the_ring_gets_a_snapshot_and_others_are_refused() {
    let app = spawn_app_with(|c| c.engine.ring_buffer = 4, Catalog::builtin());
    let id = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    let b_session = app.new_session().await;
    let mut b = connect(&app, &b_session.token, Encoding::Json).await;
    assert!(matches!(a.join(id).await, ServerMsg::Joined { .. }));
    assert!(matches!(b.join(id).await, ServerMsg::Joined { .. }));
    mark(&mut b, 1).await;
    let seen = seq_of(&mut b, marked).await;
    drop(b);
    seq_of(&mut a, |e| matches!(e, Event::PlayerDisconnected { .. })).await;
    let mut last = 0;
    for n in 1..=6 {
        mark(&mut a, n).await;
        last = seq_of(&mut a, marked).await;
    }

    let mut b = connect(&app, &b_session.token, Encoding::Json).await;
    b.send(&ClientMsg::Resume {
        match_id: id,
        last_seq: seen,
    })
    .await;
    match b.recv().await {
        ServerMsg::Joined { seq, .. } => assert_eq!(seq, last, "a fresh snapshot"),
        other => panic!("expected a joined snapshot, got {other:?}"),
    }
    assert_eq!(
        seq_of(&mut b, |e| matches!(e, Event::PlayerReconnected { .. })).await,
        last + 1
    );

    // Someone without a seat here, and a match that does not exist.
    let mut c = app.player(Encoding::Json).await;
    c.send(&ClientMsg::Resume {
        match_id: id,
        last_seq: 0,
    })
    .await;
    assert_eq!(c.expect_error().await, "not_a_member");
    c.send(&ClientMsg::Resume {
        match_id: 12_345,
        last_seq: 0,
    })
    .await;
    assert_eq!(c.expect_error().await, "match_not_found");
    c.ping(1).await;
}
