//! `mailbox` mode: the real Registry, MatchSession and ValidationCache
//! actors in one process, no network, driven by simulated connection actors
//! that use real mailboxes and real encodings.
//!
//! The simulated clients stand where `Connection` actors stand in the
//! server: on their own arbiters (as connections live on the HTTP workers),
//! talking to their match with `try_send`, receiving `ToConn` frames, and
//! decoding every frame they get the way a client would. Their decoding
//! runs in the same process and on the same cores as the engine, so the
//! figures are a lower bound on what the engine alone can do.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use hdrhistogram::Histogram;
use matchd_actors::cluster::nodes::connected_client;
use matchd_actors::cluster::replica::{Replica, ReplicaConfig};
use matchd_actors::node::RegistryStats;
use matchd_actors::testing::{Act, Ask, Join, MatchSession};
use matchd_actors::testing::{Backlog, ToConn};
use matchd_actors::{Catalog, Engine, EngineConfig};
use matchd_protocol::codec::{decode_server_bincode, decode_server_json, Encoding, Out};
use matchd_protocol::{Action, Event, Query, Reply, Seat, ServerMsg, State};

use crate::bot::{Step, TacticsBot, XorShift, BATTLE_PLACE_EVERY};
use crate::check::SeqCheck;
use crate::report::{latency_histogram, record, Latency, MailboxReport, ProcSample};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Sandbox rooms; every seat keeps `window` marks in flight.
    Sandbox,
    /// Tactics matches played to the end by bots that use `valid_cells`.
    Tactics,
}

impl Workload {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sandbox" | "fanout" => Some(Self::Sandbox),
            "tactics" => Some(Self::Tactics),
            _ => None,
        }
    }

    fn ruleset(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Tactics => "tactics",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub workload: Workload,
    /// Simultaneous matches.
    pub rooms: usize,
    /// Seats per sandbox room (tactics always has 2).
    pub seats: usize,
    /// Sandbox: marks each seat keeps in flight.
    pub window: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub cache: bool,
    pub encoding: Encoding,
    /// Match arbiters; 0 = one per core.
    pub arbiters: usize,
    /// Arbiters hosting the simulated clients; 0 = one per core.
    pub client_threads: usize,
    /// Replicate every match to this Redis (`redis://127.0.0.1:port`), as a
    /// node with `REDIS_URL` does: frames wait for their stream append.
    pub redis: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            workload: Workload::Sandbox,
            rooms: 250,
            seats: 4,
            window: 8,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            cache: true,
            encoding: Encoding::Json,
            arbiters: 0,
            client_threads: 0,
            redis: None,
        }
    }
}

/// Run-wide switches, read by every client.
#[derive(Default)]
struct Flags {
    measuring: AtomicBool,
    stopping: AtomicBool,
}

/// Counters of the clients of one thread (written by that thread only).
struct ThreadStats {
    actions: AtomicU64,
    delivered: AtomicU64,
    queries: AtomicU64,
    busy: AtomicU64,
    rejected: AtomicU64,
    order_errors: AtomicU64,
    decode_errors: AtomicU64,
    kicked: AtomicU64,
    finished: AtomicU64,
    action_latency: Mutex<Histogram<u64>>,
    query_latency: Mutex<Histogram<u64>>,
}

