//! Sending over SMTP and what the server's answer means: 4xx replies, connection and TLS
//! failures are retried; 5xx replies are permanent with the server's words kept; refused
//! credentials pause the destination.

use super::{EmailSettings, EmailTls};
use crate::destinations::{Delivered, DeliveryError};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::Error;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// The transport deliveries use.
pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Longest server reply kept in the attempt log, in characters.
const MAX_REPLY_CHARS: usize = 500;

/// SMTP replies that refuse the client's credentials or how it presents them: 530
/// (authentication or STARTTLS required), 534 (mechanism too weak), 535 (credentials
/// invalid), 538 (encryption required for the mechanism).
const CREDENTIAL_CODES: &[u16] = &[530, 534, 535, 538];

/// The server and how to reach it, from `smtp_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host name or address.
    pub host: String,
    /// Port (587 for `smtp://`, 465 for `smtps://` when not given).
    pub port: u16,
    /// Encryption.
    pub tls: EmailTls,
}

impl Server {
    /// Reads `smtp_url` and `tls` (validated with the configuration).
    pub fn of(settings: &EmailSettings) -> Result<Self, String> {
        let url = reqwest::Url::parse(&settings.smtp_url).map_err(|e| e.to_string())?;
        let host = url
            .host_str()
            .ok_or("smtp_url has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let default_port = if url.scheme() == "smtps" { 465 } else { 587 };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            tls: settings.tls_mode(),
        })
    }
}

/// What is wrong with `ca_file` at `path`, if anything: it must hold PEM certificates that
/// rustls accepts as roots.
pub fn ca_file_problem(path: &str) -> Option<String> {
    use rustls::pki_types::pem::PemObject;
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) => return Some(format!("cannot read {path}: {e}")),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&text) {
        match cert.map(|c| roots.add(c)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Some(format!("{path} holds a certificate rustls cannot use: {e}"))
            }
            Err(e) => return Some(format!("{path} is not PEM: {e}")),
        }
    }
    roots
        .is_empty()
        .then(|| format!("{path} holds no PEM certificate"))
}

