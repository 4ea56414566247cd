//! TLS to PostgreSQL over rustls: the `sslmode` and `sslrootcert` parameters of `store.url`.
//!
//! - `disable`: never TLS.
//! - `prefer` (the default when `sslmode` is absent): no TLS either, as before deskbridge spoke
//!   TLS; unlike libpq it does not try TLS first. Write `require` to encrypt.
//! - `require`: TLS or no connection; the server's certificate is not checked (encryption
//!   against eavesdroppers, not against an impostor).
//! - `verify-full`: TLS, and the server's certificate must chain to a trusted CA and name the
//!   host deskbridge connects to. The CAs are those in the PEM file `sslrootcert=PATH`, or the
//!   system's trusted roots without `sslrootcert` (or with `sslrootcert=system`).
//!
//! tokio-postgres knows neither `verify-full` nor `sslrootcert`: both are taken out of the URL
//! here, and the rest is handed to it with `sslmode=require`. SCRAM channel binding is not
//! offered (PostgreSQL's default `channel_binding=prefer` does without it).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;

/// Why `store.url` cannot be used to connect.
#[derive(Debug, thiserror::Error)]
pub enum PgUrlError {
    /// An `sslmode` deskbridge does not offer.
    #[error("sslmode={0:?} is not one of disable, prefer, require, verify-full")]
    SslMode(String),
    /// `verify-ca` checks the chain but not the host name.
    #[error("sslmode=verify-ca is not supported: use verify-full (the certificate must name the host) or require (encryption only)")]
    VerifyCa,
    /// A CA file given where nothing is verified.
    #[error("sslrootcert is only used with sslmode=verify-full (sslmode is {0})")]
    RootCertUnused(String),
    /// The CA file cannot be used.
    #[error("sslrootcert {path}: {reason}")]
    RootCert {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `verify-full` without `sslrootcert` on a system without trusted roots.
    #[error("sslmode=verify-full: the system has no trusted root certificates; give the CA with sslrootcert=PATH")]
    NoSystemRoots,
    /// What tokio-postgres refused in the rest of the URL.
    #[error("{0}")]
    Driver(String),
}

/// `store.url` as tokio-postgres reads it, and the TLS connector (`None`: no TLS).
pub fn settings(url: &str) -> Result<(tokio_postgres::Config, Option<MakeRustls>), PgUrlError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(key).as_str() {
            "sslmode" => mode = Some(percent_decode(value)),
            "sslrootcert" => root = Some(percent_decode(value)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        PgUrlError::Driver(crate::destinations::http::error_chain(&e))
    })?;
    let mode = mode.unwrap_or_else(|| "prefer".into());
    let verified = match mode.as_str() {
        "disable" | "prefer" if root.is_none() => {
            config.ssl_mode(match mode.as_str() {
                "disable" => SslMode::Disable,
                _ => SslMode::Prefer,
            });
            return Ok((config, None));
        }
        "require" if root.is_none() => None,
        "disable" | "prefer" | "require" => return Err(PgUrlError::RootCertUnused(mode)),
        "verify-full" => Some(match root.as_deref() {
            None | Some("system") => (
                system_roots()?,
                "a CA among the system's trusted roots".into(),
            ),
            Some(path) => (file_roots(path)?, format!("a CA in {path}")),
        }),
        "verify-ca" => return Err(PgUrlError::VerifyCa),
        other => return Err(PgUrlError::SslMode(other.into())),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgUrlError::Driver(format!("TLS: {e}")))?;
    let (mut client, trust) = match verified {
        None => (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
            "any certificate (sslmode=require does not verify)".to_string(),
        ),
        Some((roots, trust)) => (
            builder.with_root_certificates(roots).with_no_client_auth(),
            trust,
        ),
    };
    // PostgreSQL 17 requires this ALPN for direct TLS; earlier servers ignore it.
    client.alpn_protocols = vec![b"postgresql".to_vec()];
    config.ssl_mode(SslMode::Require);
    Ok((
        config,
        Some(MakeRustls {
            config: Arc::new(client),
            trust: Arc::from(trust),
        }),
    ))
}

