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
        .post_json_as_player("/v1/matches", serde_json::json!({ "ruleset": "sandbox" }))
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

/// Writes a request whose body never completes (`declared` bytes promised,
/// `sent` given) and returns the status line and body of the answer.
fn stalled_request(base: &str, head: &str, declared: usize, sent: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{}",
        "{".repeat(sent)
    );
    tcp.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the server has answered (it keeps the connection open).
    while !String::from_utf8_lossy(&answer).contains("\"error\"") {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// [`stalled_request`] off the test's runtime thread.
async fn stalled(app: &TestApp, head: &'static str, declared: usize, sent: usize) -> (u16, String) {
    let base = app.url("");
    actix_web::rt::task::spawn_blocking(move || stalled_request(&base, head, declared, sent))
        .await
        .expect("joined")
}

/// The admin key is checked before any of the body is read; bodies are
/// bounded in size and in time; operator text and made-up methods never
/// become metric label values.
#[actix_rt::test]
async fn admin_bodies_are_read_after_the_key_bounded_and_timed_out() {
    let app = spawn_app_with(
        |c| {
            c.admin_key = Some(Secret("k3y".into()));
            c.body_timeout_ms = 300;
        },
        Catalog::builtin(),
    );
    // A wrong key is refused while the promised body never arrives.
    let (status, text) = stalled(
        &app,
        "POST /admin/kick HTTP/1.1\r\nAuthorization: Bearer nope",
        1_000_000,
        10,
    )
    .await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("bad_admin_key"), "{text}");
    // The right key, a body that stalls: 408 once the timeout passed.
    let (status, text) = stalled(
        &app,
        "POST /admin/kick HTTP/1.1\r\nAuthorization: Bearer k3y",
        100,
        10,
    )
    .await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("body_timeout"), "{text}");

    // Too large, or a reason too long: refused.
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(9000));
    let (status, res) = admin(&app, "/admin/broadcast", &big).await;
    assert_eq!(
        (status, res["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let long = format!(r#"{{"player_id":1,"reason":"{}"}}"#, "r".repeat(300));
    let (status, res) = admin(&app, "/admin/kick", &long).await;
    assert_eq!(
        (status, res["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );

    // An operator's reason reaches the players, not the metric labels.
    let id = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    assert!(matches!(a.join(id).await, ServerMsg::Joined { .. }));
    let (status, _) = admin(
        &app,
        &format!("/admin/matches/{id}/end"),
        r#"{"reason":"free-text-7"}"#,
    )
    .await;
    assert_eq!(status, 202);
    let result = a.recv_until(crate::support::ended_result).await;
    assert_eq!(result.reason, "free-text-7");
    let res = app
        .client()
        .request(
            awc::http::Method::from_bytes(b"BREW").expect("method"),
            app.url("/health"),
        )
        .send()
        .await
        .expect("BREW");
    assert!(res.status().is_client_error() || res.status().is_success());
    let metrics = eventually("the match end to be counted", WAIT, || async {
        let m = app.metrics().await;
        m.contains("reason=\"operator\"").then_some(m)
    })
    .await;
    assert!(
        !metrics.contains("free-text-7"),
        "operator text became a label"
    );
    assert!(!metrics.contains("BREW"), "a made-up method became a label");
    assert!(
        metrics.contains("method=\"other\""),
        "made-up methods count as other"
    );
}
