//! What operators use: the operator API and the command line, Harbor's pull webhooks and their
//! set-up, warming a whole project, and upstream referrers stored in Harbor.

mod api;
mod cli;
mod memory;
mod purge;
mod store_in_harbor;
mod warm;
mod webhook;
mod webhook_setup;
