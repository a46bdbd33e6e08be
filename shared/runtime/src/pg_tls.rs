//! TLS for the one connection Ackbox opens without libpq: the `LISTEN` connection (tokio-postgres).
//!
//! The pooled diesel connections go through libpq, which reads `sslmode`, `sslrootcert` & co. from `DATABASE_URL`
//! itself. tokio-postgres knows only `sslmode=disable|prefer|require` and refuses any other `ssl*` option, so this
//! module reads the libpq settings from the same URL (or `PGSSLMODE` / `PGSSLROOTCERT`, as libpq does) and gives the
//! listener the same behaviour through rustls:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `allow`, `prefer` (libpq's default) | if the server offers TLS | no |
//! | `require` | yes | no; against `sslrootcert` when one is given (libpq: "as verify-ca") |
//! | `verify-ca` | yes | chain to `sslrootcert` |
//! | `verify-full` | yes | chain to `sslrootcert` and host name (DNS name or IP address in the certificate) |
//!
//! `sslrootcert` is a PEM file of one or more CA certificates. For `verify-ca` and `verify-full` it must be given (in
//! the URL, or `PGSSLROOTCERT`, or libpq's default `~/.postgresql/root.crt`). Client certificates (`sslcert`,
//! `sslkey`) are refused with an error naming the option, rather than ignored: the listener would connect without
//! them and the server would refuse it with a less helpful message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it (`allow` and `prefer`), certificate not checked.
    Prefer,
    /// TLS, certificate checked only against an `sslrootcert` given.
    Require,
    /// TLS, chain checked.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(raw: &str) -> Result<Self, PgTlsError> {
        Ok(match raw {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(PgTlsError::InvalidSslMode(other.to_string())),
        })
    }
}

/// The database URL's TLS settings cannot be honoured. Each message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum PgTlsError {
    /// `sslmode` is not one of libpq's values.
    #[error("DATABASE_URL: sslmode={0:?} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    InvalidSslMode(String),
    /// A setting libpq knows but the listener cannot honour.
    #[error("DATABASE_URL: {0} is not supported (the LISTEN connection does not present client certificates)")]
    Unsupported(String),
    /// A verifying mode without a CA file.
    #[error(
        "DATABASE_URL: sslmode={0} needs the CA that signed the server's certificate: add sslrootcert=/path/ca.pem \
         to DATABASE_URL (or set PGSSLROOTCERT)"
    )]
    MissingRootCert(&'static str),
    /// The CA file cannot be read or holds no certificate.
    #[error("DATABASE_URL: sslrootcert={path}: {reason}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The rest of the URL does not parse.
    #[error("DATABASE_URL does not parse: {0}")]
    Url(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// What the listener connects with: tokio-postgres' config (without the options it does not know) and a rustls
/// connector that checks what `sslmode` asks for.
pub struct PgTls {
    /// The connection settings.
    pub config: tokio_postgres::Config,
    /// The TLS connector (unused when `mode` is `Disable`).
    pub connector: MakeRustlsConnect,
    /// The effective mode.
    pub mode: SslMode,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl PgTls {
    /// Reads the TLS settings of `url` (a `postgres://` URL or a `key=value` string), falling back to `PGSSLMODE`,
    /// `PGSSLROOTCERT` and `~/.postgresql/root.crt` as libpq does.
    pub fn from_url(url: &str) -> Result<Self, PgTlsError> {
        let (rest, pairs, url_form) = split_options(url)?;
        let mut mode = None;
        let mut root = None;
        let mut kept = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "sslmode" => mode = Some(v),
                "sslrootcert" => root = Some(v),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                    return Err(PgTlsError::Unsupported(k))
                }
                // libpq-only knobs with no effect on what is checked.
                "sslsni"
                | "sslcompression"
                | "ssl_min_protocol_version"
                | "ssl_max_protocol_version"
                | "sslnegotiation"
                | "gssencmode"
                | "requiressl" => {}
                _ => kept.push((k, v)),
            }
        }
        let mode = SslMode::parse(&mode.or_else(|| env("PGSSLMODE")).unwrap_or_else(|| "prefer".into()))?;
        let root = root.or_else(|| env("PGSSLROOTCERT")).map(PathBuf::from).or_else(default_root_cert);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let tls = match (mode, root) {
            (SslMode::VerifyFull, Some(root)) => builder.with_root_certificates(roots(&root)?).with_no_client_auth(),
            (SslMode::VerifyCa | SslMode::Require, Some(root)) => {
                let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(&root)?), provider)
                    .build()
                    .map_err(|e| PgTlsError::RootCert { path: root.clone(), reason: e.to_string() })?;
                builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(chain))).with_no_client_auth()
            }
            (SslMode::VerifyFull, None) => return Err(PgTlsError::MissingRootCert("verify-full")),
            (SslMode::VerifyCa, None) => return Err(PgTlsError::MissingRootCert("verify-ca")),
            (SslMode::Disable | SslMode::Prefer | SslMode::Require, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth(),
        };
        let tokio_mode = match mode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            _ => "require",
        };
        kept.push(("sslmode".into(), tokio_mode.into()));
        let config = join_options(&rest, &kept, url_form)
            .parse()
            .map_err(|e: tokio_postgres::Error| PgTlsError::Url(e.to_string()))?;
        Ok(Self { config, connector: MakeRustlsConnect::new(tls), mode })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// libpq's default CA file, if it exists.
