//! The OCI clients users run — oras, regctl, crane, cosign, notation, and the suite's own
//! go-containerregistry program (`tests/go/referrers`) — as `make setup` installs them, each
//! run with a home of its own: credentials in a Docker config, regctl's and notation's
//! configuration, cosign's keys, all in one temporary directory. Clients talk plain HTTP to
//! 127.0.0.1; anything else they try goes to a closed loopback port (`HTTPS_PROXY`), so a
//! client reaching for the internet (a transparency log, a TUF root) fails at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use serde_json::{Value, json};

use crate::upstreams::tool;
use crate::users::User;

/// A closed port: the proxy every request to a host other than loopback is sent to.
const NOWHERE: &str = "http://127.0.0.1:9";

/// The cosign key pair's password (empty, as `COSIGN_PASSWORD=` gives it).
const COSIGN_PASSWORD: &str = "";

/// A home for the clients: credentials, configuration and keys.
pub struct Clients {
    home: tempfile::TempDir,
    /// Registries (`host:port`) and their credentials, as written to the Docker config.
    auths: Vec<(String, Option<User>)>,
}

/// What one client run printed.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for a failure's message.
    #[must_use]
    pub fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

impl Clients {
    /// An empty home: no credentials, no keys, no trust policy.
    #[must_use]
    pub fn new() -> Self {
        let home = tempfile::tempdir().expect("clients' home");
        for dir in ["docker", "xdg", "regctl", "tuf"] {
            std::fs::create_dir_all(home.path().join(dir)).expect("clients' dirs");
        }
        let clients = Self {
            home,
            auths: Vec::new(),
        };
        clients.write_docker_config();
        clients
    }

    /// The home's directory (keys, files to attach, pulled content).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    /// `host` (`127.0.0.1:<port>`) speaks plain HTTP, and every client sends `user`'s
    /// credentials there (none: anonymous).
    pub fn registry(&mut self, host: &str, user: Option<User>) {
        self.auths.push((host.to_owned(), user));
        self.write_docker_config();
        self.ok("regctl", &["registry", "set", "--tls", "disabled", host]);
    }

    fn write_docker_config(&self) {
        let auths: serde_json::Map<String, Value> = self
            .auths
            .iter()
            .filter_map(|(host, user)| {
                let user = user.as_ref()?;
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", user.name, user.password));
                Some((host.clone(), json!({ "auth": auth })))
            })
            .collect();
        std::fs::write(
            self.dir().join("docker/config.json"),
            json!({ "auths": auths }).to_string(),
        )
        .expect("Docker config");
    }

