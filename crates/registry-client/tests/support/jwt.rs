//! A token issuer for distribution's token auth: ES256 JWTs whose `x5c` header carries a
//! self-signed certificate that the registry trusts as its `rootcertbundle`.
//!
//! REF: <https://distribution.github.io/distribution/spec/auth/jwt/>

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{CertificateParams, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

pub struct TokenIssuer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    pub cert_pem: String,
    pub issuer: String,
    pub service: String,
}

impl TokenIssuer {
    pub fn new(issuer: &str, service: &str) -> Self {
        let key_pair = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["token-issuer".to_owned()])
            .unwrap()
            .self_signed(&key_pair)
            .unwrap();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_pair.serialize_der(),
            &SystemRandom::new(),
        )
        .unwrap();
        Self {
            key,
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            issuer: issuer.to_owned(),
            service: service.to_owned(),
        }
    }

    /// A token granting `actions` on `repository`.
    pub fn token(&self, repository: &str, actions: &[&str]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header =
            json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let claims = json!({
            "iss": self.issuer,
            "sub": "robot",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("{now}-{repository}"),
            "access": [{"type": "repository", "name": repository, "actions": actions}],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .unwrap();
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}
