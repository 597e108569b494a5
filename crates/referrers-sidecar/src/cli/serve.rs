//! Serving (no subcommand): load the configuration, start logging, run until stopped.

use std::path::Path;
use std::process::ExitCode;

use crate::app::{Application, StartupError};
use crate::config::Settings;

pub fn run(config: &Path) -> ExitCode {
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(error) => return super::fail(&error),
    };
    // Held until the process ends: dropping it flushes the lines still buffered.
    let _log = crate::telemetry::init(&settings.log, &settings.trace);
    for warning in settings.warnings() {
        tracing::warn!("{warning}");
    }
    let result = actix_web::rt::System::new().block_on(async move {
        let application = Application::build(settings)?;
        application
            .run_until_stopped()
            .await
            .map_err(StartupError::Server)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "referrers-sidecar failed");
            super::fail(&error)
        }
    }
}
