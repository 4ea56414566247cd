//! OAuth 2.0 access tokens for destinations (RFC 6749), from a confidential client: the
//! `client_credentials` grant, or the `refresh_token` grant with rotating refresh tokens kept
//! in the store. A [`TokenSource`] caches its access token and renews it before it expires
//! (never two renewals at once in one process); with refresh tokens, renewal is a
//! compare-and-swap in the store, so instances sharing it never send one refresh token twice.
//! The token endpoint and its request encoding are parameters, so any destination can use it.

use crate::config::{OAuthGrant, OAuthSettings};
use crate::destinations::http::{self, Exchange};
use crate::destinations::{DeliveryError, Request};
use crate::store::oauth::{OAuthRow, Renewed};
use crate::store::{now_ms, Store};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Renew this long before expiry at most (a quarter of a short token's life at least).
const MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A stored access token with less life left than this is renewed rather than used.
const MIN_LEFT: Duration = Duration::from_secs(5);
/// How long one instance holds a refresh-token renewal in the store.
const RENEWAL_LEASE: Duration = Duration::from_secs(30);
/// How long an instance waits for another one's renewal before giving up for now.
const RENEWAL_WAIT: Duration = Duration::from_secs(15);
/// How often it looks meanwhile.
const RENEWAL_POLL: Duration = Duration::from_millis(100);

/// How a token request's parameters are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A JSON object (Zendesk).
    Json,
    /// `application/x-www-form-urlencoded`, as RFC 6749 says.
    Form,
}

/// Where and how a destination's tokens are asked for.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The token endpoint.
    pub token_url: String,
    /// How parameters are sent.
    pub encoding: Encoding,
    /// Scopes asked for with `client_credentials` when the configuration names none.
    pub default_scope: &'static str,
    /// Who answers, for messages (`Zendesk`).
    pub who: String,
    /// What to check when a fresh token is refused (the destination's words).
    pub fresh_token_refused: &'static str,
}

/// Why no access token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The endpoint refused the client or the grant (`invalid_client`, `invalid_grant`, 401,
    /// 403 …): nothing will change until an admin fixes the credentials.
    #[error("{0}")]
    Refused(String),
    /// The endpoint or the store could not be used now (network, 5xx, 429); try again.
    #[error("{reason}")]
    Unavailable {
        /// What happened.
        reason: String,
        /// The endpoint's `Retry-After`.
        retry_after: Option<Duration>,
    },
}

impl From<TokenError> for DeliveryError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Refused(reason) => DeliveryError::Unauthorized {
                reason,
                status: None,
            },
            TokenError::Unavailable {
                reason,
                retry_after,
            } => DeliveryError::Retryable {
                reason,
                status: None,
                retry_after,
                excerpt: None,
            },
        }
    }
}

/// An access token and when to renew it.
#[derive(Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
}

/// A token an endpoint answered.
struct Answer {
    access_token: String,
    refresh_token: Option<String>,
    lifetime: Duration,
}

