//! `ws` mode: real WebSocket clients over the network against a running
//! matchd, thousands per process on a tokio runtime.
//!
//! Scenarios: `connections` (connect, quick-join, hold idle), `fanout`
//! (sandbox rooms of K seats, every seat sending marks at R per second) and
//! `tactics` (bots playing whole matches with `valid_cells`). The number of
//! clients follows `--stages`, like k6's ramping-vus. Every client checks
//! that it sees every event of its match once, in order, with no gap.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use matchd_protocol::codec::{
    decode_server_bincode, decode_server_json, encode_client_bincode, encode_client_json, Encoding,
};
use matchd_protocol::{Action, ClientMsg, Event, Query, Reply, ServerMsg, State};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::bot::{Step, TacticsBot, XorShift};
use crate::check::SeqCheck;
use crate::http;
use crate::plot::Second;
use crate::report::{count_and_rate, latency_histogram, record, Latency, ProcSample};
use crate::stages::Stages;
use crate::threshold::{Comparison, Figures, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Connections,
    Fanout,
    Tactics,
    /// Fan-out where clients drop their connection now and then and
    /// `resume` on a new one, checking that no event is lost.
    Resume,
    /// Misbehaving clients (for soak runs): each sends a malformed frame
    /// every second and, every 20 s, a burst of 400 pings over its frame
    /// budget, which gets it closed (1008); then it connects again.
    Abuse,
}

impl Scenario {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "connections" => Ok(Self::Connections),
            "fanout" => Ok(Self::Fanout),
            "tactics" => Ok(Self::Tactics),
            "resume" => Ok(Self::Resume),
            "abuse" => Ok(Self::Abuse),
            other => Err(format!(
                "unknown scenario {other:?} (connections, fanout, tactics, resume, abuse)"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::Fanout => "fanout",
            Self::Tactics => "tactics",
            Self::Resume => "resume",
            Self::Abuse => "abuse",
        }
    }

    /// Whether seats send marks at `--rate`.
    fn marks(self) -> bool {
        matches!(self, Self::Fanout | Self::Resume)
    }

    /// The ruleset this scenario's clients play.
    fn ruleset(self) -> &'static str {
        match self {
            Self::Tactics => "tactics",
            _ => "sandbox",
        }
    }

    /// Seats per room: tactics has two, the others `--room`.
    fn room_size(self, room: usize) -> usize {
        match self {
            Self::Tactics => 2,
            _ => room.max(1),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WsOpts {
    /// `http://host:port` of the node.
    pub url: String,
    pub scenario: Scenario,
    pub stages: Stages,
    /// Seats per room (fanout).
    pub room: usize,
    /// Marks per second per seat (fanout).
    pub rate: f64,
    pub encoding: Encoding,
    /// Runtime worker threads; 0 = one per core.
    pub threads: usize,
    /// Source addresses spread over the clients (empty: the default one).
    pub source_ips: Vec<IpAddr>,
    /// This generator's share of the run: (index, count).
    pub shard: (usize, usize),
    /// The server's PID, to sample its memory.
    pub server_pid: Option<u32>,
    /// Resume scenario: each client drops and resumes about this often.
    pub resume_every: Duration,
    /// Resume scenario: resume through this other node (`http://host:port`),
    /// which answers `redirect`; the client follows it to the owner. The
    /// resume latency then covers the redirect and the second connection.
    pub resume_via: Option<String>,
    /// Print a progress line every second.
    pub progress: bool,
}

impl Default for WsOpts {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            scenario: Scenario::Fanout,
            stages: Stages::flat(100, Duration::from_secs(10)),
            room: 4,
            rate: 10.0,
            encoding: Encoding::Json,
            threads: 0,
            source_ips: Vec::new(),
            shard: (0, 1),
            server_pid: None,
            resume_every: Duration::from_secs(5),
            resume_via: None,
            progress: true,
        }
    }
}

/// A latency histogram as (microseconds, count) pairs, so reports of
/// several generators can be merged exactly.
pub type Buckets = Vec<(u64, u64)>;

fn buckets(h: &Histogram<u64>) -> Buckets {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

fn histogram_of(b: &Buckets) -> Histogram<u64> {
    let mut h = latency_histogram();
    for &(v, n) in b {
        let _ = h.record_n(v.clamp(1, h.high()), n);
    }
    h
}

/// Server memory against open connections, with a least-squares line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerMemory {
    /// (connections, server RSS in KiB), once a second.
    pub samples: Vec<(u64, u64)>,
    pub kib_per_connection: f64,
    pub base_kib: f64,
}

