//! Checks that typed settings make sense together; each problem names its key.

use super::load::Problems;
use super::{DestinationSettings, Settings};

/// Records every problem of `settings` in `out`.
pub fn validate(settings: &Settings, out: &mut Problems) {
    if settings
        .server
        .listen
        .parse::<std::net::SocketAddr>()
        .is_err()
    {
        out.add(
            "server.listen",
            format!(
                "{:?} is not an address and port such as 127.0.0.1:8080",
                settings.server.listen
            ),
        );
    }
    let tokens = &settings.server.hook_tokens.0;
    if tokens.is_empty() {
        out.add(
            "server.hook_tokens",
            "at least one hook token is required (it is the secret part of the hook URL)",
        );
    }
    if tokens.iter().any(|t| t.expose().trim().is_empty()) {
        out.add("server.hook_tokens", "a hook token is empty");
    }
    if settings.server.max_body_bytes == 0 {
        out.add("server.max_body_bytes", "must be greater than 0");
    }
    if !settings.store.url.starts_with("sqlite://") {
        out.add(
            "store.url",
            "must start with sqlite:// (for example sqlite://data/deskbridge.sqlite)",
        );
    }
    let delivery = &settings.delivery;
    if delivery.workers == 0 {
        out.add("delivery.workers", "must be at least 1");
    }
    if delivery.request_timeout.0.is_zero() {
        out.add("delivery.request_timeout", "must be greater than 0");
    }
    if let Some(lease) = delivery.lease {
        if lease.0 < delivery.request_timeout.0 + std::time::Duration::from_secs(5) {
            out.add(
                "delivery.lease",
                "must be at least request_timeout plus 5s, or a delivery could be attempted twice at once",
            );
        }
    }
    for (name, destination) in &settings.destinations {
        let at = format!("destinations.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            out.add(
                &at,
                "destination names may hold only letters, digits, '_' and '-'",
            );
        }
        match destination {
            DestinationSettings::Webhook(w) => {
                match reqwest::Url::parse(&w.url) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                    _ => out.add(
                        &format!("{at}.url"),
                        format!("{:?} is not an http(s) URL", w.url),
                    ),
                }
                if reqwest::Method::from_bytes(w.method.as_bytes()).is_err() {
                    out.add(&format!("{at}.method"), "not an HTTP method");
                }
                for (header, value) in &w.headers {
                    let name_ok =
                        reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_ok();
                    let value_ok = reqwest::header::HeaderValue::from_str(value.expose()).is_ok();
                    if !name_ok || !value_ok {
                        out.add(
                            &format!("{at}.headers.{header}"),
                            "not a valid HTTP header name and value",
                        );
                    }
                }
                if let Some(secrets) = &w.signing_secret {
                    if secrets.0.is_empty() {
                        out.add(&format!("{at}.signing_secret"), "no secret given");
                    }
                    for s in &secrets.0 {
                        if let Err(e) = crate::destinations::signing::decode_secret(s) {
                            out.add(&format!("{at}.signing_secret"), e);
                        }
                    }
                }
            }
            DestinationSettings::File(f) => {
                if f.dir.trim().is_empty() {
                    out.add(&format!("{at}.dir"), "must name a folder");
                }
            }
        }
    }
}
