//! The fake's TLS: one test CA per test process, generated at first use, and a server
//! certificate it signs for `127.0.0.1` and `localhost`. Nothing trusts this CA unless
//! told to: a node under test gets its PEM file through
//! `quaver.voice.extraCaCertificates` (or `discord_voice`'s argument).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

struct TestPki {
    ca_file: PathBuf,
    acceptor: TlsAcceptor,
}

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Quaver fake Discord test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("the test CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server names");
        let cert = params
            .signed_by(&key, &issuer)
            .expect("the server certificate");

        let dir = std::env::temp_dir().join(format!("quaver-fake-discord-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the test CA");
        let ca_file = dir.join("test-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("the test CA file");

        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the server certificate and key");
        TestPki {
            ca_file,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    })
}

/// The PEM file of the test CA every TLS fake's certificate chains to.
pub fn test_ca_file() -> PathBuf {
    pki().ca_file.clone()
}

pub(super) fn acceptor() -> TlsAcceptor {
    pki().acceptor.clone()
}
