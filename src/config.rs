//! Typed configuration from `MATCHD_*` environment variables.
//!
//! Every setting is listed once in [`SETTINGS`], which drives parsing, the
//! defaults, `matchd --help` and the README table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use matchd_actors::history::journal::FsyncPolicy;
use matchd_actors::history::writer::WriterConfig;
use matchd_actors::EngineConfig;

/// A value that must never reach a log line (database URLs carry passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP/WebSocket listener binds.
    pub bind: String,
    /// A second listener for `/admin/*` and `/metrics`, which the main one
    /// then refuses (`MATCHD_ADMIN_BIND`); `None`: one listener for all.
    pub admin_bind: Option<String>,
    /// HTTP worker threads (each an actix Arbiter); 0 means one per core.
    pub workers: usize,
    /// Connections each HTTP worker accepts at most.
    pub max_connections_per_worker: usize,
    /// Anonymous sessions kept at most.
    pub max_sessions: usize,
    pub log_format: LogFormat,
    pub engine: EngineConfig,
    /// The persistence writer (`DATABASE_URL`, data directory, journal).
    pub persist: WriterConfig,
    /// Postgres the read API queries (`DATABASE_READ_URL`, else `DATABASE_URL`).
    pub read_database_url: Option<Secret>,
    /// Key of the `/admin/*` endpoints; `None` turns them off.
    pub admin_key: Option<Secret>,
    /// Key that seals control messages between nodes (`MATCHD_CLUSTER_KEY`;
    /// unset, the admin key is used).
    pub cluster_key: Option<Secret>,
    /// How long a client may take to send a request body it started.
    pub body_timeout_ms: u64,
    /// Per-IP rate limits of sessions, matches and upgrades.
    pub limits: crate::limits::LimitsConfig,
    /// Web pages that may open WebSockets and call the HTTP API from a
    /// browser (`MATCHD_ALLOWED_ORIGINS`).
    pub allowed_origins: crate::origins::AllowedOrigins,
    /// Redis for cross-node presence; `None`: the node runs alone.
    pub redis_url: Option<Secret>,
    /// CA bundle trusted for a `rediss://` URL (else the system's roots).
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of every Redis key this node writes.
    pub redis_prefix: String,
    /// Lifetime of the node's Redis registration (renewed every third).
    pub node_ttl_ms: u64,
    /// Lifetime of a match lease in Redis (renewed every third).
    pub lease_ttl_ms: u64,
    /// How often a changed match writes its snapshot to Redis.
    pub snapshot_ms: u64,
    /// Lifetime of a session token in Redis.
    pub session_ttl_ms: u64,
    /// Absolute lifetime of a session, used or not.
    pub session_max_age_ms: u64,
    /// Which identities the node accepts (`MATCHD_AUTH`).
    pub auth: crate::identity::AuthMode,
    /// Keys and claims of verified identity (`MATCHD_JWT_*`).
    pub jwt: crate::identity::JwtConfig,
    /// The WebSocket URL this node advertises to clients and peers.
    pub advertise_url: String,
    /// How long a drain waits for connected matches to finish before the
    /// node stops anyway.
    pub drain_timeout_ms: u64,
}

