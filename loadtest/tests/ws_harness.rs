//! The WebSocket harness tested end to end: against a real node it finds no
//! missing event; against a broken server that skips one event it reports
//! exactly that.

use std::net::TcpListener as StdListener;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use loadtest::stages::Stages;
use loadtest::ws::{self, Scenario, WsOpts};
use matchd::config::Config;
use matchd::startup::Application;
use matchd_actors::Catalog;
use matchd_protocol::codec::{decode_json, encode_json};
use matchd_protocol::{ClientMsg, Event, SeatView, ServerMsg, State};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A real node on a free port, in its own thread and actix System.
fn spawn_node() -> u16 {
    let mut config =
        Config::from_map(&[("MATCHD_BIND".to_string(), "127.0.0.1:0".to_string())].into())
            .expect("config");
    config.workers = 1;
    config.engine.arbiters = 1;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let app = Application::build(config, Catalog::builtin()).expect("node builds");
            tx.send(app.port()).expect("test alive");
            let _ = app.run_until_stopped().await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("node started")
}

fn opts(port: u16, clients: usize) -> WsOpts {
    WsOpts {
        url: format!("http://127.0.0.1:{port}"),
        scenario: Scenario::Fanout,
        stages: Stages::flat(clients, Duration::from_millis(1500)),
        room: 4,
        rate: 40.0,
        threads: 1,
        progress: false,
        ..WsOpts::default()
    }
}

#[test]
fn a_short_run_against_a_real_node_misses_nothing() {
    let port = spawn_node();
    let r = ws::run(opts(port, 8)).expect("run");
    assert_eq!(r.connects, 8, "{}", r.table());
    assert_eq!(r.connect_failures, 0);
    assert!(r.actions > 0 && r.delivered_events > 0, "{}", r.table());
    assert_eq!(
        (r.missing_events, r.duplicate_events, r.out_of_order_events),
        (0, 0, 0),
        "{}",
        r.table()
    );
    assert_eq!(r.errors, 0, "{}", r.table());
    assert!(r.action_latency.count > 0);
}

#[test]
fn a_short_tactics_run_plays_and_stays_ordered() {
    let port = spawn_node();
    let mut o = opts(port, 4);
    o.scenario = Scenario::Tactics;
    let r = ws::run(o).expect("run");
    assert_eq!(r.errors, 0, "{}", r.table());
    assert!(r.actions > 0, "bots placed cards: {}", r.table());
}

#[test]
fn clients_that_drop_and_resume_miss_nothing() {
    let port = spawn_node();
    let mut o = opts(port, 8);
    o.scenario = Scenario::Resume;
    o.resume_every = Duration::from_millis(300);
    let r = ws::run(o).expect("run");
    assert!(r.resumes > 0, "clients resumed: {}", r.table());
    assert_eq!(r.resume_failures, 0, "{}", r.table());
    assert_eq!(
        (r.missing_events, r.duplicate_events, r.out_of_order_events),
        (0, 0, 0),
        "{}",
        r.table()
    );
    assert_eq!(r.errors, 0, "{}", r.table());
}

/// A fake node that speaks the protocol but skips seq 3 of every match.
async fn broken_node(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut head = [0u8; 32];
            let n = stream.peek(&mut head).await.unwrap_or(0);
            let line = String::from_utf8_lossy(&head[..n]).to_string();
            let reply = |body: &str| {
                format!(
                    "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            if line.starts_with("POST /v1/sessions") {
                drain_request(&mut stream).await;
                let _ = stream
                    .write_all(reply(r#"{"token":"t","player_id":1}"#).as_bytes())
                    .await;
                return;
            }
            if line.starts_with("POST /v1/matches") {
                drain_request(&mut stream).await;
                let _ = stream
                    .write_all(reply(r#"{"match_id":7}"#).as_bytes())
                    .await;
                return;
            }
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let mut seq = 0u64;
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                let out = match decode_json(t.as_str()) {
                    Ok(ClientMsg::Join { .. }) => ServerMsg::Joined {
                        match_id: 7,
                        ruleset: "sandbox".into(),
                        seat: 0,
                        seq,
                        state: State::Sandbox {
                            width: 5,
                            height: 3,
                            cells: vec![0; 15],
                            seats: Vec::<SeatView>::new(),
                        },
                    },
                    Ok(ClientMsg::Action { .. }) => {
                        seq += 1;
                        if seq == 3 {
                            seq += 1; // the bug: event 3 never goes out
                        }
                        ServerMsg::Event {
                            match_id: 7,
                            seq,
                            seat: Some(0),
                            event: Event::Marked {
                                x: 0,
                                y: 0,
                                count: 1,
                            },
                            client_seq: None,
                        }
                    }
                    _ => continue,
                };
                if ws.send(Message::text(encode_json(&out))).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn drain_request(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
}

#[test]
fn a_server_that_drops_an_event_is_caught() {
    let std_listener = StdListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let port = std_listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).expect("listener");
            broken_node(listener).await;
        });
    });
    let mut o = opts(port, 1);
    o.room = 1;
    let r = ws::run(o).expect("run");
    assert!(r.actions >= 3, "{}", r.table());
    assert_eq!(r.missing_events, 1, "{}", r.table());
    assert!(r.errors >= 1 && r.error_rate > 0.0);
}
