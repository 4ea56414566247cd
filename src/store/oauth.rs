//! OAuth refresh tokens kept for destinations, shared by every instance on one store: renewal
//! is a compare-and-swap on a generation, with a short lease while one instance renews, so a
//! rotated refresh token is never sent twice.

/// A destination's stored refresh token and the access token it last gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRow {
    /// Digest of the configured refresh token this row started from.
    pub seed: String,
    /// The refresh token to use next.
    pub refresh_token: String,
    /// The access token of the last renewal, if any.
    pub access_token: Option<String>,
    /// When that access token expires (epoch ms).
    pub expires_at: Option<i64>,
    /// Counted up at each renewal.
    pub generation: i64,
    /// While an instance renews: until when (epoch ms) it holds the renewal.
    pub renewing_until: Option<i64>,
}

/// A renewal's outcome to store.
#[derive(Debug, Clone)]
pub struct Renewed {
    /// The new refresh token (the old one is spent).
    pub refresh_token: String,
    /// The new access token.
    pub access_token: String,
    /// Its expiry, epoch ms.
    pub expires_at: i64,
}
