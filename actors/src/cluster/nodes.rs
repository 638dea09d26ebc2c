//! `Affinity`: this node's presence in Redis, the first part of cross-node
//! affinity (issue #5). With `REDIS_URL` set, one actor per node, on its own
//! Arbiter, registers the node under `{prefix}node:{id}` with a TTL that it
//! renews, keeps the id in the set `{prefix}node-ids`, and lists the live
//! nodes for `GET /v1/nodes`.
//!
//! Redis trouble never stops the node: commands time out (fred's command
//! timeout), the client reconnects by itself (fred's reconnect policy), and
//! the next renewal registers the node again. A node that stops removes its
//! registration (`Deregister`); one that dies is dropped when its key
//! expires. Without `REDIS_URL` the node runs alone and this actor does not
//! exist.
//!
//! One id, one process: every registration carries a random `instance`
//! token of this process, and registering (a script) fails when the key
//! holds another instance's. Two live processes with one `MATCHD_NODE_ID`
//! would both take the same leases for theirs, so the second one to
//! register exits at once (`NodeIdTaken`), never deleting the first's key.

use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use fred::prelude::{
    Builder, Client, ClientLike, Config, KeysInterface, ReconnectPolicy, SetsInterface,
};
use metrics::{Counter, Gauge, Histogram};
use serde::{Deserialize, Serialize};

use super::keys::Keys;
use crate::metrics as m;
use crate::util::{random_u64, unix_ms};

/// Registers a node unless the key holds another process's registration.
/// KEYS: node key, node-ids set. ARGV: the registration (JSON), ttl ms,
/// this instance, node id. Returns "OK" or "TAKEN".
const REGISTER_LUA: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then
  local ok, old = pcall(cjson.decode, v)
  if ok and type(old) == 'table' and old['instance'] and old['instance'] ~= ARGV[3] then
    return 'TAKEN'
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
return 'OK'
"#;

/// Removes this process's registration, not another's. KEYS: node key,
/// node-ids set. ARGV: instance, node id.
const DEREGISTER_LUA: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then
  local ok, old = pcall(cjson.decode, v)
  if ok and type(old) == 'table' and old['instance'] and old['instance'] ~= ARGV[1] then
    return 0
  end
  redis.call('DEL', KEYS[1])
end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"#;

/// Settings of the Redis presence.
#[derive(Clone)]
pub struct AffinityConfig {
    /// Prefix of every key this node writes.
    pub prefix: String,
    pub node_id: String,
    /// The WebSocket URL clients use to reach this node.
    pub advertise_url: String,
    /// Lifetime of the node's registration; renewed every third of it.
    pub node_ttl_ms: u64,
}

impl std::fmt::Debug for AffinityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AffinityConfig")
            .field("prefix", &self.prefix)
            .field("node_id", &self.node_id)
            .field("advertise_url", &self.advertise_url)
            .field("node_ttl_ms", &self.node_ttl_ms)
            .finish()
    }
}

/// One node as it registers itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub url: String,
    /// Live matches on the node at its last renewal.
    pub matches: u64,
    pub renewed_at_ms: u64,
    /// A random token of the registering process (see the module docs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AffinityError {
    #[error("redis: {0}")]
    Redis(String),
}

impl AffinityError {
    pub fn code(&self) -> &'static str {
        "redis_unavailable"
    }
}

/// The live nodes, this one included while its registration holds.
#[derive(Message)]
#[rtype(result = "Result<Vec<NodeInfo>, AffinityError>")]
pub struct GetNodes;

/// The node stops: remove its registration now, then stop renewing it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deregister;

/// Whether Redis answers, for `/ready`.
#[derive(Message)]
#[rtype(result = "RedisHealth")]
pub struct GetRedisHealth;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisHealth {
    pub connected: bool,
    pub registered: bool,
    pub last_error: Option<String>,
}

/// How the node learns its own load for the registration.
pub type LoadFn = Box<dyn Fn() -> u64 + Send>;

pub struct Affinity {
    cfg: AffinityConfig,
    keys: Keys,
    client: Client,
    load: LoadFn,
    registered: bool,
    last_error: Option<String>,
    /// This process's registration token.
    instance: String,
    on_conflict: fn(),
    up: Gauge,
    errors: Counter,
    latency: Histogram,
}