impl ServerMemory {
    pub fn fit(samples: Vec<(u64, u64)>) -> Self {
        let n = samples.len() as f64;
        let (sx, sy) = samples
            .iter()
            .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x as f64, b + y as f64));
        let (mx, my) = (sx / n.max(1.0), sy / n.max(1.0));
        let (sxy, sxx) = samples.iter().fold((0.0, 0.0), |(a, b), &(x, y)| {
            let dx = x as f64 - mx;
            (a + dx * (y as f64 - my), b + dx * dx)
        });
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Self {
            samples,
            kib_per_connection: slope,
            base_kib: my - slope * mx,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WsReport {
    pub mode: String,
    pub scenario: String,
    pub params: serde_json::Value,
    pub shards: usize,
    pub seconds: f64,
    pub clients_peak: u64,
    pub connects: u64,
    pub connect_failures: u64,
    pub connects_per_s: f64,
    pub connect_latency: Latency,
    pub connect_buckets: Buckets,
    pub actions: u64,
    pub actions_per_s: f64,
    pub delivered_events: u64,
    pub delivered_per_s: f64,
    /// Action sent to the sender receiving its own event.
    pub action_latency: Latency,
    pub action_buckets: Buckets,
    pub rejected: u64,
    pub busy: u64,
    pub missing_events: u64,
    pub duplicate_events: u64,
    pub out_of_order_events: u64,
    pub decode_errors: u64,
    pub closed_unexpectedly: u64,
    /// Everything above that must be zero, plus connect failures and busy.
    pub errors: u64,
    pub error_rate: f64,
    pub matches_finished: u64,
    /// Resume scenario: resumes answered with the missed events, and with a
    /// snapshot (more missed than the ring buffer holds).
    pub resumes: u64,
    pub resume_snapshots: u64,
    pub resume_failures: u64,
    /// Resumes that were redirected to the owner first (`--resume-via`).
    #[serde(default)]
    pub redirects: u64,
    /// `resume` sent to `resumed` (or `joined`) received, on a connection
    /// already open.
    pub resume_latency: Latency,
    pub resume_buckets: Buckets,
    pub generator_cpu_cores: f64,
    pub generator_threads: usize,
    /// The generator used nearly all its CPU: the figures may be its limit,
    /// not the server's.
    pub generator_limited: bool,
    pub server_memory: Option<ServerMemory>,
    pub timeline: Vec<Second>,
    pub thresholds: Vec<Verdict>,
    pub baseline: Option<Comparison>,
}

impl WsReport {
    pub fn figures(&self) -> Figures {
        Figures {
            p50_ms: self.action_latency.p50_ms,
            p95_ms: self.action_latency.p95_ms,
            p99_ms: self.action_latency.p99_ms,
            max_ms: self.action_latency.max_ms,
            error_rate: self.error_rate,
            delivered_per_s: self.delivered_per_s,
            actions_per_s: self.actions_per_s,
            connect_failures: self.connect_failures,
        }
    }

    fn finish_errors(&mut self) {
        self.errors = self.missing_events
            + self.duplicate_events
            + self.out_of_order_events
            + self.decode_errors
            + self.closed_unexpectedly
            + self.connect_failures
            + self.resume_failures
            + self.busy;
        let base = (self.actions + self.connects).max(1);
        self.error_rate = self.errors as f64 / base as f64;
    }

    /// Several generators' reports of one run as one report.
    pub fn merge(parts: &[WsReport]) -> Result<WsReport, String> {
        let first = parts.first().ok_or("nothing to merge")?;
        let mut m = WsReport {
            mode: first.mode.clone(),
            scenario: first.scenario.clone(),
            params: first.params.clone(),
            shards: parts.iter().map(|p| p.shards.max(1)).sum(),
            seconds: parts.iter().map(|p| p.seconds).fold(0.0, f64::max),
            // The fit uses the server's own connection count, so one
            // shard's samples describe the whole server.
            server_memory: parts.iter().find_map(|p| p.server_memory.clone()),
            ..WsReport::default()
        };
        let mut conn_h = latency_histogram();
        let mut act_h = latency_histogram();
        let mut res_h = latency_histogram();
        for p in parts {
            if p.scenario != m.scenario {
                return Err(format!(
                    "cannot merge a {} report with a {} report",
                    p.scenario, m.scenario
                ));
            }
            m.clients_peak += p.clients_peak;
            m.connects += p.connects;
            m.connect_failures += p.connect_failures;
            m.actions += p.actions;
            m.delivered_events += p.delivered_events;
            m.rejected += p.rejected;
            m.busy += p.busy;
            m.missing_events += p.missing_events;
            m.duplicate_events += p.duplicate_events;
            m.out_of_order_events += p.out_of_order_events;
            m.decode_errors += p.decode_errors;
            m.closed_unexpectedly += p.closed_unexpectedly;
            m.matches_finished += p.matches_finished;
            m.resumes += p.resumes;
            m.redirects += p.redirects;
            m.resume_snapshots += p.resume_snapshots;
            m.resume_failures += p.resume_failures;
            let _ = res_h.add(histogram_of(&p.resume_buckets));
            m.generator_cpu_cores += p.generator_cpu_cores;
            m.generator_threads += p.generator_threads;
            m.generator_limited |= p.generator_limited;
            let _ = conn_h.add(histogram_of(&p.connect_buckets));
            let _ = act_h.add(histogram_of(&p.action_buckets));
            for (i, s) in p.timeline.iter().enumerate() {
                if m.timeline.len() <= i {
                    m.timeline.push(Second {
                        t: s.t,
                        ..Second::default()
                    });
                }
                let t = &mut m.timeline[i];
                t.clients += s.clients;
                t.actions += s.actions;
                t.delivered += s.delivered;
                t.errors += s.errors;
                // Percentiles do not add up; the worst generator's is an upper bound.
                t.p50_ms = t.p50_ms.max(s.p50_ms);
                t.p95_ms = t.p95_ms.max(s.p95_ms);
                t.p99_ms = t.p99_ms.max(s.p99_ms);
            }
        }
        let secs = m.seconds.max(1e-9);
        m.connects_per_s = m.connects as f64 / secs;
        m.actions_per_s = m.actions as f64 / secs;
        m.delivered_per_s = m.delivered_events as f64 / secs;
        m.connect_latency = Latency::of(&conn_h);
        m.action_latency = Latency::of(&act_h);
        m.connect_buckets = buckets(&conn_h);
        m.action_buckets = buckets(&act_h);
        m.resume_latency = Latency::of(&res_h);
        m.resume_buckets = buckets(&res_h);
        m.finish_errors();
        Ok(m)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<26} {v}\n"));
        row("mode / scenario", format!("ws / {}", self.scenario));
        row("parameters", self.params.to_string());
        row(
            "run",
            format!("{:.1} s, {} generator(s)", self.seconds, self.shards),
        );
        row(
            "clients",
            format!(
                "peak {}  connects {} ({:.0}/s)  failures {}",
                self.clients_peak, self.connects, self.connects_per_s, self.connect_failures
            ),
        );
        row("connect latency (ms)", self.connect_latency.describe());
        row("actions", count_and_rate(self.actions, self.actions_per_s));
        row(
            "delivered events",
            count_and_rate(self.delivered_events, self.delivered_per_s),
        );
        row("action latency (ms)", self.action_latency.describe());
        row(
            "event stream errors",
            format!(
                "missing {}  duplicate {}  out of order {}  undecodable {}",
                self.missing_events,
                self.duplicate_events,
                self.out_of_order_events,
                self.decode_errors
            ),
        );
        row(
            "other",
            format!(
                "busy {}  rejected {}  closed by server {}  matches finished {}",
                self.busy, self.rejected, self.closed_unexpectedly, self.matches_finished
            ),
        );
        if self.resumes + self.resume_snapshots + self.resume_failures > 0 {
            row(
                "resumes",
                format!(
                    "replayed {}  snapshot {}  failed {}  via a redirect {}",
                    self.resumes, self.resume_snapshots, self.resume_failures, self.redirects
                ),
            );
            row("resume latency (ms)", self.resume_latency.describe());
        }
        row(
            "errors",
            format!("{} ({:.4}%)", self.errors, self.error_rate * 100.0),
        );
        row(
            "generator",
            format!(
                "{:.2} cores of {} threads{}",
                self.generator_cpu_cores,
                self.generator_threads,
                if self.generator_limited {
                    "  ** GENERATOR-LIMITED: figures may be the generator's limit **"
                } else {
                    ""
                }
            ),
        );
        if let Some(m) = &self.server_memory {
            row(
                "server memory",
                format!(
                    "{:.2} KiB per connection (fit over {} samples), base {:.0} KiB",
                    m.kib_per_connection,
                    m.samples.len(),
                    m.base_kib
                ),
            );
        }
        for v in &self.thresholds {
            row(
                "threshold",
                format!(
                    "{}: {} (actual {:.4})",
                    v.rule,
                    if v.passed { "passed" } else { "FAILED" },
                    v.actual
                ),
            );
        }
        out
    }
}

