//! Destinations: the `Destination` seam, the rendered request, and the classification of
//! outcomes into done, retryable and permanent failures.

pub mod email;
pub mod file;
pub mod http;
pub mod hubspot;
pub mod pacing;
pub mod recipe;
pub mod registry;
pub mod signing;
pub mod webhook;
pub mod zendesk;

use crate::config::Settings;
use crate::render::{RenderError, Renderer};
use crate::smartsupp::Stored;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, so that destinations can live behind `dyn Destination`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a destination needs for one delivery attempt.
pub struct Job<'a> {
    /// The normalized template context (hook JSON plus `meta`).
    pub context: &'a handlebars::Context,
    /// Which conversation version this is.
    pub conversation: &'a Stored,
    /// Stable across retries, restarts and instances for this conversation version and
    /// destination.
    pub idempotency_key: &'a str,
    /// What earlier attempts recorded, if anything.
    pub result: Option<&'a str>,
    /// What the delivery of the previous version of this conversation to this destination
    /// recorded (e.g. the ticket it created), if one was delivered.
    pub previous: Option<&'a str>,
    /// Attempts recorded before this one.
    pub attempts: i64,
    /// Whether an earlier attempt may have reached the destination without its outcome being
    /// known (a failed attempt, or one cut short by a crash or an expired lease): destinations
    /// that cannot rely on an idempotency key look before they create again.
    pub retried: bool,
    /// Where a destination of several steps records what it has done so far (JSON); kept
    /// with the delivery whatever the outcome, and given back as `result` next time.
    pub progress: &'a Progress,
}

/// Progress of a multi-step delivery, written by the destination during an attempt. Within a
/// running attempt it is also kept in the store at once ([`Progress::save`]), so a crash
/// between two steps loses none of the steps that finished.
#[derive(Default)]
pub struct Progress {
    value: std::sync::Mutex<Option<String>>,
    kept: Option<Kept>,
}

/// Where an attempt's progress is kept: its delivery, under the claim it runs with.
struct Kept {
    store: crate::store::Store,
    delivery: i64,
    claim: i64,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("kept", &self.kept.as_ref().map(|k| k.delivery))
            .finish()
    }
}

impl Progress {
    /// Progress of delivery `delivery`, kept in `store` under claim number `claim` by
    /// [`Progress::save`].
    pub fn kept(store: crate::store::Store, delivery: i64, claim: i64) -> Self {
        Self {
            value: std::sync::Mutex::default(),
            kept: Some(Kept {
                store,
                delivery,
                claim,
            }),
        }
    }
    /// Records what has been done so far.
    pub fn set(&self, value: String) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }
    /// What was recorded, if anything.
    pub fn take(&self) -> Option<String> {
        self.value.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
    /// Records what has been done so far and writes it to the delivery in the store before
    /// the attempt goes on. A claim that is no longer held (the lease ran out and the delivery
    /// was claimed again) or a store that cannot write stops the attempt with a retryable
    /// error: nothing more is sent that the store could not remember.
    pub async fn save(&self, value: String) -> Result<(), DeliveryError> {
        self.set(value.clone());
        let Some(kept) = &self.kept else {
            return Ok(());
        };
        let retry = |reason: String| DeliveryError::Retryable {
            reason,
            status: None,
            retry_after: None,
            excerpt: None,
        };
        match kept
            .store
            .checkpoint(kept.delivery, kept.claim, value)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(retry(
                "the delivery was claimed again while this attempt ran; the attempt stops here"
                    .into(),
            )),
            Err(e) => Err(retry(format!(
                "cannot keep the delivery's progress in the store: {e}"
            ))),
        }
    }
}

/// One outgoing request, as rendered.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// HTTP method, `WRITE` for the file destination, `SEND` for the email destination.
    pub method: String,
    /// Target URL (the SMTP server's for email), or the file path.
    pub url: String,
    /// Headers; the flag marks secret values, masked in any output.
    pub headers: Vec<(String, String, bool)>,
    /// The body.
    pub body: String,
    /// Whether the URL's path is a credential (a recipe's URL made with a secret setting):
    /// shown masked past its first segment.
    pub secret_path: bool,
}

impl Request {
    /// The request as text with secret header values and the URL's credentials masked
    /// ([`crate::redact::url`]), for `render`, the admin pages and logs.
    pub fn display_masked(&self) -> String {
        let target = if self.method == "WRITE" {
            // The file destination's target is a path, not a URL.
            self.url.clone()
        } else if self.secret_path {
            crate::redact::url_with_secret_path(&self.url)
        } else {
            crate::redact::url(&self.url)
        };
        let mut out = format!("{} {target}\n", self.method);
        for (name, value, secret) in &self.headers {
            let shown = if *secret { "***" } else { value.as_str() };
            out.push_str(&format!("{name}: {shown}\n"));
        }
        out.push('\n');
        out.push_str(&self.body);
        out.push('\n');
        out
    }
}

