//! Many nodes over Redis: every key name ([`keys`]), a match's copy and
//! lease ([`replica`]), the node's own registration and health ([`nodes`]),
//! and operator control messages between nodes ([`control`]). Never imports
//! `session/`, `node/` or the connection: the layers above hand it what to
//! apply.

pub mod control;
pub mod keys;
pub mod nodes;
pub mod replica;