fn file_roots(path: &str) -> Result<RootCertStore, PgUrlError> {
    let problem = |reason: String| PgUrlError::RootCert {
        path: path.to_string(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| problem(format!("cannot read it: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert = cert.map_err(|e| problem(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| problem(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(problem("holds no PEM certificate".into()));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, PgUrlError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err(PgUrlError::NoSystemRoots);
    }
    Ok(roots)
}

/// `%XX` sequences of a URL query decoded (as tokio-postgres decodes the rest).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `sslmode=require`: any certificate is accepted, but the handshake's signatures are still
/// checked, so the session is encrypted with the key of the certificate presented.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Makes a TLS connector per host for tokio-postgres.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    /// What certificates are trusted, for errors.
    trust: Arc<str>,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, io::Error> {
        // A Unix socket has no host name; tokio-postgres refuses TLS over it anyway.
        let shown = if host.is_empty() { "localhost" } else { host };
        let name = ServerName::try_from(shown.to_string()).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("TLS to {host:?}: {e}"))
        })?;
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
            trust: self.trust.clone(),
        })
    }
}

/// One TLS handshake with one host.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    trust: Arc<str>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let host = self.name.to_str().into_owned();
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
                .map_err(|e| explain(e, &host, &self.trust))
        })
    }
}

/// A failed handshake in words: which host, what was wrong with its certificate, and what
/// deskbridge trusts.
fn explain(e: io::Error, host: &str, trust: &str) -> io::Error {
    use rustls::CertificateError as C;
    let detail = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(C::UnknownIssuer)) => {
            format!("its certificate is not signed by {trust}")
        }
        Some(rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        )) => format!("its certificate does not name {host}: {e}"),
        Some(rustls::Error::InvalidCertificate(_)) => format!("{e} (trusted: {trust})"),
        _ => e.to_string(),
    };
    io::Error::new(
        e.kind(),
        format!("TLS handshake with {host} failed: {detail}"),
    )
}

/// An encrypted connection to PostgreSQL.
pub struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_choose_the_connector_and_leave_the_rest_to_the_driver() {
        let (c, tls) = settings("postgres://u:p@h/db").unwrap();
        assert!(tls.is_none() && c.get_ssl_mode() == SslMode::Prefer);
        let (c, tls) = settings("postgres://u:p@h/db?sslmode=disable").unwrap();
        assert!(tls.is_none() && c.get_ssl_mode() == SslMode::Disable);
        let (c, tls) =
            settings("postgres://u:p@h/db?application_name=x&sslmode=require&connect_timeout=3")
                .unwrap();
        assert!(tls.is_some() && c.get_ssl_mode() == SslMode::Require);
        assert_eq!(
            c.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(c.get_dbname(), Some("db"));
    }

    #[test]
    fn bad_tls_settings_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here").unwrap();
        let missing = dir.path().join("missing%20file.pem");
        for (url, expected) in [
            (
                "postgres://h/db?sslmode=allow",
                "sslmode=\"allow\" is not one of",
            ),
            (
                "postgres://h/db?sslmode=verify-ca",
                "verify-ca is not supported",
            ),
            (
                "postgres://h/db?sslmode=require&sslrootcert=/x.pem",
                "only used with sslmode=verify-full (sslmode is require)",
            ),
            ("postgres://h/db?sslcert=/x.pem", "unknown option `sslcert`"),
        ] {
            let e = settings(url).err().unwrap().to_string();
            assert!(e.contains(expected), "{url}: {e}");
        }
        let e = settings(&format!(
            "postgres://h/db?sslmode=verify-full&sslrootcert={}",
            empty.display()
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.ends_with("empty.pem: holds no PEM certificate"), "{e}");
        let e = settings(&format!(
            "postgres://h/db?sslmode=verify-full&sslrootcert={}",
            missing.display()
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("missing file.pem: cannot read it"), "{e}");
    }
}