impl ThreadStats {
    fn new() -> Self {
        Self {
            actions: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            order_errors: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            kicked: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            action_latency: Mutex::new(latency_histogram()),
            query_latency: Mutex::new(latency_histogram()),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What a simulated client does with its seat.
enum Role {
    Fanout {
        window: usize,
        /// Send times of the marks in flight, oldest first.
        inflight: VecDeque<Instant>,
    },
    Tactics(BotSeat),
}

/// A tactics seat: the bot's brain and what this client has in flight for it.
struct BotSeat {
    brain: TacticsBot,
    /// The `valid_cells` query in flight: client_seq, sent at.
    ask: Option<(u64, Instant)>,
    /// When the placement in flight was sent.
    place: Option<Instant>,
    /// The battle's placement timer, cancelled when the match ends.
    timer: Option<SpawnHandle>,
}

struct SimClient {
    conn_id: u64,
    player_id: u64,
    engine: Engine,
    addr: Addr<MatchSession>,
    seat: Option<Seat>,
    /// The event numbering this client has seen.
    check: SeqCheck,
    encoding: Encoding,
    backlog: Arc<Backlog>,
    flags: Arc<Flags>,
    stats: Arc<ThreadStats>,
    next_client_seq: u64,
    rng: XorShift,
    role: Role,
}

impl SimClient {
    fn measuring(&self) -> bool {
        self.flags.measuring.load(Ordering::Relaxed)
    }

    fn halted(&self) -> bool {
        self.flags.stopping.load(Ordering::Relaxed)
    }

    fn random(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

    fn join(&mut self, ctx: &mut Context<Self>, addr: Addr<MatchSession>) {
        self.addr = addr.clone();
        self.seat = None;
        let join = Join {
            player_id: self.player_id,
            conn_id: self.conn_id,
            conn: ctx.address().recipient(),
            backlog: self.backlog.clone(),
            encoding: self.encoding,
            resume_from: None,
        };
        ctx.spawn(
            addr.send(join)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(Ok(_)) => {}
                    _ => act.rejoin(ctx),
                }),
        );
    }

    /// Quick-joins another match of the workload's ruleset.
    fn rejoin(&mut self, ctx: &mut Context<Self>) {
        if self.halted() {
            return;
        }
        let engine = self.engine.clone();
        let ruleset = match self.role {
            Role::Fanout { .. } => Workload::Sandbox.ruleset(),
            Role::Tactics(_) => Workload::Tactics.ruleset(),
        };
        ctx.spawn(
            async move { engine.quick_join(ruleset, Vec::new(), None).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(entry) => act.join(ctx, entry.addr),
                    Err(_) => {
                        ctx.run_later(Duration::from_millis(10), |act, ctx| act.rejoin(ctx));
                    }
                }),
        );
    }

    fn send_action(&mut self, action: Action) -> bool {
        let Some(seat) = self.seat else {
            return false;
        };
        self.next_client_seq += 1;
        let act = Act {
            seat,
            conn_id: self.conn_id,
            client_seq: self.next_client_seq,
            action,
            encoding: self.encoding,
            received: Instant::now(),
        };
        match self.addr.try_send(act) {
            Ok(()) => {
                if self.measuring() {
                    bump(&self.stats.actions);
                }
                true
            }
            Err(SendError::Full(_)) => {
                bump(&self.stats.busy);
                false
            }
            Err(SendError::Closed(_)) => false,
        }
    }

    fn send_query(&mut self, query: Query) -> Option<u64> {
        let seat = self.seat?;
        self.next_client_seq += 1;
        let ask = Ask {
            seat,
            conn_id: self.conn_id,
            client_seq: self.next_client_seq,
            query,
            encoding: self.encoding,
        };
        match self.addr.try_send(ask) {
            Ok(()) => {
                if self.measuring() {
                    bump(&self.stats.queries);
                }
                Some(self.next_client_seq)
            }
            Err(SendError::Full(_)) => {
                bump(&self.stats.busy);
                None
            }
            Err(SendError::Closed(_)) => None,
        }
    }

    // -- sandbox fan-out --

    fn send_mark(&mut self, ctx: &mut Context<Self>) {
        if self.halted() {
            return;
        }
        let (x, y) = (self.random(5) as i32, self.random(3) as i32);
        if self.send_action(Action::Mark { x, y }) {
            if let Role::Fanout { inflight, .. } = &mut self.role {
                inflight.push_back(Instant::now());
            }
        } else {
            ctx.run_later(Duration::from_millis(1), |act, ctx| act.send_mark(ctx));
        }
    }

    fn own_mark_seen(&mut self, ctx: &mut Context<Self>) {
        let sent = match &mut self.role {
            Role::Fanout { inflight, .. } => inflight.pop_front(),
            Role::Tactics(_) => None,
        };
        if let Some(sent) = sent {
            if self.measuring() {
                if let Ok(mut h) = self.stats.action_latency.lock() {
                    record(&mut h, sent.elapsed());
                }
            }
        }
        self.send_mark(ctx);
    }

    // -- tactics bot --

    fn bot(&mut self) -> Option<&mut BotSeat> {
        match &mut self.role {
            Role::Tactics(bot) => Some(bot),
            Role::Fanout { .. } => None,
        }
    }

    /// Sends the bot's next request, if it has one.
    fn bot_step(&mut self, ctx: &mut Context<Self>) {
        if self.halted() {
            return;
        }
        let now = Instant::now();
        let Some(step) = self.bot().and_then(|b| b.brain.next(now)) else {
            return;
        };
        self.bot_send(ctx, step, now);
    }

    fn bot_send(&mut self, ctx: &mut Context<Self>, step: Step, now: Instant) {
        let sent = match step {
            Step::Ask { card } => match self.send_query(Query::ValidCells { card }) {
                Some(seq) => {
                    if let Some(bot) = self.bot() {
                        bot.ask = Some((seq, now));
                    }
                    true
                }
                None => false,
            },
            Step::Place { card, x, y } => {
                let ok = self.send_action(Action::Place { card, x, y });
                if let (true, Some(bot)) = (ok, self.bot()) {
                    bot.place = Some(now);
                }
                ok
            }
            Step::Ready => self.send_action(Action::Ready),
        };
        if !sent {
            if let Some(bot) = self.bot() {
                bot.brain.rejected(now);
            }
            ctx.run_later(Duration::from_millis(5), |act, ctx| act.bot_step(ctx));
        }
    }

    fn bot_cells(&mut self, ctx: &mut Context<Self>, client_seq: u64, cells: &[[i32; 2]]) {
        let measuring = self.measuring();
        let stats = self.stats.clone();
        let Some(bot) = self.bot() else {
            return;
        };
        let Some((seq, sent)) = bot.ask else {
            return;
        };
        if seq != client_seq {
            return;
        }
        bot.ask = None;
        if measuring {
            if let Ok(mut h) = stats.query_latency.lock() {
                record(&mut h, sent.elapsed());
            }
        }
        match bot.brain.cells(cells) {
            Some(step) => self.bot_send(ctx, step, Instant::now()),
            None => self.bot_step(ctx),
        }
    }

    fn bot_placed(&mut self, ctx: &mut Context<Self>, card: u32) {
        let measuring = self.measuring();
        let stats = self.stats.clone();
        let Some(bot) = self.bot() else {
            return;
        };
        if let (Some(sent), true) = (bot.place.take(), measuring) {
            if let Ok(mut h) = stats.action_latency.lock() {
                record(&mut h, sent.elapsed());
            }
        }
        bot.brain.placed(card, Instant::now());
        self.bot_step(ctx);
    }

    fn bot_rejected(&mut self, ctx: &mut Context<Self>) {
        let Some(bot) = self.bot() else {
            return;
        };
        bot.ask = None;
        bot.place = None;
        bot.brain.rejected(Instant::now());
        self.bot_step(ctx);
    }

    // -- frames --

    fn on_frame(&mut self, ctx: &mut Context<Self>, frame: &Out) {
        if let (Role::Fanout { .. }, Out::Text(t)) = (&self.role, frame) {
            // A fan-out client only needs an event's header: parse the whole
            // frame as JSON but skip materialising the payload.
            if let Ok(head) = serde_json::from_str::<EventHead>(t) {
                if head.kind == "event" {
                    let mine = head.seat.is_some() && head.seat == self.seat;
                    self.on_event(ctx, head.seq, mine, None);
                    return;
                }
            }
        }
        let msg = match frame {
            Out::Text(t) => decode_server_json(t),
            Out::Binary(b) => decode_server_bincode(b),
        };
        match msg {
            Ok(msg) => self.on_message(ctx, msg),
            Err(_) => bump(&self.stats.decode_errors),
        }
    }

    fn check_seq(&mut self, seq: u64) {
        let before = self.check.errors();
        self.check.observe(seq);
        if self.check.errors() > before {
            bump(&self.stats.order_errors);
        }
    }

    /// One event, fully decoded or (fan-out, JSON) only its header.
    fn on_event(&mut self, ctx: &mut Context<Self>, seq: u64, mine: bool, event: Option<Event>) {
        self.check_seq(seq);
        if self.measuring() {
            bump(&self.stats.delivered);
        }
        match event {
            // A fan-out seat's own events are its marks.
            None | Some(Event::Marked { .. }) if mine => self.own_mark_seen(ctx),
            None => {}
            Some(event) => self.bot_event(ctx, event),
        }
    }

    fn bot_event(&mut self, ctx: &mut Context<Self>, event: Event) {
        match event {
            Event::Phase { phase } => {
                if let Some(bot) = self.bot() {
                    bot.brain.phase(&phase, Instant::now());
                    if bot.brain.in_battle() && bot.timer.is_none() {
                        bot.timer = Some(
                            ctx.run_interval(BATTLE_PLACE_EVERY, |act, ctx| act.bot_step(ctx)),
                        );
                    }
                }
                self.bot_step(ctx);
            }
            Event::Placed { seat, card, .. } if Some(seat) == self.seat => {
                self.bot_placed(ctx, card)
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Context<Self>, msg: ServerMsg) {
        match msg {
            ServerMsg::Joined {
                seat, seq, state, ..
            } => {
                self.seat = Some(seat);
                self.check = SeqCheck::starting_at(seq);
                match &mut self.role {
                    Role::Fanout { window, inflight } => {
                        inflight.clear();
                        for _ in 0..*window {
                            self.send_mark(ctx);
                        }
                    }
                    Role::Tactics(bot) => {
                        if let Some(timer) = bot.timer.take() {
                            ctx.cancel_future(timer);
                        }
                        bot.ask = None;
                        bot.place = None;
                        let hand = match state {
                            State::Tactics(view) => view.hand.iter().map(|c| c.card).collect(),
                            State::Sandbox { .. } => Vec::new(),
                        };
                        bot.brain.joined(hand);
                    }
                }
            }
            ServerMsg::Event {
                seq, seat, event, ..
            } => {
                let mine = seat.is_some() && seat == self.seat;
                self.on_event(ctx, seq, mine, Some(event));
            }
            ServerMsg::Reply {
                client_seq,
                reply: Reply::Cells { cells },
            } => self.bot_cells(ctx, client_seq, &cells),
            ServerMsg::Rejected { code, .. } => {
                if code == "busy" {
                    bump(&self.stats.busy);
                } else {
                    bump(&self.stats.rejected);
                }
                match self.role {
                    Role::Fanout { .. } => {
                        if let Role::Fanout { inflight, .. } = &mut self.role {
                            inflight.pop_front();
                        }
                        self.send_mark(ctx);
                    }
                    Role::Tactics(_) => self.bot_rejected(ctx),
                }
            }
            ServerMsg::Ended { seq, .. } => {
                self.check_seq(seq);
                if self.seat == Some(0) && self.measuring() {
                    bump(&self.stats.finished);
                }
                self.seat = None;
                if let Some(bot) = self.bot() {
                    if let Some(timer) = bot.timer.take() {
                        ctx.cancel_future(timer);
                    }
                    self.rejoin(ctx);
                }
            }
            _ => {}
        }
    }
}

/// The header of a server frame, parsed without its payload.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    seat: Option<Seat>,
}

impl Actor for SimClient {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // As a real connection's: a simulated client that falls more than
        // this many frames behind is dropped as a slow consumer and counted
        // (`clients dropped as slow`), so the generator's own overload shows
        // in the report instead of as unbounded memory.
        ctx.set_mailbox_capacity(1024);
        let addr = self.addr.clone();
        self.join(ctx, addr);
    }
}

impl Handler<ToConn> for SimClient {
    type Result = ();

