//! Backpressure: a full match mailbox answers `busy`; a client that does not
//! read is dropped once its backlog passes the byte bound. Neither disturbs
//! another match.

use std::time::Duration;

use matchd_actors::rules::Outcome;
use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::{Action, ClientMsg, Event, ServerMsg};

use crate::doubles::Scripted;
use crate::support::{spawn_app_with, Closed};

/// A test double whose `mark` takes `delay` (blocking its arbiter, as a
/// too-expensive ruleset would) and answers with an event of `payload` bytes.
fn heavy(name: &'static str, delay: Duration, payload: usize) -> Scripted {
    Scripted::new(name, move |_| {
        std::thread::sleep(delay);
        Ok(Outcome::event(Event::Phase {
            phase: "x".repeat(payload),
        }))
    })
}

fn mark(client_seq: u64) -> ClientMsg {
    ClientMsg::Action {
        client_seq,
        action: Action::Mark { x: 1, y: 1 },
    }
}

#[actix_rt::test]
async fn a_full_match_mailbox_answers_busy_and_other_matches_go_on() {
    let slow = heavy("slow", Duration::from_millis(20), 1);
    let app = spawn_app_with(
        |c| c.engine.match_mailbox = 2,
        Catalog::builtin().with(slow),
    );
    // Round-robin placement puts the two matches on different arbiters.
    let jammed = app.create_match("slow").await;
    let healthy = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    let mut c = app.player(Encoding::Bincode).await;
    assert!(matches!(a.join(jammed).await, ServerMsg::Joined { .. }));
    assert!(matches!(c.join(healthy).await, ServerMsg::Joined { .. }));
    a.recv().await; // player_joined

    let sent = 40u64;
    for seq in 1..=sent {
        a.send(&mark(seq)).await;
    }
    c.mark(1).await;

    // Every action gets exactly one answer: its event or `busy`.
    let (mut events, mut busy) = (0u64, 0u64);
    let mut last_seq = None;
    while events + busy < sent {
        match a.recv().await {
            ServerMsg::Event { seq, .. } => {
                if let Some(prev) = last_seq {
                    assert_eq!(seq, prev + 1, "events stay gapless");
                }
                last_seq = Some(seq);
                events += 1;
            }
            ServerMsg::Rejected { code, .. } => {
                assert_eq!(code, "busy");
                busy += 1;
            }
            other => panic!("unexpected {other:?} after {events} events and {busy} busy"),
        }
    }
    assert!(busy > 0, "a mailbox of 2 behind a 20 ms action must fill");
    assert!(events >= 2, "what fitted was played");
    a.ping(7).await;
    c.mark(2).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("matchd_mailbox_send_failures_total{target=\"match\",reason=\"full\"}")),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn a_client_that_stops_reading_is_closed_with_1008_and_nobody_else_is() {
    let blob = heavy("blob", Duration::ZERO, 60 * 1024);
    let app = spawn_app_with(
        |c| {
            c.engine.max_outbound_bytes = 256 * 1024;
            // The reader-less client must be caught by its backlog, not by
            // a heartbeat timeout.
            c.engine.client_timeout_ms = 120_000;
        },
        Catalog::builtin().with(blob),
    );
    let flood = app.create_match("blob").await;
    let healthy = app.create_match("sandbox").await;
    let mut a = app.player(Encoding::Json).await;
    let mut b = app.player(Encoding::Json).await;
    let mut c = app.player(Encoding::Json).await;
    assert!(matches!(a.join(flood).await, ServerMsg::Joined { .. }));
    let b_seat = match b.join(flood).await {
        ServerMsg::Joined { seat, .. } => seat,
        other => panic!("expected joined, got {other:?}"),
    };
    assert!(matches!(c.join(healthy).await, ServerMsg::Joined { .. }));
    // From here on b reads nothing. a plays in lock step, reading everything.
    let mut dropped = false;
    for seq in 1..=2000u64 {
        a.send(&mark(seq)).await;
        let saw_drop = a
            .recv_until(|m| match m {
                ServerMsg::Event {
                    event: Event::PlayerDisconnected { seat },
                    ..
                } if *seat == b_seat => Some(true),
                ServerMsg::Event {
                    seat: Some(_),
                    event: Event::Phase { .. },
                    ..
                } => Some(false),
                _ => None,
            })
            .await;
        if saw_drop {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the non-reading client was never dropped");
    c.mark(1).await;
    a.send(&mark(9999)).await;
    a.recv_until(|m| matches!(m, ServerMsg::Event { seat: Some(_), .. }).then_some(()))
        .await;

    // b finally reads: the events that fitted, then why, then the close.
    let mut why = None;
    let close = loop {
        match b.next().await {
            Ok(ServerMsg::Error { code, .. }) => why = Some(code),
            Ok(_) => {}
            Err(Closed::Code(code)) => break code,
            Err(Closed::Eof) => break None,
        }
    };
    assert_eq!(why.as_deref(), Some("slow_consumer"));
    assert_eq!(close, Some(awc::ws::CloseCode::Policy));
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("matchd_slow_client_disconnects_total")),
        "{metrics}"
    );
    // Caught by the byte bound, long before its 1024-message mailbox filled.
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "matchd_mailbox_send_failures_total{target=\"connection\",reason=\"backlog\"}"
        )),
        "{metrics}"
    );
}
