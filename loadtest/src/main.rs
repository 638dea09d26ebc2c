//! `loadtest`: parses the command line and runs one mode.

use std::time::Duration;

use loadtest::args::{ArgError, Args};
use loadtest::mailbox::{self, Workload};
use loadtest::{cache_bench, report};
use matchd_actors::protocol::codec::Encoding;

const USAGE: &str = "\
loadtest: benchmarks for matchd

USAGE:
  loadtest mailbox [options]   real engine actors in-process, no network
  loadtest cache [options]     cost of a valid_cells answer, cached vs not

mailbox options:
  --workload sandbox|tactics   default sandbox
  --rooms N                    simultaneous matches (default 250)
  --seats N                    seats per sandbox room (default 4)
  --window N                   marks each sandbox seat keeps in flight (default 8)
  --warmup D                   not measured (default 2s)
  --duration D                 measured (default 10s)
  --cache on|off               validation cache (default on)
  --encoding json|bincode      frames the clients receive (default json)
  --arbiters N                 match arbiters, 0 = one per core (default 0)
  --client-threads N           arbiters of the simulated clients, 0 = one per core
  --json FILE                  also write the report as JSON

cache options:
  --positions N                tactics positions (default 500)
  --encoding json|bincode      default json
  --duration D                 total time (default 4s)
  --json FILE
";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = argv.first() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let result = match mode.as_str() {
        "mailbox" => run_mailbox(&argv[1..]),
        "cache" => run_cache(&argv[1..]),
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown mode {other:?}\n\n{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("loadtest: {e}");
        std::process::exit(2);
    }
}

fn encoding(args: &Args) -> Result<Encoding, String> {
    let s = args.string("encoding").unwrap_or_else(|| "json".into());
    Encoding::parse(&s).ok_or_else(|| format!("--encoding {s:?}: expected json or bincode"))
}

fn run_mailbox(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv).map_err(|e| e.to_string())?;
    let d = mailbox::Opts::default();
    let workload = args.string("workload").unwrap_or_else(|| "sandbox".into());
    let opts = mailbox::Opts {
        workload: Workload::parse(&workload)
            .ok_or_else(|| format!("--workload {workload:?}: expected sandbox or tactics"))?,
        rooms: args.get("rooms", d.rooms).map_err(fmt)?,
        seats: args.get("seats", d.seats).map_err(fmt)?,
        window: args.get("window", d.window).map_err(fmt)?,
        warmup: args.duration("warmup", d.warmup).map_err(fmt)?,
        duration: args.duration("duration", d.duration).map_err(fmt)?,
        cache: args.switch("cache", d.cache).map_err(fmt)?,
        encoding: encoding(&args)?,
        arbiters: args.get("arbiters", d.arbiters).map_err(fmt)?,
        client_threads: args.get("client-threads", d.client_threads).map_err(fmt)?,
    };
    let json = args.string("json");
    args.finish().map_err(fmt)?;
    let r = mailbox::run(&opts).map_err(|e| e.to_string())?;
    print!("{}", r.table());
    if let Some(path) = json {
        report::write_json(&path, &r).map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(())
}

fn run_cache(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv).map_err(|e| e.to_string())?;
    let positions = args.get("positions", 500usize).map_err(fmt)?;
    let enc = encoding(&args)?;
    let budget = args
        .duration("duration", Duration::from_secs(4))
        .map_err(fmt)?;
    let json = args.string("json");
    args.finish().map_err(fmt)?;
    let r = cache_bench::run(positions, enc, budget);
    print!("{}", r.table());
    if let Some(path) = json {
        report::write_json(&path, &r).map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(())
}

fn fmt(e: ArgError) -> String {
    e.to_string()
}
