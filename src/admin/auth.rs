//! Who may use the dashboard: the admin token, signed session cookies, CSRF tokens, the
//! same-origin check on state-changing requests (failed sign-ins are limited by [`crate::limiter`]).
//!
//! Sessions are stateless: the cookie carries when it was issued, when it was last used and the
//! admin's time zone, signed with a key derived (HKDF-SHA256) from the admin token. Every
//! instance sharing the token accepts it; changing the token ends every session, a session
//! unused for `server.admin_idle_timeout` ends, and signing out ends every session issued
//! before it on every instance (the store's `sessions_valid_after`).

use crate::tokens::TokenDigest;
use actix_web::http::header;
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono_tz::Tz;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// Name of the session cookie.
pub const COOKIE: &str = "deskbridge_admin";
/// How long a session lasts at most.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// A session's last use is written into its cookie again when older than this.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

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
    /// Epoch ms of the sign-in.
    pub issued_ms: i64,
    /// Epoch ms of the last use written into the cookie.
    pub seen_ms: i64,
}

/// What a session cookie must satisfy now.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// The present, epoch ms.
    pub now_ms: i64,
    /// Sessions unused for this long are over.
    pub idle: Duration,
    /// Sessions issued at or before this epoch ms are over (signed out).
    pub valid_after: i64,
}

