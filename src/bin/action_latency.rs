//! Does persistence slow the live path? Measures the latency of an action
//! through a match actor (`Act` in, the `event` frame out at the member's
//! connection) with no persistence, with the writer journaling only, and
//! with the writer writing to Postgres.
//!
//! ```sh
//! cargo run --release --bin action_latency -- [ACTIONS]
//! ```
//!
//! `ACTIONS` (default 20,000) sandbox marks per mode, one at a time, after a
//! warm-up. The database is `DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/matchd_bench` (run `writer_bench`
//! first, or create that database).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use matchd_actors::history::journal::FsyncPolicy;
use matchd_actors::history::writer::{GetWriterStats, PersistenceWriter, WriterConfig};
use matchd_actors::testing::{Act, Join};
use matchd_actors::testing::{Backlog, ToConn};
use matchd_actors::{Catalog, Engine, EngineConfig};
use matchd_protocol::codec::Encoding;
use matchd_protocol::Action;
use tokio::sync::mpsc;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/matchd_bench";

/// Stands in for a connection: reports when each frame arrives, and counts
/// it as written, as a connection does.
struct Sink(mpsc::UnboundedSender<Instant>, Arc<Backlog>);

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<ToConn> for Sink {
    type Result = ();

    fn handle(&mut self, msg: ToConn, _: &mut Self::Context) {
        if let ToConn::Frame(frame) = &msg {
            self.1.sub(frame.len());
        }
        let _ = self.0.send(Instant::now());
    }
}

async fn measure(
    engine: &Engine,
    actions: usize,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let entry = engine.create_match("sandbox", None).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog::default());
    let sink = Sink(tx, backlog.clone()).start();
    let ack = entry
        .addr
        .send(Join {
            player_id: 1,
            conn_id: 1,
            conn: sink.recipient(),
            backlog,
            encoding: Encoding::Bincode,
            resume_from: None,
        })
        .await?
        .map_err(|e| format!("join: {e}"))?;
    // `joined` and `player_joined`.
    for _ in 0..2 {
        rx.recv().await.ok_or("sink gone")?;
    }
    let warmup = actions / 10;
    let mut out = Vec::with_capacity(actions);
    for i in 0..warmup + actions {
        let sent = Instant::now();
        entry.addr.do_send(Act {
            seat: ack.seat,
            conn_id: 1,
            client_seq: i as u64,
            action: Action::Mark {
                x: (i % 5) as i32,
                y: (i % 3) as i32,
            },
            encoding: Encoding::Bincode,
            received: sent,
        });
        let got = rx.recv().await.ok_or("sink gone")?;
        if i >= warmup {
            out.push(got.duration_since(sent));
        }
    }
    Ok(out)
}

fn report(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let pct = |p: f64| d[((d.len() as f64 * p) as usize).min(d.len() - 1)].as_secs_f64() * 1e6;
    let mean = d.iter().map(Duration::as_secs_f64).sum::<f64>() / d.len() as f64 * 1e6;
    println!(
        "{name:<28} n={:<6} mean {mean:>6.1} µs  p50 {:>6.1} µs  p99 {:>6.1} µs  p99.9 {:>7.1} µs",
        d.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
}

fn main() -> std::io::Result<()> {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let actions: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000)
        .max(10);
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let data_dir =
        std::env::temp_dir().join(format!("matchd-action-latency-{}", std::process::id()));
    let system = actix::System::new();
    let result = system.block_on(async move {
        let cfg = EngineConfig {
            arbiters: 1,
            ..EngineConfig::default()
        };
        let off = Engine::start(cfg.clone(), Catalog::builtin());
        report("persistence off", measure(&off, actions).await?);

        let writer_cfg = |db: Option<String>, dir: &str| WriterConfig {
            database_url: db,
            data_dir: data_dir.join(dir),
            fsync: FsyncPolicy::Always,
            ..WriterConfig::default()
        };
        let (journal, _a1) = PersistenceWriter::start(writer_cfg(None, "journal"));
        let engine = Engine::start_with(cfg.clone(), Catalog::builtin(), Some(journal.recipient()));
        report(
            "journal only (fsync always)",
            measure(&engine, actions).await?,
        );

        let (pg, _a2) = PersistenceWriter::start(writer_cfg(Some(url), "pg"));
        let engine = Engine::start_with(cfg, Catalog::builtin(), Some(pg.clone().recipient()));
        report("Postgres", measure(&engine, actions).await?);
        let stats = pg.send(GetWriterStats).await?;
        println!(
            "  (writer: {} rows written to Postgres, {} journaled, last error {:?})",
            stats.rows_written, stats.rows_journaled, stats.last_error
        );
        let _ = std::fs::remove_dir_all(&data_dir);
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    if let Err(e) = result {
        eprintln!("action_latency: {e}");
        std::process::exit(1);
    }
    Ok(())
}
