//! matchd engine library: the wire protocol, the pure rulesets and the actix
//! actors (registry, match sessions, connections, validation caches).
//!
//! Supervision: the [`registry::Registry`] (one per node) starts one Arbiter
//! per core with a [`validation_cache::ValidationCache`] shard each and
//! places every [`match_session::MatchSession`] on one of them.
//! [`connection::Connection`] actors live on the HTTP workers and talk to
//! their match directly.

pub mod config;
pub mod connection;
pub mod engine;
pub mod match_session;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod rules;
pub mod validation_cache;

pub use config::EngineConfig;
pub use engine::Engine;
pub use rules::Catalog;
