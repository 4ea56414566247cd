//! The admin dashboard at `/admin` and its JSON API at `/admin/api`, on when
//! `server.admin_token` is set: what arrived, where it went, what failed and why, and replay.
//!
//! Pages are rendered on the server from the views in [`views`] (the API serialises the same
//! views); the only script fills in the browser's time zone at sign-in, asks before retrying
//! many deliveries at once, and reloads the overview while it is open (the admin may pause
//! it). Every response carries a strict Content-Security-Policy, every state-changing request
//! is a POST that must carry the session's CSRF token and come from this origin (or use the
//! token as a Bearer credential), and a change answers with a redirect and a one-time notice.

mod api;
mod assets;
mod auth;
mod error;
mod notice;
mod openapi;
mod pages;
mod signin;
mod templating;
pub mod views;

pub use error::AdminError;

use crate::config::{IpNet, Settings};
use crate::destinations::Destination;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::store::{now_ms, Store};
use crate::worker::Wakers;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{http::header, middleware::DefaultHeaders, web, HttpMessage, HttpRequest};
use auth::{Keys, Session, Validity};
use chrono_tz::Tz;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Largest body of a sign-in, a form or an API request.
const MAX_BODY: usize = 64 * 1024;
/// How often the sign-out epoch is read from the store (other instances may have raised it).
const EPOCH_EVERY: Duration = Duration::from_secs(2);

/// What the admin handlers share.
pub struct AdminState {
    live: RwLock<Arc<Live>>,
    store: Store,
    metrics: Arc<Metrics>,
    limiter: Arc<Limiter>,
    /// Sessions issued at or before this epoch ms are over (the store's
    /// `sessions_valid_after`, read every [`EPOCH_EVERY`]).
    valid_after: Arc<AtomicI64>,
    /// Whether this instance runs delivery lanes (otherwise destination health is unknown here).
    delivers: bool,
}

/// A session cookie to send again with the response (its last use moved on).
#[derive(Clone)]
struct Touched(String);

/// The configuration-dependent part, swapped whole on reload.
pub struct Live {
    keys: Option<Keys>,
    default_tz: Tz,
    idle: Duration,
    body_timeout: Duration,
    trusted_proxies: Vec<IpNet>,
    destinations: Vec<Arc<dyn Destination>>,
    wakers: Wakers,
}

/// Who is calling.
pub enum Caller {
    /// A signed-in browser.
    Session(Session),
    /// A script with the admin token as a Bearer credential.
    Bearer,
}

impl Caller {
    /// The time zone times are shown in.
    pub fn tz(&self, live: &Live) -> Tz {
        match self {
            Self::Session(s) => s.tz,
            Self::Bearer => live.default_tz,
        }
    }
}

impl Live {
    fn new(settings: &Settings, destinations: Vec<Arc<dyn Destination>>, wakers: Wakers) -> Self {
        Self {
            keys: settings
                .server
                .admin_token
                .as_ref()
                .map(|t| Keys::new(t.expose().trim())),
            default_tz: settings.server.admin_time_zone.parse().unwrap_or(Tz::UTC),
            idle: settings.server.admin_idle_timeout.0,
            body_timeout: settings.server.body_timeout.0,
            trusted_proxies: settings.server.trusted_proxies.clone(),
            destinations,
            wakers,
        }
    }
}

impl AdminState {
    /// The shared state for the settings and running parts.
    pub fn new(
        settings: &Settings,
        destinations: Vec<Arc<dyn Destination>>,
        wakers: Wakers,
        store: Store,
        metrics: Arc<Metrics>,
        limiter: Arc<Limiter>,
        delivers: bool,
    ) -> Self {
        Self {
            live: RwLock::new(Arc::new(Live::new(settings, destinations, wakers))),
            store,
            metrics,
            limiter,
            valid_after: Arc::default(),
            delivers,
        }
    }

