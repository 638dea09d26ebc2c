//! `matchd`: loads the configuration, sets up logging and metrics, builds the
//! node and waits for it to stop; or runs one maintenance sub-command.

use matchd::cli::{self, Command};
use matchd::config::Config;
use matchd::startup::{raise_file_limit, Application};
use matchd::telemetry;
use matchd_actors::Catalog;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match Command::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("matchd: {e}\n\n{}", Config::help());
            std::process::exit(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", Config::help());
            return Ok(());
        }
        Command::Version => {
            println!("matchd {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        _ => {}
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("matchd: invalid configuration: {e}");
            std::process::exit(2);
        }
    };
    telemetry::init_logging(config.log_format);
    let done = match command {
        Command::Migrate => cli::migrate(&config).await,
        Command::ImportJournal(path) => cli::import_journal(&config, path).await,
        _ => {
            raise_file_limit();
            let app = Application::build(config, Catalog::builtin())?;
            return app.run_until_stopped().await;
        }
    };
    if let Err(e) = done {
        eprintln!("matchd: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}
