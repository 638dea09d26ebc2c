//! Integration tests: one test crate, real servers on port 0, real clients.

mod backpressure;
mod bad_input;
mod cluster;
mod doubles;
mod drain;
mod heartbeat;
mod http;
mod identity;
mod limits;
mod panics;
mod persistence;
mod pg;
mod protocol2;
mod redis;
mod resume;
mod sandbox;
mod support;
mod tactics;
mod tls;
mod web;
