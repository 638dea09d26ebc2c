//! The matchd server: configuration, HTTP routes, WebSocket upgrade, metrics
//! exporter, start-up. The engine itself lives in the `matchd-actors` crate.

pub mod cli;
pub mod config;
pub mod identity;
pub mod limits;
pub mod origins;
pub mod routes;
pub mod sessions;
pub mod startup;
pub mod telemetry;
