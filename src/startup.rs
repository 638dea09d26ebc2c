//! Builds the node: persistence writer, engine, HTTP server, metrics upkeep.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix::{Addr, Arbiter};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use matchd_actors::cluster::control;
use matchd_actors::cluster::keys::Keys;
use matchd_actors::cluster::nodes::{
    redis_client, redis_subscriber, Affinity, AffinityConfig, Deregister, GetNodes,
};
use matchd_actors::cluster::replica::{Replica, ReplicaConfig};
use matchd_actors::history::store::Store;
use matchd_actors::history::writer::{PersistenceWriter, SpillWriter};
use matchd_actors::{Catalog, Engine};

use crate::config::Config;
use crate::limits::Limits;
use crate::origins::OriginPolicy;
use crate::routes::{self, AppState, Reads};
use crate::sessions::Sessions;
use crate::telemetry;
use std::sync::Arc;

/// A built, not yet awaited, node.
pub struct Application {
    server: Server,
    port: u16,
    admin_port: Option<u16>,
    engine: Engine,
    writer: Addr<PersistenceWriter>,
    _writer_arbiter: Arbiter,
    drain_timeout: Duration,
    /// The Redis presence and its Arbiter, kept alive with the node.
    _affinity: Option<(Addr<Affinity>, Arbiter)>,
}

