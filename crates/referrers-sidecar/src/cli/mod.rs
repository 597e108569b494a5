//! The command line: one binary that serves, checks its configuration, and operates a running
//! sidecar. Each subcommand lives in a module of its own; this one parses and dispatches.

mod check_config;
mod operator;
mod plain_http;
mod serve;
mod warm;
mod webhook_setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Makes the OCI 1.1 referrers API work for Harbor proxy-cache projects.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The YAML configuration file; `REFERRERS_SIDECAR__…` variables override its keys.
    #[arg(
        long,
        global = true,
        default_value = "/etc/referrers-sidecar/config.yaml"
    )]
    config: PathBuf,
    /// Without a subcommand: serve.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the effective configuration (secrets masked) and exit; exit 1 if it is invalid.
    CheckConfig,
    /// Ask a running sidecar whether a project is served, and why not.
    Status(operator::StatusArgs),
    /// Drop a project's cached upstream lists on every replica of a running sidecar.
    Purge(operator::PurgeArgs),
    /// Warm a whole project's cached upstream lists in a running sidecar (after installing it,
    /// turning a project on, or flushing Redis): its artifacts listed from Harbor, each warmed
    /// in its registry's turn; needs a project admin's Harbor credentials. Ctrl-C stops it; run
    /// again, it skips what is fresh.
    Warm(Box<warm::Args>),
    /// Create (or bring up to date) the webhook policy with which Harbor tells the sidecar
    /// about pulls in a project; needs a project admin's Harbor credentials
    /// (HARBOR_USERNAME/HARBOR_PASSWORD, or asked).
    WebhookSetup(Box<webhook_setup::Args>),
}

/// Parses the command line and runs what it asks. A subcommand loads the configuration only
/// if it needs it: the operator commands work on a machine without one.
#[must_use]
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig) => check_config::run(&cli.config),
        Some(Command::Status(args)) => operator::status(&cli.config, &args),
        Some(Command::Purge(args)) => operator::purge(&cli.config, &args),
        Some(Command::Warm(args)) => warm::run(&cli.config, &args),
        Some(Command::WebhookSetup(args)) => webhook_setup::run(&args, &cli.config),
        None => serve::run(&cli.config),
    }
}

/// Prints a command's failure the way every subcommand does, and fails.
fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("referrers-sidecar: {error}");
    ExitCode::FAILURE
}
