//! matchd engine library: the pure rulesets and the actix actors (registry,
//! match sessions, connections, validation caches, the persistence writer)
//! over the wire protocol of [`matchd_protocol`].
//!
//! Layers, each importing only those below it (ARCHITECTURE.md; checked by
//! `tests/layers.rs`):
//!
//! 1. [`matchd_protocol`] (its own crate), then [`rules`], [`config`],
//!    [`metrics`], [`util`] and [`budget`]: no actors, no I/O.
//! 2. [`tls`] (the TLS settings of Postgres and Redis), then
//!    [`validation_cache`], [`history`] and [`cluster`]: the actors and
//!    clients of one resource each (the cache, Postgres and the journal,
//!    Redis). They never import a match, the node or a connection.
//! 3. [`session`]: the match actor.
//! 4. [`node`]: the registry that supervises matches, and the [`Engine`]
//!    handle.
//! 5. [`connection`]: one actor per WebSocket.
//!
//! `session` and `validation_cache` are private: the binary reaches matches
//! through [`Engine`] and [`connection::Connection`]; benchmarks and tests
//! that drive the actors directly use [`testing`].
//!
//! Supervision: the [`node::Registry`] (one per node) starts one Arbiter per
//! core with a validation cache shard shard each and places
//! every match session (`session::MatchSession`) on one of them. Connections live on the
//! HTTP workers and talk to their match directly. The
//! [`history::writer::PersistenceWriter`] (one per node, on its own Arbiter)
//! receives every match's history. With Redis, every match keeps a
//! [`cluster::replica`] copy so another node can take it over.

pub mod budget;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod history;
pub mod metrics;
pub mod node;
pub mod rules;
mod session;
pub mod testing;
pub mod tls;
pub mod util;
mod validation_cache;

pub use config::EngineConfig;
pub use matchd_protocol as protocol;
pub use node::Engine;
pub use rules::Catalog;
