//! `check-config`: print the effective configuration, secrets masked, and its warnings.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Settings;

pub fn run(config: &Path) -> ExitCode {
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(error) => return super::fail(&error),
    };
    print!("{}", settings.to_masked_yaml());
    for warning in settings.warnings() {
        eprintln!("warning: {warning}");
    }
    ExitCode::SUCCESS
}
