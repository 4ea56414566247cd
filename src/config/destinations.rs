//! A configured destination: the keys every kind shares ([`Common`]) and the kind's own typed
//! settings; plus the value types several kinds use (rates, breakers, per-kind values, OAuth).
//! Each kind's settings live with the kind, under `src/destinations/<kind>/`.

use super::{HumanDuration, Secret};
use crate::destinations::registry::KindSettings;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One destination: the shared keys and the settings of its kind (`kind:` selects it; see
/// [`crate::destinations::registry`]).
#[derive(Debug, Clone)]
pub struct DestinationSettings {
    /// `when`, `concurrency`, `rate_limit`, `breaker`.
    pub common: Common,
    /// The kind's own settings.
    pub own: Arc<dyn KindSettings>,
}

impl DestinationSettings {
    /// The value of `kind:`.
    pub fn kind(&self) -> &str {
        self.own.kind()
    }

    /// The kind's settings as their own type, when they are of type `T`.
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        self.own.as_ref().as_any().downcast_ref::<T>()
    }

    /// The `when` expression, if any.
    pub fn when(&self) -> Option<&str> {
        self.common.when.as_deref()
    }

    /// Pacing, concurrency and breaker of the destination's lane. A destination that paces
    /// its own requests (HubSpot counts API calls) has no lane pacer.
    pub fn health(&self) -> (Option<RateLimit>, Option<usize>, BreakerSettings) {
        (
            self.own.lane_rate(&self.common),
            self.common.concurrency,
            self.common.breaker,
        )
    }

    /// Every template the destination may render, with its key.
    pub fn templates(&self) -> Vec<(String, &str)> {
        self.own.templates()
    }

    /// Handlebars templates written in the configuration itself (not `when`), by their key
    /// under the destination, e.g. `subject` or `to[0]`.
    pub fn inline_templates(&self) -> Vec<(String, &str)> {
        self.own.inline_templates()
    }
}

/// The keys every destination kind accepts, read once for all kinds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    /// Handlebars expression; the destination gets a conversation when it renders `true`.
    pub when: Option<String>,
    /// Concurrent deliveries to this destination, instead of `delivery.workers`.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Most deliveries started per period, e.g. `100/10s` (none by default; a kind that
    /// paces its own requests counts them instead, with its own default).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// When to pause the destination after failures.
    #[serde(default)]
    pub breaker: BreakerSettings,
}

/// `auth:` of a destination: how its access tokens are obtained.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSettings {
    /// OAuth 2.0 (RFC 6749) with a confidential client.
    Oauth(OAuthSettings),
}

/// `auth: {kind: oauth, …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// `client_credentials` (the client's own identity) or `refresh_token` (a user's grant,
    /// renewed with rotating refresh tokens kept in the store).
    #[serde(default)]
    pub grant: OAuthGrant,
    /// The OAuth client's identifier.
    pub client_id: String,
    /// The OAuth client's secret (also `client_secret_file`).
    pub client_secret: Secret,
    /// Space-separated scopes asked for with `client_credentials` (each destination has a
    /// default).
    pub scope: Option<String>,
    /// With `grant: refresh_token`: the refresh token that seeds the store the first time, or
    /// after the admin authorised again (also `refresh_token_file`).
    pub refresh_token: Option<Secret>,
    /// The token endpoint, instead of the destination's own (tests, proxies).
    pub token_url: Option<super::HttpUrl>,
}

impl OAuthSettings {
    /// Records the problems of `auth: {kind: oauth}` at `at`.
    pub fn validate(&self, at: &str, out: &mut super::Problems) {
        if self.client_id.trim().is_empty() {
            out.add(&format!("{at}.client_id"), "must not be empty");
        }
        if self.client_secret.expose().trim().is_empty() {
            out.add(&format!("{at}.client_secret"), "must not be empty");
        }
        match (self.grant, &self.refresh_token) {
            (OAuthGrant::RefreshToken, None) => out.add(
                &format!("{at}.refresh_token"),
                "grant refresh_token needs the refresh_token that seeds the store",
            ),
            (OAuthGrant::ClientCredentials, Some(_)) => out.add(
                &format!("{at}.refresh_token"),
                "is used with grant: refresh_token only",
            ),
            _ => {}
        }
    }
}

/// Which OAuth 2.0 grant obtains access tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OAuthGrant {
    /// `grant_type=client_credentials`.
    #[default]
    ClientCredentials,
    /// `grant_type=refresh_token`, rotating.
    RefreshToken,
}

/// A value for each conversation kind.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PerKind<T> {
    /// A finished chat.
    pub chat: T,
    /// A chat nobody answered.
    pub missed: T,
    /// A message left while offline.
    pub offline: T,
}

impl<T: Clone> PerKind<T> {
    /// The same value for every kind.
    pub fn same(value: T) -> Self {
        Self {
            chat: value.clone(),
            missed: value.clone(),
            offline: value,
        }
    }
}

/// `N/period`, e.g. `100/10s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period.
    pub requests: u32,
    /// The period.
    pub per: std::time::Duration,
}

impl RateLimit {
    /// Parses `N/duration`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid rate {text:?} (write e.g. 100/10s)");
        let (n, per) = text.split_once('/').ok_or_else(invalid)?;
        let requests: u32 = n.trim().parse().map_err(|_| invalid())?;
        let per = HumanDuration::parse(per).map_err(|_| invalid())?.0;
        if requests == 0 || per.is_zero() {
            return Err(invalid());
        }
        Ok(Self { requests, per })
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `breaker:` of a destination: after `failures` failed attempts in a row the destination is
/// paused (its deliveries wait without spending attempts); after `cool_down` one delivery
/// probes it, and a success resumes it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Failed attempts in a row that pause the destination; 0 turns the breaker off.
    pub failures: u32,
    /// How long a paused destination waits before a probe.
    pub cool_down: HumanDuration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 10,
            cool_down: HumanDuration(std::time::Duration::from_secs(60)),
        }
    }
}
