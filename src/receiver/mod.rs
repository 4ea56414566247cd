//! The HTTP side: the Smartsupp hook, health, readiness and metrics.

mod assembler;
mod client_ip;
mod error;
mod events;
mod health;
mod hook;

pub use assembler::Assembler;
pub use events::{commit_assembled, Committed};

pub use client_ip::{client, client_ip};
pub use error::ReceiveError;

use crate::config::{IpNet, Settings};
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::render::Renderer;
use crate::routing::Router;
use crate::store::Store;
use crate::tokens::TokenDigest;
use crate::worker::Wakers;
use actix_web::web;
use std::sync::{Arc, RwLock};

/// What the HTTP handlers share: the store and metrics, and the parts that come from the
/// configuration, swapped whole on reload.
pub struct ReceiverState {
    live: RwLock<Arc<Live>>,
    store: Store,
    metrics: Arc<Metrics>,
    /// Failed hook tokens count here, with failed admin credentials.
    limiter: Arc<Limiter>,
    /// Where spans go, when traces are on.
    tracer: Option<crate::telemetry::otlp::Tracer>,
}

/// The configuration-dependent part of the receiver.
pub struct Live {
    /// Each accepted hook token, compared in constant time.
    token_digests: Vec<TokenDigest>,
    max_body_bytes: usize,
    body_timeout: std::time::Duration,
    trusted_proxies: Vec<IpNet>,
    router: Router,
    renderer: Arc<Renderer>,
    wakers: Wakers,
    /// `smartsupp:`: the events route's secrets, settle time and stored events.
    smartsupp: crate::config::SmartsuppSettings,
    /// The REST API client, when `smartsupp.api_token` is set.
    api: Option<crate::smartsupp::events::Api>,
}

impl ReceiverState {
    /// Builds the shared state from the settings and the running parts.
    pub fn new(
        settings: &Settings,
        store: Store,
        renderer: Arc<Renderer>,
        metrics: Arc<Metrics>,
        wakers: Wakers,
        limiter: Arc<Limiter>,
        tracer: Option<crate::telemetry::otlp::Tracer>,
    ) -> Self {
        Self {
            live: RwLock::new(Arc::new(Live::new(settings, renderer, wakers))),
            store,
            metrics,
            limiter,
            tracer,
        }
    }

    /// The receiver's configuration as of now.
    fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Switches to a new configuration; requests in progress finish with the old one.
    pub fn replace(&self, settings: &Settings, renderer: Arc<Renderer>, wakers: Wakers) {
        let live = Arc::new(Live::new(settings, renderer, wakers));
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = live;
    }
}

impl Live {
    fn new(settings: &Settings, renderer: Arc<Renderer>, wakers: Wakers) -> Self {
        Self {
            token_digests: settings
                .server
                .hook_tokens
                .0
                .iter()
                .map(|t| TokenDigest::of(t.expose()))
                .collect(),
            max_body_bytes: settings.server.max_body_bytes,
            body_timeout: settings.server.body_timeout.0,
            trusted_proxies: settings.server.trusted_proxies.clone(),
            router: Router::new(settings),
            renderer,
            wakers,
            smartsupp: settings.smartsupp.clone(),
            api: crate::smartsupp::events::Api::from_settings(&settings.smartsupp).unwrap_or_else(
                |e| {
                    tracing::error!(error = %format!("{e:#}"), "the Smartsupp API client cannot be built; assembling from events alone");
                    None
                },
            ),
        }
    }

    /// Whether `token` is one of the accepted tokens, compared in constant time (every
    /// configured token is compared, byte by byte, whatever matches).
    fn token_ok(&self, token: &str) -> bool {
        let given = TokenDigest::of(token);
        self.token_digests
            .iter()
            .fold(false, |any, expected| any | expected.matches(&given))
    }

    /// The destinations that want conversation `key` (body `raw`, received at `received_at`):
    /// the routing `when` expressions see the conversation's context only when one needs it.
    fn route(
        &self,
        raw: &[u8],
        key: &str,
        received_at: i64,
    ) -> Result<Vec<crate::store::Routed>, crate::smartsupp::IdentityError> {
        if !self.router.needs_context() {
            return Ok(self.router.route(&self.renderer, None));
        }
        let stored = crate::smartsupp::Stored {
            key: key.to_string(),
            version: 0,
            received_at,
        };
        let context = handlebars::Context::from(crate::smartsupp::context(raw, &stored)?);
        Ok(self.router.route(&self.renderer, Some(&context)))
    }
}

/// The checks both hook routes make before they read a body, in order, and the body: the
/// limiter, the token (a wrong one counts against the address), the declared and the read
/// size, the body deadline.
async fn authenticated_body(
    req: &actix_web::HttpRequest,
    token: &str,
    payload: web::Payload,
    state: &ReceiverState,
    live: &Live,
) -> Result<(bytes::Bytes, Option<crate::limiter::Client>), ReceiveError> {
    let client = client(req, &live.trusted_proxies);
    state.limiter.check(client).map_err(ReceiveError::TooMany)?;
    if !live.token_ok(token) {
        state.limiter.failed(client);
        return Err(ReceiveError::Unauthorized);
    }
    let limit = live.max_body_bytes;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ReceiveError::TooLarge(limit));
    }
    let body = tokio::time::timeout(live.body_timeout, payload.to_bytes_limited(limit))
        .await
        .map_err(|_| ReceiveError::SlowBody(live.body_timeout))?
        .map_err(|_| ReceiveError::TooLarge(limit))?
        .map_err(|e| ReceiveError::Read(e.to_string()))?;
    Ok((body, client))
}

/// The hook URL's fixed part; the token follows it.
const HOOK_PREFIX: &str = "/hooks/smartsupp";
/// The Webhooks API events URL's fixed part; the token follows it.
const EVENTS_PREFIX: &str = "/hooks/smartsupp/events";

/// Registers the routes on an actix app. The hook is a static prefix whose last segment is
/// read by the handler: a `{token}` pattern would cost a regex match on every hook.
pub fn routes(cfg: &mut web::ServiceConfig, hooks: bool) {
    if hooks {
        // Registered first: the legacy hook's scope would take these paths too.
        cfg.service(web::scope(EVENTS_PREFIX).default_service(web::to(events::receive)));
        cfg.service(web::scope(HOOK_PREFIX).default_service(web::to(hook::receive)));
    }
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}
