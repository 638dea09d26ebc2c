//! `matchd`: loads the configuration, sets up logging and metrics, builds the
//! node and waits for it to stop.

use matchd::config::Config;
use matchd::startup::{raise_file_limit, Application};
use matchd::telemetry;
use matchd_actors::Catalog;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--help" | "-h") => {
            print!("{}", Config::help());
            return Ok(());
        }
        Some("--version" | "-V") => {
            println!("matchd {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Some(other) => {
            eprintln!("matchd: unknown argument {other:?}\n\n{}", Config::help());
            std::process::exit(2);
        }
        None => {}
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("matchd: invalid configuration: {e}");
            std::process::exit(2);
        }
    };
    telemetry::init_logging(config.log_format);
    raise_file_limit();
    let app = Application::build(config, Catalog::builtin())?;
    app.run_until_stopped().await
}
