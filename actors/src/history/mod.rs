//! Match history: the [`record::Record`]s a match produces, the
//! [`writer::PersistenceWriter`] that makes them durable, its circuit
//! breaker, the local [`journal`], the SQL [`store`] and the [`rating`]
//! rules. Never imports `session/`, `node/` or the connection.

pub mod breaker;
pub mod journal;
pub mod rating;
pub mod record;
pub mod store;
pub mod writer;