    fn handle(&mut self, msg: ToConn, ctx: &mut Self::Context) {
        match msg {
            ToConn::Frame(frame) => {
                self.backlog.sub(frame.len());
                self.on_frame(ctx, &frame);
            }
            ToConn::Joined { frame, .. } => self.on_frame(ctx, &frame),
            ToConn::Detached { frame, .. } => {
                if let Some(frame) = frame {
                    self.on_frame(ctx, &frame);
                }
            }
            ToConn::Kicked { code, .. } => {
                // At the end of a run every match stops and says so; only a
                // drop for being too slow says something about the run.
                if code == "slow_consumer" {
                    bump(&self.stats.kicked);
                }
                self.seat = None;
            }
            ToConn::Notice { .. } | ToConn::Close { .. } | ToConn::NodeStopping => {}
        }
    }
}

/// Process-wide Prometheus recorder, so metric updates cost what they cost
/// in the server.
fn install_recorder() {
    use std::sync::OnceLock;
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                std::thread::spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    handle.run_upkeep();
                });
            }
            Err(e) => eprintln!("loadtest: metrics recorder not installed: {e}"),
        }
        matchd_actors::metrics::describe();
    });
}

fn cache_totals(stats: &RegistryStats) -> (u64, u64) {
    stats
        .cache
        .iter()
        .fold((0, 0), |(h, m), c| (h + c.hits, m + c.misses))
}

