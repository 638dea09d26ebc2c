//! Throughput of the persistence writer into Postgres.
//!
//! ```sh
//! cargo run --release --bin writer_bench -- [EVENTS] [MATCHES]
//! ```
//!
//! Feeds `EVENTS` (default 1,000,000) match events spread over `MATCHES`
//! (default 1,000) matches to a real `PersistenceWriter`, in messages of 4
//! events as matches send them, and reports events per second from the first
//! message to the last row committed. The database is `DATABASE_URL`, by
//! default `postgres://postgres@127.0.0.1:5432/matchd_bench`; the bench
//! creates that database if needed and empties its match tables first (it
//! never touches another database).

use std::time::{Duration, Instant};

use actix::prelude::*;
use matchd_actors::history::journal::FsyncPolicy;
use matchd_actors::history::record::{Persist, Record};
use matchd_actors::history::store::Store;
use matchd_actors::history::writer::{GetWriterStats, PersistenceWriter, WriterConfig};
use matchd_actors::util::unix_ms;
use matchd_protocol::{Event, MatchResult};
use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/matchd_bench";

async fn prepare(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let cfg: tokio_postgres::Config = url.parse()?;
    let db = cfg.get_dbname().unwrap_or("matchd_bench").to_string();
    let mut admin = cfg.clone();
    admin.dbname("postgres");
    let (client, conn) = admin.connect(NoTls).await?;
    actix::spawn(async move {
        let _ = conn.await;
    });
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE \"{}\"", db.replace('"', "")))
            .await?;
    }
    // Migrate here, so the writer finds the schema ready and the
    // measurement holds writing only.
    Store::new(&WriterConfig::default().store_config(url))?
        .migrate()
        .await?;
    let (client, conn) = cfg.connect(NoTls).await?;
    actix::spawn(async move {
        let _ = conn.await;
    });
    // Start from empty tables.
    client
        .batch_execute("TRUNCATE matches, match_players, match_events, players, player_stats")
        .await?;
    Ok(())
}

fn main() -> std::io::Result<()> {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let matches: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000)
        .max(1);
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let data_dir = std::env::temp_dir().join(format!("matchd-writer-bench-{}", std::process::id()));

    let system = actix::System::new();
    system.block_on(async move {
        if let Err(e) = prepare(&url).await {
            eprintln!("writer_bench: cannot prepare the database: {e}");
            std::process::exit(1);
        }
        let cfg = WriterConfig {
            database_url: Some(url),
            data_dir: data_dir.clone(),
            // Never spill to the journal: this measures the database path.
            buffer_rows: usize::MAX / 2,
            fsync: FsyncPolicy::Never,
            ..WriterConfig::default()
        };
        let batch_rows = cfg.batch_rows;
        let (writer, _arbiter) = PersistenceWriter::start(cfg);

        let now = unix_ms(std::time::SystemTime::now());
        let started = Instant::now();
        let mut sent = 0u64;
        let mut records = 0u64;
        for m in 1..=matches {
            writer.do_send(Persist(vec![Record::MatchCreated {
                match_id: m,
                ruleset: "sandbox".into(),
                node_id: "bench".into(),
                created_at_ms: now,
            }]));
            records += 1;
        }
        // Round-robin over the matches, four events per message, keeping
        // the writer's queue below a few batches (a steady, sustained load).
        let mut seq = 0u64;
        while sent < events {
            seq += 1;
            for m in 1..=matches {
                if sent >= events {
                    break;
                }
                let chunk: Vec<Record> = (0..4)
                    .map(|i| Record::Event {
                        match_id: m,
                        seq: (seq - 1) * 4 + i + 1,
                        seat: Some(0),
                        at_ms: now,
                        event: Event::Marked {
                            x: (i % 5) as i32,
                            y: (m % 3) as i32,
                            count: seq as u32,
                        },
                    })
                    .collect();
                sent += 4;
                records += 4;
                writer.do_send(Persist(chunk));
            }
            if seq % 16 == 0 {
                loop {
                    let s = writer.send(GetWriterStats).await.expect("writer");
                    if s.queue_depth < batch_rows * 4 {
                        break;
                    }
                    actix::clock::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        for m in 1..=matches {
            writer.do_send(Persist(vec![Record::MatchEnded {
                match_id: m,
                ruleset: "sandbox".into(),
                node_id: "bench".into(),
                created_at_ms: now,
                ended_at_ms: now,
                last_seq: seq * 4,
                result: MatchResult {
                    winner: None,
                    reason: "abandoned".into(),
                    scores: Vec::new(),
                },
                players: Vec::new(),
            }]));
            records += 1;
        }
        let mut last = writer.send(GetWriterStats).await.expect("writer");
        while last.rows_written < records {
            actix::clock::sleep(Duration::from_millis(5)).await;
            last = writer.send(GetWriterStats).await.expect("writer");
            if let Some(e) = &last.last_error {
                eprintln!("writer_bench: writer error: {e}");
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "writer_bench: {sent} events ({records} records, {matches} matches) written in {secs:.2} s: {:.0} events/s, {:.0} records/s; journaled {} (must be 0)",
            sent as f64 / secs,
            records as f64 / secs,
            last.rows_journaled
        );
        let _ = std::fs::remove_dir_all(&data_dir);
        System::current().stop();
    });
    Ok(())
}
