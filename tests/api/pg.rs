//! A throwaway PostgreSQL server per test: `initdb` into a temporary
//! directory, a free port on 127.0.0.1, a private socket directory, and
//! `pg_ctl` to stop and start it mid-test. Torn down (immediate stop, files
//! removed) on drop. Never touches any other server on the machine.
//!
//! Needs the PostgreSQL server binaries (15 or newer): the highest
//! `/usr/lib/postgresql/*/bin` is used, else `initdb` from `PATH`. As root
//! (CI), the server runs as the `postgres` OS user through `runuser`, since
//! Postgres refuses to run as root.

use crate::support::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestPg {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    pub port: u16,
}

fn bin_dir() -> PathBuf {
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let bin = e.path().join("bin");
            let version = e.file_name().to_string_lossy().parse::<u32>().ok();
            if let (Some(v), true) = (version, bin.join("initdb").exists()) {
                if best.as_ref().is_none_or(|(b, _)| v > *b) {
                    best = Some((v, bin));
                }
            }
        }
    }
    if let Some((_, bin)) = best {
        return bin;
    }
    // Fall back to PATH (e.g. a Homebrew or distribution install elsewhere).
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "PostgreSQL server binaries (initdb, pg_ctl) are needed: apt-get install postgresql"
    );
    Path::new(&path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl TestPg {
    /// initdb and start.
    pub fn start() -> Self {
        let pg = Self::init();
        pg.start_server();
        pg
    }

    /// initdb only; call [`TestPg::start_server`] later.
    pub fn init() -> Self {
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!(
            "matchd-pg-{}-{:x}",
            std::process::id(),
            matchd_actors::util::random_u64()
        ));
        std::fs::create_dir_all(&dir).expect("pg temp dir");
        let pg = Self {
            dir,
            bin: bin_dir(),
            as_postgres,
            port: free_port(),
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .expect("chown");
            assert!(ok.success(), "chown the pg dir to postgres");
        }
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &pg.data().to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(out.status.success(), "initdb failed: {out:?}");
        pg
    }

    /// The server's directory (owned by the server's user).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Gives `path` to the server's OS user (as root, `postgres`).
    pub fn give(&self, path: &Path) {
        if self.as_postgres {
            let ok = Command::new("chown")
                .arg("postgres:postgres")
                .arg(path)
                .status()
                .expect("chown");
            assert!(ok.success());
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir(&self.dir).output().expect(tool)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        self.start_server_with("");
    }

    /// Like [`TestPg::start_server`], with extra server options (`-c ...`).
    pub fn start_server_with(&self, extra: &str) {
        let opts = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off {extra}",
            self.dir.display(),
            self.port
        );
        let log = self.dir.join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {out:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Fast shutdown: clients are disconnected, the server exits.
    pub fn stop(&self) {
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(out.status.success(), "pg_ctl stop failed: {out:?}");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test postgres");
        actix_rt::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// (count, distinct seqs, min seq, max seq) of a match's stored events;
/// `None` while the schema is not there yet.
pub async fn stored_seqs(db: &tokio_postgres::Client, id: u64) -> Option<(i64, i64, i64, i64)> {
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT seq), coalesce(min(seq), 0), coalesce(max(seq), 0)
             FROM match_events WHERE match_id = $1",
            &[&(id as i64)],
        )
        .await
        .ok()?;
    Some((row.get(0), row.get(1), row.get(2), row.get(3)))
}

/// A throwaway PgBouncer in front of a [`TestPg`], in transaction mode
/// with its default settings otherwise (so `ignore_startup_parameters` is
/// empty: a client sending `options` is refused), two server connections
/// handed out in turn (`server_round_robin`), listening on a free port.
/// Needs Debian's `pgbouncer` (`/usr/sbin/pgbouncer`). As root it runs as
/// `postgres` (`-u`), since PgBouncer refuses to run as root. Killed on
/// drop.
pub struct TestPgBouncer {
    child: std::process::Child,
    dir: PathBuf,
    pub port: u16,
}

impl TestPgBouncer {
    pub fn start(pg: &TestPg) -> Self {
        let dir = pg.dir().join("pgbouncer");
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        pg.give(&dir);
        let port = free_port();
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 postgres = host=127.0.0.1 port={} dbname=postgres user=postgres\n\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = any\n\
                 pool_mode = transaction\n\
                 default_pool_size = 2\n\
                 server_round_robin = 1\n\
                 max_client_conn = 200\n\
                 logfile = {}\n\
                 pidfile = {}\n",
                pg.port,
                dir.join("pgbouncer.log").display(),
                dir.join("pgbouncer.pid").display(),
            ),
        )
        .expect("pgbouncer.ini");
        pg.give(&ini);
        let bin = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("pgbouncer");
        let mut cmd = Command::new(bin);
        if pg.as_postgres {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(&ini)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pgbouncer (apt-get install pgbouncer)");
        let mut bouncer = Self { child, dir, port };
        // Ready when it accepts connections (bounded; it starts in ms).
        let ready = (0..200).any(|_| {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            false
        });
        if !ready {
            let status = bouncer.child.try_wait();
            panic!("pgbouncer did not start ({status:?}): {}", bouncer.log());
        }
        bouncer
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Makes PgBouncer open `n` server connections: `n` clients each hold a
    /// transaction at once (PgBouncer opens a server connection only when
    /// all are busy), then let go. With `server_round_robin` the following
    /// transactions then go to these connections in turn.
    pub async fn open_server_connections(&self, n: usize) {
        let mut clients = Vec::new();
        for _ in 0..n {
            let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
                .await
                .expect("connect through pgbouncer");
            actix_rt::spawn(async move {
                let _ = conn.await;
            });
            client
                .batch_execute("BEGIN; SELECT 1")
                .await
                .expect("a transaction through pgbouncer");
            clients.push(client);
        }
        for client in &clients {
            client.batch_execute("COMMIT").await.expect("commit");
        }
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for TestPgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