impl Application {
    /// Binds the listener and starts the engine. Must run inside an actix
    /// `System` (`#[actix_web::main]`), so HTTP workers are Arbiters of it.
    pub fn build(config: Config, catalog: Catalog) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&config.bind)?;
        let port = listener.local_addr()?.port();
        let admin_listener = match &config.admin_bind {
            Some(addr) => Some(TcpListener::bind(addr)?),
            None => None,
        };
        let admin_port = match &admin_listener {
            Some(l) => Some(l.local_addr()?.port()),
            None => None,
        };
        let metrics = telemetry::metrics_handle();
        // Without a database the journal is the only store of history: a
        // data directory that cannot be written is refused here rather than
        // found out by losing records. With one, it is reported (/ready,
        // matchd_journal_unwritable) and history goes to Postgres.
        if let Err(e) = probe_data_dir(&config.persist.data_dir) {
            let dir = config.persist.data_dir.display();
            if config.persist.database_url.is_none() {
                return Err(std::io::Error::other(format!(
                    "MATCHD_DATA_DIR {dir} cannot be written ({e}); without DATABASE_URL the journal there is the only store of match history"
                )));
            }
            log::error!("MATCHD_DATA_DIR {dir} cannot be written ({e}); history goes to Postgres only, with no journal to fall back on");
        }
        // The writer first: matches hand it their history from their start.
        let (writer, writer_arbiter) = PersistenceWriter::start(config.persist.clone());
        // One node id, one live process: refuse to start on an id another
        // live node holds (both would take the same match leases).
        if let Some(url) = &config.redis_url {
            ensure_node_id_free(&url.0, &config)?;
        }
        // With Redis: one client, shared by the node registry, the match
        // replicas and the sessions.
        let redis = match &config.redis_url {
            Some(url) => Some(
                redis_client(&url.0, config.redis_ca_file.as_deref())
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        let replica = redis.as_ref().map(|client| {
            Replica::new(
                client.clone(),
                ReplicaConfig {
                    prefix: config.redis_prefix.clone(),
                    node_id: config.engine.node_id.clone(),
                    lease_ttl_ms: config.lease_ttl_ms,
                    snapshot_ms: config.snapshot_ms,
                },
            )
        });
        let engine = Engine::start_replicated(
            config.engine.clone(),
            catalog,
            Some(writer.clone().recipient()),
            replica,
        );
        let affinity = match &redis {
            None => None,
            Some(client) => {
                let cfg = AffinityConfig {
                    prefix: config.redis_prefix.clone(),
                    node_id: config.engine.node_id.clone(),
                    advertise_url: config.advertise_url.clone(),
                    node_ttl_ms: config.node_ttl_ms,
                };
                let load = Box::new(engine.match_counter());
                // A live conflict found later (two processes started while
                // Redis was away): this one exits, leaving the other's keys.
                let on_conflict = || std::process::exit(1);
                Some(
                    Affinity::start(cfg, client.clone(), load, on_conflict)
                        .map_err(std::io::Error::other)?,
                )
            }
        };
        let verifier = if config.auth.jwt() {
            let v = crate::identity::Verifier::new(&config.jwt).map_err(std::io::Error::other)?;
            Some(Arc::new(v))
        } else {
            None
        };
        let sessions = Sessions::new(
            config.max_sessions,
            Duration::from_millis(config.session_ttl_ms),
            Duration::from_millis(config.session_max_age_ms),
        )
        .with_redis(redis.clone(), Keys::new(&config.redis_prefix));
        // Idle sessions leave memory even when nobody creates new ones.
        let swept = sessions.clone();
        actix_web::rt::spawn(async move {
            let mut every = actix_web::rt::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                swept.sweep();
            }
        });
        let origins = OriginPolicy::new(config.allowed_origins.clone());
        let limits = Arc::new(Limits::new(&config.limits));
        let swept_limits = limits.clone();
        actix_web::rt::spawn(async move {
            // Idle IPs leave the limiters' maps.
            let mut every = actix_web::rt::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                swept_limits.sweep();
            }
        });
        if let Some((affinity, _)) = &affinity {
            // Pages of the other live nodes may follow redirects here.
            let (affinity, origins) = (affinity.clone(), origins.clone());
            actix_web::rt::spawn(async move {
                let mut every = actix_web::rt::time::interval(Duration::from_secs(2));
                loop {
                    every.tick().await;
                    if let Ok(Ok(nodes)) = affinity.send(GetNodes).await {
                        origins.set_peers(nodes.iter().map(|n| n.url.as_str()));
                    }
                }
            });
        }
        let control_key = config
            .cluster_key
            .as_ref()
            .or(config.admin_key.as_ref())
            .map(|k| control::ControlKey::new(k.0.as_bytes()));
        let state = web::Data::new(AppState {
            engine: engine.clone(),
            sessions,
            metrics: metrics.clone(),
            started: Instant::now(),
            writer: writer.clone(),
            admin_key: config.admin_key.as_ref().map(|k| k.0.clone()),
            affinity: affinity.as_ref().map(|(addr, _)| addr.clone()),
            advertise_url: config.advertise_url.clone(),
            redis: redis.clone(),
            redis_keys: Keys::new(&config.redis_prefix),
            control_key: control_key.clone(),
            origins: origins.clone(),
            body_timeout: Duration::from_millis(config.body_timeout_ms),
            auth: config.auth,
            verifier,
            limits: limits.clone(),
            admin_port,
        });
        match (&config.redis_url, control_key) {
            (Some(url), Some(key)) => {
                let subscriber = redis_subscriber(&url.0, config.redis_ca_file.as_deref())
                    .map_err(std::io::Error::other)?;
                let (target, sessions) = (engine.clone(), state.sessions.clone());
                control::listen(subscriber, Keys::new(&config.redis_prefix), key, move |msg| {
                    routes::apply_control(&target, &sessions, msg);
                });
            }
            (Some(_), None) => log::info!(
                "no MATCHD_CLUSTER_KEY or MATCHD_ADMIN_KEY: this node neither sends nor applies control messages"
            ),
            (None, _) => {}
        }
        let read_cfg = config
            .read_database_url
            .as_ref()
            .map(|url| config.persist.store_config(&url.0));
        // Histograms keep growing unless upkeep runs (metrics-rs#467).
        actix_web::rt::spawn(async move {
            let mut every = actix_web::rt::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        });
        let workers = matchd_actors::config::or_cores(config.workers);
        let server = HttpServer::new(move || {
            // One read pool per worker, so its connections live on the
            // worker's own runtime.
            let reads = Reads(read_cfg.as_ref().and_then(|cfg| {
                Store::new(cfg)
                    .map_err(|e| log::error!("DATABASE_READ_URL unusable: {e}"))
                    .ok()
            }));
            App::new()
                .app_data(state.clone())
                .app_data(web::Data::new(reads))
                .wrap(routes::cors(state.origins.clone()))
                .wrap(routes::security_headers())
                .wrap(from_fn(routes::observe))
                .wrap(from_fn(routes::admin_gate))
                .configure(routes::configure)
        })
        .workers(workers)
        // Events are small frames sent as they happen: Nagle's algorithm
        // would hold one back until the client's delayed ACK (up to 40 ms).
        .tcp_nodelay(true)
        .max_connections(config.max_connections_per_worker)
        .backlog(4096)
        .shutdown_timeout(5)
        // actix-server's own handlers stop the whole System after a signal,
        // before the writer could drain: `run_until_stopped` handles them.
        .disable_signals()
        .listen(listener)?;
        let server = match admin_listener {
            Some(l) => server.listen(l)?,
            None => server,
        }
        .run();
        log::info!(
            bind = config.bind.as_str(), port = port, node_id = config.engine.node_id.as_str(), workers = workers;
            "matchd listening"
        );
        Ok(Self {
            server,
            port,
            admin_port,
            engine,
            writer,
            _writer_arbiter: writer_arbiter,
            drain_timeout: Duration::from_millis(config.drain_timeout_ms),
            _affinity: affinity,
        })
    }

    /// The port of `MATCHD_ADMIN_BIND`'s listener, if there is one.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn writer(&self) -> &Addr<PersistenceWriter> {
        &self.writer
    }

    /// Serves until the server stops (SIGINT/SIGTERM or `handle().stop()`),
    /// then lets the writer finish its batch and journal what it still holds.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let (engine, drain_timeout) = (self.engine.clone(), self.drain_timeout);
        let affinity = self._affinity.as_ref().map(|(addr, _)| addr.clone());
        actix_web::rt::spawn(async move {
            // SIGINT/SIGTERM, or `POST /admin/drain`, starts a drain.
            let signal = shutdown_signal();
            tokio::pin!(signal);
            loop {
                tokio::select! {
                    _ = &mut signal => {
                        log::info!("shutdown signal received; draining");
                        engine.start_draining();
                        break;
                    }
                    _ = actix_web::rt::time::sleep(DRAIN_POLL) => {
                        if engine.is_draining() {
                            break;
                        }
                    }
                }
            }
            hand_over(&engine, affinity.as_ref()).await;
            drain(&engine, drain_timeout).await;
            let told = engine.close_connections();
            log::info!(connections = told; "closing the remaining connections (node_stopping, 1001)");
            handle.stop(true).await;
        });
        let result = self.server.await;
        if let Some((affinity, _)) = &self._affinity {
            // Leave the node registry now rather than at the key's expiry.
            let _ = affinity
                .send(Deregister)
                .timeout(Duration::from_secs(2))
                .await;
        }
        match self
            .writer
            .send(SpillWriter)
            .timeout(Duration::from_secs(10))
            .await
        {
            Ok(()) => log::info!("persistence writer drained"),
            Err(e) => log::warn!("persistence writer did not drain in time: {e}"),
        }
        result
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
/// How often the drain watcher looks at the node.
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// With Redis and a live peer: every match writes a last snapshot, releases
/// its lease and sends its members `redirect` to the least loaded peer,
/// which rebuilds it when they resume there. Without a peer the matches
/// play on here until they empty (see [`drain`]).
async fn hand_over(engine: &Engine, affinity: Option<&Addr<Affinity>>) {
    let (Some(affinity), Some(replica)) = (affinity, engine.replica()) else {
        return;
    };
    let nodes = match affinity
        .send(GetNodes)
        .timeout(Duration::from_secs(2))
        .await
    {
        Ok(Ok(nodes)) => nodes,
        Ok(Err(e)) => {
            log::warn!("drain: cannot list peer nodes ({e}); matches play on here");
            return;
        }
        Err(e) => {
            log::warn!("drain: cannot list peer nodes ({e}); matches play on here");
            return;
        }
    };
    let peer = nodes
        .into_iter()
        .filter(|n| n.node_id != replica.node_id())
        .min_by_key(|n| n.matches);
    let Some(peer) = peer else {
        log::info!("drain: no peer node; matches play on here until they empty");
        return;
    };
    let url = peer.url;
    match engine.hand_over_all(url.clone()).await {
        Ok(n) => {
            log::info!(matches = n, peer = peer.node_id.as_str(), url = url.as_str(); "drain: handing matches over")
        }
        Err(e) => log::warn!("drain: registry did not answer ({e}); matches play on here"),
    }
}