/// Counters of the run, shared by every client task.
#[derive(Default)]
struct Counters {
    live: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    actions: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    busy: AtomicU64,
    missing: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    decode_errors: AtomicU64,
    closed: AtomicU64,
    finished: AtomicU64,
    resumes: AtomicU64,
    resume_snapshots: AtomicU64,
    resume_failures: AtomicU64,
    redirects: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A latency histogram for the whole run and one for the current second.
struct Hist {
    total: Histogram<u64>,
    second: Histogram<u64>,
}

const HIST_SHARDS: usize = 64;

struct Shared {
    opts: WsOpts,
    server: SocketAddr,
    host: String,
    /// `--resume-via`: the node resumes are sent to first.
    via: Option<(SocketAddr, String)>,
    counters: Counters,
    action: Vec<Mutex<Hist>>,
    connect: Mutex<Histogram<u64>>,
    resume: Mutex<Histogram<u64>>,
}

impl Shared {
    fn record_action(&self, client: usize, d: Duration) {
        if let Ok(mut h) = self.action[client % HIST_SHARDS].lock() {
            record(&mut h.total, d);
            record(&mut h.second, d);
        }
    }

    fn source(&self, client: usize) -> Option<IpAddr> {
        let ips = &self.opts.source_ips;
        (!ips.is_empty()).then(|| ips[client % ips.len()])
    }
}

/// Parses `127.0.0.1-127.0.0.20` or a comma list of addresses.
pub fn parse_ips(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.parse().map_err(|_| format!("bad address {a:?}"))?;
            let b: Ipv4Addr = b.parse().map_err(|_| format!("bad address {b:?}"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a > 65_535 {
                return Err(format!("bad range {part:?}"));
            }
            out.extend((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
        } else {
            out.push(part.parse().map_err(|_| format!("bad address {part:?}"))?);
        }
    }
    if let Some(ip) = out.iter().find(|ip| !ip.is_loopback()) {
        return Err(format!(
            "{ip} is not a loopback address: load is only sent inside this machine"
        ));
    }
    Ok(out)
}

fn encode(msg: &ClientMsg, enc: Encoding) -> Message {
    match enc {
        Encoding::Json => Message::text(encode_client_json(msg)),
        Encoding::Bincode | Encoding::BincodeV1 => Message::binary(encode_client_bincode(msg)),
    }
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a session and a WebSocket for client `i`; returns the socket and
/// the session token.
async fn connect(shared: &Shared, i: usize) -> Result<(Ws, String), String> {
    let token = http::new_session(shared.server, shared.source(i)).await?;
    let ws = open_ws(shared, i, &token).await?;
    Ok((ws, token))
}

/// A WebSocket for an existing session.
async fn open_ws(shared: &Shared, i: usize, token: &str) -> Result<Ws, String> {
    open_ws_to(shared, (shared.server, &shared.host), i, token).await
}

async fn open_ws_to(
    shared: &Shared,
    (server, host): (SocketAddr, &str),
    i: usize,
    token: &str,
) -> Result<Ws, String> {
    let src = shared.source(i);
    let stream = http::connect_from(server, src)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let url = format!(
        "ws://{host}/v1/ws?token={token}&encoding={}&protocol=2",
        shared.opts.encoding.as_str()
    );
    // A small read buffer: tungstenite's default 128 KiB is zeroed on every
    // read and would triple the generator's CPU per message.
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(cfg))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

fn decode(msg: &Message) -> Option<Result<ServerMsg, ()>> {
    match msg {
        Message::Text(t) => Some(decode_server_json(t.as_str()).map_err(|_| ())),
        Message::Binary(b) => Some(decode_server_bincode(b).map_err(|_| ())),
        _ => None,
    }
}

/// What one client task does between connecting and stopping.
struct Client {
    i: usize,
    seat: Option<u8>,
    check: SeqCheck,
    next_seq: u64,
    /// Fanout: marks in flight, (client_seq, sent at).
    inflight: VecDeque<(u64, Instant)>,
    bot: TacticsBot,
    /// Tactics: the request in flight, (client_seq, sent at).
    pending: Option<(u64, Instant)>,
    out: Vec<ClientMsg>,
    match_id: Option<u64>,
    /// Resume scenario: when the `resume` in flight was sent.
    resuming: Option<Instant>,
    /// A `redirect` to follow: the owner's URL.
    redirect: Option<String>,
}

impl Client {
    fn new(i: usize) -> Self {
        Self {
            i,
            seat: None,
            check: SeqCheck::default(),
            next_seq: 0,
            inflight: VecDeque::new(),
            bot: TacticsBot::new(0x5eed ^ i as u64),
            pending: None,
            out: Vec::new(),
            match_id: None,
            resuming: None,
            redirect: None,
        }
    }

    /// The answer to a `resume` arrived (`snapshot`: a `joined` instead of
    /// `resumed`).
    fn resumed(&mut self, shared: &Shared, snapshot: bool) {
        let Some(sent) = self.resuming.take() else {
            return;
        };
        let c = &shared.counters;
        add(
            if snapshot {
                &c.resume_snapshots
            } else {
                &c.resumes
            },
            1,
        );
        if let Ok(mut h) = shared.resume.lock() {
            record(&mut h, sent.elapsed());
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn flush_check(&mut self, shared: &Shared) {
        let c = &shared.counters;
        add(&c.missing, self.check.missing);
        add(&c.duplicates, self.check.duplicates);
        add(&c.out_of_order, self.check.out_of_order);
        self.check = SeqCheck::default();
    }

    fn bot_step(&mut self, now: Instant) {
        if self.pending.is_some() {
            return;
        }
        if let Some(step) = self.bot.next(now) {
            self.bot_send(step, now);
        }
    }

    fn bot_send(&mut self, step: Step, now: Instant) {
        let client_seq = self.seq();
        let msg = match step {
            Step::Ask { card } => ClientMsg::Query {
                client_seq,
                query: Query::ValidCells { card },
            },
            Step::Place { card, x, y } => ClientMsg::Action {
                client_seq,
                action: Action::Place { card, x, y },
            },
            Step::Ready => ClientMsg::Action {
                client_seq,
                action: Action::Ready,
            },
        };
        if !matches!(step, Step::Ready) {
            self.pending = Some((client_seq, now));
        }
        self.out.push(msg);
    }

    /// Handles one server message; what to send goes to `self.out`.
    fn on_message(&mut self, shared: &Shared, msg: ServerMsg, measuring: bool) {
        let c = &shared.counters;
        let now = Instant::now();
        match msg {
            ServerMsg::Joined {
                match_id,
                seat,
                seq,
                state,
                ..
            } => {
                self.resumed(shared, true);
                self.seat = Some(seat);
                self.match_id = Some(match_id);
                self.flush_check(shared);
                self.check = SeqCheck::starting_at(seq);
                if let State::Tactics(v) = state {
                    self.bot.joined(v.hand.iter().map(|c| c.card).collect());
                    self.pending = None;
                }
            }
            ServerMsg::Event {
                seq, seat, event, ..
            } => {
                self.check.observe(seq);
                if measuring {
                    add(&c.delivered, 1);
                }
                let mine = seat.is_some() && seat == self.seat;
                match event {
                    Event::Marked { .. } if mine => {
                        if let Some((_, sent)) = self.inflight.pop_front() {
                            if measuring {
                                shared.record_action(self.i, sent.elapsed());
                            }
                        }
                    }
                    Event::Phase { phase } => {
                        self.bot.phase(&phase, now);
                        self.bot_step(now);
                    }
                    Event::Placed { seat, card, .. } if Some(seat) == self.seat => {
                        if let Some((_, sent)) = self.pending.take() {
                            if measuring {
                                shared.record_action(self.i, sent.elapsed());
                            }
                        }
                        self.bot.placed(card, now);
                        self.bot_step(now);
                    }
                    _ => {}
                }
            }
            ServerMsg::Reply {
                client_seq,
                reply: Reply::Cells { cells },
            } if self.pending.is_some_and(|(s, _)| s == client_seq) => {
                self.pending = None;
                match self.bot.cells(&cells) {
                    Some(step) => self.bot_send(step, now),
                    None => self.bot_step(now),
                }
            }
            ServerMsg::Rejected {
                client_seq, code, ..
            } => {
                if code == "busy" {
                    add(&c.busy, 1);
                } else {
                    add(&c.rejected, 1);
                }
                self.inflight.retain(|(s, _)| *s != client_seq);
                if self.pending.is_some_and(|(s, _)| s == client_seq) {
                    self.pending = None;
                    self.bot.rejected(now);
                    self.bot_step(now);
                }
            }
            ServerMsg::Resumed {
                match_id,
                seat,
                last_seq,
                ..
            } => {
                self.resumed(shared, false);
                self.seat = Some(seat);
                self.match_id = Some(match_id);
                // The replay continues the stream this client already checks.
                if self.check.last() != Some(last_seq) {
                    self.flush_check(shared);
                    self.check = SeqCheck::starting_at(last_seq);
                }
            }
            ServerMsg::Redirect { url, .. } if self.resuming.is_some() => {
                add(&c.redirects, 1);
                self.redirect = Some(url);
            }
            ServerMsg::Error { .. } if self.resuming.is_some() => {
                self.resuming = None;
                add(&c.resume_failures, 1);
            }
            ServerMsg::Ended { seq, .. } => {
                self.check.observe(seq);
                if self.seat == Some(0) && measuring {
                    add(&c.finished, 1);
                }
                self.flush_check(shared);
                self.seat = None;
                if shared.opts.scenario == Scenario::Tactics {
                    self.out.push(ClientMsg::Join {
                        max_seats: None,
                        match_id: None,
                        ruleset: Some("tactics".into()),
                    });
                }
            }
            _ => {}
        }
    }
}

/// One client: connect, join, play until told to stop, drain, close.
async fn run_client(
    shared: Arc<Shared>,
    i: usize,
    room: Option<u64>,
    mut stop: oneshot::Receiver<()>,
    measuring: Arc<std::sync::atomic::AtomicBool>,
) {
    let c = &shared.counters;
    let started = Instant::now();
    let (mut ws, token) = match connect(&shared, i).await {
        Ok(ws) => ws,
        Err(e) => {
            add(&c.connect_failures, 1);
            log_once(&e);
            return;
        }
    };
    add(&c.connects, 1);
    if let Ok(mut h) = shared.connect.lock() {
        record(&mut h, started.elapsed());
    }
    add(&c.live, 1);
    let enc = shared.opts.encoding;
    let join = ClientMsg::Join {
        max_seats: None,
        match_id: room,
        ruleset: room
            .is_none()
            .then(|| shared.opts.scenario.ruleset().to_string()),
    };
    let mut client = Client::new(i);
    let mut clean = ws.send(encode(&join, enc)).await.is_ok();
    let period = Duration::from_secs_f64(1.0 / shared.opts.rate.max(0.001));
    let mut ticker = tokio::time::interval(if shared.opts.scenario.marks() {
        period
    } else {
        Duration::from_millis(250)
    });
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping: Option<Instant> = None;
    // Resume scenario: drop and resume about every `resume_every`, jittered
    // so the clients do not all go at once.
    let mut rng = XorShift::new(i as u64);
    let mut jitter = move |every: Duration| every.mul_f64(0.5 + rng.below(1000) as f64 / 1000.0);
    let mut next_drop = Instant::now() + jitter(shared.opts.resume_every);
    while clean {
        let measure = measuring.load(Ordering::Relaxed);
        tokio::select! {
            _ = &mut stop, if stopping.is_none() => {
                stopping = Some(Instant::now());
            }
            _ = ticker.tick() => {
                if let Some(since) = stopping {
                    // Drain: wait for the answers to what is in flight, briefly.
                    let done = client.inflight.is_empty() && client.pending.is_none();
                    if done || since.elapsed() > Duration::from_secs(3) {
                        break;
                    }
                    continue;
                }
                let drop_now = shared.opts.scenario == Scenario::Resume
                    && client.seat.is_some()
                    && client.resuming.is_none()
                    && Instant::now() >= next_drop;
                if drop_now {
                    next_drop = Instant::now() + jitter(shared.opts.resume_every);
                    let (Some(match_id), Some(last_seq)) = (client.match_id, client.check.last())
                    else {
                        continue;
                    };
                    // Walk away mid-stream, come back on a new socket.
                    let _ = ws.close(None).await;
                    client.inflight.clear();
                    client.seat = None;
                    let target = match &shared.via {
                        Some((addr, host)) => (*addr, host.as_str()),
                        None => (shared.server, shared.host.as_str()),
                    };
                    match open_ws_to(&shared, target, i, &token).await {
                        Ok(new) => {
                            ws = new;
                            client.resuming = Some(Instant::now());
                            client.out.push(ClientMsg::Resume { match_id, last_seq });
                        }
                        Err(e) => {
                            add(&c.resume_failures, 1);
                            log_once(&e);
                            clean = false;
                        }
                    }
                }
                match shared.opts.scenario {
                    s if s.marks() && client.seat.is_some() && client.inflight.len() < 1000 => {
                        let client_seq = client.seq();
                        client.inflight.push_back((client_seq, Instant::now()));
                        client.out.push(ClientMsg::Action {
                            client_seq,
                            action: Action::Mark { x: (i % 5) as i32, y: (client_seq % 3) as i32 },
                        });
                        if measure {
                            add(&c.actions, 1);
                        }
                    }
                    Scenario::Tactics if client.seat.is_some() => client.bot_step(Instant::now()),
                    _ => {}
                }
            }
            frame = ws.next() => {
                match frame {
                    Some(Ok(m)) => match decode(&m) {
                        Some(Ok(msg)) => client.on_message(&shared, msg, measure),
                        Some(Err(())) => add(&c.decode_errors, 1),
                        None => {
                            if let Message::Close(_) = m {
                                clean = false;
                            }
                        }
                    },
                    _ => clean = false,
                }
                if !clean && stopping.is_none() {
                    add(&c.closed, 1);
                }
            }
        }
        if let Some(url) = client.redirect.take() {
            // Follow the redirect: a new socket to the owner, the same resume.
            let _ = ws.close(None).await;
            let resume = client
                .match_id
                .zip(client.check.last())
                .map(|(match_id, last_seq)| ClientMsg::Resume { match_id, last_seq });
            let opened = match resolve(&url) {
                Ok((addr, host)) => open_ws_to(&shared, (addr, &host), i, &token).await,
                Err(e) => Err(e),
            };
            match (opened, resume) {
                (Ok(new), Some(resume)) => {
                    ws = new;
                    client.out.push(resume);
                }
                (Err(e), _) => {
                    add(&c.resume_failures, 1);
                    log_once(&e);
                    clean = false;
                }
                (Ok(_), None) => clean = false,
            }
        }
        for msg in client.out.drain(..) {
            if stopping.is_some() {
                continue;
            }
            if let (ClientMsg::Action { .. }, Scenario::Tactics) = (&msg, shared.opts.scenario) {
                if measure {
                    add(&c.actions, 1);
                }
            }
            if ws.send(encode(&msg, enc)).await.is_err() {
                clean = false;
                break;
            }
        }
    }
    client.flush_check(&shared);
    let _ = ws.close(None).await;
    c.live.fetch_sub(1, Ordering::Relaxed);
}

/// One misbehaving client ([`Scenario::Abuse`]) until stopped: malformed
/// frames (each must be answered with an `error` frame, counted as
/// delivered) and bursts over the frame budget (the server closes the
/// socket; counted in `closed`), reconnecting after each close.
async fn run_abuser(shared: Arc<Shared>, i: usize, mut stop: oneshot::Receiver<()>) {
    let c = &shared.counters;
    loop {
        let mut ws = match connect(&shared, i).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                add(&c.connect_failures, 1);
                log_once(&e);
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        add(&c.connects, 1);
        add(&c.live, 1);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n = 0u64;
        let stopped = loop {
            tokio::select! {
                _ = &mut stop => break true,
                _ = tick.tick() => {
                    n += 1;
                    let sent = if n % 20 == 0 {
                        let ping = encode(&ClientMsg::Ping { nonce: n }, shared.opts.encoding);
                        let mut ok = true;
                        for _ in 0..400 {
                            if ws.send(ping.clone()).await.is_err() {
                                ok = false;
                                break;
                            }
                        }
                        ok
                    } else {
                        add(&c.actions, 1);
                        ws.send(Message::Text("{\"type\":\"action\",\"nonsense".into())).await.is_ok()
                    };
                    if !sent {
                        break false;
                    }
                }
                frame = ws.next() => match frame {
                    Some(Ok(m)) => match decode(&m) {
                        Some(Ok(ServerMsg::Error { .. })) => add(&c.delivered, 1),
                        Some(Ok(_)) => {}
                        Some(Err(())) => add(&c.decode_errors, 1),
                        None => {
                            if let Message::Close(_) = m {
                                break false;
                            }
                        }
                    },
                    _ => break false,
                },
            }
        };
        c.live.fetch_sub(1, Ordering::Relaxed);
        let _ = ws.close(None).await;
        if stopped {
            return;
        }
        add(&c.closed, 1);
    }
}

fn log_once(e: &str) {
    use std::sync::atomic::AtomicBool;
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        eprintln!("loadtest: a client failed to connect: {e}");
    }
}

/// The address and `host:port` of `url` (`http://` or `ws://`), which must
/// be a loopback address.
pub fn resolve(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| format!("--url {url:?}: expected http://host:port"))?;
    let host = rest.split('/').next().unwrap_or(rest).to_string();
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("--url {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url:?}: no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--url {url:?}: {} is not a loopback address; this harness only loads servers on this machine",
            addr.ip()
        ));
    }
    Ok((addr, host))
}

/// This shard's share of `n` clients.
fn share(n: usize, (i, count): (usize, usize)) -> usize {
    let count = count.max(1);
    n / count + usize::from(i < n % count)
}

/// Runs one WebSocket load test to the end.
pub fn run(opts: WsOpts) -> Result<WsReport, String> {
    let (server, host) = resolve(&opts.url)?;
    let threads = matchd_actors::config::or_cores(opts.threads);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let via = opts.resume_via.as_deref().map(resolve).transpose()?;
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        server,
        host,
        via,
        counters: Counters::default(),
        action: (0..HIST_SHARDS)
            .map(|_| {
                Mutex::new(Hist {
                    total: latency_histogram(),
                    second: latency_histogram(),
                })
            })
            .collect(),
        connect: Mutex::new(latency_histogram()),
        resume: Mutex::new(latency_histogram()),
    });
    rt.block_on(drive(shared, threads))
}