impl Keys {
    /// Keys for `token`: the session key is derived with HKDF-SHA256, so it reveals nothing
    /// about the token and is never used for anything else.
    pub fn new(token: &str) -> Self {
        let mut mac_key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"deskbridge admin"), token.as_bytes())
            .expand(b"session cookie signing key v1", &mut mac_key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            token: TokenDigest::of(token),
            mac_key,
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

    /// `payload` signed for `purpose`, as a cookie value: the payload and its tag, each
    /// base64url.
    pub fn seal(&self, purpose: &str, payload: &str) -> String {
        let tag = self
            .mac(&["sealed", purpose, payload])
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The payload of a value [`Keys::seal`]ed for `purpose` with these keys.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<String> {
        let (payload, tag) = sealed.split_once('.')?;
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(&["sealed", purpose, &payload])
            .verify_slice(&tag)
            .ok()?;
        Some(payload)
    }

    /// A session cookie value for a sign-in at `issued_ms`, last used at `seen_ms`, by an
    /// admin in `tz`.
    pub fn issue(&self, issued_ms: i64, seen_ms: i64, tz: Tz) -> String {
        let (issued, seen) = (issued_ms.to_string(), seen_ms.to_string());
        let tz = tz.name();
        let tag = self
            .mac(&["session", &issued, &seen, tz])
            .finalize()
            .into_bytes();
        format!("{issued}.{seen}.{tz}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The session of a cookie value, if it is signed with these keys and still valid: issued
    /// after the last sign-out, less than [`SESSION_TTL`] ago, and used within the idle time.
    pub fn session(&self, cookie: &str, valid: Validity) -> Option<Session> {
        let mut parts = cookie.splitn(4, '.');
        let (issued, seen, tz) = (parts.next()?, parts.next()?, parts.next()?);
        let tag = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        self.mac(&["session", issued, seen, tz])
            .verify_slice(&tag)
            .ok()?;
        let (issued_ms, seen_ms) = (issued.parse::<i64>().ok()?, seen.parse::<i64>().ok()?);
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let over = issued_ms <= valid.valid_after
            || issued_ms.saturating_add(ms(SESSION_TTL)) <= valid.now_ms
            || seen_ms.saturating_add(ms(valid.idle)) <= valid.now_ms;
        if over {
            return None;
        }
        // The CSRF token stays the same for the whole session, whatever its last use.
        let csrf = self.mac(&["csrf", issued, tz]).finalize().into_bytes();
        Some(Session {
            tz: tz.parse().ok()?,
            csrf: URL_SAFE_NO_PAD.encode(csrf),
            issued_ms,
            seen_ms,
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
    cookie_named(req, COOKIE)
}

/// The value of the cookie `name`, if the request carries one.
pub fn cookie_named<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// The session cookie header (`Secure` when the request came over HTTPS); the browser keeps
/// it until the session's absolute end.
pub fn set_cookie(value: &str, secure: bool, max_age: Duration) -> String {
    format!(
        "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The header that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    const HOUR: i64 = 3_600_000;

    fn at(now_ms: i64) -> Validity {
        Validity {
            now_ms,
            idle: Duration::from_secs(1800),
            valid_after: 0,
        }
    }

    #[test]
    fn sessions_are_signed_expire_and_carry_the_time_zone() {
        let keys = Keys::new("an admin token");
        let t = 10 * HOUR;
        let cookie = keys.issue(t, t, "Europe/Prague".parse().unwrap());
        let session = keys.session(&cookie, at(t + 1_000)).unwrap();
        assert_eq!(session.tz.name(), "Europe/Prague");
        let late = keys.issue(t, t + 12 * HOUR - 1_000, Tz::UTC);
        assert!(
            keys.session(&late, at(t + 12 * HOUR)).is_none(),
            "12 hours at most"
        );
        let forged = cookie.replacen(&t.to_string(), &(t + HOUR).to_string(), 1);
        assert!(
            keys.session(&forged, at(t + 1_000)).is_none(),
            "changed sign-in time"
        );
        let other_tz = cookie.replacen("Europe/Prague", "UTC", 1);
        assert!(
            keys.session(&other_tz, at(t + 1_000)).is_none(),
            "changed time zone"
        );
        assert!(Keys::new("another token")
            .session(&cookie, at(t + 1_000))
            .is_none());
        assert!(keys.session("garbage", at(t)).is_none());
        // The CSRF token is tied to the session, not to its last use.
        let second = keys.issue(t + 1, t + 1, Tz::UTC);
        assert_ne!(session.csrf, keys.session(&second, at(t + 2)).unwrap().csrf);
        let touched = keys.issue(t, t + 60_000, "Europe/Prague".parse().unwrap());
        assert_eq!(
            session.csrf,
            keys.session(&touched, at(t + 61_000)).unwrap().csrf
        );
    }

    #[test]
    fn idle_and_signed_out_sessions_are_over() {
        let keys = Keys::new("an admin token");
        let t = 10 * HOUR;
        let cookie = keys.issue(t, t, Tz::UTC);
        assert!(keys.session(&cookie, at(t + 1_799_000)).is_some());
        assert!(keys.session(&cookie, at(t + 1_800_000)).is_none(), "idle");
        let signed_out = Validity {
            valid_after: t,
            ..at(t + 1_000)
        };
        assert!(keys.session(&cookie, signed_out).is_none(), "signed out");
    }

    #[test]
    fn the_session_key_is_derived_with_hkdf() {
        // RFC 5869 gives HKDF-SHA256; the key must not be a plain hash of the token.
        let keys = Keys::new("an admin token");
        let plain: [u8; 32] = Sha256::digest(b"an admin token").into();
        assert_ne!(keys.mac_key, plain);
        assert_eq!(keys.mac_key, Keys::new("an admin token").mac_key);
        assert_ne!(keys.mac_key, Keys::new("another admin token").mac_key);
    }

    #[test]
    fn sealed_values_open_only_with_the_same_keys_and_purpose() {
        let keys = Keys::new("an admin token");
        let sealed = keys.seal("notice", "1 delivery is due again.");
        assert_eq!(
            keys.open("notice", &sealed).as_deref(),
            Some("1 delivery is due again.")
        );
        assert!(keys.open("session", &sealed).is_none(), "another purpose");
        assert!(Keys::new("another token").open("notice", &sealed).is_none());
        let (_, tag) = sealed.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("all is well"));
        assert!(keys.open("notice", &forged).is_none(), "changed text");
        assert!(keys.open("notice", "garbage").is_none());
    }

    #[test]
    fn the_admin_token_is_checked() {
        let keys = Keys::new("an admin token");
        assert!(keys.token_ok("an admin token"));
        assert!(!keys.token_ok("an admin toke"));
    }
}