/// Most text kept of what one attempt sent (the requests, masked).
pub const MAX_SENT_CHARS: usize = 256 * 1024;

/// What the attempt running in a task sent: each request as rendered, shown masked
/// ([`Request::display_masked`]) only when the attempt is kept ([`sent_text`]).
pub type SentLog = Arc<std::sync::Mutex<Vec<Request>>>;

tokio::task_local! {
    static SENT: SentLog;
}

/// Notes `request` as sent by the attempt running in this task, so its delivery keeps what it
/// last sent (masked) while it is not done. Destinations call this for each request they send
/// for a delivery (never for token requests, whose bodies carry secrets); outside an attempt it
/// does nothing.
pub fn note_sent(request: &Request) {
    let _ = SENT.try_with(|log| {
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.clone())
    });
}

/// Runs `attempt` with `log` collecting the requests it notes as sent ([`note_sent`]).
pub fn recording_sent<F: Future>(log: SentLog, attempt: F) -> impl Future<Output = F::Output> {
    SENT.scope(log, attempt)
}

/// The requests of a [`SentLog`] as one text, one after the other, at most
/// [`MAX_SENT_CHARS`]; `None` when nothing was sent.
pub fn sent_text(log: &SentLog) -> Option<String> {
    let list = log.lock().unwrap_or_else(|p| p.into_inner());
    if list.is_empty() {
        return None;
    }
    let text = list
        .iter()
        .map(Request::display_masked)
        .collect::<Vec<_>>()
        .join("\n");
    Some(crate::text::truncate(
        &text,
        MAX_SENT_CHARS,
        "\n… (cut: the rest was sent but is not kept)",
    ))
}

/// A delivery the destination accepted.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// HTTP status (SMTP reply code for email), where there was one.
    pub status: Option<u16>,
    /// Start of the response body.
    pub excerpt: Option<String>,
    /// What to keep with the delivery (JSON), e.g. the id of a created ticket.
    pub result: Option<String>,
}

/// Why a delivery attempt failed, classified by the destination.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later (network, timeout, 408, 425, 429, 5xx but 501; SMTP 4xx).
    #[error("{reason}")]
    Retryable {
        /// What happened, in words.
        reason: String,
        /// HTTP status (SMTP reply code for email), where there was one.
        status: Option<u16>,
        /// The destination's `Retry-After`, never to be undercut.
        retry_after: Option<Duration>,
        /// Start of the response body.
        excerpt: Option<String>,
    },
    /// Not attempted now (the destination is parked, e.g. a daily quota is used up): try at
    /// the given time without counting an attempt.
    #[error("{reason}")]
    Deferred {
        /// Why, in words.
        reason: String,
        /// How long to wait.
        wait: Duration,
    },
    /// The destination refused deskbridge's credentials (its token endpoint refused the
    /// client, or a fresh token was refused): no request will pass until an admin fixes them.
    /// The destination pauses and the delivery waits, spending no attempt.
    #[error("{reason}")]
    Unauthorized {
        /// What happened, in words.
        reason: String,
        /// HTTP status (SMTP reply code for email), where there was one.
        status: Option<u16>,
    },
    /// Trying again will not help until someone changes something.
    #[error("{reason}")]
    Permanent {
        /// What happened, in words.
        reason: String,
        /// HTTP status (SMTP reply code for email), where there was one.
        status: Option<u16>,
        /// Start of the response body.
        excerpt: Option<String>,
    },
}

impl From<RenderError> for DeliveryError {
    fn from(e: RenderError) -> Self {
        Self::Permanent {
            reason: e.to_string(),
            status: None,
            excerpt: None,
        }
    }
}

impl DeliveryError {
    /// HTTP status of the failed attempt, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Retryable { status, .. }
            | Self::Permanent { status, .. }
            | Self::Unauthorized { status, .. } => *status,
            Self::Deferred { .. } => None,
        }
    }
    /// Response excerpt of the failed attempt, if any.
    pub fn excerpt(&self) -> Option<&str> {
        match self {
            Self::Retryable { excerpt, .. } | Self::Permanent { excerpt, .. } => excerpt.as_deref(),
            Self::Deferred { .. } | Self::Unauthorized { .. } => None,
        }
    }
}

