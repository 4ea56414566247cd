//! Secret tokens compared in constant time: the hook tokens and the admin token are kept as
//! SHA-256 digests, so a comparison takes the same time whatever is guessed.

use sha2::{Digest, Sha256};

/// The digest of an accepted token.
#[derive(Clone)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `given` is the digest of the same token, in time that does not depend on where
    /// they differ.
    pub fn matches(&self, given: &TokenDigest) -> bool {
        constant_time_eq(&self.0, &given.0)
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_bytes_compare() {
        let digest = TokenDigest::of("an admin token");
        assert!(digest.matches(&TokenDigest::of("an admin token")));
        assert!(!digest.matches(&TokenDigest::of("an admin toke")));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }
}
