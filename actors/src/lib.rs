//! matchd engine library: the wire protocol, the pure rulesets and the actix
//! actors (registry, match sessions, connections, validation caches).
//!
//! Supervision: the [`registry::Registry`] (one per node) starts one Arbiter
//! per core with a [`validation_cache::ValidationCache`] shard each and
//! places every [`match_session::MatchSession`] on one of them.
//! [`connection::Connection`] actors live on the HTTP workers and talk to
//! their match directly. The [`writer::PersistenceWriter`] (one per node,
//! on its own Arbiter) receives every match's history and makes it durable
//! in Postgres or the local [`journal`]. With Redis, every match keeps a
//! [`replica`] there (lease, snapshot, stream) so another node can take it
//! over, and the node registers itself through [`affinity::Affinity`].

pub mod affinity;
pub mod config;
pub mod connection;
pub mod control;
pub mod engine;
pub mod journal;
pub mod match_session;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod replica;
pub mod rules;
pub mod store;
pub mod validation_cache;
pub mod writer;

pub use config::EngineConfig;
pub use engine::Engine;
pub use rules::Catalog;
