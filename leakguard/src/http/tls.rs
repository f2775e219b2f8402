//! The listener's TLS: rustls (with the `ring` provider) configured from the web-config
//! file's `tls_server_config`. Built when the policy is validated (so `check-config`
//! reads the files the daemon will) and again when the daemon starts or reloads.

use std::{path::Path, sync::Arc};

use rustls::{
    crypto::ring,
    pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig, SupportedProtocolVersion,
};

use super::webconfig::{ClientAuth, TlsSettings, TlsVersion};

/// The server configuration; the error is one line naming the key and the file, never
/// quoting what is in it.
pub fn server_config(t: &TlsSettings) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let versions: Vec<&'static SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let certs = certificates("cert_file", &t.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| pem_error("key_file", &t.key_file, "private key", &e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match (&t.client_ca_file, t.client_auth) {
        (Some(ca), ClientAuth::VerifyIfGiven | ClientAuth::Require) => {
            let mut roots = RootCertStore::empty();
            for c in certificates("client_ca_file", ca)? {
                roots.add(c).map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            let verifier = if t.client_auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
            )
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "tls_server_config: the key in {} does not fit the certificate in {}: {e}",
            t.key_file.display(),
            t.cert_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file: at least one.
fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| pem_error(key, path, "certificate", &e))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.{key} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn pem_error(key: &str, path: &Path, what: &str, e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    let why = match e {
        Error::Io(e) => format!("cannot read it: {e}"),
        Error::NoItemsFound => format!("no PEM {what} in it"),
        // Other messages may quote a line of the file: of a key file, key material.
        _ => format!("not a valid PEM {what}"),
    };
    format!("tls_server_config.{key} {}: {why}", path.display())
}
