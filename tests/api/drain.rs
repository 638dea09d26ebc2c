//! Draining a node for a deploy: no new matches or players, every client
//! told, `/ready` failing, matches under way going on, and the node stopping
//! once nobody is connected to a match.

use matchd::config::Secret;
use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{ClientMsg, ServerMsg};

use crate::support::{eventually, spawn_app, spawn_app_with, TestApp, WAIT};

async fn drain(app: &TestApp, key: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = app.client().post(app.url("/admin/drain"));
    if let Some(k) = key {
        req = req.insert_header(("Authorization", format!("Bearer {k}")));
    }
    let mut res = req.send().await.expect("POST /admin/drain");
    let body = res.body().await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[actix_rt::test]
async fn admin_drain_needs_the_key_and_is_off_without_one() {
    let app = spawn_app();
    let (status, body) = drain(&app, Some("anything")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("admin_disabled"))
    );

    let app = spawn_app_with(
        |c| c.admin_key = Some(Secret("k3y".into())),
        Catalog::builtin(),
    );
    let (status, body) = drain(&app, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("bad_admin_key"))
    );
    let (status, _) = drain(&app, Some("k3x")).await;
    assert_eq!(status, 401);
    let (status, _) = app.get_json("/ready").await;
    assert_eq!(status, 200, "a refused drain changes nothing");
}

#[actix_rt::test]
async fn a_drain_finishes_running_matches_refuses_new_ones_and_stops_the_node() {
    let app = spawn_app_with(
        |c| {
            c.admin_key = Some(Secret("k3y".into()));
            c.drain_timeout_ms = 30_000;
        },
        Catalog::builtin(),
    );
    let id = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    assert!(matches!(a.join(id).await, ServerMsg::Joined { .. }));

    let (status, body) = drain(&app, Some("k3y")).await;
    assert_eq!((status, body["draining"].as_bool()), (202, Some(true)));
    let (status, body) = app.get_json("/ready").await;
    assert_eq!((status, body["draining"].as_bool()), (503, Some(true)));

    // Every client hears it from its next heartbeat.
    let retry = a
        .recv_until(|m| match m {
            ServerMsg::Draining { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        })
        .await;
    assert!(retry > 0);

    // Nothing new starts here...
    let mut b = app.player(Encoding::Bincode).await;
    assert_eq!(
        match b.join(id).await {
            ServerMsg::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        },
        "draining"
    );
    assert_eq!(
        match b.quick_join("sandbox").await {
            ServerMsg::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        },
        "draining"
    );
    let (status, body) = app
        .post_json("/v1/matches", serde_json::json!({ "ruleset": "sandbox" }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("draining"))
    );

    // ...but the match under way goes on.
    a.mark(1).await;

    // Once its last player leaves, the node stops by itself.
    a.send(&ClientMsg::Leave).await;
    a.recv_until(|m| matches!(m, ServerMsg::Left { .. }).then_some(()))
        .await;
    eventually("the drained node to stop", WAIT, || async {
        let health = app.client().get(app.url("/health")).send().await;
        health.is_err().then_some(())
    })
    .await;
}

async fn admin(app: &TestApp, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut res = app
        .client()
        .post(app.url(path))
        .insert_header(("Authorization", "Bearer k3y"))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_string())
        .await
        .expect("POST");
    let body = res.body().await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Without Redis the control endpoints act on this node alone.
#[actix_rt::test]
async fn operators_kick_end_and_broadcast_on_a_lone_node() {
    let app = spawn_app_with(
        |c| c.admin_key = Some(Secret("k3y".into())),
        Catalog::builtin(),
    );
    let id = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    assert!(matches!(a.join(id).await, ServerMsg::Joined { .. }));
    let mut b = app.player(Encoding::Bincode).await;
    let other = app.create_match("sandbox").await;
    assert!(matches!(b.join(other).await, ServerMsg::Joined { .. }));

    for (path, body) in [
        ("/admin/broadcast", r#"{"message":""}"#),
        ("/admin/broadcast", "not json"),
        ("/admin/kick", r#"{"player":1}"#),
        ("/admin/matches/0/end", ""),
    ] {
        let (status, res) = admin(&app, path, body).await;
        assert_eq!(status, 400, "{path} {body}: {res}");
    }

    let (status, res) = admin(&app, "/admin/broadcast", r#"{"message":"hi"}"#).await;
    assert_eq!(status, 202, "{res}");
    assert_eq!(
        (res["published"].as_bool(), res["reached"].as_u64()),
        (Some(false), Some(2))
    );
    for p in [&mut a, &mut b] {
        let notice = p
            .recv_until(|m| match m {
                ServerMsg::Notice { message } => Some(message.clone()),
                _ => None,
            })
            .await;
        assert_eq!(notice, "hi");
    }

    let (status, _) = admin(&app, &format!("/admin/matches/{other}/end"), "").await;
    assert_eq!(status, 202);
    let result = b.recv_until(crate::support::ended_result).await;
    assert_eq!(result.reason, "ended_by_operator");

    let body = format!(r#"{{"player_id":{}}}"#, a.player_id);
    let (status, res) = admin(&app, "/admin/kick", &body).await;
    assert_eq!((status, res["reached"].as_u64()), (202, Some(1)));
    assert_eq!(a.expect_error().await, "kicked");
    assert_eq!(a.expect_close().await, Some(awc::ws::CloseCode::Policy));
    // b, whose match ended, is still connected.
    b.ping(7).await;
}

/// At the drain deadline a client still playing is told `node_stopping`
/// and the socket closes with 1001 (going away), so it reconnects
/// elsewhere and resumes; then the node stops.
#[actix_rt::test]
async fn clients_left_at_the_drain_deadline_hear_node_stopping_and_1001() {
    let app = spawn_app_with(
        |c| {
            c.admin_key = Some(Secret("k3y".into()));
            c.drain_timeout_ms = 300;
        },
        Catalog::builtin(),
    );
    let id = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    assert!(matches!(a.join(id).await, ServerMsg::Joined { .. }));
    let (status, _) = drain(&app, Some("k3y")).await;
    assert_eq!(status, 202);
    // (The deadline comes before the first heartbeat's `draining`.)
    let code = a
        .recv_until(|m| match m {
            ServerMsg::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(code, "node_stopping");
    assert_eq!(a.expect_close().await, Some(awc::ws::CloseCode::Away));
    eventually("the drained node to stop", WAIT, || async {
        let health = app.client().get(app.url("/health")).send().await;
        health.is_err().then_some(())
    })
    .await;
}
