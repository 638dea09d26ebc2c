//! `spawn_app()` starts a real node on port 0 in its own thread and actix
//! System (as a separate process would be), and typed helpers talk to it over
//! real HTTP and WebSocket connections.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_codec::Framed;
use actix_web::dev::ServerHandle;
use awc::ws::{CloseCode, Codec, Frame, Message};
use awc::BoxedSocket;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use matchd::config::Config;
use matchd::routes::{MatchCreated, SessionCreated};
use matchd::startup::Application;
use matchd_actors::Catalog;
use matchd_protocol::codec::{
    decode_server_bincode, decode_server_json, encode_client_bincode, encode_client_json, Encoding,
};
use matchd_protocol::{ClientMsg, ServerMsg};

/// How long a helper waits for something the server must send.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub base: String,
    /// The admin listener (`MATCHD_ADMIN_BIND`), if the test asked for one.
    pub admin_base: Option<String>,
    handle: ServerHandle,
    system: actix::System,
    pub config: Config,
    /// The node's data directory (journal), removed with the app unless the
    /// test chose its own.
    _data_dir: Option<TempDir>,
    /// The session [`TestApp::post_json_as_player`] creates matches with,
    /// made on first use (so later calls need no session, and no Redis).
    creator: std::sync::Mutex<Option<String>>,
}

impl TestApp {
    /// Stops the node gracefully and waits until its server has stopped.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command at once; the server thread then exits.
        drop(self.handle.stop(false));
        self.system.stop();
    }
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "matchd-test-{name}-{}-{:x}",
            std::process::id(),
            matchd_actors::util::random_u64()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A node with the built-in rulesets and test-friendly timings.
pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Catalog::builtin())
}

/// A node with a tweaked configuration and a chosen set of rulesets.
pub fn spawn_app_with(tweak: impl FnOnce(&mut Config), catalog: Catalog) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config =
        Config::from_map(&[("MATCHD_BIND".to_string(), "127.0.0.1:0".to_string())].into())
            .expect("test config");
    config.workers = 1;
    config.engine.arbiters = 2;
    config.engine.node_id = "test-node".into();
    // Every node gets its own journal, never ./data of the working tree.
    let data_dir = TempDir::new("data");
    config.persist.data_dir = data_dir.path().to_path_buf();
    tweak(&mut config);
    let own_dir = config.persist.data_dir == data_dir.path();
    let (tx, rx) = mpsc::channel();
    let cfg = config.clone();
    std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let app = Application::build(cfg, catalog).expect("server builds");
            tx.send((
                app.port(),
                app.admin_port(),
                app.handle(),
                actix::System::current(),
            ))
            .expect("test alive");
            let _ = app.run_until_stopped().await;
        });
    });
    let (port, admin_port, handle, system) = rx.recv_timeout(WAIT).expect("server started");
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        admin_base: admin_port.map(|p| format!("http://127.0.0.1:{p}")),
        handle,
        system,
        config,
        _data_dir: own_dir.then_some(data_dir),
        creator: std::sync::Mutex::default(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn client(&self) -> awc::Client {
        awc::Client::builder().timeout(WAIT).finish()
    }

    /// `GET path` -> (status, JSON body).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let mut res = self.client().get(self.url(path)).send().await.expect("GET");
        let status = res.status().as_u16();
        let body = res.body().await.expect("body");
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// `POST path` with a JSON body -> (status, JSON body).
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let mut res = self
            .client()
            .post(self.url(path))
            .send_json(&body)
            .await
            .expect("POST");
        let status = res.status().as_u16();
        let body = res.body().await.expect("body");
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn metrics(&self) -> String {
        let mut res = self
            .client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        String::from_utf8(res.body().limit(8 << 20).await.expect("body").to_vec()).expect("utf8")
    }

    pub async fn new_session(&self) -> SessionCreated {
        let (status, body) = self.post_json("/v1/sessions", serde_json::json!({})).await;
        assert_eq!(status, 201, "{body}");
        serde_json::from_value(body).expect("session body")
    }

    /// `POST path` with a JSON body, as a player with a session (one per
    /// app, made on first use).
    pub async fn post_json_as_player(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let cached = self.creator.lock().expect("lock").clone();
        let token = match cached {
            Some(t) => t,
            None => {
                let t = self.new_session().await.token;
                *self.creator.lock().expect("lock") = Some(t.clone());
                t
            }
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        self.post_json(&format!("{path}{sep}token={token}"), body)
            .await
    }

    pub async fn create_match(&self, ruleset: &str) -> u64 {
        let (status, body) = self
            .post_json_as_player("/v1/matches", serde_json::json!({ "ruleset": ruleset }))
            .await;
        assert_eq!(status, 201, "{body}");
        serde_json::from_value::<MatchCreated>(body)
            .expect("match body")
            .match_id
    }

    /// A new session and a WebSocket for it, past the `welcome` frame.
    /// A JSON WebSocket with `token`, past its `welcome`.
    pub async fn connect_as(&self, token: &str) -> WsClient {
        let mut ws = WsClient::connect(self, token, Encoding::Json).await;
        assert!(matches!(ws.recv().await, ServerMsg::Welcome { .. }));
        ws
    }

    pub async fn player(&self, encoding: Encoding) -> WsClient {
        let session = self.new_session().await;
        let mut ws = WsClient::connect(self, &session.token, encoding).await;
        match ws.recv().await {
            ServerMsg::Welcome { player_id, .. } => assert_eq!(player_id, session.player_id),
            other => panic!("expected welcome, got {other:?}"),
        }
        ws.player_id = session.player_id;
        ws
    }
}

/// For `recv_until`: the result of an `ended` frame.
pub fn ended_result(m: &ServerMsg) -> Option<matchd_protocol::MatchResult> {
    match m {
        ServerMsg::Ended { result, .. } => Some(result.clone()),
        _ => None,
    }
}

/// What a WebSocket helper got instead of a message.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(Option<CloseCode>),
    Eof,
}