/// Access tokens of one destination.
pub struct TokenSource {
    /// The row in the store: destination name and client.
    key: String,
    settings: OAuthSettings,
    endpoint: Endpoint,
    client: reqwest::Client,
    store: OnceLock<Store>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

/// When to renew a token that lives `lifetime` from now.
fn renew_at(lifetime: Duration) -> Instant {
    Instant::now() + lifetime.saturating_sub(MARGIN.min(lifetime / 4))
}

impl TokenSource {
    /// A source for destination `name`.
    pub fn new(
        name: &str,
        settings: &OAuthSettings,
        endpoint: Endpoint,
        client: reqwest::Client,
    ) -> Self {
        Self {
            key: format!("{name}/{}", settings.client_id),
            settings: settings.clone(),
            endpoint,
            client,
            store: OnceLock::new(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Gives the source the store, where rotated refresh tokens live.
    pub fn attach(&self, store: &Store) {
        let _ = self.store.set(store.clone());
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &str {
        &self.endpoint.token_url
    }

    /// A valid access token: the cached one, or a new one.
    pub async fn token(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.renew(None).await?;
        *cached = Some(fresh.clone());
        Ok(fresh.token)
    }

    /// The destination refused `stale` (401): a new token, unless another request renewed
    /// already, then that one.
    pub async fn refused(&self, stale: &str) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.token != stale) {
            return Ok(c.token.clone());
        }
        let fresh = self.renew(Some(stale)).await?;
        *cached = Some(fresh.clone());
        Ok(fresh.token)
    }

    /// Sends `request` with the current access token. A 401 for that token renews it once and
    /// sends the request again, within the same attempt; a fresh token refused again means the
    /// credentials are wrong ([`DeliveryError::Unauthorized`]: the destination pauses).
    pub async fn send(
        &self,
        client: &reqwest::Client,
        request: &Request,
    ) -> Result<Exchange, DeliveryError> {
        let who = &self.endpoint.who;
        let token = self.token().await?;
        let response = http::exchange(client, &with_token(request, &token)).await?;
        if response.status != 401 {
            return Ok(response);
        }
        tracing::info!("{who} refused the OAuth access token (401); renewing it once");
        let renewed = self.refused(&token).await?;
        let response = http::exchange(client, &with_token(request, &renewed)).await?;
        if response.status == 401 {
            return Err(DeliveryError::Unauthorized {
                reason: format!(
                    "{who} refused a fresh OAuth access token (401): {}",
                    self.endpoint.fresh_token_refused
                ),
                status: Some(401),
            });
        }
        Ok(response)
    }

    async fn renew(&self, stale: Option<&str>) -> Result<Cached, TokenError> {
        let mut span =
            crate::telemetry::trace::child("oauth.token", crate::telemetry::trace::Kind::Internal);
        span.set("deskbridge.oauth.who", self.endpoint.who.clone());
        let renewed = span.within(self.renew_unspanned(stale)).await;
        if let Err(e) = &renewed {
            span.fail(crate::telemetry::spans::reason(&e.to_string()));
        }
        renewed
    }

    async fn renew_unspanned(&self, stale: Option<&str>) -> Result<Cached, TokenError> {
        match self.settings.grant {
            OAuthGrant::ClientCredentials => {
                let scope = self
                    .settings
                    .scope
                    .as_deref()
                    .unwrap_or(self.endpoint.default_scope);
                let answer = self
                    .ask(&[("grant_type", "client_credentials"), ("scope", scope)])
                    .await?;
                tracing::info!(token_url = %crate::redact::url(&self.endpoint.token_url), "OAuth access token obtained");
                Ok(Cached {
                    token: answer.access_token,
                    renew_at: renew_at(answer.lifetime),
                })
            }
            OAuthGrant::RefreshToken => self.rotate(stale).await,
        }
    }

    /// Renews with the stored refresh token, once across every instance sharing the store.
    async fn rotate(&self, stale: Option<&str>) -> Result<Cached, TokenError> {
        let store = self.store.get().ok_or_else(|| TokenError::Unavailable {
            reason: "refresh tokens need the store; none is open".into(),
            retry_after: None,
        })?;
        let unavailable = |e: crate::store::StoreError| TokenError::Unavailable {
            reason: format!("cannot read or keep the OAuth refresh token: {e}"),
            retry_after: None,
        };
        let seed_token = self
            .settings
            .refresh_token
            .as_ref()
            .map(|s| s.expose().trim().to_string())
            .unwrap_or_default();
        let seed = seed_digest(&seed_token);
        let mut row = store
            .oauth_seed(&self.key, &seed, &seed_token)
            .await
            .map_err(unavailable)?;
        let deadline = Instant::now() + RENEWAL_WAIT;
        loop {
            if let Some(cached) = usable(&row, stale) {
                return Ok(cached);
            }
            let until = now_ms() + RENEWAL_LEASE.as_millis() as i64;
            if store
                .oauth_begin(&self.key, row.generation, until)
                .await
                .map_err(unavailable)?
            {
                return self.renew_stored(store, &row).await;
            }
            if Instant::now() >= deadline {
                return Err(TokenError::Unavailable {
                    reason: "another instance is renewing the OAuth token and has not finished"
                        .into(),
                    retry_after: None,
                });
            }
            tokio::time::sleep(RENEWAL_POLL).await;
            row = store
                .oauth_row(&self.key)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| TokenError::Unavailable {
                    reason: "the stored OAuth refresh token is gone".into(),
                    retry_after: None,
                })?;
        }
    }

    /// This instance holds the renewal of `row`: spends its refresh token and stores the
    /// rotated one.
    async fn renew_stored(&self, store: &Store, row: &OAuthRow) -> Result<Cached, TokenError> {
        let asked = self
            .ask(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", row.refresh_token.as_str()),
            ])
            .await;
        let answer = match asked {
            Ok(answer) => answer,
            Err(e) => {
                if let Err(s) = store.oauth_abandon(&self.key, row.generation).await {
                    tracing::warn!(error = %s, "cannot give back the OAuth renewal; it ends with its lease");
                }
                return Err(e);
            }
        };
        // Without rotation the refresh token stays the same.
        let refresh_token = answer
            .refresh_token
            .clone()
            .unwrap_or_else(|| row.refresh_token.clone());
        let renewed = Renewed {
            refresh_token,
            access_token: answer.access_token.clone(),
            expires_at: now_ms() + answer.lifetime.as_millis() as i64,
        };
        match store.oauth_renewed(&self.key, row.generation, renewed).await {
            Ok(true) => tracing::info!(
                token_url = %crate::redact::url(&self.endpoint.token_url),
                generation = row.generation + 1,
                "OAuth access token renewed; the rotated refresh token is stored"
            ),
            Ok(false) => tracing::error!(
                "the OAuth renewal was taken over while it ran; the stored refresh token may be spent (see docs/destinations/zendesk.md, \"Authorise again\")"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "{} rotated the OAuth refresh token but the store could not keep the new one: deliveries go on while this instance runs; if they stop with invalid_grant, authorise again (docs/destinations/zendesk.md)",
                self.endpoint.who
            ),
        }
        Ok(Cached {
            token: answer.access_token,
            renew_at: renew_at(answer.lifetime),
        })
    }

