//! referrers-sidecar: makes the OCI 1.1 referrers API work for Harbor proxy-cache projects.

pub mod app;
pub mod breaker;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod harbor;
pub mod http;
pub mod metrics;
pub mod operator;
pub mod outcome;
pub mod pace;
pub mod referrers;
pub mod replicas;
pub mod serving;
pub mod store_in_harbor;
pub mod telemetry;
pub mod upstream;
pub mod warming;
pub mod webhook;