fn default_root_cert() -> Option<PathBuf> {
    let path = Path::new(&env("HOME")?).join(".postgresql/root.crt");
    path.exists().then_some(path)
}

fn roots(path: &Path) -> Result<RootCertStore, PgTlsError> {
    let bad = |reason: String| PgTlsError::RootCert { path: path.to_path_buf(), reason };
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        store.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(store)
}

type Options = (String, Vec<(String, String)>, bool);

/// Splits a URL into the part before `?` and its decoded query pairs, or a `key=value` string into its pairs.
fn split_options(url: &str) -> Result<Options, PgTlsError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let pairs = form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        return Ok((base.to_string(), pairs, true));
    }
    let mut pairs = Vec::new();
    for item in url.split_whitespace() {
        if item.contains('\'') || item.contains('\\') {
            return Err(PgTlsError::Url("quoted values in a key=value DATABASE_URL are not supported".into()));
        }
        let (k, v) = item.split_once('=').ok_or_else(|| PgTlsError::Url(format!("{item:?} is not key=value")))?;
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok((String::new(), pairs, false))
}

fn join_options(base: &str, pairs: &[(String, String)], url_form: bool) -> String {
    if url_form {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        format!("{base}?{query}")
    } else {
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }
}

/// `require` without a CA: the connection is encrypted, the certificate is not checked (libpq's behaviour). The
/// handshake's signatures are still verified, so the server holds the certificate's key.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the host name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_options_are_read_and_removed_from_what_tokio_postgres_sees() {
        let tls = PgTls::from_url("postgres://u@h:5433/db?application_name=x&sslmode=require").expect("valid");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(tls.config.get_dbname(), Some("db"));
        assert_eq!(tls.config.get_application_name(), Some("x"));
        let tls = PgTls::from_url("host=h dbname=db sslmode=disable").expect("key=value");
        assert_eq!(tls.config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn verifying_modes_need_a_readable_ca_and_unsupported_options_are_named() {
        let err = PgTls::from_url("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .expect_err("missing file")
            .to_string();
        assert!(err.contains("sslrootcert=/nonexistent/ca.pem"), "{err}");
        let err = PgTls::from_url("postgres://h/db?sslmode=verify-fulll").expect_err("typo").to_string();
        assert!(err.contains("verify-fulll"), "{err}");
        let err = PgTls::from_url("postgres://h/db?sslmode=require&sslcert=/c.pem").expect_err("client cert");
        assert!(err.to_string().contains("sslcert"), "{err}");
        let empty = std::env::temp_dir().join(format!("ackbox-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = PgTls::from_url(&format!("postgres://h/db?sslmode=verify-ca&sslrootcert={}", empty.display()))
            .expect_err("no cert in file")
            .to_string();
        let _ = std::fs::remove_file(&empty);
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
