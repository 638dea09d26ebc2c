//! Builds the node: engine, HTTP server, metrics upkeep.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use matchd_actors::{Catalog, Engine};

use crate::config::Config;
use crate::routes::{self, AppState};
use crate::sessions::Sessions;
use crate::telemetry;

/// A built, not yet awaited, node.
pub struct Application {
    server: Server,
    port: u16,
    engine: Engine,
}

impl Application {
    /// Binds the listener and starts the engine. Must run inside an actix
    /// `System` (`#[actix_web::main]`), so HTTP workers are Arbiters of it.
    pub fn build(config: Config, catalog: Catalog) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&config.bind)?;
        let port = listener.local_addr()?.port();
        let metrics = telemetry::metrics_handle();
        let engine = Engine::start(config.engine.clone(), catalog);
        let state = web::Data::new(AppState {
            engine: engine.clone(),
            sessions: Sessions::new(config.max_sessions),
            metrics: metrics.clone(),
            started: Instant::now(),
        });
        // Histograms keep growing unless upkeep runs (metrics-rs#467).
        actix_web::rt::spawn(async move {
            let mut every = actix_web::rt::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        });
        let workers = if config.workers > 0 {
            config.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(routes::observe))
                .configure(routes::configure)
        })
        .workers(workers)
        // Events are small frames sent as they happen: Nagle's algorithm
        // would hold one back until the client's delayed ACK (up to 40 ms).
        .tcp_nodelay(true)
        .max_connections(config.max_connections_per_worker)
        .backlog(4096)
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
        log::info!(
            bind = config.bind.as_str(), port = port, node_id = config.engine.node_id.as_str(), workers = workers;
            "matchd listening"
        );
        Ok(Self {
            server,
            port,
            engine,
        })
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

    /// Serves until the server stops (SIGINT/SIGTERM or `handle().stop()`).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Raises the soft open-files limit to the hard one; each WebSocket is a file.
pub fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => log::info!(nofile = n; "open-files limit raised to the hard limit"),
        Err(e) => log::warn!("could not raise the open-files limit: {e}"),
    }
}