pub struct WsClient {
    framed: Framed<BoxedSocket, Codec>,
    pub encoding: Encoding,
    pub player_id: u64,
    /// Answer server pings (a live client); false simulates a dead one.
    pub answer_pings: bool,
}

impl WsClient {
    pub async fn connect(app: &TestApp, token: &str, encoding: Encoding) -> Self {
        Self::connect_to(&app.base, token, encoding).await
    }

    /// Connects to a node at `base` (`http://host:port`), which may be
    /// another process.
    pub async fn connect_to(base: &str, token: &str, encoding: Encoding) -> Self {
        Self::try_connect_to(base, token, encoding)
            .await
            .expect("websocket connects")
    }

    /// Like [`WsClient::connect_to`], `None` when the node does not answer
    /// (a node that was killed). Speaks protocol 2.
    pub async fn try_connect_to(base: &str, token: &str, encoding: Encoding) -> Option<Self> {
        let query = format!("token={token}&encoding={}&protocol=2", encoding.as_str());
        Self::connect_query(base, &query, encoding).await
    }

    /// Connects with exactly `query` after `/v1/ws?` (a protocol-1 client
    /// leaves `protocol` out).
    pub async fn connect_query(base: &str, query: &str, encoding: Encoding) -> Option<Self> {
        let url = format!("{base}/v1/ws?{query}");
        let (_res, framed) = awc::Client::builder()
            .timeout(WAIT)
            .finish()
            .ws(url)
            .max_frame_size(1 << 20)
            .connect()
            .await
            .ok()?;
        Some(Self {
            framed,
            encoding,
            player_id: 0,
            answer_pings: true,
        })
    }