    /// `tool` with this home: `HOME`, `DOCKER_CONFIG`, `XDG_CONFIG_HOME` (notation),
    /// `REGCTL_CONFIG`, `TUF_ROOT` and `COSIGN_PASSWORD` set; the proxy variables send anything
    /// but loopback nowhere. Panics, saying to run `make setup`, when `tool` is not installed.
    #[must_use]
    pub fn command(&self, tool_name: &str) -> Command {
        let dir = self.dir();
        let mut command = Command::new(tool(tool_name));
        command
            .current_dir(dir)
            .env("HOME", dir)
            .env("DOCKER_CONFIG", dir.join("docker"))
            .env("XDG_CONFIG_HOME", dir.join("xdg"))
            .env("REGCTL_CONFIG", dir.join("regctl/config.json"))
            .env("TUF_ROOT", dir.join("tuf"))
            .env("COSIGN_PASSWORD", COSIGN_PASSWORD)
            .env("COSIGN_YES", "true")
            .env("HTTPS_PROXY", NOWHERE)
            .env("HTTP_PROXY", NOWHERE)
            .env("https_proxy", NOWHERE)
            .env("http_proxy", NOWHERE)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::null());
        command
    }

    /// Runs `tool` with `args`.
    #[must_use]
    pub fn run(&self, tool_name: &str, args: &[impl AsRef<str>]) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self
            .command(tool_name)
            .args(args.iter().map(AsRef::as_ref))
            .output()
            .unwrap_or_else(|e| panic!("run {tool_name}: {e}"));
        Run {
            success: status.success(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Runs `tool` with `args`, which must succeed; its standard output.
    pub fn ok(&self, tool_name: &str, args: &[impl AsRef<str>]) -> String {
        let run = self.run(tool_name, args);
        assert!(
            run.success,
            "{tool_name} {} failed:\n{}",
            joined(args),
            run.output()
        );
        run.stdout
    }

    /// Runs `tool` with `args`, which must fail; what it printed.
    pub fn fails(&self, tool_name: &str, args: &[impl AsRef<str>]) -> Run {
        let run = self.run(tool_name, args);
        assert!(
            !run.success,
            "{tool_name} {} succeeded:\n{}",
            joined(args),
            run.output()
        );
        run
    }

    /// cosign: a key pair, `cosign.key` (password empty) and `cosign.pub`, in the home.
    pub fn cosign_key_pair(&self) {
        self.ok("cosign", &["generate-key-pair"]);
    }

    /// cosign signs `image` with the key pair: a Sigstore bundle attached as an OCI 1.1
    /// referrer (through the referrers tag schema where the registry has no referrers API),
    /// nothing sent to a transparency log, no signing configuration fetched.
    pub fn cosign_sign(&self, image: &str) {
        self.ok(
            "cosign",
            &[
                "sign",
                "--key",
                "cosign.key",
                "--allow-http-registry",
                "--allow-insecure-registry",
                "--use-signing-config=false",
                "--tlog-upload=false",
                image,
            ],
        );
    }

    /// `cosign verify` of `image` with the key pair's public key, offline: no transparency
    /// log.
    #[must_use]
    pub fn cosign_verify_args(&self, image: &str) -> Vec<String> {
        let key = self.dir().join("cosign.pub");
        [
            "verify",
            "--key",
            &key.to_string_lossy(),
            "--allow-http-registry",
            "--allow-insecure-registry",
            "--insecure-ignore-tlog",
            image,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// notation: a test key and certificate (`notation cert generate-test`) as the default
    /// signing key, its certificate in the trust store `ca:test`, and a trust policy that
    /// trusts it for every registry.
    pub fn notation_test_key(&self) {
        self.ok("notation", &["cert", "generate-test", "--default", "test"]);
        let policy = self.file(
            "trustpolicy.json",
            &json!({
                "version": "1.0",
                "trustPolicies": [{
                    "name": "test",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:test"],
                    "trustedIdentities": ["*"],
                }],
            })
            .to_string(),
        );
        self.ok(
            "notation",
            &["policy", "import", "--force", &policy.to_string_lossy()],
        );
    }

    /// notation signs `image` with the test key (an OCI 1.1 referrer, through the tag schema
    /// where the registry has no referrers API).
    pub fn notation_sign(&self, image: &str) {
        self.ok("notation", &["sign", "--insecure-registry", image]);
    }

    /// The shell line that gives a shell this home's clients: `PATH` with the tools' folder,
    /// and the variables that point the clients at this home's credentials and keys.
    #[must_use]
    pub fn shell_exports(&self) -> String {
        let dir = self.dir().display();
        let bin = tool("oras");
        let bin = bin.parent().expect("the tools' folder").display();
        format!(
            "export PATH={bin}:$PATH DOCKER_CONFIG={dir}/docker XDG_CONFIG_HOME={dir}/xdg REGCTL_CONFIG={dir}/regctl/config.json"
        )
    }

    /// A file in the home, with `content`.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir().join(name);
        std::fs::write(&path, content).expect("write file");
        path
    }
}

/// `notation verify` of `image` under the trust policy of [`Clients::notation_test_key`].
#[must_use]
pub fn notation_verify_args(image: &str) -> [&str; 3] {
    ["verify", "--insecure-registry", image]
}

/// `tool args`, as a line for a shell with [`Clients::shell_exports`].
#[must_use]
pub fn shell_line(tool_name: &str, args: &[impl AsRef<str>]) -> String {
    format!("{tool_name} {}", joined(args))
}

fn joined(args: &[impl AsRef<str>]) -> String {
    args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ")
}