/// One setting: variable, default, meaning.
pub struct Setting {
    pub var: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        var: "MATCHD_BIND",
        default: "127.0.0.1:8080",
        help: "HTTP and WebSocket listen address",
    },
    Setting {
        var: "MATCHD_NODE_ID",
        default: "(random node-<16 hex digits>)",
        help: "name of this node, sent in `welcome`; with Redis it must be unique: a node whose id another live node holds refuses to start (exit 1), and a restart after a crash waits up to a third of MATCHD_NODE_TTL_MS to see that the old registration is stale",
    },
    Setting {
        var: "MATCHD_WORKERS",
        default: "0",
        help: "HTTP worker threads; 0 = one per core",
    },
    Setting {
        var: "MATCHD_ARBITERS",
        default: "0",
        help: "match arbiter threads (one validation-cache shard each); 0 = one per core",
    },
    Setting {
        var: "MATCHD_MAX_CONNECTIONS_PER_WORKER",
        default: "100000",
        help: "connections one HTTP worker accepts (actix-server's default is 25,600)",
    },
    Setting {
        var: "MATCHD_HEARTBEAT_MS",
        default: "1000",
        help: "interval of server WebSocket pings",
    },
    Setting {
        var: "MATCHD_CLIENT_TIMEOUT_MS",
        default: "5000",
        help: "a client silent this long is disconnected",
    },
    Setting {
        var: "MATCHD_MAX_FRAME_BYTES",
        default: "65536",
        help: "largest WebSocket frame; larger closes with 1009",
    },
    Setting {
        var: "MATCHD_MAX_MESSAGE_BYTES",
        default: "65536",
        help: "largest message reassembled from continuation frames; larger closes with 1009",
    },
    Setting {
        var: "MATCHD_MATCH_MAILBOX",
        default: "1024",
        help: "mailbox capacity of a match; when full, actions are rejected with `busy`",
    },
    Setting {
        var: "MATCHD_CONNECTION_MAILBOX",
        default: "1024",
        help: "mailbox capacity of a connection; a client that overflows it is disconnected",
    },
    Setting {
        var: "MATCHD_RING_BUFFER",
        default: "1024",
        help: "events each match keeps for resume",
    },
    Setting {
        var: "MATCHD_EMPTY_MATCH_TIMEOUT_MS",
        default: "30000",
        help: "a match with nobody connected this long ends as `abandoned`",
    },
    Setting {
        var: "MATCHD_SEAT_GRACE_MS",
        default: "30000",
        help: "a disconnected seat is held this long before it is given up",
    },
    Setting {
        var: "MATCHD_CACHE_CAPACITY",
        default: "65536",
        help: "entries per validation-cache shard",
    },
    Setting {
        var: "MATCHD_CACHE_TTL_MS",
        default: "60000",
        help: "lifetime of a validation-cache entry",
    },
    Setting {
        var: "MATCHD_CACHE",
        default: "on",
        help: "`off` bypasses the validation cache (every query is computed)",
    },
    Setting {
        var: "MATCHD_MAX_OUTBOUND_BYTES",
        default: "1048576",
        help: "bytes queued for one connection and not yet written; past it the client is closed with 1008",
    },
    Setting {
        var: "MATCHD_MAX_MATCHES",
        default: "100000",
        help: "live matches this node hosts at most",
    },
    Setting {
        var: "MATCHD_MAX_SESSIONS",
        default: "1000000",
        help: "sessions a node keeps in memory at most; when full, a new one evicts the least recently used tenth",
    },
    Setting {
        var: "DATABASE_URL",
        default: "(none: the journal is the store)",
        help: "Postgres for match history, e.g. `postgres://user:pass@host:5432/matchd`",
    },
    Setting {
        var: "DATABASE_READ_URL",
        default: "(DATABASE_URL)",
        help: "Postgres (may be a replica) behind the read API",
    },
    Setting {
        var: "MATCHD_DATA_DIR",
        default: "./data",
        help: "directory of the journal (`journal.log`) and `dead-letter.log`, relative to the working directory",
    },
    Setting {
        var: "MATCHD_WRITER_FLUSH_MS",
        default: "5",
        help: "the writer flushes its buffer at least this often",
    },
    Setting {
        var: "MATCHD_WRITER_BATCH_ROWS",
        default: "5000",
        help: "records per batch (one transaction); a full batch flushes at once",
    },
    Setting {
        var: "MATCHD_WRITER_BUFFER_ROWS",
        default: "100000",
        help: "records buffered in memory at most; beyond, they go to the journal",
    },
    Setting {
        var: "MATCHD_WRITER_MAILBOX",
        default: "65536",
        help: "mailbox capacity of the persistence writer, in messages; a match whose history does not fit holds it",
    },
    Setting {
        var: "MATCHD_HISTORY_BACKLOG",
        default: "10000",
        help: "history records a match holds while the writer's mailbox is full; past it the newest events are dropped and counted",
    },
    Setting {
        var: "MATCHD_WRITER_RETRIES",
        default: "3",
        help: "attempts per batch before it goes to the journal",
    },
    Setting {
        var: "MATCHD_WRITER_BACKOFF_MS",
        default: "50",
        help: "first retry delay; doubles per attempt up to 2 s, with jitter",
    },
    Setting {
        var: "MATCHD_DB_POOL_SIZE",
        default: "2",
        help: "connections of the writer's pool, and of each HTTP worker's read pool",
    },
    Setting {
        var: "MATCHD_DB_TIMEOUT_MS",
        default: "5000",
        help: "connect, pool wait and statement timeout",
    },
    Setting {
        var: "MATCHD_JOURNAL_FSYNC",
        default: "always",
        help: "`always` (fdatasync every appended batch), `periodic` (every MATCHD_JOURNAL_FSYNC_MS) or `never`",
    },
    Setting {
        var: "MATCHD_JOURNAL_FSYNC_MS",
        default: "1000",
        help: "interval of the `periodic` fsync policy",
    },
    Setting {
        var: "MATCHD_BREAKER_FAILURES",
        default: "3",
        help: "consecutive failed database attempts that open the circuit breaker",
    },
    Setting {
        var: "MATCHD_BREAKER_OPEN_MS",
        default: "1000",
        help: "the open breaker waits this long before one probe (half-open)",
    },
    Setting {
        var: "REDIS_URL",
        default: "(unset: the node runs alone)",
        help: "Redis for the node registry, match leases, snapshots and streams (failover), shared sessions and control messages (`redis://host:port`); never logged",
    },
    Setting {
        var: "MATCHD_REDIS_PREFIX",
        default: "matchd:",
        help: "prefix of every Redis key this node writes",
    },
    Setting {
        var: "MATCHD_NODE_TTL_MS",
        default: "5000",
        help: "lifetime of the node's Redis registration; renewed every third of it",
    },
    Setting {
        var: "MATCHD_LEASE_TTL_MS",
        default: "5000",
        help: "lifetime of a match's ownership lease in Redis; renewed every third of it. A dead node's matches can be taken over this long after it died",
    },
    Setting {
        var: "MATCHD_SNAPSHOT_MS",
        default: "2000",
        help: "how often a match that changed writes its full snapshot to Redis (the stream holds what happened since)",
    },
    Setting {
        var: "MATCHD_SESSION_TTL_MS",
        default: "86400000",
        help: "a session unused this long expires, in memory and in Redis (where every node can resolve it); each use renews it",
    },
    Setting {
        var: "MATCHD_SESSION_MAX_AGE_MS",
        default: "604800000",
        help: "a session ends this long after it was made, used or not (7 days); a session made from a JWT ends when the JWT expires if that is sooner",
    },
    Setting {
        var: "MATCHD_AUTH",
        default: "anonymous",
        help: "which players the node admits: `anonymous` (anyone gets a session; development), `jwt` (only players with a JWT of the game's auth service), `both`",
    },
    Setting {
        var: "MATCHD_JWT_SECRET",
        default: "(unset)",
        help: "HS256 shared secret (at least 32 bytes) that the game's auth service signs player JWTs with",
    },
    Setting {
        var: "MATCHD_JWT_PUBLIC_KEY_FILE",
        default: "(unset)",
        help: "PEM public key (RSA for RS256, Ed25519 for EdDSA) of the game's auth service",
    },
    Setting {
        var: "MATCHD_JWT_JWKS_FILE",
        default: "(unset)",
        help: "JWKS file of the game's auth service (RS256, EdDSA, ES256 keys, picked by `kid`); read at start",
    },
    Setting {
        var: "MATCHD_JWT_AUDIENCE",
        default: "(unset: not checked)",
        help: "the `aud` a player JWT must carry",
    },
    Setting {
        var: "MATCHD_JWT_ISSUER",
        default: "(unset: not checked)",
        help: "the `iss` a player JWT must carry",
    },
    Setting {
        var: "MATCHD_JWT_LEEWAY_S",
        default: "30",
        help: "clock skew allowed on a JWT's `exp`",
    },
    Setting {
        var: "MATCHD_RATE_ANONYMOUS",
        default: "(on with MATCHD_AUTH=anonymous, else off)",
        help: "whether ratings and win/loss stats count for anonymous players; off, only verified players are rated (anonymous sessions are free, so one person could farm a rating)",
    },
    Setting {
        var: "MATCHD_ADVERTISE_URL",
        default: "(ws://MATCHD_BIND/v1/ws)",
        help: "WebSocket URL this node advertises in `GET /v1/nodes`, `GET /v1/matches/{id}` and `redirect` frames",
    },
    Setting {
        var: "MATCHD_RATE_SESSIONS_PER_MIN",
        default: "120",
        help: "`POST /v1/sessions` per client IP per minute (also the burst); over it 429 `rate_limited` with `Retry-After`",
    },
    Setting {
        var: "MATCHD_RATE_MATCHES_PER_MIN",
        default: "120",
        help: "`POST /v1/matches` per client IP per minute (also the burst)",
    },
    Setting {
        var: "MATCHD_RATE_UPGRADES_PER_MIN",
        default: "300",
        help: "WebSocket upgrades per client IP per minute (also the burst)",
    },
    Setting {
        var: "MATCHD_MAX_CONNS_PER_IP",
        default: "512",
        help: "WebSocket connections open at once from one client IP; past it the upgrade gets 429 `too_many_connections`",
    },
    Setting {
        var: "MATCHD_MAX_CONNS_PER_PLAYER",
        default: "4",
        help: "WebSocket connections open at once with one player's sessions; past it 429 `too_many_connections`",
    },
    Setting {
        var: "MATCHD_MAX_SEATS_PER_PLAYER",
        default: "4",
        help: "seats one player may hold at once, counting seats held for them while disconnected, in this node's matches and (with Redis) on every node (0: no cap); past it a join gets `error too_many_seats`",
    },
    Setting {
        var: "MATCHD_CONN_FRAMES_PER_SEC",
        default: "120",
        help: "frames one connection may send per second (also the burst; 0: no limit); over it `rejected rate_limited` (actions, queries) or `error rate_limited`, and after a second's worth of refused frames within 10 s, `error rate_limited` and close 1008",
    },
    Setting {
        var: "MATCHD_CONN_BYTES_PER_SEC",
        default: "262144",
        help: "bytes one connection may send per second (0: no limit); the bucket always holds one message of `MATCHD_MAX_MESSAGE_BYTES`; over it as for frames",
    },
    Setting {
        var: "MATCHD_TRUSTED_PROXIES",
        default: "(unset: none)",
        help: "comma-separated IPs of load balancers whose `X-Forwarded-For` names the client (for the rate limits); from any other peer the header is ignored",
    },
    Setting {
        var: "MATCHD_BODY_TIMEOUT_MS",
        default: "5000",
        help: "a request body must arrive within this long (408 `body_timeout`); admin bodies are read only after the key was checked",
    },
    Setting {
        var: "MATCHD_ALLOWED_ORIGINS",
        default: "(unset: same origin only)",
        help: "web pages that may use this node from a browser: `*`, or a comma-separated list of `https://host[:port]` (list the game's page here); pages served by this node or by another live node of the cluster are always allowed; a WebSocket upgrade from another origin gets 403 `origin_not_allowed`, and CORS answers the HTTP API's preflights for the allowed ones",
    },
    Setting {
        var: "MATCHD_DATABASE_CA_FILE",
        default: "(unset: system roots)",
        help: "PEM CA bundle trusted when `DATABASE_URL`/`DATABASE_READ_URL` has `sslmode=require` (or `verify-ca`/`verify-full`): TLS through rustls, certificate and host name always verified",
    },
    Setting {
        var: "MATCHD_REDIS_CA_FILE",
        default: "(unset: system roots)",
        help: "PEM CA bundle trusted for a `rediss://` `REDIS_URL` (TLS through rustls, certificate and host name verified)",
    },
    Setting {
        var: "MATCHD_ADMIN_BIND",
        default: "(unset: served on MATCHD_BIND)",
        help: "a separate listen address (e.g. a private interface) for `/admin/*` and `/metrics`; when set, the public listener answers them with 404",
    },
    Setting {
        var: "MATCHD_CLUSTER_KEY",
        default: "(unset: MATCHD_ADMIN_KEY)",
        help: "shared key of the cluster's nodes: control messages (kick, end, broadcast) on Redis are sealed with HMAC-SHA256 under it, and a node applies only sealed, fresh (within 60 s) messages of at most 16 KiB; with neither key set, control messages are off. Never logged",
    },
    Setting {
        var: "MATCHD_ADMIN_KEY",
        default: "(unset: admin endpoints off)",
        help: "bearer key of the `/admin/*` endpoints (drain, kick, end a match, broadcast); never logged",
    },
    Setting {
        var: "MATCHD_DRAIN_TIMEOUT_MS",
        default: "60000",
        help: "a draining node stops when no match has a connected player, or after this long",
    },
    Setting {
        var: "MATCHD_LOG_FORMAT",
        default: "text",
        help: "`text` for people, `json` for one JSON object per line",
    },
    Setting {
        var: "RUST_LOG",
        default: "info",
        help: "log filter (env_logger syntax)",
    },
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var}={value:?} is not a valid {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{0}")]
    Inconsistent(String),
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads settings from `vars`; unset ones take their default.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = EngineConfig::default();
        let get = |var: &'static str| {
            vars.get(var)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let num = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                    var,
                    value: v,
                    expected: "non-negative integer",
                }),
            }
        };
        let size = |var: &'static str, default: usize| num(var, default as u64).map(|n| n as usize);

        let log_format = match get("MATCHD_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "MATCHD_LOG_FORMAT",
                    value: other.into(),
                    expected: "log format (text or json)",
                })
            }
        };
        let cache_enabled = match get("MATCHD_CACHE").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "MATCHD_CACHE",
                    value: other.into(),
                    expected: "switch (on or off)",
                })
            }
        };
        let node_id = get("MATCHD_NODE_ID").unwrap_or_else(|| {
            // 64 random bits: two nodes never draw the same id.
            format!("node-{:016x}", matchd_actors::util::random_u64())
        });
        let u32_of = |var, default: u32| -> Result<u32, ConfigError> {
            Ok(num(var, u64::from(default))?.min(u64::from(u32::MAX)) as u32)
        };
        let engine = EngineConfig {
            node_id,
            arbiters: size("MATCHD_ARBITERS", d.arbiters)?,
            heartbeat_ms: num("MATCHD_HEARTBEAT_MS", d.heartbeat_ms)?,
            client_timeout_ms: num("MATCHD_CLIENT_TIMEOUT_MS", d.client_timeout_ms)?,
            max_frame_bytes: size("MATCHD_MAX_FRAME_BYTES", d.max_frame_bytes)?,
            max_message_bytes: size("MATCHD_MAX_MESSAGE_BYTES", d.max_message_bytes)?,
            match_mailbox: size("MATCHD_MATCH_MAILBOX", d.match_mailbox)?,
            connection_mailbox: size("MATCHD_CONNECTION_MAILBOX", d.connection_mailbox)?,
            ring_buffer: size("MATCHD_RING_BUFFER", d.ring_buffer)?,
            empty_match_timeout_ms: num("MATCHD_EMPTY_MATCH_TIMEOUT_MS", d.empty_match_timeout_ms)?,
            seat_grace_ms: num("MATCHD_SEAT_GRACE_MS", d.seat_grace_ms)?,
            max_seats_per_player: size("MATCHD_MAX_SEATS_PER_PLAYER", d.max_seats_per_player)?,
            cache_capacity: size("MATCHD_CACHE_CAPACITY", d.cache_capacity)?,
            cache_ttl_ms: num("MATCHD_CACHE_TTL_MS", d.cache_ttl_ms)?,
            cache_enabled,
            max_outbound_bytes: size("MATCHD_MAX_OUTBOUND_BYTES", d.max_outbound_bytes)?,
            max_matches: size("MATCHD_MAX_MATCHES", d.max_matches)?,
            history_backlog: size("MATCHD_HISTORY_BACKLOG", d.history_backlog)?,
            frames_per_sec: u32_of("MATCHD_CONN_FRAMES_PER_SEC", d.frames_per_sec)?,
            bytes_per_sec: u32_of("MATCHD_CONN_BYTES_PER_SEC", d.bytes_per_sec)?,
        };
        let w = WriterConfig::default();
        let fsync_ms = num("MATCHD_JOURNAL_FSYNC_MS", 1000)?;
        let fsync_name = get("MATCHD_JOURNAL_FSYNC").unwrap_or_else(|| "always".into());
        let fsync = FsyncPolicy::parse(&fsync_name, Duration::from_millis(fsync_ms)).ok_or(
            ConfigError::Invalid {
                var: "MATCHD_JOURNAL_FSYNC",
                value: fsync_name.clone(),
                expected: "fsync policy (always, periodic or never)",
            },
        )?;
        let database_url = get("DATABASE_URL");
        let auth_name = get("MATCHD_AUTH").unwrap_or_else(|| "anonymous".into());
        let auth = crate::identity::AuthMode::parse(&auth_name).ok_or(ConfigError::Invalid {
            var: "MATCHD_AUTH",
            value: auth_name.clone(),
            expected: "identity mode (anonymous, jwt or both)",
        })?;
        let rate_anonymous = match get("MATCHD_RATE_ANONYMOUS").as_deref() {
            None => auth == crate::identity::AuthMode::Anonymous,
            Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "MATCHD_RATE_ANONYMOUS",
                    value: other.into(),
                    expected: "switch (on or off)",
                })
            }
        };
        let persist = WriterConfig {
            rate_anonymous,
            database_ca_file: get("MATCHD_DATABASE_CA_FILE").map(PathBuf::from),
            database_url: database_url.clone(),
            data_dir: get("MATCHD_DATA_DIR").map_or(w.data_dir, PathBuf::from),
            flush_ms: num("MATCHD_WRITER_FLUSH_MS", w.flush_ms)?,
            batch_rows: size("MATCHD_WRITER_BATCH_ROWS", w.batch_rows)?,
            buffer_rows: size("MATCHD_WRITER_BUFFER_ROWS", w.buffer_rows)?,
            mailbox: size("MATCHD_WRITER_MAILBOX", w.mailbox)?,
            pool_size: size("MATCHD_DB_POOL_SIZE", w.pool_size)?,
            db_timeout_ms: num("MATCHD_DB_TIMEOUT_MS", w.db_timeout_ms)?,
            fsync,
            breaker_failures: num("MATCHD_BREAKER_FAILURES", w.breaker_failures as u64)?
                .min(u32::MAX as u64) as u32,
            breaker_open_ms: num("MATCHD_BREAKER_OPEN_MS", w.breaker_open_ms)?,
            retries: num("MATCHD_WRITER_RETRIES", w.retries as u64)?.min(u32::MAX as u64) as u32,
            backoff_ms: num("MATCHD_WRITER_BACKOFF_MS", w.backoff_ms)?,
        };
        if fsync_ms == 0 {
            return Err(ConfigError::Inconsistent(
                "MATCHD_JOURNAL_FSYNC_MS must be greater than 0".into(),
            ));
        }
        let read_database_url = get("DATABASE_READ_URL").or(database_url).map(Secret);
        let bind = get("MATCHD_BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
        let config = Config {
            advertise_url: get("MATCHD_ADVERTISE_URL")
                .unwrap_or_else(|| format!("ws://{bind}/v1/ws")),
            bind,
            admin_bind: get("MATCHD_ADMIN_BIND"),
            workers: size("MATCHD_WORKERS", 0)?,
            max_connections_per_worker: size("MATCHD_MAX_CONNECTIONS_PER_WORKER", 100_000)?,
            max_sessions: size("MATCHD_MAX_SESSIONS", 1_000_000)?,
            log_format,
            engine,
            persist,
            read_database_url,
            admin_key: get("MATCHD_ADMIN_KEY").map(Secret),
            cluster_key: get("MATCHD_CLUSTER_KEY").map(Secret),
            body_timeout_ms: num("MATCHD_BODY_TIMEOUT_MS", 5_000)?,
            limits: {
                let d = crate::limits::LimitsConfig::default();
                let per_min = |var, default: u32| -> Result<u32, ConfigError> {
                    Ok(num(var, u64::from(default))?.min(u64::from(u32::MAX)) as u32)
                };
                let raw = get("MATCHD_TRUSTED_PROXIES").unwrap_or_default();
                crate::limits::LimitsConfig {
                    sessions_per_min: per_min("MATCHD_RATE_SESSIONS_PER_MIN", d.sessions_per_min)?,
                    matches_per_min: per_min("MATCHD_RATE_MATCHES_PER_MIN", d.matches_per_min)?,
                    upgrades_per_min: per_min("MATCHD_RATE_UPGRADES_PER_MIN", d.upgrades_per_min)?,
                    conns_per_ip: size("MATCHD_MAX_CONNS_PER_IP", d.conns_per_ip)?,
                    conns_per_player: size("MATCHD_MAX_CONNS_PER_PLAYER", d.conns_per_player)?,
                    trusted_proxies: crate::limits::parse_proxies(&raw).map_err(|_| {
                        ConfigError::Invalid {
                            var: "MATCHD_TRUSTED_PROXIES",
                            value: raw.clone(),
                            expected: "comma-separated IP addresses",
                        }
                    })?,
                }
            },
            allowed_origins: {
                let raw = get("MATCHD_ALLOWED_ORIGINS").unwrap_or_default();
                crate::origins::AllowedOrigins::parse(&raw).map_err(|_| ConfigError::Invalid {
                    var: "MATCHD_ALLOWED_ORIGINS",
                    value: raw.clone(),
                    expected: "`*` or a comma-separated list of http(s)://host[:port]",
                })?
            },
            drain_timeout_ms: num("MATCHD_DRAIN_TIMEOUT_MS", 60_000)?,
            redis_url: get("REDIS_URL").map(Secret),
            redis_ca_file: get("MATCHD_REDIS_CA_FILE").map(PathBuf::from),
            redis_prefix: get("MATCHD_REDIS_PREFIX").unwrap_or_else(|| "matchd:".into()),
            node_ttl_ms: num("MATCHD_NODE_TTL_MS", 5_000)?,
            lease_ttl_ms: num("MATCHD_LEASE_TTL_MS", 5_000)?,
            snapshot_ms: num("MATCHD_SNAPSHOT_MS", 2_000)?,
            session_ttl_ms: num("MATCHD_SESSION_TTL_MS", 86_400_000)?,
            session_max_age_ms: num("MATCHD_SESSION_MAX_AGE_MS", 7 * 86_400_000)?,
            auth,
            jwt: crate::identity::JwtConfig {
                secret: get("MATCHD_JWT_SECRET"),
                public_key_file: get("MATCHD_JWT_PUBLIC_KEY_FILE").map(PathBuf::from),
                jwks_file: get("MATCHD_JWT_JWKS_FILE").map(PathBuf::from),
                audience: get("MATCHD_JWT_AUDIENCE"),
                issuer: get("MATCHD_JWT_ISSUER"),
                leeway_s: num("MATCHD_JWT_LEEWAY_S", 30)?,
            },
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.engine;
        let positive = [
            ("MATCHD_HEARTBEAT_MS", e.heartbeat_ms as usize),
            ("MATCHD_CLIENT_TIMEOUT_MS", e.client_timeout_ms as usize),
            ("MATCHD_MAX_FRAME_BYTES", e.max_frame_bytes),
            ("MATCHD_MAX_MESSAGE_BYTES", e.max_message_bytes),
            ("MATCHD_MATCH_MAILBOX", e.match_mailbox),
            ("MATCHD_CONNECTION_MAILBOX", e.connection_mailbox),
            ("MATCHD_RING_BUFFER", e.ring_buffer),
            ("MATCHD_CACHE_CAPACITY", e.cache_capacity),
            ("MATCHD_CACHE_TTL_MS", e.cache_ttl_ms as usize),
            ("MATCHD_NODE_TTL_MS", self.node_ttl_ms as usize),
            ("MATCHD_LEASE_TTL_MS", self.lease_ttl_ms as usize),
            ("MATCHD_SNAPSHOT_MS", self.snapshot_ms as usize),
            ("MATCHD_SESSION_TTL_MS", self.session_ttl_ms as usize),
            (
                "MATCHD_SESSION_MAX_AGE_MS",
                self.session_max_age_ms as usize,
            ),
            ("MATCHD_MAX_OUTBOUND_BYTES", e.max_outbound_bytes),
            ("MATCHD_MAX_MATCHES", e.max_matches),
            ("MATCHD_MAX_SESSIONS", self.max_sessions),
            (
                "MATCHD_MAX_CONNECTIONS_PER_WORKER",
                self.max_connections_per_worker,
            ),
            ("MATCHD_WRITER_FLUSH_MS", self.persist.flush_ms as usize),
            ("MATCHD_WRITER_BATCH_ROWS", self.persist.batch_rows),
            ("MATCHD_WRITER_BUFFER_ROWS", self.persist.buffer_rows),
            ("MATCHD_WRITER_MAILBOX", self.persist.mailbox),
            ("MATCHD_BODY_TIMEOUT_MS", self.body_timeout_ms as usize),
            (
                "MATCHD_RATE_SESSIONS_PER_MIN",
                self.limits.sessions_per_min as usize,
            ),
            (
                "MATCHD_RATE_MATCHES_PER_MIN",
                self.limits.matches_per_min as usize,
            ),
            (
                "MATCHD_RATE_UPGRADES_PER_MIN",
                self.limits.upgrades_per_min as usize,
            ),
            ("MATCHD_HISTORY_BACKLOG", e.history_backlog),
            ("MATCHD_MAX_CONNS_PER_IP", self.limits.conns_per_ip),
            ("MATCHD_MAX_CONNS_PER_PLAYER", self.limits.conns_per_player),
            ("MATCHD_WRITER_RETRIES", self.persist.retries as usize),
            ("MATCHD_WRITER_BACKOFF_MS", self.persist.backoff_ms as usize),
            ("MATCHD_DB_POOL_SIZE", self.persist.pool_size),
            ("MATCHD_DB_TIMEOUT_MS", self.persist.db_timeout_ms as usize),
            (
                "MATCHD_BREAKER_FAILURES",
                self.persist.breaker_failures as usize,
            ),
            (
                "MATCHD_BREAKER_OPEN_MS",
                self.persist.breaker_open_ms as usize,
            ),
        ];
        for (var, v) in positive {
            if v == 0 {
                return Err(ConfigError::Inconsistent(format!(
                    "{var} must be greater than 0"
                )));
            }
        }
        if self.auth.jwt() && !self.jwt.has_keys() {
            return Err(ConfigError::Inconsistent(
                "MATCHD_AUTH=jwt or both needs MATCHD_JWT_SECRET, MATCHD_JWT_PUBLIC_KEY_FILE or MATCHD_JWT_JWKS_FILE".into(),
            ));
        }
        if e.heartbeat_ms >= e.client_timeout_ms {
            return Err(ConfigError::Inconsistent(format!(
                "MATCHD_HEARTBEAT_MS ({}) must be below MATCHD_CLIENT_TIMEOUT_MS ({})",
                e.heartbeat_ms, e.client_timeout_ms
            )));
        }
        if self.persist.buffer_rows < self.persist.batch_rows {
            return Err(ConfigError::Inconsistent(format!(
                "MATCHD_WRITER_BUFFER_ROWS ({}) must be at least MATCHD_WRITER_BATCH_ROWS ({})",
                self.persist.buffer_rows, self.persist.batch_rows
            )));
        }
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid {
                var: "MATCHD_BIND",
                value: self.bind.clone(),
                expected: "socket address (host:port)",
            });
        }
        Ok(())
    }

    /// The `--help` text.
    pub fn help() -> String {
        let mut out = String::from(
            "matchd: actor-based realtime match server\n\n\
             USAGE: matchd [--help | --version]        serve (the default)\n\
             \x20      matchd migrate                     apply schema/ migrations to DATABASE_URL\n\
             \x20      matchd journal import [PATH]       load a journal (default $MATCHD_DATA_DIR/journal.log) into DATABASE_URL\n\n\
             Configuration comes from environment variables:\n\n",
        );
        for s in SETTINGS {
            out.push_str(&format!(
                "  {:<36} default {:<24} {}\n",
                s.var, s.default, s.help
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_map(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let c = with(&[]).expect("defaults");
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert_eq!(c.engine.heartbeat_ms, 1000);
        assert_eq!(c.engine.client_timeout_ms, 5000);
        assert_eq!(c.engine.max_frame_bytes, 65536);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    /// The defaults written in SETTINGS (and so in `--help` and the README)
    /// are the ones the parser applies: setting each variable to its listed
    /// default changes nothing.
    #[test]
    fn listed_defaults_are_the_applied_defaults() {
        for s in SETTINGS.iter().filter(|s| !s.default.starts_with('(')) {
            if s.var == "RUST_LOG" {
                continue; // read by env_logger, not by Config
            }
            let mut base = vec![("MATCHD_NODE_ID", "n1")];
            if s.var == "MATCHD_JOURNAL_FSYNC_MS" {
                // The interval only shows under the periodic policy.
                base.push(("MATCHD_JOURNAL_FSYNC", "periodic"));
            }
            let plain = format!("{:?}", with(&base).expect("defaults"));
            base.push((s.var, s.default));
            let c = with(&base).expect(s.var);
            assert_eq!(format!("{c:?}"), plain, "{} default {}", s.var, s.default);
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = with(&[("MATCHD_HEARTBEAT_MS", "soon")]).unwrap_err();
        assert!(err.to_string().contains("MATCHD_HEARTBEAT_MS"), "{err}");
        let err = with(&[("MATCHD_HEARTBEAT_MS", "6000")]).unwrap_err();
        assert!(matches!(err, ConfigError::Inconsistent(_)), "{err}");
        assert!(with(&[("MATCHD_BIND", "nowhere")]).is_err());
        assert!(with(&[("MATCHD_LOG_FORMAT", "xml")]).is_err());
        assert!(with(&[("MATCHD_RING_BUFFER", "0")]).is_err());
        assert!(with(&[("MATCHD_JOURNAL_FSYNC", "sometimes")]).is_err());
        assert!(with(&[("MATCHD_WRITER_BATCH_ROWS", "0")]).is_err());
        assert!(with(&[("MATCHD_WRITER_BUFFER_ROWS", "10")]).is_err());
    }

    #[test]
    fn persistence_settings() {
        let c = with(&[]).expect("defaults");
        assert_eq!(c.persist.database_url, None);
        assert_eq!(c.read_database_url, None);
        assert_eq!(c.persist.data_dir, PathBuf::from("./data"));
        assert_eq!(c.persist.fsync, FsyncPolicy::Always);
        let c = with(&[
            ("DATABASE_URL", "postgres://u:secret@h/db"),
            ("MATCHD_JOURNAL_FSYNC", "periodic"),
            ("MATCHD_JOURNAL_FSYNC_MS", "250"),
        ])
        .expect("valid");
        assert_eq!(
            c.read_database_url,
            Some(Secret("postgres://u:secret@h/db".into())),
            "reads default to the primary"
        );
        assert_eq!(
            c.persist.fsync,
            FsyncPolicy::Periodic(Duration::from_millis(250))
        );
        assert!(!format!("{c:?}").contains("secret"), "never printed");
        let c = with(&[("DATABASE_URL", "a"), ("DATABASE_READ_URL", "b")]).expect("valid");
        assert_eq!(c.read_database_url, Some(Secret("b".into())));
    }

    #[test]
    fn every_setting_is_in_help() {
        let help = Config::help();
        for s in SETTINGS {
            assert!(help.contains(s.var));
        }
    }

    /// The README's configuration table is the documentation operators read:
    /// it must list every setting with its real default.
    #[test]
    fn readme_lists_every_setting_with_its_default() {
        let readme = include_str!("../README.md");
        for s in SETTINGS {
            let row = format!("| `{}` | `{}` |", s.var, s.default);
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }

    #[test]
    fn ops_alerts_use_metrics_that_exist() {
        let rules = include_str!("../ops/prometheus/alerts.yml");
        let mut checked = 0;
        for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !word.starts_with("matchd_") {
                continue;
            }
            let name = word.strip_suffix("_bucket").unwrap_or(word);
            assert!(
                matchd_actors::metrics::ALL.contains(&name),
                "ops/prometheus/alerts.yml uses {name}, which matchd does not export"
            );
            checked += 1;
        }
        assert!(checked >= 10, "{checked} metric references");
    }

    #[test]
    fn readme_lists_every_metric() {
        let readme = include_str!("../README.md");
        for name in matchd_actors::metrics::ALL {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "README lacks metric {name}"
            );
        }
    }
}