    /// Sends a message in this client's encoding.
    pub async fn send(&mut self, msg: &ClientMsg) {
        match self.encoding {
            Encoding::Json => self.send_text(&encode_client_json(msg)).await,
            Encoding::Bincode | Encoding::BincodeV1 => {
                self.send_binary(encode_client_bincode(msg)).await
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send text");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.framed
            .send(Message::Binary(Bytes::from(bytes)))
            .await
            .expect("send binary");
    }

    /// Sends `text` as one message split into continuation frames of `chunk` bytes.
    pub async fn send_fragmented(&mut self, text: &str, chunk: usize) {
        use actix_http::ws::Item;
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        let parts: Vec<Bytes> = bytes.chunks(chunk).map(Bytes::copy_from_slice).collect();
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let item = match i {
                0 => Item::FirstText(part),
                _ if i + 1 == n => Item::Last(part),
                _ => Item::Continue(part),
            };
            self.framed
                .send(Message::Continuation(item))
                .await
                .expect("send fragment");
        }
    }

    /// The next data frame (text or binary), undecoded, or why there is
    /// none; pings are answered (unless this client plays dead).
    async fn next_data(&mut self) -> Result<Frame, Closed> {
        // One deadline for the whole call: the server's pings must not keep
        // a wait for a message that never comes alive forever.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .expect("server sent nothing in time");
            match frame {
                None | Some(Err(_)) => return Err(Closed::Eof),
                Some(Ok(f @ (Frame::Text(_) | Frame::Binary(_)))) => return Ok(f),
                Some(Ok(Frame::Ping(p))) => {
                    if self.answer_pings {
                        let _ = self.framed.send(Message::Pong(p)).await;
                    }
                }
                Some(Ok(Frame::Close(reason))) => return Err(Closed::Code(reason.map(|r| r.code))),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next server message, or why there is none.
    pub async fn next(&mut self) -> Result<ServerMsg, Closed> {
        Ok(match self.next_data().await? {
            Frame::Text(b) => {
                let text = std::str::from_utf8(&b).expect("utf8 text frame");
                decode_server_json(text).expect("valid server json")
            }
            Frame::Binary(b) => decode_server_bincode(&b).expect("valid server bincode"),
            other => unreachable!("next_data returns data frames, not {other:?}"),
        })
    }

    /// The next data frame's bytes, undecoded; it must be a binary frame.
    pub async fn next_binary(&mut self) -> Vec<u8> {
        match self.next_data().await {
            Ok(Frame::Binary(b)) => b.to_vec(),
            other => panic!("a binary frame was expected, got {other:?}"),
        }
    }

    pub async fn recv(&mut self) -> ServerMsg {
        match self.next().await {
            Ok(m) => m,
            Err(c) => panic!("connection closed while a message was expected: {c:?}"),
        }
    }

    /// Receives until `pick` returns something, skipping other messages.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        loop {
            let msg = self.recv().await;
            if let Some(t) = pick(&msg) {
                return t;
            }
        }
    }

    /// Expects the server to close the connection; returns the close code.
    pub async fn expect_close(&mut self) -> Option<CloseCode> {
        loop {
            match self.next().await {
                Ok(_) => continue,
                Err(Closed::Code(code)) => return code,
                Err(Closed::Eof) => return None,
            }
        }
    }

    /// Round trip through the server: proves the connection is still open
    /// and that everything sent before has been processed.
    pub async fn ping(&mut self, nonce: u64) {
        self.send(&ClientMsg::Ping { nonce }).await;
        self.recv_until(|m| matches!(m, ServerMsg::Pong { nonce: n } if *n == nonce).then_some(()))
            .await;
    }

    pub async fn join(&mut self, match_id: u64) -> ServerMsg {
        self.send(&ClientMsg::Join {
            match_id: Some(match_id),
            ruleset: None,
            max_seats: None,
        })
        .await;
        self.recv().await
    }

    pub async fn quick_join(&mut self, ruleset: &str) -> ServerMsg {
        self.send(&ClientMsg::Join {
            match_id: None,
            ruleset: Some(ruleset.into()),
            max_seats: None,
        })
        .await;
        self.recv().await
    }

    /// Marks a sandbox cell and reads up to the resulting event; returns its `seq`.
    pub async fn mark(&mut self, client_seq: u64) -> u64 {
        self.send(&ClientMsg::Action {
            client_seq,
            action: matchd_protocol::Action::Mark { x: 1, y: 1 },
        })
        .await;
        self.recv_until(|m| match m {
            ServerMsg::Event {
                seq,
                event: matchd_protocol::Event::Marked { .. },
                ..
            } => Some(*seq),
            _ => None,
        })
        .await
    }

    /// Expects an `error` frame and returns its code.
    pub async fn expect_error(&mut self) -> String {
        match self.recv().await {
            ServerMsg::Error { code, .. } => code,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
}

/// Deploys `p`'s hand in the deploy phase the way a careful client does:
/// reads its hand from a `state` query, asks `valid_cells` for each card and
/// places it on the first cell, in two passes (a lancer needs an ally
/// first). A refused query must be `unknown_card` (the card was placed in
/// the first pass); a refused placement fails the test. `observe` sees every
/// message read. Returns the hand it started with and how many it placed.
pub async fn deploy_hand(
    p: &mut WsClient,
    client_seq: &mut u64,
    observe: &mut impl FnMut(&ServerMsg),
) -> (Vec<matchd_protocol::CardView>, usize) {
    use matchd_protocol::{Action, Event, Query, Reply, State};
    *client_seq += 1;
    let ask = *client_seq;
    p.send(&ClientMsg::Query {
        client_seq: ask,
        query: Query::State,
    })
    .await;
    let hand = p
        .recv_until(|m| {
            observe(m);
            match m {
                ServerMsg::Reply {
                    client_seq,
                    reply:
                        Reply::State {
                            state: State::Tactics(v),
                        },
                } if *client_seq == ask => Some(v.hand.clone()),
                _ => None,
            }
        })
        .await;
    let mut placed = 0;
    for _pass in 0..2 {
        for card in &hand {
            *client_seq += 1;
            let ask = *client_seq;
            p.send(&ClientMsg::Query {
                client_seq: ask,
                query: Query::ValidCells { card: card.card },
            })
            .await;
            let cell = p
                .recv_until(|m| {
                    observe(m);
                    match m {
                        ServerMsg::Reply {
                            client_seq,
                            reply: Reply::Cells { cells },
                        } if *client_seq == ask => Some(cells.first().copied()),
                        ServerMsg::Rejected {
                            client_seq, code, ..
                        } if *client_seq == ask => {
                            assert_eq!(code, "unknown_card", "only a placed card is refused");
                            Some(None)
                        }
                        _ => None,
                    }
                })
                .await;
            let Some([x, y]) = cell else { continue };
            *client_seq += 1;
            let act = *client_seq;
            p.send(&ClientMsg::Action {
                client_seq: act,
                action: Action::Place {
                    card: card.card,
                    x,
                    y,
                },
            })
            .await;
            p.recv_until(|m| {
                observe(m);
                match m {
                    ServerMsg::Event {
                        event: Event::Placed { card: c, .. },
                        ..
                    } if *c == card.card => Some(()),
                    ServerMsg::Rejected {
                        client_seq, code, ..
                    } if *client_seq == act => {
                        panic!("a cell from valid_cells was refused: {code}")
                    }
                    _ => None,
                }
            })
            .await;
            placed += 1;
        }
    }
    (hand, placed)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The status of a WebSocket upgrade: 101, or the refusal's status (the
/// socket, if any, is closed at once).
pub async fn upgrade_status_of(request: awc::ws::WebsocketsRequest) -> u16 {
    match request.connect().await {
        Ok((res, _framed)) => res.status().as_u16(),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// Polls `cond` every 50 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP proxy on a free loopback port to `upstream`, whose link can be cut
/// and restored: a network partition between one process and a service
/// (Redis), while everything else still reaches both. Cutting closes every
/// proxied connection and refuses new ones until restored. It can also
/// slow the link: every chunk waits [`TcpCut::slow`] before it is passed on.
pub struct TcpCut {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl TcpCut {
    pub fn start(upstream: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>> =
            std::sync::Arc::default();
        let delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (c, k, d) = (cut.clone(), conns.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                for s in [&client, &server] {
                    if let Ok(s) = s.try_clone() {
                        k.lock().expect("lock").push(s);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    let d = d.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            let wait = d.load(Ordering::SeqCst);
                            if wait > 0 {
                                std::thread::sleep(std::time::Duration::from_millis(wait));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self {
            port,
            cut,
            delay_ms,
            conns,
        }
    }

    /// Every chunk through the proxy waits `delay` (zero: none).
    pub fn slow(&self, delay: std::time::Duration) {
        self.delay_ms.store(
            delay.as_millis() as u64,
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The partition: every connection through the proxy dies, new ones
    /// are refused.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.conns.lock().expect("lock").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The partition heals: new connections go through again.
    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs `cmd` (stdout and stderr piped) expecting it to exit by itself
/// within [`WAIT`]; kills it and fails the test if it does not.
pub fn run_to_exit(cmd: &mut std::process::Command, what: &str) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(WAIT) else {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        panic!("{what}: it did not exit");
    };
    out.expect("output")
}
