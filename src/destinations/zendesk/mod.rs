//! `kind: zendesk`: one ticket per conversation. A first version creates the ticket (or
//! imports it, `mode: import`) with a stable `Idempotency-Key`; a later version adds its new
//! messages as a comment, or opens a follow-up ticket when the first one is closed. The ticket's
//! id and URL are recorded with the delivery.

mod response;
mod settings;

pub use settings::{Priority, TicketType, ZendeskKind, ZendeskMode, ZendeskSettings};

use super::http::{self, Exchange};
use super::{BoxFuture, Delivered, DeliveryError, Destination, Job, Request, Shared};
use crate::config::AuthSettings;
use crate::oauth::{Encoding, Endpoint, TokenSource};
use crate::render::RenderError;
use crate::store::now_ms;
use base64::Engine;
use handlebars::Context;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest wait for the rate limit inside one attempt; longer pauses end the attempt with a
/// retry at the time Zendesk asked for.
const MAX_PACING_WAIT: Duration = Duration::from_secs(30);
/// Pause after Zendesk says no requests remain and gives no `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(10);

/// Scopes asked for with OAuth client credentials when `auth.scope` is not set.
const OAUTH_SCOPE: &str = "tickets:write users:write read";

/// A Zendesk destination.
pub struct Zendesk {
    name: String,
    settings: ZendeskSettings,
    base: String,
    /// The `Authorization` value of API-token and fixed-token credentials; a placeholder with
    /// OAuth, where each request gets the current access token.
    authorization: String,
    /// Access tokens, with `auth: {kind: oauth}`.
    tokens: Option<TokenSource>,
    shared: Shared,
    paused_until: Mutex<Option<Instant>>,
}

/// Stand-in for the id of a ticket still to be created, in `render` output.
const TICKET_PLACEHOLDER: &str = "<ticket id>";

/// What a delivery does, before any answer is known.
enum Plan {
    /// Add the messages new since the earlier version's ticket to it.
    Update(Ticket),
    /// Create (or import) the ticket, then add the context comment when the transcript is
    /// public.
    Create,
}

/// What a delivery records: the ticket, and the last message it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    id: i64,
    last_sent_at: Option<i64>,
}

impl Ticket {
    fn parse(result: Option<&str>) -> Option<Self> {
        let value: Value = serde_json::from_str(result?).ok()?;
        Some(Self {
            id: value["ticket_id"].as_i64()?,
            last_sent_at: value["last_sent_at"].as_i64(),
        })
    }
}

fn last_sent_at(context: &Context) -> Option<i64> {
    crate::smartsupp::last_sent_at(context.data())
}