/// Waits until no match has a connected player, or `timeout`. Connections
/// hear `draining` from their own heartbeat; `/ready` already fails.
async fn drain(engine: &Engine, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let busy = engine.busy_matches();
        if busy == 0 {
            log::info!("drained: no match has a connected player; stopping");
            return;
        }
        if Instant::now() >= deadline {
            log::warn!(busy_matches = busy; "drain deadline reached; stopping anyway");
            return;
        }
        actix_web::rt::time::sleep(DRAIN_POLL).await;
    }
}

async fn shutdown_signal() {
    use actix_web::rt::signal;
    let mut term = match signal::unix::signal(signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot listen for SIGTERM: {e}");
            let _ = signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Raises the soft open-files limit to the hard one; each WebSocket is a file.
pub fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => log::info!(nofile = n; "open-files limit raised to the hard limit"),
        Err(e) => log::warn!("could not raise the open-files limit: {e}"),
    }
}

/// Whether `dir` takes a new file: made (if needed), written, synced and
/// removed again.
fn probe_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".matchd-write-probe");
    let mut f = std::fs::File::create(&probe)?;
    let written = f.write_all(&[0u8; 4096]).and_then(|()| f.sync_all());
    let _ = std::fs::remove_file(&probe);
    written
}

/// Fails when another live process is registered in Redis under this
/// node's id: its registration is there and is renewed within a third of
/// the node TTL (plus slack). A registration that is not renewed is a dead
/// process's (a restart after a crash) and does not count. Redis being
/// unreachable skips the check (the registration itself checks again).
fn ensure_node_id_free(url: &str, config: &Config) -> std::io::Result<()> {
    let (url, key, ca) = (
        url.to_string(),
        Keys::new(&config.redis_prefix).node(&config.engine.node_id),
        config.redis_ca_file.clone(),
    );
    let wait = Duration::from_millis(config.node_ttl_ms / 3 + 500);
    let check = std::thread::spawn(move || -> Result<bool, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            use fred::prelude::KeysInterface;
            let client = matchd_actors::cluster::nodes::connected_client(&url, ca.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let renewed = |v: Option<String>| {
                v.and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
                    .and_then(|n| n["renewed_at_ms"].as_u64())
            };
            let first: Option<String> = client.get(&key).await.map_err(|e| e.to_string())?;
            let Some(before) = renewed(first) else {
                return Ok(false);
            };
            tokio::time::sleep(wait).await;
            let again: Option<String> = client.get(&key).await.map_err(|e| e.to_string())?;
            Ok(renewed(again).is_some_and(|after| after != before))
        })
    });
    match check.join() {
        Ok(Ok(true)) => Err(std::io::Error::other(format!(
            "another live node is registered in redis as {:?}; set a unique MATCHD_NODE_ID (or leave it unset for a random one)",
            config.engine.node_id
        ))),
        Ok(Ok(false)) => Ok(()),
        Ok(Err(e)) => {
            log::warn!("could not check in redis that the node id is free ({e}); the registration will");
            Ok(())
        }
        Err(_) => Ok(()),
    }
}
