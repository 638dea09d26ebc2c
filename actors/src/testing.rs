//! Hooks for benchmarks and tests that drive the engine's actors directly,
//! without WebSockets (the load tester's `mailbox` mode). Not for the
//! server: it goes through [`crate::connection::Connection`].

pub use crate::session::messages::{Act, Ask, Backlog, Join, JoinAck, ToConn};
pub use crate::session::MatchSession;
pub use crate::validation_cache::{CacheKey, Store as CacheStore};
