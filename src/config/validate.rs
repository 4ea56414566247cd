//! Checks that typed settings make sense together; each problem names its key. Each
//! destination kind checks its own settings ([`crate::destinations::registry::KindSettings`]).

use super::problems::Problems;
use super::Settings;

/// Shortest admin token accepted.
const MIN_ADMIN_TOKEN: usize = 12;
/// Tokens the shipped configuration falls back to, for a developer's own machine only.
pub const DEVELOPMENT_TOKENS: &[&str] = &["dev-token", "dev-admin-token"];
/// Shortest hook or admin token accepted on a listener other machines can reach.
pub const MIN_PUBLIC_TOKEN: usize = 24;

/// Whether `token` may guard a listener that other machines can reach.
fn fit_for_public(token: &str) -> bool {
    let token = token.trim();
    !DEVELOPMENT_TOKENS.contains(&token) && token.chars().count() >= MIN_PUBLIC_TOKEN
}

/// On a listener that is not a loopback address, refuses the shipped development tokens and
/// short tokens: anyone who reaches the port could post hooks or read every transcript.
fn check_exposure(settings: &Settings, out: &mut Problems) {
    let Ok(addr) = settings.server.listen.parse::<std::net::SocketAddr>() else {
        return;
    };
    if addr.ip().is_loopback() {
        return;
    }
    let why = |what: &str| {
        format!(
            "server.listen {addr} is reachable from other machines, so {what} must not be a shipped development token (dev-token, dev-admin-token) and must have at least {MIN_PUBLIC_TOKEN} characters; generate one with `openssl rand -hex 16`"
        )
    };
    if !settings
        .server
        .hook_tokens
        .0
        .iter()
        .all(|t| fit_for_public(t.expose()))
    {
        out.add("server.hook_tokens", why("every hook token"));
    }
    if let Some(token) = &settings.server.admin_token {
        if !fit_for_public(token.expose()) {
            out.add("server.admin_token", why("the admin token"));
        }
    }
}

/// Records every problem of `settings` in `out`.
pub fn validate(settings: &Settings, out: &mut Problems) {
    super::smartsupp::validate(&settings.smartsupp, out);
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
    check_exposure(settings, out);
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
    if let Some(token) = &settings.server.admin_token {
        if token.expose().trim().chars().count() < MIN_ADMIN_TOKEN {
            out.add(
                "server.admin_token",
                format!("must be at least {MIN_ADMIN_TOKEN} characters (remove it to turn the dashboard off)"),
            );
        }
    }
    if settings
        .server
        .admin_time_zone
        .parse::<chrono_tz::Tz>()
        .is_err()
    {
        out.add(
            "server.admin_time_zone",
            format!(
                "{:?} is not an IANA time zone such as Europe/Prague or UTC",
                settings.server.admin_time_zone
            ),
        );
    }
    if settings.server.http_workers == Some(0) {
        out.add("server.http_workers", "must be at least 1");
    }
    if settings.server.max_body_bytes == 0 {
        out.add("server.max_body_bytes", "must be greater than 0");
    }
    if settings.server.max_connections == 0 {
        out.add("server.max_connections", "must be at least 1");
    }
    if settings.server.body_timeout.0.is_zero() {
        out.add("server.body_timeout", "must be greater than 0");
    }
    if settings.server.admin_idle_timeout.0.is_zero() {
        out.add("server.admin_idle_timeout", "must be greater than 0");
    }
    if !settings.store.url.starts_with("sqlite://")
        && !crate::store::is_postgres(&settings.store.url)
    {
        out.add(
            "store.url",
            "must start with sqlite:// (for example sqlite://data/deskbridge.sqlite) or postgres://",
        );
    }
    if crate::store::is_postgres(&settings.store.url) {
        if let Some(problem) = crate::store::postgres_url_problem(&settings.store.url) {
            out.add("store.url", problem);
        }
    }
    if settings.store.pool_size == 0 {
        out.add("store.pool_size", "must be at least 1");
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
    if let Some(url) = &settings.alerts.webhook_url {
        http_url("alerts.webhook_url", url, out);
    }
    if let Some(url) = settings.telemetry.otlp_endpoint.as_deref() {
        if !url.trim().is_empty() {
            http_url("telemetry.otlp_endpoint", url.trim(), out);
        }
    }
    if settings.telemetry.service_name.trim().is_empty() {
        out.add("telemetry.service_name", "must not be empty");
    }
    for (name, destination) in &settings.destinations {
        let at = format!("destinations.{name}");
        let common = &destination.common;
        if common.concurrency == Some(0) {
            out.add(&format!("{at}.concurrency"), "must be at least 1");
        }
        if common.breaker.failures > 0 && common.breaker.cool_down.0.is_zero() {
            out.add(&format!("{at}.breaker.cool_down"), "must be greater than 0");
        }
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
        destination.own.validate(name, &at, out);
    }
}

/// Records a problem at `key` unless `url` is an http(s) URL; the URL is quoted with its
/// credentials masked.
fn http_url(key: &str, url: &str, out: &mut Problems) {
    if let Err(message) = super::HttpUrl::parse(url) {
        out.add(key, message);
    }
}
