//! Protocol 2: the version in `welcome`, the acting action's `client_seq`
//! on the events and the end it caused, seat counts on create and
//! quick-join, and protocol-1 bincode clients still reading their layout.

use matchd_protocol::codec::{encode_bincode_v1, encode_client_bincode, Encoding};
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg, PROTOCOL_VERSION};

use crate::support::{spawn_app, WsClient};

#[actix_rt::test]
async fn welcome_names_the_protocol_and_events_name_the_action_that_caused_them() {
    let app = spawn_app();
    let session = app.new_session().await;
    let mut a = WsClient::connect(&app, &session.token, Encoding::Json).await;
    match a.recv().await {
        ServerMsg::Welcome { protocol, .. } => assert_eq!(protocol, PROTOCOL_VERSION),
        other => panic!("expected welcome, got {other:?}"),
    }
    let mut b = app.player(Encoding::Bincode).await;
    let id = app.create_match("sandbox").await;
    assert!(matches!(a.join(id).await, ServerMsg::Joined { .. }));
    assert!(matches!(b.join(id).await, ServerMsg::Joined { .. }));
    // b's own join: an engine event, caused by no action.
    let joined = a
        .recv_until(|m| match m {
            ServerMsg::Event {
                event: Event::PlayerJoined { .. },
                seat,
                client_seq,
                ..
            } => Some((*seat, *client_seq)),
            _ => None,
        })
        .await;
    assert_eq!(joined, (None, None));
    // b marks with client_seq 41: both members see seat 1 and 41.
    b.send(&ClientMsg::Action {
        client_seq: 41,
        action: Action::Mark { x: 3, y: 2 },
    })
    .await;
    for client in [&mut a, &mut b] {
        let got = client
            .recv_until(|m| match m {
                ServerMsg::Event {
                    event: Event::Marked { .. },
                    seat,
                    client_seq,
                    ..
                } => Some((*seat, *client_seq)),
                _ => None,
            })
            .await;
        assert_eq!(got, (Some(1), Some(41)));
    }
}

#[actix_rt::test]
async fn a_concede_is_acknowledged_by_the_end_it_caused() {
    let app = spawn_app();
    let mut a = app.player(Encoding::Json).await;
    let mut b = app.player(Encoding::Bincode).await;
    let id = app.create_match("tactics").await;
    assert!(matches!(a.join(id).await, ServerMsg::Joined { .. }));
    assert!(matches!(b.join(id).await, ServerMsg::Joined { .. }));
    // Both seated: the deploy phase, where a concede is allowed.
    a.send(&ClientMsg::Action {
        client_seq: 7,
        action: Action::Concede,
    })
    .await;
    for client in [&mut a, &mut b] {
        let end = client
            .recv_until(|m| match m {
                ServerMsg::Ended {
                    seat,
                    client_seq,
                    result,
                    ..
                } => Some((*seat, *client_seq, result.winner, result.reason.clone())),
                _ => None,
            })
            .await;
        assert_eq!(end, (Some(0), Some(7), Some(1), "concede".to_string()));
    }
}

#[actix_rt::test]
async fn seat_counts_on_create_and_quick_join() {
    let app = spawn_app();
    // POST /v1/matches with a seat count, in and out of the ruleset's bounds.
    let (status, body) = app
        .post_json_as_player(
            "/v1/matches",
            serde_json::json!({"ruleset": "sandbox", "max_seats": 3}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["match_id"].as_u64().expect("id");
    let (_, summary) = app.get_json(&format!("/v1/matches/{id}")).await;
    assert_eq!(summary["max_seats"], 3);
    for (ruleset, seats) in [
        ("sandbox", 0),
        ("sandbox", 9),
        ("tactics", 3),
        ("tactics", 1),
    ] {
        let (status, body) = app
            .post_json_as_player(
                "/v1/matches",
                serde_json::json!({"ruleset": ruleset, "max_seats": seats}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_max_seats")),
            "{ruleset} with {seats} seats"
        );
    }

    // Quick-join into rooms of two: the third player opens a second room.
    let quick = |max_seats| ClientMsg::Join {
        match_id: None,
        ruleset: Some("sandbox".into()),
        max_seats,
    };
    let mut rooms = Vec::new();
    let mut players = Vec::new();
    for encoding in [Encoding::Json, Encoding::Bincode, Encoding::Json] {
        let mut p = app.player(encoding).await;
        p.send(&quick(Some(2))).await;
        match p.recv().await {
            ServerMsg::Joined { match_id, seat, .. } => rooms.push((match_id, seat)),
            other => panic!("expected joined, got {other:?}"),
        }
        players.push(p);
    }
    assert_eq!(rooms[0].0, rooms[1].0, "the first two share a room");
    assert_eq!((rooms[0].1, rooms[1].1), (0, 1));
    assert_ne!(rooms[2].0, rooms[0].0, "a room of two is full");
    let (_, summary) = app.get_json(&format!("/v1/matches/{}", rooms[2].0)).await;
    assert_eq!(summary["max_seats"], 2);
    // Without a seat count, quick-join takes any open room of the ruleset.
    let mut any = app.player(Encoding::Json).await;
    any.send(&quick(None)).await;
    assert!(matches!(any.recv().await, ServerMsg::Joined { .. }));

    // Out of bounds, or with a match id: refused, the connection stays.
    let mut p = app.player(Encoding::Json).await;
    p.send(&quick(Some(9))).await;
    assert_eq!(p.expect_error().await, "invalid_max_seats");
    p.send(&ClientMsg::Join {
        match_id: Some(rooms[2].0),
        ruleset: None,
        max_seats: Some(2),
    })
    .await;
    assert_eq!(p.expect_error().await, "invalid_join");
    p.ping(1).await;
}

#[actix_rt::test]
async fn protocol_1_bincode_clients_get_their_layout_and_their_joins_still_work() {
    let app = spawn_app();
    let session = app.new_session().await;
    // No `protocol` in the query: a protocol-1 client.
    let query = format!("token={}&encoding=bincode", session.token);
    let mut old = WsClient::connect_query(&app.url(""), &query, Encoding::Bincode)
        .await
        .expect("connects");
    let welcome = ServerMsg::Welcome {
        player_id: session.player_id,
        node_id: "test-node".into(),
        heartbeat_ms: app.config.engine.heartbeat_ms,
        protocol: PROTOCOL_VERSION,
    };
    assert_eq!(old.next_binary().await, encode_bincode_v1(&welcome));
    // A join as protocol 1 wrote it: without the max_seats byte.
    let id = app.create_match("sandbox").await;
    let mut join = encode_client_bincode(&ClientMsg::Join {
        match_id: Some(id),
        ruleset: None,
        max_seats: None,
    });
    join.pop(); // the trailing `None` of max_seats
    old.send_binary(join).await;
    let joined = old.next_binary().await;
    assert_eq!(joined.first(), Some(&1), "variant 1 is joined: {joined:?}");
    // Its own join event (seq 1), laid out as protocol 1 laid it out.
    let event = ServerMsg::Event {
        match_id: id,
        seq: 1,
        seat: None,
        event: Event::PlayerJoined {
            seat: 0,
            player_id: session.player_id,
        },
        client_seq: None,
    };
    assert_eq!(old.next_binary().await, encode_bincode_v1(&event));

    // An unknown protocol version is refused before the upgrade.
    let (status, body) = app
        .get_json(&format!("/v1/ws?token={}&protocol=3", session.token))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_protocol"))
    );
}
