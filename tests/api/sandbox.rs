use futures_util::future::join_all;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg};

use crate::support::{spawn_app, WsClient};

const MARKS_PER_PLAYER: u64 = 25;

/// Reads until `marks` `marked` events arrived; returns every event frame
/// after `from_seq` as (seq, seat, event).
async fn read_events(p: &mut WsClient, marks: usize) -> Vec<(u64, Option<u8>, Event)> {
    let mut out = Vec::new();
    let mut seen_marks = 0;
    while seen_marks < marks {
        match p.recv().await {
            ServerMsg::Event {
                seq, seat, event, ..
            } => {
                if matches!(event, Event::Marked { .. }) {
                    seen_marks += 1;
                }
                out.push((seq, seat, event));
            }
            ServerMsg::Rejected { code, .. } => panic!("mark rejected: {code}"),
            _ => {}
        }
    }
    out
}

#[actix_rt::test]
async fn four_players_see_every_event_once_in_order_without_gaps() {
    let app = spawn_app();
    let id = app.create_match("sandbox").await;
    let encodings = [
        Encoding::Json,
        Encoding::Bincode,
        Encoding::Json,
        Encoding::Bincode,
    ];
    let mut players = Vec::new();
    let mut joined_at = Vec::new();
    for enc in encodings {
        let mut p = app.player(enc).await;
        match p.join(id).await {
            ServerMsg::Joined {
                seq, seat, ruleset, ..
            } => {
                assert_eq!(ruleset, "sandbox");
                assert_eq!(seat as usize, players.len());
                joined_at.push(seq);
            }
            other => panic!("expected joined, got {other:?}"),
        }
        players.push(p);
    }
    // Each `joined` frame is sent from inside the match's join handler, so
    // all four joins are processed before any mark below arrives.
    // All four send their marks at the same time.
    join_all(players.iter_mut().enumerate().map(|(i, p)| async move {
        for n in 0..MARKS_PER_PLAYER {
            let action = Action::Mark {
                x: ((i as u64 + n) % 5) as i32,
                y: (n % 3) as i32,
            };
            p.send(&ClientMsg::Action {
                client_seq: n,
                action,
            })
            .await;
        }
    }))
    .await;

    let total = (MARKS_PER_PLAYER * 4) as usize;
    let streams = join_all(players.iter_mut().map(|p| read_events(p, total))).await;

    for (i, events) in streams.iter().enumerate() {
        // Starts right after the player's own snapshot and has no gap.
        let seqs: Vec<u64> = events.iter().map(|e| e.0).collect();
        let expected: Vec<u64> = (joined_at[i] + 1..joined_at[i] + 1 + seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "player {i}: seq must grow by exactly 1");
        let marks = events
            .iter()
            .filter(|e| matches!(e.2, Event::Marked { .. }))
            .count();
        assert_eq!(marks, total, "player {i} saw every mark exactly once");
        for seat in 0..4u8 {
            let from_seat = events
                .iter()
                .filter(|e| e.1 == Some(seat) && matches!(e.2, Event::Marked { .. }))
                .count();
            assert_eq!(
                from_seat as u64, MARKS_PER_PLAYER,
                "player {i}, marks of seat {seat}"
            );
        }
    }
    // Everyone agrees on what happened at each seq (JSON and bincode alike).
    let last = &streams[3];
    for other in &streams[..3] {
        for e in last {
            let same = other.iter().find(|o| o.0 == e.0).expect("shared seq");
            assert_eq!(same, e);
        }
    }
    // Counts per cell add up to the number of marks.
    let mut cells = std::collections::HashMap::new();
    for (_, _, e) in last {
        if let Event::Marked { x, y, count } = e {
            let c = cells.entry((*x, *y)).or_insert(0u32);
            assert_eq!(*count, *c + 1, "cell ({x},{y}) counts up by one");
            *c = *count;
        }
    }
    assert_eq!(cells.values().sum::<u32>() as usize, total);
}