/// Builds the transport: TLS as configured (system roots, or `ca_file` alone), credentials,
/// `timeout` for connecting. No connection is opened.
pub fn transport(settings: &EmailSettings, timeout: Duration) -> Result<Transport, String> {
    let server = Server::of(settings)?;
    let tls = match server.tls {
        EmailTls::None => Tls::None,
        mode => {
            let mut params = TlsParameters::builder(server.host.clone());
            if let Some(path) = &settings.ca_file {
                let pem =
                    std::fs::read(path).map_err(|e| format!("cannot read ca_file {path}: {e}"))?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| format!("ca_file {path} holds no PEM certificate: {e}"))?;
                params = params
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(certificate);
            }
            let params = params.build().map_err(|e| format!("TLS settings: {e}"))?;
            if mode == EmailTls::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let mut builder = Transport::builder_dangerous(server.host.as_str())
        .port(server.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(name) = &settings.hello_name {
        builder = builder.hello_name(ClientId::Domain(name.clone()));
    }
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        builder = builder.credentials(Credentials::new(
            user.expose().to_string(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// A session that took longer than `limit` (lettre bounds only the TCP connect): retried,
/// although the server may have accepted the message just before.
fn too_slow(limit: Duration) -> DeliveryError {
    DeliveryError::Retryable {
        reason: format!(
            "the SMTP server did not finish within {} ms",
            limit.as_millis()
        ),
        status: None,
        retry_after: None,
        excerpt: None,
    }
}

/// Sends `message` to the envelope's recipients in one SMTP session of at most `limit`.
pub async fn send(
    transport: &Transport,
    limit: Duration,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Delivered, DeliveryError> {
    let response = tokio::time::timeout(limit, transport.send_raw(envelope, message))
        .await
        .map_err(|_| too_slow(limit))?
        .map_err(|e| classify(&Failure::of(&e)))?;
    let code = code_number(&response.code().to_string());
    let words: Vec<&str> = response.message().collect();
    Ok(Delivered {
        status: code,
        excerpt: Some(reply_text(code, &words.join(" "))),
        result: None,
    })
}

/// Connects, says EHLO, starts TLS and authenticates as configured, then quits, sending no
/// message: whether deliveries can get through.
pub async fn probe(transport: &Transport, limit: Duration) -> Result<(), DeliveryError> {
    let answer = tokio::time::timeout(limit, transport.test_connection())
        .await
        .map_err(|_| too_slow(limit))?;
    match answer {
        Ok(true) => Ok(()),
        Ok(false) => Err(DeliveryError::Retryable {
            reason: "the SMTP server did not answer NOOP after the connection was set up".into(),
            status: None,
            retry_after: None,
            excerpt: None,
        }),
        Err(e) => Err(classify(&Failure::of(&e))),
    }
}

/// What went wrong, read from lettre's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A 4xx reply.
    Transient(Option<u16>, String),
    /// A 5xx reply.
    Permanent(Option<u16>, String),
    /// The TLS handshake or certificate check failed, or STARTTLS was not offered.
    Tls(String),
    /// Connecting, reading or writing failed, or timed out; or the reply was garbled.
    Network(String),
    /// The server offers no authentication mechanism deskbridge can use.
    NoAuthMechanism(String),
    /// The client could not go on for another reason (the message needs SMTPUTF8 …).
    Client(String),
}

impl Failure {
    /// Reads lettre's error.
    pub fn of(e: &Error) -> Self {
        let text = error_chain(e);
        let code = e.status().and_then(|c| code_number(&c.to_string()));
        if e.is_transient() {
            Self::Transient(code, text)
        } else if e.is_permanent() {
            Self::Permanent(code, text)
        } else if e.is_tls() || text.contains("STARTTLS is not supported") {
            Self::Tls(text)
        } else if text.contains("No compatible authentication mechanism") {
            Self::NoAuthMechanism(text)
        } else if e.is_client() {
            Self::Client(text)
        } else {
            Self::Network(text)
        }
    }
}

/// Decides what a failure means for the delivery.
pub fn classify(failure: &Failure) -> DeliveryError {
    match failure {
        Failure::Transient(code, text) => DeliveryError::Retryable {
            reason: format!("the SMTP server answered {}", reply_text(*code, text)),
            status: *code,
            retry_after: None,
            excerpt: Some(reply_text(*code, text)),
        },
        Failure::Permanent(Some(code), text) if CREDENTIAL_CODES.contains(code) => {
            DeliveryError::Unauthorized {
                reason: format!(
                    "the SMTP server refused deskbridge's credentials or how they were sent ({}): check username, password and tls",
                    reply_text(Some(*code), text)
                ),
                status: Some(*code),
            }
        }
        Failure::Permanent(code, text) => DeliveryError::Permanent {
            reason: format!("the SMTP server refused the message: {}", reply_text(*code, text)),
            status: *code,
            excerpt: Some(reply_text(*code, text)),
        },
        Failure::Tls(text) => DeliveryError::Retryable {
            reason: format!("TLS with the SMTP server failed: {text}"),
            status: None,
            retry_after: None,
            excerpt: None,
        },
        Failure::Network(text) => DeliveryError::Retryable {
            reason: format!("the SMTP server could not be reached: {text}"),
            status: None,
            retry_after: None,
            excerpt: None,
        },
        Failure::NoAuthMechanism(text) => DeliveryError::Unauthorized {
            reason: format!(
                "the SMTP server offers no authentication deskbridge can use (PLAIN, LOGIN), so username and password cannot be sent: {text}"
            ),
            status: None,
        },
        Failure::Client(text) => DeliveryError::Permanent {
            reason: format!("the message cannot be sent to this SMTP server: {text}"),
            status: None,
            excerpt: None,
        },
    }
}

/// `550 text`, on one line and cut to [`MAX_REPLY_CHARS`].
fn reply_text(code: Option<u16>, text: &str) -> String {
    let text = super::message::one_line(text, MAX_REPLY_CHARS);
    match code {
        Some(code) if !text.starts_with(&code.to_string()) => format!("{code} {text}"),
        _ => text,
    }
}

/// The reply code as a number (`Code` prints its three digits).
fn code_number(text: &str) -> Option<u16> {
    text.trim().parse().ok()
}

/// The error and its causes in words, without lettre's `permanent error (550):` prefix.
fn error_chain(e: &Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() || !(e.is_transient() || e.is_permanent()) {
        parts.insert(0, e.to_string());
        parts.dedup_by(|b, a| a.contains(b.as_str()));
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_failures_are_classified() {
        let cases: Vec<(&str, Failure, &str, Option<u16>)> = vec![
            (
                "greylisted",
                Failure::Transient(Some(451), "4.7.1 Try again later".into()),
                "retryable",
                Some(451),
            ),
            (
                "unknown mailbox",
                Failure::Permanent(Some(550), "5.1.1 No such user".into()),
                "permanent",
                Some(550),
            ),
            (
                "wrong password",
                Failure::Permanent(Some(535), "5.7.8 Authentication credentials invalid".into()),
                "unauthorized",
                Some(535),
            ),
            (
                "no STARTTLS",
                Failure::Tls("STARTTLS is not supported on this server".into()),
                "retryable",
                None,
            ),
            (
                "refused connection",
                Failure::Network("Connection refused (os error 111)".into()),
                "retryable",
                None,
            ),
            (
                "no AUTH offered",
                Failure::NoAuthMechanism("No compatible authentication mechanism".into()),
                "unauthorized",
                None,
            ),
            (
                "needs SMTPUTF8",
                Failure::Client("server does not support SMTPUTF8".into()),
                "permanent",
                None,
            ),
        ];
        for (what, failure, expected, status) in cases {
            let error = classify(&failure);
            let kind = match &error {
                DeliveryError::Retryable { .. } => "retryable",
                DeliveryError::Permanent { .. } => "permanent",
                DeliveryError::Unauthorized { .. } => "unauthorized",
                DeliveryError::Deferred { .. } => "deferred",
            };
            assert_eq!(kind, expected, "{what}: {error}");
            assert_eq!(error.status(), status, "{what}");
        }
        let error = classify(&Failure::Permanent(
            Some(550),
            "5.1.1 <x@y>: no\r\nsuch user".into(),
        ));
        assert_eq!(error.excerpt(), Some("550 5.1.1 <x@y>: no such user"));
    }

    #[test]
    fn the_url_gives_host_port_and_tls() {
        let settings = |url: &str, tls: Option<EmailTls>| EmailSettings {
            smtp_url: url.into(),
            tls,
            ..super::EmailSettings::sample()
        };
        let of = |url: &str, tls| Server::of(&settings(url, tls)).unwrap();
        assert_eq!(
            of("smtp://mail.example.com", None),
            Server {
                host: "mail.example.com".into(),
                port: 587,
                tls: EmailTls::Starttls
            }
        );
        assert_eq!(of("smtps://mail.example.com", None).port, 465);
        assert_eq!(of("smtps://mail.example.com", None).tls, EmailTls::Tls);
        let local = of("smtp://[::1]:25", Some(EmailTls::None));
        assert_eq!(
            (local.host.as_str(), local.port, local.tls),
            ("::1", 25, EmailTls::None)
        );
    }
}
