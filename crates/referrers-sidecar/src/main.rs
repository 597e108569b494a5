//! The referrers-sidecar binary: [`referrers_sidecar::cli`] parses the command line and runs it.

fn main() -> std::process::ExitCode {
    referrers_sidecar::cli::run()
}