/// A place conversations are delivered to.
pub trait Destination: Send + Sync {
    /// The destination's name in the configuration.
    fn name(&self) -> &str;
    /// The request(s) an attempt would send, without sending anything.
    fn requests(&self, job: &Job<'_>) -> Result<Vec<Request>, RenderError>;
    /// Renders and sends; classifies the outcome.
    fn deliver<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Delivered, DeliveryError>>;
    /// Settings templates may read as `destination.*` (never secrets); `destination.name` is
    /// always there.
    fn template_vars(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    /// A result an earlier version's delivery could have recorded, so `check` can render the
    /// requests of a later version too; `None` when later versions send the same requests.
    fn sample_previous(&self) -> Option<String> {
        None
    }
    /// Gives the destination the store (for state it shares between instances, such as
    /// rotated OAuth refresh tokens); called before the first delivery.
    fn attach(&self, _store: &crate::store::Store) {}
    /// What a delivery's recorded `result` created at the destination, as links where the
    /// destination has pages for them.
    fn links(&self, _result: &serde_json::Value) -> Vec<Link> {
        Vec::new()
    }
}

/// Something a delivery created at its destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    /// What it is, e.g. `ticket`.
    pub label: String,
    /// Its id at the destination.
    pub id: String,
    /// Its page, when there is one (always http or https).
    pub url: Option<String>,
}

/// The requests `destination` would send for the hook body `raw`, without sending anything;
/// with `previous`, as a later version of a conversation whose earlier version recorded
/// `previous`.
pub fn preview(
    destination: &dyn Destination,
    raw: &[u8],
    previous: Option<&str>,
) -> anyhow::Result<Vec<Request>> {
    let identity = crate::smartsupp::Identity::read(raw)?;
    let stored = Stored {
        key: identity.key,
        version: if previous.is_some() { 2 } else { 1 },
        received_at: crate::store::now_ms(),
    };
    preview_stored(destination, raw, &stored, previous)
}

/// [`preview`] of a stored conversation version (its key, version and receipt time as
/// recorded, so the preview shows the idempotency key and times the delivery sends).
pub fn preview_stored(
    destination: &dyn Destination,
    raw: &[u8],
    stored: &Stored,
    previous: Option<&str>,
) -> anyhow::Result<Vec<Request>> {
    let context = context_for(destination, raw, stored)?;
    let key = idempotency_key(stored, destination.name());
    let progress = Progress::default();
    let job = Job {
        context: &context,
        conversation: stored,
        idempotency_key: &key,
        result: None,
        previous,
        attempts: 0,
        retried: false,
        progress: &progress,
    };
    Ok(destination.requests(&job)?)
}

/// The template context of one conversation version for `destination`: the normalized hook
/// plus `meta` and `destination`.
pub fn context_for(
    destination: &dyn Destination,
    raw: &[u8],
    conversation: &Stored,
) -> Result<handlebars::Context, crate::smartsupp::IdentityError> {
    let mut value = crate::smartsupp::context(raw, conversation)?;
    let mut vars = destination.template_vars();
    vars.insert("name".into(), destination.name().into());
    value["destination"] = serde_json::Value::Object(vars);
    Ok(handlebars::Context::from(value))
}

/// The stable idempotency key of one conversation version at one destination.
pub fn idempotency_key(conversation: &Stored, destination: &str) -> String {
    let mut h = Sha256::new();
    h.update(conversation.key.as_bytes());
    h.update([0]);
    h.update(conversation.version.to_string().as_bytes());
    h.update([0]);
    h.update(destination.as_bytes());
    let digest = h.finalize();
    format!("msg_{}", crate::text::hex(&digest[..16]))
}

/// Everything destinations share: templates and the outbound HTTP client.
#[derive(Clone)]
pub struct Shared {
    /// Compiled templates.
    pub renderer: Arc<Renderer>,
    /// Outbound client: no redirects, request timeout set.
    pub client: reqwest::Client,
}

impl Shared {
    /// Builds the outbound client for `settings`.
    pub fn new(renderer: Arc<Renderer>, settings: &Settings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.delivery.request_timeout.0)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { renderer, client })
    }
}

/// Builds every configured destination (settings and templates were checked before).
pub fn build_all(settings: &Settings, shared: &Shared) -> Vec<Arc<dyn Destination>> {
    let cx = registry::BuildContext {
        shared,
        delivery: &settings.delivery,
    };
    settings
        .destinations
        .iter()
        .map(|(name, d)| d.own.build(name, &d.common, &cx))
        .collect()
}
