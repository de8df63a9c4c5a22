//! TLS for the node's outgoing connections (voice servers, media URLs): rustls with
//! the ring provider (nothing to build with cmake), trusting the web PKI roots.

use rustls::RootCertStore;

/// Makes ring the process's default rustls provider (idempotent). The node's own
/// clients pass their configurations; clients built without one (the test
/// harness's reqwest, tungstenite's defaults) ask for the process default.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The web PKI roots (what public servers, Discord's among them, chain to).
pub fn web_pki_roots() -> RootCertStore {
    RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
}

/// A client configuration with ring's safe defaults that trusts `roots`.
pub fn client_config(roots: RootCertStore) -> Result<rustls::ClientConfig, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
