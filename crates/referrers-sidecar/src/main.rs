use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use referrers_sidecar::config::Settings;
use referrers_sidecar::startup::Application;

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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the effective configuration (secrets masked) and exit; exit 1 if it is invalid.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli.config) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("referrers-sidecar: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::CheckConfig) => {
            print!("{}", settings.to_masked_yaml());
            for warning in settings.warnings() {
                eprintln!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        None => serve(settings),
    }
}

fn serve(settings: Settings) -> ExitCode {
    // Held until the process ends: dropping it flushes the lines still buffered.
    let _log = referrers_sidecar::telemetry::init(&settings.log);
    for warning in settings.warnings() {
        tracing::warn!("{warning}");
    }
    let result = actix_web::rt::System::new().block_on(async move {
        let application = Application::build(settings)?;
        application
            .run_until_stopped()
            .await
            .map_err(referrers_sidecar::startup::StartupError::Server)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "referrers-sidecar failed");
            eprintln!("referrers-sidecar: {error}");
            ExitCode::FAILURE
        }
    }
}
