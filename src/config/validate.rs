//! Checks that typed settings make sense together; each problem names its key.

use super::problems::Problems;
use super::{DestinationSettings, HubspotSettings, Settings, ZendeskSettings};

/// Longest name of a file destination, so that its file names stay within 255 bytes.
const MAX_FILE_DESTINATION_NAME: usize = 100;

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
    for (name, destination) in &settings.destinations {
        let at = format!("destinations.{name}");
        let (_, concurrency, breaker) = destination.health();
        if concurrency == Some(0) {
            out.add(&format!("{at}.concurrency"), "must be at least 1");
        }
        if breaker.failures > 0 && breaker.cool_down.0.is_zero() {
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
        match destination {
            DestinationSettings::Webhook(w) => {
                http_url(&format!("{at}.url"), &w.url, out);
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
                if name.len() > MAX_FILE_DESTINATION_NAME {
                    out.add(
                        &at,
                        format!("a file destination's name is part of every file it writes: at most {MAX_FILE_DESTINATION_NAME} characters"),
                    );
                }
            }
            DestinationSettings::Zendesk(z) => zendesk(&at, z, out),
            DestinationSettings::Hubspot(h) => hubspot(&at, h, out),
            DestinationSettings::Email(e) => super::email::validate(&at, e, out),
        }
    }
}

/// Records a problem at `key` unless `url` is an http(s) URL; the URL is quoted with its
/// credentials masked.
fn http_url(key: &str, url: &str, out: &mut Problems) {
    if !matches!(reqwest::Url::parse(url), Ok(u) if matches!(u.scheme(), "http" | "https")) {
        out.add(
            key,
            format!("{:?} is not an http(s) URL", crate::redact::url(url)),
        );
    }
}

fn zendesk(at: &str, z: &ZendeskSettings, out: &mut Problems) {
    match (&z.subdomain, &z.base_url) {
        (Some(sub), None) => {
            let ok = !sub.is_empty() && sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                out.add(
                    &format!("{at}.subdomain"),
                    "give the subdomain only, e.g. acme for acme.zendesk.com",
                );
            }
        }
        (None, Some(url)) => http_url(&format!("{at}.base_url"), url, out),
        (Some(_), Some(_)) => out.add(at, "give subdomain or base_url, not both"),
        (None, None) => out.add(at, "subdomain (or base_url) is required"),
    }
    if let Some(crate::config::AuthSettings::Oauth(o)) = &z.auth {
        oauth(&format!("{at}.auth"), o, out);
        if z.email.is_some() || z.api_token.is_some() || z.oauth_token.is_some() {
            out.add(
                &format!("{at}.auth"),
                "give auth (OAuth), or email and api_token, or oauth_token: one of them",
            );
        }
        return zendesk_rest(at, z, out);
    }
    match (&z.email, &z.api_token, &z.oauth_token) {
        (Some(_), Some(_), None) | (None, None, Some(_)) => {}
        (_, _, Some(_)) => out.add(at, "give email and api_token, or oauth_token, not both"),
        (None, Some(_), None) => out.add(
            &format!("{at}.email"),
            "api_token needs the API user's email",
        ),
        (Some(_), None, None) => out.add(
            &format!("{at}.api_token"),
            "email needs an api_token (or use oauth_token)",
        ),
        (None, None, None) => out.add(
            at,
            "credentials are required: auth (OAuth), or email and api_token, or oauth_token",
        ),
    }
    zendesk_rest(at, z, out);
}

/// Checks `auth: {kind: oauth}` at `at`.
fn oauth(at: &str, o: &crate::config::OAuthSettings, out: &mut Problems) {
    if o.client_id.trim().is_empty() {
        out.add(&format!("{at}.client_id"), "must not be empty");
    }
    if o.client_secret.expose().trim().is_empty() {
        out.add(&format!("{at}.client_secret"), "must not be empty");
    }
    match (o.grant, &o.refresh_token) {
        (crate::config::OAuthGrant::RefreshToken, None) => out.add(
            &format!("{at}.refresh_token"),
            "grant refresh_token needs the refresh_token that seeds the store",
        ),
        (crate::config::OAuthGrant::ClientCredentials, Some(_)) => out.add(
            &format!("{at}.refresh_token"),
            "is used with grant: refresh_token only",
        ),
        _ => {}
    }
    if let Some(url) = &o.token_url {
        http_url(&format!("{at}.token_url"), url, out);
    }
}

/// The Zendesk checks that do not depend on the credentials.
fn zendesk_rest(at: &str, z: &ZendeskSettings, out: &mut Problems) {
    if z.time_zone.parse::<chrono_tz::Tz>().is_err() {
        out.add(
            &format!("{at}.time_zone"),
            format!(
                "unknown time zone {:?} (use an IANA name such as Europe/Prague)",
                z.time_zone
            ),
        );
    }
    for (kind, value) in [
        ("chat", &z.priority.chat),
        ("missed", &z.priority.missed),
        ("offline", &z.priority.offline),
    ] {
        if !["urgent", "high", "normal", "low"].contains(&value.as_str()) {
            out.add(
                &format!("{at}.priority.{kind}"),
                format!("{value:?} is not urgent, high, normal or low"),
            );
        }
    }
    for (kind, value) in [
        ("chat", &z.ticket_type.chat),
        ("missed", &z.ticket_type.missed),
        ("offline", &z.ticket_type.offline),
    ] {
        if !["problem", "incident", "question", "task"].contains(&value.as_str()) {
            out.add(
                &format!("{at}.type.{kind}"),
                format!("{value:?} is not problem, incident, question or task"),
            );
        }
    }
}

fn hubspot(at: &str, h: &HubspotSettings, out: &mut Problems) {
    if h.access_token
        .as_ref()
        .is_none_or(|t| t.expose().trim().is_empty())
    {
        out.add(
            &format!("{at}.access_token"),
            "a private app access token is required",
        );
    }
    http_url(&format!("{at}.base_url"), &h.base_url, out);
    let version_ok = h.api_version == "v3"
        || (h.api_version.len() == 7
            && h.api_version.as_bytes()[4] == b'-'
            && h.api_version.chars().filter(|c| c.is_ascii_digit()).count() == 6);
    if !version_ok {
        out.add(
            &format!("{at}.api_version"),
            format!(
                "{:?} is not v3 or a date version such as 2026-03",
                h.api_version
            ),
        );
    }
    if h.conversation_key_property
        .as_ref()
        .is_some_and(|p| p.trim().is_empty())
    {
        out.add(
            &format!("{at}.conversation_key_property"),
            "must name a ticket property (or be left out)",
        );
    }
    if h.create.is_empty() {
        out.add(
            &format!("{at}.create"),
            "name at least one of contact, ticket, note",
        );
    }
    if h.time_zone.parse::<chrono_tz::Tz>().is_err() {
        out.add(
            &format!("{at}.time_zone"),
            format!(
                "unknown time zone {:?} (use an IANA name such as Europe/Prague)",
                h.time_zone
            ),
        );
    }
    for (kind, value) in [
        ("chat", &h.priority.chat),
        ("missed", &h.priority.missed),
        ("offline", &h.priority.offline),
    ] {
        if !["LOW", "MEDIUM", "HIGH", "URGENT"].contains(&value.as_str()) {
            out.add(
                &format!("{at}.priority.{kind}"),
                format!("{value:?} is not LOW, MEDIUM, HIGH or URGENT"),
            );
        }
    }
}
