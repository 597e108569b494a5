//! Referrers requests end to end: the merged list a client gets, malformed requests, what
//! passes through to core, Harbor's proxy allowlist and project label, the request's time
//! budget, and its traces.

mod allowlist;
mod bursts;
mod compression;
mod end_to_end;
mod label;
mod passthrough;
mod requests;
mod time_budget;
mod traces;