    /// Reads the sign-out epoch from the store now and every few seconds, so a sign-out on any
    /// instance ends the sessions it ended here too.
    pub async fn follow_sign_outs(state: web::Data<Self>) -> tokio::task::JoinHandle<()> {
        state.read_epoch().await;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(EPOCH_EVERY);
            loop {
                every.tick().await;
                state.read_epoch().await;
            }
        })
    }

    async fn read_epoch(&self) {
        match self
            .store
            .meta(crate::store::meta::SESSIONS_VALID_AFTER)
            .await
        {
            Ok(Some(at)) => {
                self.valid_after.fetch_max(at, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read when admins last signed out"),
        }
    }

    /// Ends every session issued until now, here at once and on every instance within a few
    /// seconds.
    async fn sign_out_everywhere(&self) -> Result<(), AdminError> {
        let now = now_ms();
        self.store
            .raise_meta(crate::store::meta::SESSIONS_VALID_AFTER, now)
            .await?;
        self.valid_after.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// What a session cookie must satisfy now.
    fn validity(&self, live: &Live) -> Validity {
        Validity {
            now_ms: now_ms(),
            idle: live.idle,
            valid_after: self.valid_after.load(Ordering::Relaxed),
        }
    }

    /// Reads a request body of at most [`MAX_BODY`] bytes within `server.body_timeout`; called
    /// only once the caller is authenticated (or, for a sign-in, not refused by the limiter).
    async fn body(&self, mut payload: web::Payload) -> Result<web::Bytes, AdminError> {
        let deadline = self.live().body_timeout;
        let read = async {
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| AdminError::BadRequest(format!("body: {e}")))?;
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(AdminError::TooLarge(MAX_BODY));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        tokio::time::timeout(deadline, read)
            .await
            .map_err(|_| AdminError::SlowBody)?
    }

    /// Takes a reloaded configuration: a new or removed admin token and new destinations.
    pub fn replace(
        &self,
        settings: &Settings,
        destinations: Vec<Arc<dyn Destination>>,
        wakers: Wakers,
    ) {
        let live = Arc::new(Live::new(settings, destinations, wakers));
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = live;
    }

    fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Destination health as this instance's lanes see it; `None` when it runs none.
    fn health(&self) -> Option<&Metrics> {
        self.delivers.then_some(&*self.metrics)
    }

    /// Wakes every lane, so replayed deliveries start now rather than at the next poll.
    fn wake_all(&self) {
        let live = self.live();
        for d in &live.destinations {
            live.wakers.wake(d.name());
        }
    }

    fn client(&self, req: &HttpRequest, live: &Live) -> Option<crate::limiter::Client> {
        crate::receiver::client(req, &live.trusted_proxies)
    }

    /// Who is calling: a valid session cookie, or the admin token as a Bearer credential.
    /// Failed Bearer attempts count towards the sign-in limit.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<(Arc<Live>, Caller), AdminError> {
        let live = self.live();
        let keys = live.keys.as_ref().ok_or_else(AdminError::off)?;
        if let Some(given) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let ip = self.client(req, &live);
            self.limiter.check(ip).map_err(AdminError::TooMany)?;
            if keys.token_ok(given.trim()) {
                return Ok((live.clone(), Caller::Bearer));
            }
            self.limiter.failed(ip);
            return Err(AdminError::Unauthorized);
        }
        let validity = self.validity(&live);
        let session = auth::cookie(req)
            .and_then(|value| keys.session(value, validity))
            .ok_or(AdminError::Unauthorized)?;
        // Each use moves the idle deadline on (written into the cookie at most once a minute).
        if validity.now_ms - session.seen_ms >= auth::TOUCH_EVERY.as_millis() as i64 {
            let value = keys.issue(session.issued_ms, validity.now_ms, session.tz);
            let left = auth::SESSION_TTL.saturating_sub(Duration::from_millis(
                (validity.now_ms - session.issued_ms) as u64,
            ));
            let secure = req.connection_info().scheme() == "https";
            req.extensions_mut()
                .insert(Touched(auth::set_cookie(&value, secure, left)));
        }
        Ok((live.clone(), Caller::Session(session)))
    }

    /// Checks a state-changing request: a session must send its CSRF token (`given`) from
    /// this origin; a Bearer caller needs neither.
    pub fn check_change(
        req: &HttpRequest,
        caller: &Caller,
        given: Option<&str>,
    ) -> Result<(), AdminError> {
        match caller {
            Caller::Bearer => Ok(()),
            Caller::Session(s) => {
                let token_ok = given.is_some_and(|g| {
                    crate::tokens::constant_time_eq(g.as_bytes(), s.csrf.as_bytes())
                });
                if token_ok && auth::same_origin(req) {
                    Ok(())
                } else {
                    Err(AdminError::csrf())
                }
            }
        }
    }
}

/// The Content-Security-Policy of every admin response: only this origin's stylesheet and
/// script, no inline code, no frames, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Registers the dashboard and the API under `/admin` (they answer 404 while no admin token
/// is configured).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::CACHE_CONTROL, "no-store"));
    cfg.service(
        web::scope("/admin")
            .wrap_fn(|req, service| {
                let answer = service.call(req);
                async move {
                    let mut answer: ServiceResponse = answer.await?;
                    let touched = answer.request().extensions().get::<Touched>().cloned();
                    if let Some(Touched(cookie)) = touched {
                        // Unless the answer sets the session cookie itself (signing in or
                        // out), the touched session goes beside any other cookie it sets.
                        let session = format!("{}=", auth::COOKIE);
                        let sets_session = answer
                            .headers()
                            .get_all(header::SET_COOKIE)
                            .any(|v| v.as_bytes().starts_with(session.as_bytes()));
                        if !sets_session {
                            if let Ok(value) = header::HeaderValue::from_str(&cookie) {
                                answer.headers_mut().append(header::SET_COOKIE, value);
                            }
                        }
                    }
                    Ok(answer)
                }
            })
            .wrap(headers)
            .configure(api::routes)
            .configure(signin::routes)
            .configure(pages::routes)
            .configure(assets::routes),
    );
}