impl Zendesk {
    /// Builds the destination; the settings were validated with the configuration.
    pub fn new(name: &str, settings: &ZendeskSettings, shared: Shared) -> Self {
        let base = match (&settings.base_url, &settings.subdomain) {
            (Some(url), _) => url.as_str().trim_end_matches('/').to_string(),
            (None, Some(sub)) => format!("https://{sub}.zendesk.com"),
            (None, None) => String::new(),
        };
        let tokens = settings.auth.as_ref().map(|AuthSettings::Oauth(o)| {
            let endpoint = Endpoint {
                token_url: o
                    .token_url
                    .as_ref()
                    .map(|u| u.as_str().to_string())
                    .unwrap_or_else(|| format!("{base}/oauth/tokens")),
                encoding: Encoding::Json,
                default_scope: OAUTH_SCOPE,
                who: "Zendesk".into(),
                fresh_token_refused: "check that the OAuth client's user is an agent and its scopes allow tickets:write",
            };
            TokenSource::new(name, o, endpoint, shared.client.clone())
        });
        let authorization = match (&settings.oauth_token, &settings.email, &settings.api_token) {
            _ if tokens.is_some() => "Bearer <OAuth access token>".to_string(),
            (Some(token), _, _) => format!("Bearer {}", token.expose()),
            (None, Some(email), Some(token)) => {
                let pair = format!("{email}/token:{}", token.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            _ => String::new(),
        };
        Self {
            name: name.to_string(),
            settings: settings.clone(),
            base,
            authorization,
            tokens,
            shared,
            paused_until: Mutex::new(None),
        }
    }

    /// The OAuth token source, with `auth: {kind: oauth}`.
    pub fn oauth(&self) -> Option<&TokenSource> {
        self.tokens.as_ref()
    }

    /// Asks Zendesk who the credentials identify (`GET /api/v2/users/me.json`), authenticated
    /// as deliveries are and touching no ticket: `deskbridge destinations test`. Returns the
    /// URL asked and the answer.
    pub async fn current_user(&self) -> (String, Result<Exchange, DeliveryError>) {
        let request = self.request("GET", "/api/v2/users/me.json", String::new(), None);
        let answer = self.call(&request).await;
        (request.url, answer)
    }

    /// What a delivery of `job` does before any answer is known: the one description of the
    /// sequence, which delivery follows and `render` prints. (Answers may add steps: a lookup
    /// by `external_id`, or a follow-up ticket when the first one is closed.)
    fn plan(&self, job: &Job<'_>) -> Plan {
        match (self.settings.mode, Ticket::parse(job.previous)) {
            (ZendeskMode::Create, Some(ticket)) => Plan::Update(ticket),
            _ => Plan::Create,
        }
    }

    /// Whether a created ticket gets the visitor's context as an internal comment (its first
    /// comment, the transcript, is public).
    fn adds_context_comment(&self) -> bool {
        self.settings.public && self.settings.mode == ZendeskMode::Create
    }

    fn ticket_url(&self, id: i64) -> String {
        format!("{}/agent/tickets/{id}", self.base)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: String,
        idempotency: Option<&str>,
    ) -> Request {
        let mut headers = vec![
            ("content-type".into(), "application/json".into(), false),
            ("authorization".into(), self.authorization.clone(), true),
        ];
        if let Some(key) = idempotency {
            headers.push(("idempotency-key".into(), key.to_string(), false));
        }
        Request {
            secret_path: false,
            method: method.into(),
            url: format!("{}{path}", self.base),
            headers,
            body,
        }
    }

    /// The request that creates (or imports) the ticket; `followup_of` links a follow-up.
    fn create_request(&self, context: &Context, key: &str) -> Result<Request, RenderError> {
        let (template, path) = match self.settings.mode {
            ZendeskMode::Create => (&self.settings.template, "/api/v2/tickets"),
            ZendeskMode::Import => (&self.settings.import_template, "/api/v2/imports/tickets"),
        };
        let body = self.shared.renderer.render(template, context)?;
        Ok(self.request("POST", path, body, Some(key)))
    }

    /// The request that adds the messages new since `ticket` to it.
    fn update_request(&self, context: &Context, ticket: Ticket) -> Result<Request, RenderError> {
        let mut context = context.clone();
        let data = context.data_mut();
        let new_messages = crate::smartsupp::messages_after(data, ticket.last_sent_at);
        data["update"] = json!({ "ticketId": ticket.id, "messages": new_messages });
        let body = self
            .shared
            .renderer
            .render(&self.settings.update_template, &context)?;
        Ok(self.request("PUT", &format!("/api/v2/tickets/{}", ticket.id), body, None))
    }

    /// The internal comment with the visitor's context, for ticket `id`.
    fn context_request(&self, context: &Context, id: &str) -> Result<Request, RenderError> {
        let body = self
            .shared
            .renderer
            .render(&self.settings.context_template, context)?;
        Ok(self.request("PUT", &format!("/api/v2/tickets/{id}"), body, None))
    }

    fn lookup_request(&self, key: &str) -> Request {
        let mut url = reqwest::Url::parse(&format!("{}/api/v2/tickets", self.base))
            .unwrap_or_else(|_| reqwest::Url::parse("http://invalid/").expect("static URL"));
        url.query_pairs_mut().append_pair("external_id", key);
        let mut request = self.request("GET", "", String::new(), None);
        request.url = url.to_string();
        request
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// Sends one request, waiting first while Zendesk's rate limit is exhausted, and pausing
    /// the destination when the answer says it is.
    async fn call(&self, request: &Request) -> Result<Exchange, DeliveryError> {
        let paused = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = paused.and_then(|until| until.checked_duration_since(Instant::now())) {
            if wait > MAX_PACING_WAIT {
                return Err(DeliveryError::Retryable {
                    reason: "Zendesk rate limit reached; waiting before the next request".into(),
                    status: None,
                    retry_after: Some(wait),
                    excerpt: None,
                });
            }
            tracing::debug!(wait_ms = wait.as_millis() as u64, "pacing Zendesk requests");
            tokio::time::sleep(wait).await;
        }
        super::note_sent(request);
        let response = match &self.tokens {
            Some(tokens) => tokens.send(&self.shared.client, request).await?,
            None => http::exchange(&self.shared.client, request).await?,
        };
        let remaining = response
            .header("x-rate-limit-remaining")
            .and_then(|v| v.trim().parse::<i64>().ok());
        if response.status == 429 || remaining == Some(0) {
            let wait = response.retry_after.unwrap_or(DEFAULT_PAUSE);
            tracing::warn!(
                status = response.status,
                wait_ms = wait.as_millis() as u64,
                "Zendesk rate limit reached; pausing this destination"
            );
            self.pause(wait);
        }
        Ok(response)
    }

    fn delivered(
        &self,
        response: &Exchange,
        id: i64,
        last_sent_at: Option<i64>,
        how: &str,
    ) -> Delivered {
        let url = self.ticket_url(id);
        tracing::info!(ticket_id = id, url = %crate::redact::url(&url), "Zendesk ticket {how}");
        Delivered {
            status: Some(response.status),
            excerpt: http::excerpt(&response.body),
            result: Some(
                json!({ "ticket_id": id, "url": url, "last_sent_at": last_sent_at }).to_string(),
            ),
        }
    }

    /// The oldest ticket whose `external_id` is the conversation key, if any.
    async fn lookup(&self, key: &str) -> Result<Option<(Exchange, i64)>, DeliveryError> {
        let response = self.call(&self.lookup_request(key)).await?;
        if !(200..300).contains(&response.status) {
            return Err(response::failure(
                &response,
                "the ticket lookup by external_id",
            ));
        }
        let id = response::listed_ids(&response.body).first().copied();
        Ok(id.map(|id| (response, id)))
    }

    async fn create(
        &self,
        job: &Job<'_>,
        followup_of: Option<i64>,
    ) -> Result<Delivered, DeliveryError> {
        let last = last_sent_at(job.context);
        let key = job.conversation.key.as_str();
        // Past the idempotency window (and always for imports, which have none), an attempt
        // whose outcome was unknown may have created the ticket: look before creating again.
        let window = self.settings.idempotency_window.0.as_millis() as i64;
        let unknown_outcome_possible = job.retried
            && (self.settings.mode == ZendeskMode::Import
                || now_ms() - job.conversation.received_at > window);
        if unknown_outcome_possible && followup_of.is_none() && job.conversation.version == 1 {
            if let Some((response, id)) = self.lookup(key).await? {
                return Ok(self.delivered(&response, id, last, "found by external_id"));
            }
        }
        let context = match followup_of {
            Some(id) => {
                let mut c = job.context.clone();
                c.data_mut()["destination"]["followupOf"] = json!(id);
                Cow::Owned(c)
            }
            None => Cow::Borrowed(job.context),
        };
        let idempotency = match followup_of {
            Some(id) => format!("{}-followup-{id}", job.idempotency_key),
            None => job.idempotency_key.to_string(),
        };
        let request = self.create_request(&context, &idempotency)?;
        let response = self.call(&request).await?;
        if (200..300).contains(&response.status) {
            let id =
                response::ticket_id(&response.body).ok_or_else(|| DeliveryError::Permanent {
                    reason: "Zendesk accepted the ticket but its answer has no ticket id".into(),
                    status: Some(response.status),
                    excerpt: http::excerpt(&response.body),
                })?;
            let how = if followup_of.is_some() {
                "created as a follow-up"
            } else {
                "created"
            };
            let delivered = self.delivered(&response, id, last, how);
            if self.adds_context_comment() {
                self.add_context_comment(&context, id).await?;
            }
            return Ok(delivered);
        }
        if response::is_idempotency_conflict(&response) {
            if let Some((found, id)) = self.lookup(key).await? {
                return Ok(self.delivered(&found, id, last, "found by external_id"));
            }
        }
        Err(response::failure(&response, "the new ticket"))
    }

    /// Adds the visitor's context as an internal comment (the first comment was public).
    /// A retry re-creates through the idempotency key, which returns the same ticket.
    async fn add_context_comment(&self, context: &Context, id: i64) -> Result<(), DeliveryError> {
        let request = self.context_request(context, &id.to_string())?;
        let response = self.call(&request).await?;
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        Err(response::failure(
            &response,
            &format!("the context comment of ticket {id}"),
        ))
    }

    async fn update(&self, job: &Job<'_>, ticket: Ticket) -> Result<Delivered, DeliveryError> {
        let request = self.update_request(job.context, ticket)?;
        let response = self.call(&request).await?;
        if (200..300).contains(&response.status) {
            return Ok(self.delivered(&response, ticket.id, last_sent_at(job.context), "updated"));
        }
        if response::is_closed_ticket(&response) {
            return self.create(job, Some(ticket.id)).await;
        }
        if response.status == 404 {
            tracing::warn!(
                ticket_id = ticket.id,
                "the earlier ticket is gone; creating a new one"
            );
            return self.create(job, None).await;
        }
        Err(response::failure(
            &response,
            &format!("the update of ticket {}", ticket.id),
        ))
    }
}

impl Destination for Zendesk {
    fn name(&self) -> &str {
        &self.name
    }

    /// The plan's requests, with a stand-in for the id of a ticket still to be created.
    fn requests(&self, job: &Job<'_>) -> Result<Vec<Request>, RenderError> {
        match self.plan(job) {
            Plan::Update(ticket) => Ok(vec![self.update_request(job.context, ticket)?]),
            Plan::Create => {
                let mut out = vec![self.create_request(job.context, job.idempotency_key)?];
                if self.adds_context_comment() {
                    out.push(self.context_request(job.context, TICKET_PLACEHOLDER)?);
                }
                Ok(out)
            }
        }
    }

    fn deliver<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            match self.plan(job) {
                Plan::Update(ticket) => self.update(job, ticket).await,
                Plan::Create => self.create(job, None).await,
            }
        })
    }

    fn attach(&self, store: &crate::store::Store) {
        if let Some(tokens) = &self.tokens {
            tokens.attach(store);
        }
    }

    fn sample_previous(&self) -> Option<String> {
        Some(r#"{"ticket_id": 1, "last_sent_at": 0}"#.into())
    }

    fn links(&self, result: &Value) -> Vec<super::Link> {
        let Some(id) = result["ticket_id"].as_i64() else {
            return Vec::new();
        };
        vec![super::Link {
            label: "ticket".into(),
            id: id.to_string(),
            url: Some(self.ticket_url(id))
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
        }]
    }

    fn template_vars(&self) -> Map<String, Value> {
        let s = &self.settings;
        let mut vars = Map::new();
        vars.insert("kind".into(), json!("zendesk"));
        vars.insert("timeZone".into(), json!(s.time_zone.name()));
        vars.insert("public".into(), json!(s.public));
        vars.insert("priority".into(), json!(s.priority));
        vars.insert("type".into(), json!(s.ticket_type));
        vars.insert("tags".into(), json!(s.tags));
        vars.insert("followupOf".into(), Value::Null);
        vars
    }
}
