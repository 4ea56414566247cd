//! One-time notices after a change (post/redirect/get): the change answers with a redirect
//! and a short-lived cookie holding the notice, signed with the session keys; the next page
//! shows it once and clears it, so a reload shows nothing and the address stays clean.

use super::auth::{self, Keys};
use actix_web::HttpRequest;
use std::time::Duration;

/// Name of the notice cookie.
pub const COOKIE: &str = "deskbridge_notice";
/// How long a notice waits for the page that shows it.
const TTL: Duration = Duration::from_secs(60);
/// What the notice's signature is for.
const PURPOSE: &str = "notice";

/// The `Set-Cookie` header of a notice with `text`, from `now_ms` on.
pub fn set_cookie(keys: &Keys, text: &str, now_ms: i64, secure: bool) -> String {
    let expires = now_ms.saturating_add(TTL.as_millis() as i64);
    let value = keys.seal(PURPOSE, &format!("{expires}\n{text}"));
    format!(
        "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
        TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` header that removes a notice once shown.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// What a request's notice cookie says: `None` when there is none; `Some(None)` when there is
/// one that is not to be shown (forged, or older than its time), which is cleared all the same.
pub fn read(req: &HttpRequest, keys: &Keys, now_ms: i64) -> Option<Option<String>> {
    let value = auth::cookie_named(req, COOKIE)?;
    Some(open(keys, value, now_ms))
}

fn open(keys: &Keys, value: &str, now_ms: i64) -> Option<String> {
    let payload = keys.open(PURPOSE, value)?;
    let (expires, text) = payload.split_once('\n')?;
    (expires.parse::<i64>().ok()? > now_ms).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_shown_only_before_its_time_and_only_when_signed() {
        let keys = Keys::new("an admin token");
        let header = set_cookie(&keys, "2 deliveries are due again.", 1_000, false);
        let value = header
            .strip_prefix("deskbridge_notice=")
            .and_then(|v| v.split(';').next())
            .unwrap_or_default();
        assert!(header.contains("HttpOnly; SameSite=Strict; Max-Age=60"));
        assert_eq!(
            open(&keys, value, 2_000).as_deref(),
            Some("2 deliveries are due again.")
        );
        assert_eq!(open(&keys, value, 61_000), None, "too late");
        assert_eq!(open(&Keys::new("other"), value, 2_000), None, "forged");
    }
}