/// The client configuration of `url`; a `rediss://` URL connects with TLS,
/// verifying the server against `ca_file` (`MATCHD_REDIS_CA_FILE`) or the
/// system's roots.
fn redis_config(url: &str, ca_file: Option<&std::path::Path>) -> Result<Config, AffinityError> {
    let mut config = Config::from_url(url).map_err(|e| AffinityError::Redis(e.to_string()))?;
    if url.starts_with("rediss://") {
        let tls = crate::tls::client_config(ca_file).map_err(AffinityError::Redis)?;
        config.tls = Some(fred::types::config::TlsConnector::from(tls).into());
    }
    Ok(config)
}

/// How long any Redis command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// The node's Redis client: an unbounded exponential reconnect policy, a
/// command timeout and a bounded buffer for commands issued while
/// disconnected. Not connected yet: [`Affinity`] connects it on its
/// Arbiter, and every clone (match replicas, sessions) shares it.
pub fn redis_client(url: &str, ca_file: Option<&std::path::Path>) -> Result<Client, AffinityError> {
    let config = redis_config(url, ca_file)?;
    Builder::from_config(config)
        // Without a policy fred never reconnects (PITFALLS.md).
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .with_connection_config(|c| {
            c.connection_timeout = COMMAND_TIMEOUT;
            // Commands issued while disconnected wait in a bounded buffer.
            c.max_command_buffer_len = 10_000;
        })
        .build()
        .map_err(|e| AffinityError::Redis(e.to_string()))
}

/// A [`redis_client`] connected and ready, for tools that run without an
/// [`Affinity`] (the load-test harness).
pub async fn connected_client(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<Client, AffinityError> {
    let client = redis_client(url, ca_file)?;
    drop(client.connect());
    tokio::time::timeout(Duration::from_secs(5), client.wait_for_connect())
        .await
        .map_err(|_| AffinityError::Redis("no connection within 5 s".into()))?
        .map_err(|e| AffinityError::Redis(e.to_string()))?;
    Ok(client)
}

/// A pub/sub client with the same policies as [`redis_client`]; connected
/// by [`super::control::listen`].
pub fn redis_subscriber(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<fred::clients::SubscriberClient, AffinityError> {
    let config = redis_config(url, ca_file)?;
    Builder::from_config(config)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .with_connection_config(|c| c.connection_timeout = COMMAND_TIMEOUT)
        .build_subscriber_client()
        .map_err(|e| AffinityError::Redis(e.to_string()))
}

impl Affinity {
    /// Starts the actor on its own Arbiter, where it connects `client` (from
    /// [`redis_client`]); keep the Arbiter alive.
    /// `on_conflict` runs when another live process holds this node id
    /// (the binary exits).
    pub fn start(
        cfg: AffinityConfig,
        client: Client,
        load: LoadFn,
        on_conflict: fn(),
    ) -> Result<(Addr<Affinity>, Arbiter), AffinityError> {
        let arbiter = Arbiter::new();
        let addr = Affinity::start_in_arbiter(&arbiter.handle(), move |_| Affinity {
            keys: Keys::new(&cfg.prefix),
            cfg,
            client,
            load,
            registered: false,
            last_error: None,
            instance: format!("{:016x}", random_u64()),
            on_conflict,
            up: metrics::gauge!(m::REDIS_UP),
            errors: metrics::counter!(m::REDIS_ERRORS),
            latency: metrics::histogram!(m::REDIS_SECONDS),
        });
        Ok((addr, arbiter))
    }

    fn renew(&mut self, ctx: &mut Context<Self>) {
        let info = NodeInfo {
            node_id: self.cfg.node_id.clone(),
            url: self.cfg.advertise_url.clone(),
            matches: (self.load)(),
            renewed_at_ms: unix_ms(SystemTime::now()),
            instance: self.instance.clone(),
        };
        let value = serde_json::to_string(&info).unwrap_or_default();
        let (client, key, ids, id) = (
            self.client.clone(),
            self.keys.node(&self.cfg.node_id),
            self.keys.node_ids(),
            self.cfg.node_id.clone(),
        );
        let ttl = self.cfg.node_ttl_ms as i64;
        let instance = self.instance.clone();
        let started = Instant::now();
        let fut = async move {
            let script = fred::types::scripts::Script::from_lua(REGISTER_LUA);
            let args: Vec<fred::types::Value> =
                vec![value.into(), ttl.into(), instance.into(), id.into()];
            script
                .evalsha_with_reload::<String, _, _>(&client, vec![key, ids], args)
                .await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.latency.record(started.elapsed().as_secs_f64());
            let res = match res {
                Ok(answer) if answer == "TAKEN" => {
                    // Another live process registered this node id: both
                    // would take the same leases for theirs. This one goes.
                    log::error!(node_id = act.cfg.node_id.as_str(); "another live node is registered in redis with this node id; refusing to run (set a unique MATCHD_NODE_ID, or leave it unset for a random one)");
                    metrics::counter!(m::NODE_ID_CONFLICTS).increment(1);
                    (act.on_conflict)();
                    return;
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => {
                    if !act.registered {
                        log::info!(node_id = act.cfg.node_id.as_str(); "node registered in redis");
                    }
                    act.registered = true;
                    act.last_error = None;
                    act.up.set(1.0);
                }
                Err(e) => {
                    if act.registered || act.last_error.is_none() {
                        log::warn!("redis: could not renew the node registration: {e}");
                    }
                    act.registered = false;
                    act.last_error = Some(e.to_string());
                    act.errors.increment(1);
                    act.up.set(0.0);
                }
            }
        }));
    }
}

impl Actor for Affinity {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        // Connects in the background and keeps reconnecting by the policy;
        // the handle is the connection task, which runs on once detached.
        drop(self.client.connect());
        self.renew(ctx);
        let every = Duration::from_millis((self.cfg.node_ttl_ms / 3).max(50));
        ctx.run_interval(every, |act, ctx| act.renew(ctx));
    }
}

