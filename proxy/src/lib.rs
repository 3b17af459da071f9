//! The danxia proxy as a library: configuration, listeners, sessions,
//! audit, metrics and the admin endpoint. The `danxia` binary (`main.rs`)
//! is a thin command-line edge over it; keeping the logic in a library lets
//! tests and benchmarks drive the same code.

#![forbid(unsafe_code)]

pub mod admin;
pub mod alerting;
pub mod alerts;
pub mod analysis;
pub mod audit;
pub mod behaviour;
pub mod cli;
pub mod cli_api;
pub mod cli_behaviour;
pub mod config;
pub mod discover;
pub mod enforce;
pub mod error;
pub mod files;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod mysql;
pub mod pg;
pub mod policy;
pub mod results;
pub mod server;
pub mod tls;
