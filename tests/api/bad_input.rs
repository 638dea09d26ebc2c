use awc::ws::CloseCode;
use matchd_protocol::codec::{encode_client_bincode, Encoding};
use matchd_protocol::{Action, ClientMsg, Event, Query, ServerMsg};

use crate::support::spawn_app;

#[actix_rt::test]
async fn every_bad_frame_gets_an_error_code_and_the_connection_stays_open() {
    let app = spawn_app();
    // A bystander match that must not notice anything.
    let other = app.create_match("sandbox").await;
    let mut bystander = app.player(Encoding::Json).await;
    assert!(matches!(
        bystander.join(other).await,
        ServerMsg::Joined { .. }
    ));

    let mut p = app.player(Encoding::Json).await;
    let text_cases: &[(&str, &str)] = &[
        ("{oops", "malformed_json"),
        ("", "malformed_json"),
        ("42", "invalid_message"),
        (r#"{"match_id":1}"#, "missing_type"),
        (r#"{"type":"teleport"}"#, "unknown_type"),
        (r#"{"type":"ping"}"#, "invalid_message"),
        (r#"{"type":"action","client_seq":1}"#, "invalid_message"),
        (
            r#"{"type":"action","client_seq":1,"action":{"kind":"fly"}}"#,
            "invalid_message",
        ),
        (r#"{"type":"join"}"#, "invalid_join"),
        (
            r#"{"type":"join","match_id":1,"ruleset":"sandbox"}"#,
            "invalid_join",
        ),
        (r#"{"type":"join","match_id":999}"#, "match_not_found"),
        (r#"{"type":"join","ruleset":"chess"}"#, "unknown_ruleset"),
        (
            r#"{"type":"action","client_seq":1,"action":{"kind":"mark","x":0,"y":0}}"#,
            "not_in_match",
        ),
        (
            r#"{"type":"query","client_seq":1,"query":{"kind":"state"}}"#,
            "not_in_match",
        ),
        (r#"{"type":"leave"}"#, "not_in_match"),
    ];
    for (i, (text, code)) in text_cases.iter().enumerate() {
        p.send_text(text).await;
        assert_eq!(p.expect_error().await, *code, "frame {text:?}");
        p.ping(i as u64).await;
    }

    // Garbage binary frames are answered in binary.
    p.encoding = Encoding::Bincode;
    for (i, garbage) in [vec![0xff, 0xfe, 0xfd], vec![], vec![4, 0, 0, 0, 0, 0, 0]]
        .into_iter()
        .enumerate()
    {
        p.send_binary(garbage).await;
        assert_eq!(p.expect_error().await, "malformed_binary");
        p.ping(100 + i as u64).await;
    }
    // Trailing bytes after a valid message.
    let mut bytes = encode_client_bincode(&ClientMsg::Ping { nonce: 1 });
    bytes.push(0);
    p.send_binary(bytes).await;
    assert_eq!(p.expect_error().await, "malformed_binary");

    // In a match: invalid actions are `rejected`, the match goes on.
    p.encoding = Encoding::Json;
    let id = app.create_match("sandbox").await;
    assert!(matches!(p.join(id).await, ServerMsg::Joined { .. }));
    p.send(&ClientMsg::Join {
        match_id: Some(other),
        ruleset: None,
        max_seats: None,
    })
    .await;
    assert_eq!(
        p.recv_until(|m| match m {
            ServerMsg::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await,
        "already_in_match"
    );
    for (seq, action, code) in [
        (1, Action::Mark { x: 9, y: 0 }, "out_of_board"),
        (2, Action::Ready, "unknown_action"),
    ] {
        p.send(&ClientMsg::Action {
            client_seq: seq,
            action,
        })
        .await;
        let got = p
            .recv_until(|m| match m {
                ServerMsg::Rejected {
                    client_seq, code, ..
                } => Some((*client_seq, code.clone())),
                _ => None,
            })
            .await;
        assert_eq!(got, (seq, code.to_string()));
    }
    p.send(&ClientMsg::Query {
        client_seq: 3,
        query: Query::ValidCells { card: 1 },
    })
    .await;
    let got = p
        .recv_until(|m| match m {
            ServerMsg::Rejected {
                client_seq, code, ..
            } => Some((*client_seq, code.clone())),
            _ => None,
        })
        .await;
    assert_eq!(got, (3, "unknown_query".to_string()));
    p.send(&ClientMsg::Action {
        client_seq: 4,
        action: Action::Mark { x: 1, y: 1 },
    })
    .await;
    let count = p
        .recv_until(|m| match m {
            ServerMsg::Event {
                event: Event::Marked { count, .. },
                ..
            } => Some(*count),
            _ => None,
        })
        .await;
    assert_eq!(count, 1, "the match still works after bad input");

    // The bystander's match was never disturbed.
    bystander
        .send(&ClientMsg::Action {
            client_seq: 1,
            action: Action::Mark { x: 0, y: 0 },
        })
        .await;
    let (seq, count) = bystander
        .recv_until(|m| match m {
            ServerMsg::Event {
                seq,
                event: Event::Marked { count, .. },
                ..
            } => Some((*seq, *count)),
            _ => None,
        })
        .await;
    assert_eq!(count, 1);
    assert_eq!(seq, 2, "one join event, then this mark");
}

#[actix_rt::test]
async fn an_oversized_frame_closes_with_1009_and_nothing_else_breaks() {
    let app = spawn_app_small_frames();
    let mut p = app.player(Encoding::Json).await;
    let big = format!(
        r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
        "x".repeat(5000)
    );
    p.send_text(&big).await;
    assert_eq!(p.expect_close().await, Some(CloseCode::Size));

    // Continuation frames are capped as a whole message too.
    let mut q = app.player(Encoding::Json).await;
    q.send_fragmented(&"y".repeat(3000), 1500).await;
    assert_eq!(q.expect_close().await, Some(CloseCode::Size));

    let mut ok = app.player(Encoding::Json).await;
    ok.ping(7).await;
    // A fragmented message under the limit is reassembled and answered.
    ok.send_fragmented(r#"{"type":"ping","nonce":8}"#, 5).await;
    assert_eq!(ok.recv().await, ServerMsg::Pong { nonce: 8 });
}

fn spawn_app_small_frames() -> crate::support::TestApp {
    crate::support::spawn_app_with(
        |c| {
            c.engine.max_frame_bytes = 4096;
            c.engine.max_message_bytes = 2048;
        },
        matchd_actors::Catalog::builtin(),
    )
}
