use std::time::{Duration, Instant};

use awc::ws::CloseCode;
use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{Event, ServerMsg};

use crate::support::spawn_app_with;

#[actix_rt::test]
async fn a_silent_client_is_closed_within_the_timeout_and_its_seat_marked_disconnected() {
    let app = spawn_app_with(
        |c| {
            c.engine.heartbeat_ms = 100;
            c.engine.client_timeout_ms = 600;
        },
        Catalog::builtin(),
    );
    let id = app.create_match("sandbox").await;
    let mut live = app.player(Encoding::Json).await;
    assert!(matches!(
        live.join(id).await,
        ServerMsg::Joined { seat: 0, .. }
    ));

    let mut silent = app.player(Encoding::Json).await;
    assert!(matches!(
        silent.join(id).await,
        ServerMsg::Joined { seat: 1, .. }
    ));
    silent.answer_pings = false;
    let since = Instant::now();
    // The live client keeps reading (and so answering pings) while the
    // silent one waits to be dropped.
    let (code, ()) = futures_util::join!(
        async {
            let code = silent.expect_close().await;
            (code, since.elapsed())
        },
        live.recv_until(|m| {
            matches!(
                m,
                ServerMsg::Event {
                    event: Event::PlayerDisconnected { seat: 1 },
                    ..
                }
            )
            .then_some(())
        })
    );
    let (code, took) = code;
    assert_eq!(code, Some(CloseCode::Away));
    let limit =
        Duration::from_millis(app.config.engine.client_timeout_ms + app.config.engine.heartbeat_ms);
    assert!(
        took <= limit + Duration::from_secs(2),
        "closed after {took:?}, limit {limit:?}"
    );
    // The live client answered every ping meanwhile and is still connected.
    live.ping(1).await;
}

#[actix_rt::test]
async fn a_dead_clients_seat_is_freed_after_heartbeat_timeout_and_grace() {
    let app = spawn_app_with(
        |c| {
            c.engine.heartbeat_ms = 100;
            c.engine.client_timeout_ms = 400;
            c.engine.seat_grace_ms = 300;
        },
        Catalog::builtin(),
    );
    let id = app.create_match("sandbox").await;
    let mut live = app.player(Encoding::Json).await;
    assert!(matches!(live.join(id).await, ServerMsg::Joined { .. }));
    let mut dead = app.player(Encoding::Json).await;
    assert!(matches!(
        dead.join(id).await,
        ServerMsg::Joined { seat: 1, .. }
    ));
    dead.answer_pings = false;
    // Disconnected at the heartbeat timeout, then given up after the grace.
    let (_, ()) = futures_util::join!(dead.expect_close(), async {
        let mut disconnected = false;
        live.recv_until(|m| match m {
            ServerMsg::Event {
                event: Event::PlayerDisconnected { seat: 1 },
                ..
            } => {
                disconnected = true;
                None
            }
            ServerMsg::Event {
                event: Event::PlayerLeft { seat: 1 },
                ..
            } => {
                assert!(disconnected, "left only after being disconnected");
                Some(())
            }
            _ => None,
        })
        .await
    });
    // The seat is free for someone else.
    let mut next = app.player(Encoding::Json).await;
    assert!(matches!(
        next.join(id).await,
        ServerMsg::Joined { seat: 1, .. }
    ));
}
