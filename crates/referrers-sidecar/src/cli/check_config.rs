//! `check-config`: print the effective configuration, secrets masked, the worst case of a
//! request's time budget, and its warnings.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Settings;

pub fn run(config: &Path) -> ExitCode {
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(error) => return super::fail(&error),
    };
    print!("{}", settings.to_masked_yaml());
    // As YAML comments: the output stays the configuration it shows.
    for line in settings.budget_summary() {
        println!("# budget: {line}");
    }
    for warning in settings.warnings() {
        eprintln!("warning: {warning}");
    }
    ExitCode::SUCCESS
}
