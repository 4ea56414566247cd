//! Who may use the dashboard: the admin token, signed session cookies, CSRF tokens, the
//! same-origin check on state-changing requests, and a limit on failed sign-ins.
//!
//! Sessions are stateless: the cookie carries its expiry and the admin's time zone, signed
//! with a key derived from the admin token. Every instance sharing the token accepts it, and
//! changing the token ends every session.

use crate::tokens::TokenDigest;
use actix_web::http::header;
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub const COOKIE: &str = "deskbridge_admin";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Keys derived from the admin token.
pub struct Keys {
    token: TokenDigest,
    mac_key: [u8; 32],
}

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    /// The admin's time zone.
    pub tz: Tz,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl Keys {
    /// Keys for `token`.
    pub fn new(token: &str) -> Self {
        let mut key = Sha256::new();
        key.update(b"deskbridge admin session\0");
        key.update(token.as_bytes());
        Self {
            token: TokenDigest::of(token),
            mac_key: key.finalize().into(),
        }
    }

    /// Whether `given` is the admin token; the comparison takes the same time for any input.
    pub fn token_ok(&self, given: &str) -> bool {
        self.token.matches(&TokenDigest::of(given))
    }

    fn mac(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.mac_key).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac
    }

    /// A session cookie value, valid until `expires_ms`, for an admin in `tz`.
    pub fn issue(&self, expires_ms: i64, tz: Tz) -> String {
        let expires = expires_ms.to_string();
        let tz = tz.name();
        let tag = self.mac(&["session", &expires, tz]).finalize().into_bytes();
        format!("{expires}.{tz}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The session of a cookie value, if it is signed with these keys and not expired.
    pub fn session(&self, cookie: &str, now_ms: i64) -> Option<Session> {
        let mut parts = cookie.splitn(3, '.');
        let (expires, tz, tag) = (parts.next()?, parts.next()?, parts.next()?);
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(&["session", expires, tz])
            .verify_slice(&tag)
            .ok()?;
        if expires.parse::<i64>().ok()? <= now_ms {
            return None;
        }
        let csrf = self.mac(&["csrf", cookie]).finalize().into_bytes();
        Some(Session {
            tz: tz.parse().ok()?,
            csrf: URL_SAFE_NO_PAD.encode(csrf),
        })
    }
}

/// Whether a state-changing request comes from the dashboard's own pages. Browsers say so in
/// `Sec-Fetch-Site` (which a page cannot forge); without it an `Origin` must name this host.
/// Requests with neither (not from a browser) are judged by their CSRF token alone.
pub fn same_origin(req: &HttpRequest) -> bool {
    let text = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text(header::ORIGIN) else {
        return true;
    };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, text(header::HOST)), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The session cookie's value, if the request carries one.
pub fn cookie(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The session cookie header of a new session (`Secure` when the request came over HTTPS).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The header that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Failed sign-ins allowed per client address within [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Counts failed sign-ins per client address and refuses more than [`MAX_FAILURES`] in
/// [`FAILURE_WINDOW`].
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Limiter {
    /// `Err(seconds to wait)` when `ip` has failed too often.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some((n, since)) if *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW => {
                Err((FAILURE_WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure of `ip`.
    pub fn failed(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed_expire_and_carry_the_time_zone() {
        let keys = Keys::new("an admin token");
        let cookie = keys.issue(2_000, "Europe/Prague".parse().unwrap());
        let session = keys.session(&cookie, 1_000).unwrap();
        assert_eq!(session.tz.name(), "Europe/Prague");
        assert!(keys.session(&cookie, 2_000).is_none(), "expired");
        let forged = cookie.replacen("2000", "9000", 1);
        assert!(keys.session(&forged, 1_000).is_none(), "changed expiry");
        let other_tz = cookie.replacen("Europe/Prague", "UTC", 1);
        assert!(
            keys.session(&other_tz, 1_000).is_none(),
            "changed time zone"
        );
        assert!(Keys::new("another token").session(&cookie, 1_000).is_none());
        assert!(keys.session("garbage", 1_000).is_none());
        // The CSRF token is tied to the session.
        let second = keys.issue(3_000, Tz::UTC);
        assert_ne!(session.csrf, keys.session(&second, 1_000).unwrap().csrf);
    }

    #[test]
    fn the_admin_token_is_checked() {
        let keys = Keys::new("an admin token");
        assert!(keys.token_ok("an admin token"));
        assert!(!keys.token_ok("an admin toke"));
    }

    #[test]
    fn failures_are_limited_per_address() {
        let limiter = Limiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(limiter.check(Some(ip)).is_ok());
            limiter.failed(Some(ip));
        }
        assert!(limiter.check(Some(ip)).is_err());
        assert!(limiter.check(Some("10.0.0.2".parse().unwrap())).is_ok());
    }
}
