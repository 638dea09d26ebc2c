//! matchd's load-test harness.
//!
//! * `mailbox`: the engine's real actors in one process, driven through
//!   their mailboxes by simulated connections (no network).
//! * `cache`: the cost of a `valid_cells` answer with and without the
//!   validation cache.
//! * `ws`: real WebSocket clients over loopback against a running node,
//!   with ramps, thresholds, a baseline check and plots; `merge` joins the
//!   reports of several generator processes.
//!
//! Every run is bounded in time and stops by itself.

pub mod args;
pub mod bot;
pub mod cache_bench;
pub mod check;
pub mod failover;
pub mod http;
pub mod mailbox;
pub mod plot;
pub mod report;
pub mod stages;
pub mod threshold;
pub mod ws;
