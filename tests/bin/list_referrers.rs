//! A real OCI client (oci-client) listing referrers, as cosign or oras would:
//! `list-referrers HOST:PORT/REPOSITORY@DIGEST [USER PASSWORD] [ARTIFACT_TYPE]`.

use std::process::ExitCode;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(reference) = args.first() else {
        eprintln!(
            "usage: list-referrers HOST:PORT/REPOSITORY@DIGEST [USER PASSWORD] [ARTIFACT_TYPE]"
        );
        return ExitCode::from(2);
    };
    let reference: Reference = match reference.parse() {
        Ok(reference) => reference,
        Err(e) => {
            eprintln!("bad reference {reference}: {e}");
            return ExitCode::from(2);
        }
    };
    let auth = match (args.get(1), args.get(2)) {
        (Some(user), Some(password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        _ => RegistryAuth::Anonymous,
    };
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    if let Err(e) = client
        .auth(&reference, &auth, RegistryOperation::Pull)
        .await
    {
        eprintln!("authentication failed: {e}");
        return ExitCode::FAILURE;
    }
    match client
        .pull_referrers(&reference, args.get(3).map(String::as_str))
        .await
    {
        Ok(index) => {
            for descriptor in &index.manifests {
                println!(
                    "{}  {}  {} bytes",
                    descriptor.digest,
                    descriptor.artifact_type.as_deref().unwrap_or("-"),
                    descriptor.size
                );
            }
            println!("{} referrers", index.manifests.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("listing referrers failed: {e}");
            ExitCode::FAILURE
        }
    }
}
