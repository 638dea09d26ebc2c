use matchd_actors::rules::{Outcome, Rejection};
use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg};

use crate::doubles::Scripted;
use crate::support::spawn_app_with;

/// A ruleset with a bug: marking (9, 9) panics.
fn boom() -> Scripted {
    Scripted::new("boom", |action| match action {
        Action::Mark { x: 9, y: 9 } => panic!("boom"),
        &Action::Mark { x, y } => Ok(Outcome::event(Event::Marked { x, y, count: 1 })),
        _ => Err(Rejection::new("unknown_action", "no")),
    })
}

#[actix_rt::test]
async fn a_panicking_ruleset_ends_its_match_cleanly_and_nothing_else() {
    let app = spawn_app_with(|_| {}, Catalog::builtin().with(boom()));
    let doomed = app.create_match("boom").await;
    let healthy = app.create_match("sandbox").await;

    let mut a = app.player(Encoding::Json).await;
    let mut b = app.player(Encoding::Bincode).await;
    let mut c = app.player(Encoding::Json).await;
    assert!(matches!(a.join(doomed).await, ServerMsg::Joined { .. }));
    assert!(matches!(b.join(doomed).await, ServerMsg::Joined { .. }));
    assert!(matches!(c.join(healthy).await, ServerMsg::Joined { .. }));

    a.send(&ClientMsg::Action {
        client_seq: 1,
        action: Action::Mark { x: 1, y: 1 },
    })
    .await;
    a.send(&ClientMsg::Action {
        client_seq: 2,
        action: Action::Mark { x: 9, y: 9 },
    })
    .await;
    for p in [&mut a, &mut b] {
        let (reason, winner) = p
            .recv_until(|m| match m {
                ServerMsg::Ended { result, .. } => Some((result.reason.clone(), result.winner)),
                _ => None,
            })
            .await;
        assert_eq!((reason.as_str(), winner), ("internal_error", None));
    }
    // The players are free again and the node still serves.
    a.send(&ClientMsg::Action {
        client_seq: 3,
        action: Action::Mark { x: 1, y: 1 },
    })
    .await;
    assert_eq!(a.expect_error().await, "not_in_match");
    c.send(&ClientMsg::Action {
        client_seq: 1,
        action: Action::Mark { x: 2, y: 2 },
    })
    .await;
    let count = c
        .recv_until(|m| match m {
            ServerMsg::Event {
                event: Event::Marked { count, .. },
                ..
            } => Some(*count),
            _ => None,
        })
        .await;
    assert_eq!(count, 1);
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200);

    // The crashed match leaves the directory and is counted.
    let mut gone = false;
    for _ in 0..100 {
        if app.get_json(&format!("/v1/matches/{doomed}")).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "crashed match removed from the directory");
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("matchd_match_crashes_total{ruleset=\"boom\"}")),
        "{metrics}"
    );
    // A new match of the same ruleset works.
    let again = app.create_match("boom").await;
    assert!(matches!(a.join(again).await, ServerMsg::Joined { .. }));
}