#[actix_rt::test]
async fn quick_join_fills_an_open_match_then_opens_another() {
    let app = spawn_app();
    let mut ids = Vec::new();
    let mut players = Vec::new();
    for _ in 0..9 {
        let mut p = app.player(Encoding::Json).await;
        match p.quick_join("sandbox").await {
            ServerMsg::Joined { match_id, .. } => ids.push(match_id),
            other => panic!("expected joined, got {other:?}"),
        }
        players.push(p);
    }
    assert!(
        ids[..8].iter().all(|id| *id == ids[0]),
        "first eight share a match: {ids:?}"
    );
    assert_ne!(ids[8], ids[0], "the ninth opens a new match");

    let mut p = app.player(Encoding::Json).await;
    assert_eq!(
        p.quick_join("chess").await,
        ServerMsg::Error {
            code: "unknown_ruleset".into(),
            message: "unknown ruleset \"chess\"".into()
        }
    );
}

#[actix_rt::test]
async fn leave_frees_the_seat_and_reconnect_takes_it_back() {
    let app = spawn_app();
    let id = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    let mut b = app.player(Encoding::Json).await;
    assert!(matches!(
        a.join(id).await,
        ServerMsg::Joined { seat: 0, .. }
    ));
    assert!(matches!(
        b.join(id).await,
        ServerMsg::Joined { seat: 1, .. }
    ));

    b.send(&ClientMsg::Leave).await;
    b.recv_until(|m| matches!(m, ServerMsg::Left { match_id } if *match_id == id).then_some(()))
        .await;
    a.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Event {
                event: Event::PlayerLeft { seat: 1 },
                ..
            }
        )
        .then_some(())
    })
    .await;
    b.send(&ClientMsg::Action {
        client_seq: 1,
        action: Action::Mark { x: 0, y: 0 },
    })
    .await;
    assert_eq!(b.expect_error().await, "not_in_match");

    let mut c = app.player(Encoding::Json).await;
    assert!(
        matches!(c.join(id).await, ServerMsg::Joined { seat: 1, .. }),
        "freed seat reused"
    );
}

#[actix_rt::test]
async fn a_reconnecting_player_gets_its_seat_back() {
    let app = spawn_app();
    let id = app.create_match("sandbox").await;
    let mut watcher = app.player(Encoding::Json).await;
    assert!(matches!(
        watcher.join(id).await,
        ServerMsg::Joined { seat: 0, .. }
    ));

    let session = app.new_session().await;
    let mut first = WsClient::connect(&app, &session.token, Encoding::Json).await;
    assert!(matches!(first.recv().await, ServerMsg::Welcome { .. }));
    assert!(matches!(
        first.join(id).await,
        ServerMsg::Joined { seat: 1, .. }
    ));
    drop(first);
    watcher
        .recv_until(|m| {
            matches!(
                m,
                ServerMsg::Event {
                    event: Event::PlayerDisconnected { seat: 1 },
                    ..
                }
            )
            .then_some(())
        })
        .await;

    let mut second = WsClient::connect(&app, &session.token, Encoding::Bincode).await;
    assert!(matches!(second.recv().await, ServerMsg::Welcome { .. }));
    assert!(
        matches!(second.join(id).await, ServerMsg::Joined { seat: 1, .. }),
        "same seat"
    );
    watcher
        .recv_until(|m| {
            matches!(
                m,
                ServerMsg::Event {
                    event: Event::PlayerReconnected { seat: 1 },
                    ..
                }
            )
            .then_some(())
        })
        .await;
    second
        .send(&ClientMsg::Action {
            client_seq: 1,
            action: Action::Mark { x: 1, y: 1 },
        })
        .await;
    let (seat, count) = watcher
        .recv_until(|m| match m {
            ServerMsg::Event {
                seat,
                event: Event::Marked { count, .. },
                ..
            } => Some((*seat, *count)),
            _ => None,
        })
        .await;
    assert_eq!((seat, count), (Some(1), 1));
}