async fn drive(shared: Arc<Shared>, threads: usize) -> Result<WsReport, String> {
    let opts = shared.opts.clone();
    let c = &shared.counters;
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut stops: Vec<oneshot::Sender<()>> = Vec::new();
    let mut tasks = Vec::new();
    let mut rooms: Vec<u64> = Vec::new();
    let mut next_client = 0usize;
    let start = Instant::now();
    let proc_start = ProcSample::this_process();
    let total = opts.stages.total();
    let mut timeline = Vec::new();
    let mut memory = Vec::new();
    let mut last = (0u64, 0u64, 0u64);
    let mut next_second = Duration::from_secs(1);
    let mut peak = 0u64;
    loop {
        let t = start.elapsed();
        if t >= total {
            break;
        }
        let target = share(opts.stages.target_at(t), opts.shard);
        while stops.len() < target {
            let i = next_client;
            next_client += 1;
            let room = match opts.scenario {
                Scenario::Connections | Scenario::Abuse => None,
                Scenario::Fanout | Scenario::Tactics | Scenario::Resume => {
                    let r = i / opts.scenario.room_size(opts.room);
                    while rooms.len() <= r {
                        let ruleset = opts.scenario.ruleset();
                        let body = format!(r#"{{"ruleset":"{ruleset}"}}"#);
                        // Creating a match needs a session.
                        let token = http::new_session(shared.server, shared.source(r)).await?;
                        let path = format!("/v1/matches?token={token}");
                        let (status, text) =
                            http::post_json(shared.server, shared.source(r), &path, &body)
                                .await
                                .map_err(|e| format!("creating a match: {e}"))?;
                        let v: serde_json::Value = serde_json::from_str(&text)
                            .map_err(|_| format!("creating a match: HTTP {status} {text}"))?;
                        let id = v["match_id"]
                            .as_u64()
                            .ok_or_else(|| format!("creating a match: HTTP {status} {text}"))?;
                        rooms.push(id);
                    }
                    Some(rooms[r])
                }
            };
            let (tx, rx) = oneshot::channel();
            stops.push(tx);
            if opts.scenario == Scenario::Abuse {
                tasks.push(tokio::spawn(run_abuser(shared.clone(), i, rx)));
                continue;
            }
            tasks.push(tokio::spawn(run_client(
                shared.clone(),
                i,
                room,
                rx,
                measuring.clone(),
            )));
        }
        while stops.len() > target {
            stops.pop();
        }
        if t >= next_second {
            next_second += Duration::from_secs(1);
            let now = (
                c.actions.load(Ordering::Relaxed),
                c.delivered.load(Ordering::Relaxed),
                errors_now(c),
            );
            let mut sec = latency_histogram();
            for h in &shared.action {
                if let Ok(mut h) = h.lock() {
                    let _ = sec.add(&h.second);
                    h.second.reset();
                }
            }
            let live = c.live.load(Ordering::Relaxed);
            peak = peak.max(live);
            let l = Latency::of(&sec);
            let second = Second {
                t: t.as_secs_f64(),
                clients: live,
                actions: now.0 - last.0,
                delivered: now.1 - last.1,
                errors: now.2 - last.2,
                p50_ms: l.p50_ms,
                p95_ms: l.p95_ms,
                p99_ms: l.p99_ms,
            };
            last = now;
            if opts.progress {
                eprintln!(
                    "[{:>5.0}s] clients {:>6}  actions/s {:>8}  events/s {:>9}  p99 {:>8.3} ms  errors {}",
                    second.t, live, second.actions, second.delivered, second.p99_ms, now.2
                );
            }
            timeline.push(second);
            if let Some(pid) = opts.server_pid {
                // The server's own count, so several generators fit one line.
                let open = server_connections(shared.server).await.unwrap_or(live);
                memory.push((open, ProcSample::of(&pid.to_string()).rss_kib));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    measuring.store(false, Ordering::Relaxed);
    let proc_end = ProcSample::this_process();
    stops.clear();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let mut act_h = latency_histogram();
    for h in &shared.action {
        if let Ok(h) = h.lock() {
            let _ = act_h.add(&h.total);
        }
    }
    let conn_h = shared
        .connect
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| latency_histogram());
    let res_h = shared
        .resume
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| latency_histogram());
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let cpu = (proc_end.cpu_seconds - proc_start.cpu_seconds) / seconds.max(1e-9);
    let cores = matchd_actors::config::or_cores(0);
    let mut r = WsReport {
        mode: "ws".into(),
        scenario: opts.scenario.name().into(),
        params: serde_json::json!({
            "url": opts.url,
            "stages": opts.stages.0.iter().map(|s| format!("{}s:{}", s.duration.as_secs_f64(), s.target)).collect::<Vec<_>>(),
            "room": opts.room,
            "rate": opts.rate,
            "encoding": opts.encoding.as_str(),
            "threads": threads,
            "source_ips": opts.source_ips.len(),
            "shard": format!("{}/{}", opts.shard.0, opts.shard.1),
            "resume_every_s": opts.resume_every.as_secs_f64(),
        }),
        shards: 1,
        seconds,
        clients_peak: peak,
        connects: get(&c.connects),
        connect_failures: get(&c.connect_failures),
        connects_per_s: get(&c.connects) as f64 / seconds.max(1e-9),
        connect_latency: Latency::of(&conn_h),
        connect_buckets: buckets(&conn_h),
        actions: get(&c.actions),
        actions_per_s: get(&c.actions) as f64 / seconds.max(1e-9),
        delivered_events: get(&c.delivered),
        delivered_per_s: get(&c.delivered) as f64 / seconds.max(1e-9),
        action_latency: Latency::of(&act_h),
        action_buckets: buckets(&act_h),
        rejected: get(&c.rejected),
        busy: get(&c.busy),
        missing_events: get(&c.missing),
        duplicate_events: get(&c.duplicates),
        out_of_order_events: get(&c.out_of_order),
        decode_errors: get(&c.decode_errors),
        closed_unexpectedly: get(&c.closed),
        matches_finished: get(&c.finished),
        resumes: get(&c.resumes),
        resume_snapshots: get(&c.resume_snapshots),
        resume_failures: get(&c.resume_failures),
        redirects: get(&c.redirects),
        resume_latency: Latency::of(&res_h),
        resume_buckets: buckets(&res_h),
        generator_cpu_cores: cpu,
        generator_threads: threads,
        generator_limited: cpu > 0.85 * threads.min(cores) as f64,
        server_memory: opts.server_pid.map(|_| ServerMemory::fit(memory)),
        timeline,
        ..WsReport::default()
    };
    r.finish_errors();
    Ok(r)
}

/// `matchd_connections_open` from the node's `/metrics`.
async fn server_connections(server: SocketAddr) -> Option<u64> {
    let (status, text) = http::get(server, "/metrics").await.ok()?;
    if status != 200 {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("matchd_connections_open "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The live count of what [`WsReport::finish_errors`] sums at the end.
fn errors_now(c: &Counters) -> u64 {
    [
        &c.missing,
        &c.duplicates,
        &c.out_of_order,
        &c.decode_errors,
        &c.closed,
        &c.connect_failures,
        &c.resume_failures,
        &c.busy,
    ]
    .iter()
    .map(|a| a.load(Ordering::Relaxed))
    .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_addresses() {
        assert_eq!(share(10, (0, 3)), 4);
        assert_eq!(share(10, (1, 3)), 3);
        assert_eq!(share(10, (2, 3)), 3);
        assert_eq!(share(10, (0, 1)), 10);
        assert_eq!(parse_ips("127.0.0.1-127.0.0.3").expect("range").len(), 3);
        assert_eq!(parse_ips("127.0.0.5,::1").expect("list").len(), 2);
        assert!(parse_ips("10.0.0.1").is_err(), "never leaves the machine");
        assert!(resolve("http://192.168.1.1:80").is_err());
        assert!(resolve("http://127.0.0.1:80").is_ok());
    }

    #[test]
    fn memory_fit_recovers_a_line() {
        let samples = (0..10).map(|i| (i * 1000, 50_000 + i * 1000 * 7)).collect();
        let m = ServerMemory::fit(samples);
        assert!((m.kib_per_connection - 7.0).abs() < 1e-9);
        assert!((m.base_kib - 50_000.0).abs() < 1e-6);
    }

    #[test]
    fn merging_reports_adds_counts_and_histograms() {
        let part = |p99_us: u64, missing: u64| {
            let mut h = latency_histogram();
            for _ in 0..99 {
                let _ = h.record(1000);
            }
            let _ = h.record(p99_us);
            let mut r = WsReport {
                scenario: "fanout".into(),
                seconds: 10.0,
                shards: 1,
                actions: 100,
                delivered_events: 400,
                missing_events: missing,
                action_buckets: buckets(&h),
                ..WsReport::default()
            };
            r.finish_errors();
            r
        };
        let m = WsReport::merge(&[part(50_000, 0), part(80_000, 2)]).expect("merges");
        assert_eq!((m.shards, m.actions, m.delivered_events), (2, 200, 800));
        assert_eq!(m.missing_events, 2);
        assert_eq!(m.action_latency.count, 200);
        assert!((m.action_latency.max_ms - 80.0).abs() < 0.1);
        assert!((m.delivered_per_s - 80.0).abs() < 1e-9);
        let other = WsReport {
            scenario: "tactics".into(),
            ..WsReport::default()
        };
        assert!(WsReport::merge(&[part(1, 0), other]).is_err());
    }
}
