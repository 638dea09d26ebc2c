//! `loadtest`: parses the command line and runs one mode.

use std::time::Duration;

use loadtest::args::{ArgError, Args};
use loadtest::mailbox::{self, Workload};
use loadtest::stages::Stages;
use loadtest::threshold::{Comparison, Threshold};
use loadtest::ws::{self, Scenario, WsReport};
use loadtest::{cache_bench, failover, plot, report};
use matchd_protocol::codec::Encoding;

const USAGE: &str = "\
loadtest: benchmarks for matchd

USAGE:
  loadtest mailbox [options]   real engine actors in-process, no network
  loadtest cache [options]     cost of a valid_cells answer, cached vs not
  loadtest ws [options]        real WebSocket clients against a running node
  loadtest merge A.json B.json... [--json OUT] [--threshold T]... [--baseline F]
                               one report from several generators' reports
  loadtest failover [options]  kill -9 a node mid-match, time the takeover

mailbox options:
  --workload sandbox|tactics   default sandbox
  --rooms N                    simultaneous matches (default 250)
  --seats N                    seats per sandbox room (default 4)
  --window N                   marks each sandbox seat keeps in flight (default 8)
  --warmup D                   not measured (default 2s)
  --duration D                 measured (default 10s)
  --cache on|off               validation cache (default on)
  --redis URL                  replicate every match to this Redis (loopback only)
  --encoding json|bincode      frames the clients receive (default json)
  --arbiters N                 match arbiters, 0 = one per core (default 0)
  --client-threads N           arbiters of the simulated clients, 0 = one per core
  --json FILE                  also write the report as JSON

ws options:
  --url URL                    node to load (default http://127.0.0.1:8080; loopback only)
  --scenario connections|fanout|tactics|resume|abuse   default fanout
                               (resume: fanout whose clients drop their socket
                               and resume on a new one; no event may be lost;
                               abuse: malformed frames every second and a burst
                               over the frame budget every 20 s, reconnecting)
  --resume-every D             resume: each client about this often (default 5s)
  --resume-via URL             resume: through this other node, following its redirect
  --clients N --duration D     a flat run (default 100 clients, 10s)
  --stages D:N,D:N,...         ramps instead, e.g. 10s:1000,30s:1000,10s:0
  --room K                     fanout seats per room (default 4)
  --rate R                     fanout marks per second per seat (default 10)
  --encoding json|bincode      default json
  --threads N                  generator threads, 0 = one per core
  --source-ips A-B|A,B,...     spread sockets over these 127.x addresses
  --shard I/N                  this process runs share I of N
  --server-pid PID             sample the server's memory (KiB per connection)
  --threshold RULE             repeatable: p50|p95|p99|max<20ms, errors<0.1%,
                               delivered_per_s>N, actions_per_s>N, connect_failures<N
  --baseline FILE.json         fail if p95 is >20% worse or errors >1.5x
  --json FILE  --plot FILE.svg  --quiet on

  Exit code 1 when a threshold or the baseline check fails.

failover options (a sandbox match on --url, whose process is killed):
  --url URL --via URL          node A (killed) and node B (resumed on)
  --redis URL --prefix P       the cluster's Redis and key prefix (default matchd:)
  --kill-pid PID               node A's process
  --retry D                    the client's resume retry interval (default 100ms)
  --marks N                    marks before the kill (default 20)
  Prints one JSON line: kill to lease expiry, expiry to resumed and to playing.

soak-plot SAMPLES.csv OUT.svg [TITLE]:
  draws the samples of loadtest/scripts/soak.sh (node RSS, open files,
  connections, writer queue over time) as an SVG

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
        "ws" => run_ws(&argv[1..]),
        "merge" => run_merge(&argv[1..]),
        "failover" => run_failover(&argv[1..]),
        "soak-plot" => run_soak_plot(&argv[1..]),
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
        redis: args.string("redis"),
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

fn run_ws(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv).map_err(|e| e.to_string())?;
    let d = ws::WsOpts::default();
    let stages = match args.string("stages") {
        Some(s) => Stages::parse(&s)?,
        None => Stages::flat(
            args.get("clients", 100usize).map_err(fmt)?,
            args.duration("duration", Duration::from_secs(10))
                .map_err(fmt)?,
        ),
    };
    let shard = match args.string("shard") {
        None => (0, 1),
        Some(s) => {
            let parsed = s
                .split_once('/')
                .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
            match parsed {
                Some((i, n)) if n > 0 && i < n => (i, n),
                _ => return Err(format!("--shard {s:?}: expected I/N with I < N")),
            }
        }
    };
    let opts = ws::WsOpts {
        url: args.string("url").unwrap_or(d.url),
        scenario: Scenario::parse(&args.string("scenario").unwrap_or_else(|| "fanout".into()))?,
        stages,
        room: args.get("room", d.room).map_err(fmt)?,
        rate: args.get("rate", d.rate).map_err(fmt)?,
        encoding: encoding(&args)?,
        threads: args.get("threads", d.threads).map_err(fmt)?,
        source_ips: match args.string("source-ips") {
            Some(s) => ws::parse_ips(&s)?,
            None => Vec::new(),
        },
        shard,
        server_pid: args
            .string("server-pid")
            .map(|p| p.parse())
            .transpose()
            .map_err(|e: std::num::ParseIntError| format!("--server-pid: {e}"))?,
        resume_every: args.duration("resume-every", d.resume_every).map_err(fmt)?,
        resume_via: args.string("resume-via"),
        progress: !args.switch("quiet", false).map_err(fmt)?,
    };
    let checks = Checks::from(&args)?;
    args.finish().map_err(fmt)?;
    raise_file_limit();
    let mut r = ws::run(opts)?;
    checks.apply(&mut r)
}