impl Handler<Deregister> for Affinity {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Deregister, _: &mut Self::Context) -> Self::Result {
        let (client, key, ids, id) = (
            self.client.clone(),
            self.keys.node(&self.cfg.node_id),
            self.keys.node_ids(),
            self.cfg.node_id.clone(),
        );
        let instance = self.instance.clone();
        let fut = async move {
            let script = fred::types::scripts::Script::from_lua(DEREGISTER_LUA);
            let args: Vec<fred::types::Value> = vec![instance.into(), id.into()];
            let _ = script
                .evalsha_with_reload::<i64, _, _>(&client, vec![key, ids], args)
                .await;
            let _ = client.quit().await;
        };
        Box::pin(fut.into_actor(self).map(|(), act, ctx| {
            log::info!(node_id = act.cfg.node_id.as_str(); "node deregistered from redis");
            act.up.set(0.0);
            ctx.stop();
        }))
    }
}

impl Handler<GetNodes> for Affinity {
    type Result = ResponseFuture<Result<Vec<NodeInfo>, AffinityError>>;

    fn handle(&mut self, _: GetNodes, _: &mut Self::Context) -> Self::Result {
        let (client, ids_key, prefix) =
            (self.client.clone(), self.keys.node_ids(), self.keys.clone());
        Box::pin(async move {
            let redis = |e: fred::error::Error| AffinityError::Redis(e.to_string());
            let ids: Vec<String> = client.smembers(&ids_key).await.map_err(redis)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|id| prefix.node(id)).collect();
            let values: Vec<Option<String>> = client.mget(keys).await.map_err(redis)?;
            let mut nodes = Vec::new();
            let mut gone = Vec::new();
            for (id, value) in ids.into_iter().zip(values) {
                match value.and_then(|v| serde_json::from_str::<NodeInfo>(&v).ok()) {
                    Some(info) => nodes.push(info),
                    None => gone.push(id),
                }
            }
            if !gone.is_empty() {
                // Expired registrations: forget their ids too.
                let _ = client.srem::<(), _, _>(&ids_key, gone).await;
            }
            nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            Ok(nodes)
        })
    }
}

impl Handler<GetRedisHealth> for Affinity {
    type Result = MessageResult<GetRedisHealth>;

    fn handle(&mut self, _: GetRedisHealth, _: &mut Self::Context) -> Self::Result {
        MessageResult(RedisHealth {
            connected: self.client.is_connected(),
            registered: self.registered,
            last_error: self.last_error.clone(),
        })
    }
}
