//! `X-Smartsupp-Hmac`: the hex HMAC-SHA256 of the raw body under the app's shared secret.

use crate::config::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Smartsupp signs events with.
pub const HEADER: &str = "X-Smartsupp-Hmac";

/// Whether `header` (hex, any case) is the HMAC-SHA256 of `body` under one of `secrets`.
/// Every secret is tried, each comparison in constant time.
pub fn verify(secrets: &[Secret], body: &[u8], header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| decode_hex(h.trim())) else {
        return false;
    };
    secrets.iter().fold(false, |ok, secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
            return ok;
        };
        mac.update(body);
        ok | mac.verify_slice(&given).is_ok()
    })
}

/// The lowercase hex signature of `body` under `secret` (tests, and senders in docs).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    crate::text::hex(&mac.finalize().into_bytes())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_in_any_case_under_any_secret() {
        let body = br#"{"event":"conversation.closed","data":{}}"#;
        let secrets = [Secret::new("old"), Secret::new("new")];
        let sig = sign("new", body);
        assert!(verify(&secrets, body, Some(&sig)));
        assert!(verify(&secrets, body, Some(&sig.to_uppercase())));
        assert!(verify(&secrets, body, Some(&sign("old", body))));
        assert!(!verify(&secrets, body, Some(&sign("other", body))));
        assert!(!verify(&secrets, body, None));
        assert!(!verify(&secrets, body, Some("zz")));
        let mut changed = body.to_vec();
        changed[3] ^= 1;
        assert!(!verify(&secrets, &changed, Some(&sig)));
        // The known answer of RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
