//! matchd's load-test harness.
//!
//! * `mailbox`: the engine's real actors in one process, driven through
//!   their mailboxes by simulated connections (no network).
//! * `cache`: the cost of a `valid_cells` answer with and without the
//!   validation cache.
//!
//! Every run is bounded in time and stops by itself.

pub mod args;
pub mod cache_bench;
pub mod mailbox;
pub mod report;
