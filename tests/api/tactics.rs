use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg, State};

use crate::support::{deploy_hand, ended_result, spawn_app, WsClient};

/// Every frame a player receives from `joined` to `ended`, checked for seq order.
struct Log {
    next_seq: u64,
    events: Vec<Event>,
}

impl Log {
    fn new(joined_seq: u64) -> Self {
        Self {
            next_seq: joined_seq + 1,
            events: Vec::new(),
        }
    }

    fn take(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Event { seq, event, .. } => {
                assert_eq!(*seq, self.next_seq, "no gap, no repeat");
                self.next_seq += 1;
                self.events.push(event.clone());
            }
            ServerMsg::Ended { seq, .. } => {
                assert_eq!(*seq, self.next_seq, "ended takes the next seq")
            }
            _ => {}
        }
    }
}

async fn join(p: &mut WsClient, id: u64) -> (u8, u64, State) {
    match p.join(id).await {
        ServerMsg::Joined {
            seat,
            seq,
            state,
            ruleset,
            ..
        } => {
            assert_eq!(ruleset, "tactics");
            (seat, seq, state)
        }
        other => panic!("expected joined, got {other:?}"),
    }
}

#[actix_rt::test]
async fn two_players_play_a_whole_tactics_match_to_its_end() {
    let app = spawn_app();
    let id = app.create_match("tactics").await;
    let mut attacker = app.player(Encoding::Json).await;
    let mut defender = app.player(Encoding::Bincode).await;
    let (a_seat, a_seq, _) = join(&mut attacker, id).await;
    let (d_seat, d_seq, _) = join(&mut defender, id).await;
    assert_ne!(a_seat, d_seat);
    let mut a_log = Log::new(a_seq);
    let mut d_log = Log::new(d_seq);

    // A third player cannot join a full match.
    let mut third = app.player(Encoding::Json).await;
    let code = match third.join(id).await {
        ServerMsg::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(code == "match_full" || code == "match_closed", "{code}");

    // Deploy: the attacker asks where each card may go and places it there.
    attacker
        .recv_until(|m| {
            a_log.take(m);
            match m {
                ServerMsg::Event {
                    event: Event::Phase { phase },
                    ..
                } if phase == "deploy" => Some(()),
                _ => None,
            }
        })
        .await;
    let mut seq = 10;
    let (hand, placed) = deploy_hand(&mut attacker, &mut seq, &mut |m| a_log.take(m)).await;
    assert_eq!(hand.len(), 8, "a full hand");
    assert!(placed >= 4, "placed {placed} cards");

    // A card of the opponent is refused, out of phase actions too.
    defender
        .send(&ClientMsg::Action {
            client_seq: 1,
            action: Action::Place {
                card: hand[0].card,
                x: 0,
                y: 0,
            },
        })
        .await;
    let code = defender
        .recv_until(|m| {
            d_log.take(m);
            match m {
                ServerMsg::Rejected { code, .. } => Some(code.clone()),
                _ => None,
            }
        })
        .await;
    assert_eq!(code, "unknown_card");

    attacker
        .send(&ClientMsg::Action {
            client_seq: 100,
            action: Action::Ready,
        })
        .await;
    defender
        .send(&ClientMsg::Action {
            client_seq: 2,
            action: Action::Ready,
        })
        .await;
    defender
        .send(&ClientMsg::Action {
            client_seq: 3,
            action: Action::Ready,
        })
        .await;
    let code = defender
        .recv_until(|m| {
            d_log.take(m);
            match m {
                ServerMsg::Rejected {
                    client_seq: 3,
                    code,
                    ..
                } => Some(code.clone()),
                _ => None,
            }
        })
        .await;
    assert!(code == "already_ready" || code == "wrong_phase", "{code}");

    // Battle runs on the 10 Hz tick until the defender's open base falls.
    let mut results = Vec::new();
    for (p, log) in [(&mut attacker, &mut a_log), (&mut defender, &mut d_log)] {
        let result = p
            .recv_until(|m| {
                log.take(m);
                match m {
                    ServerMsg::Ended {
                        result, match_id, ..
                    } if *match_id == id => Some(result.clone()),
                    _ => None,
                }
            })
            .await;
        assert!(log
            .events
            .iter()
            .any(|e| matches!(e, Event::Phase { phase } if phase == "battle")));
        assert!(log.events.iter().any(|e| matches!(
            e,
            Event::Attacked {
                target_unit: None,
                ..
            }
        )));
        results.push(result);
    }
    assert_eq!(results[0], results[1], "both see the same result");
    assert_eq!(results[0].winner, Some(a_seat));
    assert_eq!(results[0].reason, "base_destroyed");
    assert_eq!(results[0].scores[d_seat as usize], 0);
    assert_eq!(
        a_log.events.len(),
        d_log.events.len() + (d_seq - a_seq) as usize,
        "same stream from each join on"
    );

    // Both are out of the match.
    attacker
        .send(&ClientMsg::Action {
            client_seq: 999,
            action: Action::Concede,
        })
        .await;
    assert_eq!(attacker.expect_error().await, "not_in_match");
}

#[actix_rt::test]
async fn conceding_ends_the_match_for_the_other_seat() {
    let app = spawn_app();
    let mut a = app.player(Encoding::Json).await;
    let mut b = app.player(Encoding::Json).await;
    let id = match a.quick_join("tactics").await {
        ServerMsg::Joined { match_id, .. } => match_id,
        other => panic!("{other:?}"),
    };
    match b.quick_join("tactics").await {
        ServerMsg::Joined { match_id, seat, .. } => assert_eq!((match_id, seat), (id, 1)),
        other => panic!("{other:?}"),
    }
    // Out of phase before deploy starts is impossible now: both are seated.
    b.send(&ClientMsg::Action {
        client_seq: 1,
        action: Action::Concede,
    })
    .await;
    for p in [&mut a, &mut b] {
        let result = p.recv_until(ended_result).await;
        assert_eq!(
            (result.winner, result.reason.as_str()),
            (Some(0), "concede")
        );
    }
    // A third quick-join gets a fresh match.
    let mut c = app.player(Encoding::Json).await;
    match c.quick_join("tactics").await {
        ServerMsg::Joined { match_id, seat, .. } => {
            assert_eq!(seat, 0, "new match {match_id} != {id}")
        }
        other => panic!("{other:?}"),
    }
}
