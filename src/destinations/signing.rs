//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, one per secret so receivers can rotate.

use crate::config::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key bytes of a `whsec_…` secret (the prefix is optional; the rest is base64).
pub fn decode_secret(secret: &Secret) -> Result<Vec<u8>, String> {
    let text = secret.expose();
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    STANDARD
        .decode(encoded)
        .map_err(|_| "a signing secret must be whsec_ followed by base64".to_string())
}

/// The `webhook-signature` header value for `keys` (space-separated `v1,` signatures).
pub fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut parts = Vec::with_capacity(keys.len());
    for key in keys {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        parts.push(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn matches_the_published_test_vector() {
        let key = decode_secret(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let sig = signature(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn several_secrets_give_several_signatures() {
        let a = decode_secret(&Secret::new("whsec_YWFh")).unwrap();
        let b = decode_secret(&Secret::new("YmJi")).unwrap();
        let sig = signature(&[a, b], "id", 1, b"{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(decode_secret(&Secret::new("whsec_***")).is_err());
    }
}