fn run_failover(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv).map_err(|e| e.to_string())?;
    let need = |flag: &str| {
        args.string(flag)
            .ok_or_else(|| format!("--{flag} is required"))
    };
    let opts = failover::Opts {
        url: need("url")?,
        via: need("via")?,
        redis: need("redis")?,
        prefix: args.string("prefix").unwrap_or_else(|| "matchd:".into()),
        kill_pid: need("kill-pid")?
            .parse()
            .map_err(|e| format!("--kill-pid: {e}"))?,
        retry: args
            .duration("retry", Duration::from_millis(100))
            .map_err(fmt)?,
        marks: args.get("marks", 20usize).map_err(fmt)?,
    };
    args.finish().map_err(fmt)?;
    let r = failover::run(opts)?;
    println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    Ok(())
}

/// `soak-plot SAMPLES.csv OUT.svg [TITLE]`: the curve of a soak run.
fn run_soak_plot(argv: &[String]) -> Result<(), String> {
    let (Some(csv), Some(svg)) = (argv.first(), argv.get(1)) else {
        return Err("usage: loadtest soak-plot SAMPLES.csv OUT.svg [TITLE]".into());
    };
    let text = std::fs::read_to_string(csv).map_err(|e| format!("{csv}: {e}"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|v| v.trim().parse().unwrap_or(0.0))
                .collect()
        })
        .collect();
    let title = argv.get(2).map_or("matchd soak", String::as_str);
    let doc = loadtest::plot::soak_svg(title, &header, &rows)?;
    std::fs::write(svg, doc).map_err(|e| format!("{svg}: {e}"))
}

fn run_merge(argv: &[String]) -> Result<(), String> {
    let files: Vec<&String> = argv.iter().take_while(|a| !a.starts_with("--")).collect();
    let args = Args::parse(&argv[files.len()..]).map_err(|e| e.to_string())?;
    let checks = Checks::from(&args)?;
    args.finish().map_err(fmt)?;
    let parts = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
            serde_json::from_str::<WsReport>(&text).map_err(|e| format!("{f}: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut r = WsReport::merge(&parts)?;
    checks.apply(&mut r)
}

/// Output files, thresholds and the baseline, shared by `ws` and `merge`.
struct Checks {
    thresholds: Vec<Threshold>,
    baseline: Option<WsReport>,
    json: Option<String>,
    plot: Option<String>,
}

impl Checks {
    fn from(args: &Args) -> Result<Self, String> {
        let thresholds = args
            .all("threshold")
            .iter()
            .map(|t| Threshold::parse(t))
            .collect::<Result<Vec<_>, String>>()?;
        let baseline = match args.string("baseline") {
            None => None,
            Some(f) => {
                let text = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
                Some(serde_json::from_str(&text).map_err(|e| format!("{f}: {e}"))?)
            }
        };
        Ok(Self {
            thresholds,
            baseline,
            json: args.string("json"),
            plot: args.string("plot"),
        })
    }

    /// Prints the report, writes the files, and fails on a breached rule.
    fn apply(self, r: &mut WsReport) -> Result<(), String> {
        let figures = r.figures();
        r.thresholds = self.thresholds.iter().map(|t| t.check(&figures)).collect();
        r.baseline = self
            .baseline
            .as_ref()
            .map(|b| Comparison::new(&b.figures(), &figures));
        print!("{}", r.table());
        if let Some(c) = &r.baseline {
            print!("baseline comparison:\n{}", c.describe());
        }
        if let Some(path) = &self.json {
            report::write_json(path, &*r).map_err(|e| format!("writing {path}: {e}"))?;
        }
        if let Some(path) = &self.plot {
            let title = format!("matchd ws {} ({})", r.scenario, r.params);
            std::fs::write(path, plot::svg(&title, &r.timeline))
                .map_err(|e| format!("writing {path}: {e}"))?;
        }
        let failed = r.thresholds.iter().any(|v| !v.passed)
            || r.baseline.as_ref().is_some_and(|c| !c.passed());
        if failed {
            eprintln!("loadtest: a threshold or the baseline check failed");
            std::process::exit(1);
        }
        Ok(())
    }
}

fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => eprintln!("loadtest: open-files limit {n}"),
        Err(e) => eprintln!("loadtest: could not raise the open-files limit: {e}"),
    }
}

fn fmt(e: ArgError) -> String {
    e.to_string()
}
