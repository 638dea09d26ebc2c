//! The maintenance sub-commands: `matchd migrate` and
//! `matchd journal import [PATH]`.

use std::path::PathBuf;

use anyhow::Context;
use matchd_actors::history::journal;
use matchd_actors::history::record::Record;
use matchd_actors::history::store::Store;

use crate::config::Config;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    Help,
    Version,
    Migrate,
    ImportJournal(Option<PathBuf>),
}

impl Command {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            [] => Ok(Command::Serve),
            ["--help" | "-h"] => Ok(Command::Help),
            ["--version" | "-V"] => Ok(Command::Version),
            ["migrate"] => Ok(Command::Migrate),
            ["journal", "import"] => Ok(Command::ImportJournal(None)),
            ["journal", "import", path] => Ok(Command::ImportJournal(Some(PathBuf::from(path)))),
            other => Err(format!("unknown arguments {other:?}")),
        }
    }
}

fn store(config: &Config) -> anyhow::Result<Store> {
    let url = config
        .persist
        .database_url
        .as_deref()
        .context("DATABASE_URL is not set")?;
    Store::new(&config.persist.store_config(url)).context("DATABASE_URL")
}

/// `matchd migrate`: applies pending migrations and says which.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let applied = store(config)?
        .migrate()
        .await
        .context("running migrations")?;
    if applied.is_empty() {
        println!("schema is up to date");
    }
    for name in applied {
        println!("applied {name}");
    }
    Ok(())
}

/// `matchd journal import [PATH]`: loads every valid entry of a journal into
/// Postgres in batches, reading the file one entry at a time (memory stays
/// at one batch however large the file). Idempotent: importing the same
/// journal twice changes nothing. The file is left as it is (damaged bytes
/// are skipped, with a warning); delete or archive it once imported.
pub async fn import_journal(config: &Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    let path = path.unwrap_or_else(|| config.persist.journal_path());
    let store = store(config)?;
    store.migrate().await.context("running migrations")?;
    let mut entries = journal::Entries::<Vec<Record>>::open(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    let batch = config.persist.batch_rows.max(1);
    let (mut pending, mut records, mut results) = (Vec::new(), 0u64, 0);
    loop {
        let next = entries.next();
        let done = next.is_none();
        if let Some(entry) = next {
            pending.extend(entry.with_context(|| format!("reading {}", path.display()))?);
        }
        while pending.len() >= batch || (done && !pending.is_empty()) {
            let chunk: Vec<Record> = pending.drain(..batch.min(pending.len())).collect();
            results += store
                .write(&chunk)
                .await
                .context("writing a batch")?
                .results;
            records += chunk.len() as u64;
        }
        if done {
            break;
        }
    }
    println!(
        "imported {records} records ({} entries, {results} new results) from {}; skipped {} damaged bytes",
        entries.entries,
        path.display(),
        entries.skipped_bytes
    );
    Ok(())
}