fn cores() -> usize {
    matchd_actors::config::or_cores(0)
}

/// Runs one mailbox benchmark to the end and reports it.
pub fn run(opts: &Opts) -> std::io::Result<MailboxReport> {
    install_recorder();
    let opts = opts.clone();
    let system = actix::System::new();
    let report = system.block_on(async move { drive(opts).await });
    System::current().stop();
    report
}

async fn drive(opts: Opts) -> std::io::Result<MailboxReport> {
    let cfg = EngineConfig {
        node_id: "loadtest".into(),
        arbiters: opts.arbiters,
        cache_enabled: opts.cache,
        // The bench drives the engine flat out: nobody may be dropped as slow
        // or busy because of the bench's own bursts.
        match_mailbox: 4096,
        connection_mailbox: 4096,
        max_outbound_bytes: 64 << 20,
        ..EngineConfig::default()
    };
    let replica = match &opts.redis {
        Some(url) => {
            check_loopback(url)?;
            let client = connected_client(url, None)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Some(Replica::new(
                client,
                ReplicaConfig {
                    // Keys of one run only; they expire (RETENTION_MS).
                    prefix: format!("loadtest:{}:", std::process::id()),
                    node_id: "loadtest".into(),
                    lease_ttl_ms: 5_000,
                    snapshot_ms: 2_000,
                },
            ))
        }
        None => None,
    };
    let engine = Engine::start_replicated(cfg, Catalog::builtin(), None, replica);
    let threads = matchd_actors::config::or_cores(opts.client_threads);
    let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
    let stats: Vec<Arc<ThreadStats>> = (0..threads).map(|_| Arc::new(ThreadStats::new())).collect();
    let flags = Arc::new(Flags::default());
    let seats = match opts.workload {
        Workload::Sandbox => opts.seats.max(1),
        Workload::Tactics => 2,
    };
    let mut n = 0usize;
    for _ in 0..opts.rooms {
        let entry = engine
            .create_match(opts.workload.ruleset(), None)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for _ in 0..seats {
            let t = n % threads;
            n += 1;
            let role = match opts.workload {
                Workload::Sandbox => Role::Fanout {
                    window: opts.window.max(1),
                    inflight: VecDeque::new(),
                },
                Workload::Tactics => Role::Tactics(BotSeat {
                    brain: TacticsBot::new(n as u64),
                    ask: None,
                    place: None,
                    timer: None,
                }),
            };
            let client = SimClient {
                conn_id: n as u64,
                player_id: n as u64,
                engine: engine.clone(),
                addr: entry.addr.clone(),
                seat: None,
                check: SeqCheck::default(),
                encoding: opts.encoding,
                backlog: Arc::default(),
                flags: flags.clone(),
                stats: stats[t].clone(),
                next_client_seq: 0,
                rng: XorShift::new(n as u64),
                role,
            };
            SimClient::start_in_arbiter(&arbiters[t].handle(), move |_| client);
        }
    }

    actix::clock::sleep(opts.warmup).await;
    let cache_before = cache_totals(&engine.stats().await.unwrap_or_default());
    let proc_before = ProcSample::this_process();
    flags.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut timeline = Vec::new();
    while started.elapsed() < opts.duration {
        let left = opts.duration.saturating_sub(started.elapsed());
        actix::clock::sleep(left.min(Duration::from_secs(1))).await;
        timeline.push(ProcSample::this_process().rss_kib);
    }
    flags.measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    flags.stopping.store(true, Ordering::Relaxed);
    let proc_after = ProcSample::this_process();
    let cache_after = cache_totals(&engine.stats().await.unwrap_or_default());

    let sum = |f: fn(&ThreadStats) -> &AtomicU64| -> u64 {
        stats.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
    };
    let mut action_h = latency_histogram();
    let mut query_h = latency_histogram();
    for s in &stats {
        if let Ok(h) = s.action_latency.lock() {
            let _ = action_h.add(&*h);
        }
        if let Ok(h) = s.query_latency.lock() {
            let _ = query_h.add(&*h);
        }
    }
    for a in &arbiters {
        a.stop();
    }
    let actions = sum(|s| &s.actions);
    let delivered = sum(|s| &s.delivered);
    let hits = cache_after.0.saturating_sub(cache_before.0);
    let misses = cache_after.1.saturating_sub(cache_before.1);
    Ok(MailboxReport {
        mode: "mailbox".into(),
        workload: opts.workload.ruleset().into(),
        params: serde_json::json!({
            "rooms": opts.rooms,
            "seats": seats,
            "window": opts.window,
            "warmup_s": opts.warmup.as_secs_f64(),
            "duration_s": opts.duration.as_secs_f64(),
            "cache": opts.cache,
            "redis": opts.redis.is_some(),
            "encoding": opts.encoding.as_str(),
            "arbiters": engine.config().arbiter_count(),
            "client_threads": threads,
            "cores": cores(),
        }),
        seconds,
        actions,
        actions_per_s: actions as f64 / seconds,
        delivered_events: delivered,
        delivered_per_s: delivered as f64 / seconds,
        action_latency: Latency::of(&action_h),
        query_latency: Latency::of(&query_h),
        queries: sum(|s| &s.queries),
        rejected_busy: sum(|s| &s.busy),
        rejected_other: sum(|s| &s.rejected),
        order_errors: sum(|s| &s.order_errors),
        decode_errors: sum(|s| &s.decode_errors),
        kicked: sum(|s| &s.kicked),
        matches_finished: sum(|s| &s.finished),
        cache_hits: hits,
        cache_misses: misses,
        cache_hit_rate: if hits + misses > 0 {
            hits as f64 / (hits + misses) as f64
        } else {
            0.0
        },
        rss_start_kib: proc_before.rss_kib,
        rss_end_kib: proc_after.rss_kib,
        peak_rss_kib: proc_after.peak_rss_kib,
        cpu_cores_used: (proc_after.cpu_seconds - proc_before.cpu_seconds) / seconds,
        rss_timeline_kib: timeline,
    })
}

/// Redis for a benchmark must be on this machine, like every target.
pub(crate) fn check_loopback(url: &str) -> std::io::Result<()> {
    let host = url
        .strip_prefix("redis://")
        .and_then(|r| r.split(['/', ':']).next())
        .unwrap_or("");
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "--redis {url:?}: only a Redis on this machine (127.0.0.0/8) may be used"
        )))
    }
}