    /// Asks the token endpoint with `params` plus the client's credentials.
    async fn ask(&self, params: &[(&str, &str)]) -> Result<Answer, TokenError> {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        all.push(("client_id", self.settings.client_id.as_str()));
        all.push(("client_secret", self.settings.client_secret.expose().trim()));
        let (content_type, body) = match self.endpoint.encoding {
            Encoding::Json => {
                let object: serde_json::Map<String, Value> = all
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect();
                ("application/json", Value::Object(object).to_string())
            }
            Encoding::Form => (
                "application/x-www-form-urlencoded",
                serde_urlencoded::to_string(&all).unwrap_or_default(),
            ),
        };
        let request = Request {
            secret_path: false,
            method: "POST".into(),
            url: self.endpoint.token_url.clone(),
            headers: vec![
                ("content-type".into(), content_type.into(), false),
                ("accept".into(), "application/json".into(), false),
            ],
            body,
        };
        let response =
            http::exchange(&self.client, &request)
                .await
                .map_err(|e| TokenError::Unavailable {
                    reason: format!("{} token endpoint: {e}", self.endpoint.who),
                    retry_after: None,
                })?;
        self.answer(&response)
    }

    fn answer(&self, response: &Exchange) -> Result<Answer, TokenError> {
        let who = &self.endpoint.who;
        let body: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
        let status = response.status;
        if (200..300).contains(&status) {
            let access_token = body["access_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| TokenError::Unavailable {
                    reason: format!(
                        "{who}'s token endpoint answered {status} without an access_token"
                    ),
                    retry_after: None,
                })?;
            let lifetime = body["expires_in"]
                .as_u64()
                .or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok()))
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_LIFETIME);
            return Ok(Answer {
                access_token: access_token.to_string(),
                refresh_token: body["refresh_token"].as_str().map(str::to_string),
                lifetime,
            });
        }
        let error = body["error"].as_str().unwrap_or("");
        let description = body["error_description"].as_str().unwrap_or("");
        let said = match (error, description) {
            ("", "") => format!("HTTP {status}"),
            (e, "") => format!("{e} (HTTP {status})"),
            ("", d) => format!("HTTP {status}: {d}"),
            (e, d) => format!("{e} (HTTP {status}): {d}"),
        };
        if status == 429 || status == 408 || status >= 500 {
            return Err(TokenError::Unavailable {
                reason: format!("{who}'s token endpoint is not available: {said}"),
                retry_after: response.retry_after,
            });
        }
        let fix = match (error, self.settings.grant) {
            ("invalid_grant", OAuthGrant::RefreshToken) => {
                "the refresh token is spent or revoked: authorise again and set auth.refresh_token"
            }
            ("invalid_client", _) | ("unauthorized_client", _) => {
                "check auth.client_id and auth.client_secret"
            }
            ("invalid_scope", _) => "check auth.scope",
            _ => "check the destination's auth settings",
        };
        Err(TokenError::Refused(format!(
            "{who} refused the OAuth credentials: {said}; {fix}"
        )))
    }
}

/// `request` with `Authorization: Bearer token` (replacing any authorization it had).
fn with_token(request: &Request, token: &str) -> Request {
    let mut request = request.clone();
    request
        .headers
        .retain(|(name, _, _)| !name.eq_ignore_ascii_case("authorization"));
    request
        .headers
        .push(("authorization".into(), format!("Bearer {token}"), true));
    request
}

/// A token usable from the stored row: not the refused one, and not about to expire.
fn usable(row: &OAuthRow, stale: Option<&str>) -> Option<Cached> {
    let token = row.access_token.as_deref()?;
    if stale == Some(token) {
        return None;
    }
    let left = row.expires_at? - now_ms();
    let left = Duration::from_millis(u64::try_from(left).ok()?);
    if left < MIN_LEFT {
        return None;
    }
    let at = renew_at(left);
    (Instant::now() < at).then(|| Cached {
        token: token.to_string(),
        renew_at: at,
    })
}

/// Identifies a configured refresh token without keeping it.
fn seed_digest(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    crate::text::hex(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_are_renewed_a_quarter_before_their_end() {
        let now = Instant::now();
        let at = renew_at(Duration::from_secs(2));
        let early = at.duration_since(now);
        assert!(early >= Duration::from_millis(1500) && early < Duration::from_millis(1600));
        let at = renew_at(Duration::from_secs(1800));
        assert!(at.duration_since(now) >= Duration::from_secs(1739));
    }

    #[test]
    fn a_stored_token_is_used_unless_refused_or_expiring() {
        let row = OAuthRow {
            seed: "s".into(),
            refresh_token: "r".into(),
            access_token: Some("a".into()),
            expires_at: Some(now_ms() + 600_000),
            generation: 1,
            renewing_until: None,
        };
        assert_eq!(usable(&row, None).map(|c| c.token), Some("a".into()));
        assert!(usable(&row, Some("a")).is_none());
        let old = OAuthRow {
            expires_at: Some(now_ms() + 1_000),
            ..row
        };
        assert!(usable(&old, None).is_none());
    }
}
