//! `kind: hubspot`: the visitor's contact upserted by email, a ticket associated to it, and the
//! transcript as a note associated to both, in steps that are safe to retry. The id of each
//! completed step is kept with the delivery, so a retry continues after the last completed
//! step; a later version of the conversation adds a note to the same contact and ticket.

mod response;
mod settings;

pub use settings::{ApiVersion, HubspotKind, HubspotObject, HubspotSettings, Priority};

use super::http::{self, Exchange};
use super::pacing::Pacer;
use super::{BoxFuture, Delivered, DeliveryError, Destination, Job, Request, Shared};
use crate::config::RateLimit;
use crate::render::RenderError;
use crate::smartsupp;
use handlebars::Context;
use response::Limit;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest `hs_note_body` (and text property) HubSpot stores, in characters.
pub const NOTE_LIMIT: usize = 65_536;
/// Association type ids (HubSpot-defined).
const TICKET_TO_CONTACT: u32 = 16;
const NOTE_TO_CONTACT: u32 = 202;
const NOTE_TO_TICKET: u32 = 228;
/// Stand-ins for ids in `render` output, where nothing has been created.
const CONTACT_PLACEHOLDER: &str = "<contact id>";
const TICKET_PLACEHOLDER: &str = "<ticket id>";
const NOTE_PLACEHOLDER: &str = "<note id>";

/// What the steps have written so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct State {
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_sent_at: Option<i64>,
}

impl State {
    fn parse(text: Option<&str>) -> Option<Self> {
        serde_json::from_str(text?).ok()
    }
    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A HubSpot destination.
pub struct Hubspot {
    name: String,
    settings: HubspotSettings,
    authorization: String,
    shared: Shared,
    pacer: Pacer,
    parked_until: Mutex<Option<Instant>>,
}

fn association(id: &str, type_id: u32) -> Value {
    json!({
        "to": { "id": id },
        "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }]
    })
}

/// Time left until the next midnight UTC, when HubSpot's daily quota is assumed to reset.
fn until_midnight_utc() -> Duration {
    let now = chrono::Utc::now();
    let next = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    next.and_then(|t| (t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
}

/// Cuts an HTML note body to HubSpot's limit at a paragraph end, with a visible notice.
fn fit_note(body: &str) -> String {
    if body.chars().count() <= NOTE_LIMIT {
        return body.to_string();
    }
    let notice = "<p><em>[The transcript is longer than a HubSpot note can hold; the rest was cut. The whole conversation is kept in deskbridge.]</em></p>";
    let room = NOTE_LIMIT - notice.chars().count();
    let cut: String = body.chars().take(room).collect();
    let end = cut.rfind("</p>").map(|i| i + 4).unwrap_or(cut.len());
    format!("{}{notice}", &cut[..end])
}

impl Hubspot {
    /// Builds the destination; the settings were validated with the configuration, and
    /// `rate` paces its requests.
    pub fn new(name: &str, settings: &HubspotSettings, rate: RateLimit, shared: Shared) -> Self {
        let token = settings
            .access_token
            .as_ref()
            .map(|t| t.expose())
            .unwrap_or("");
        Self {
            name: name.to_string(),
            settings: settings.clone(),
            authorization: format!("Bearer {token}"),
            shared,
            pacer: Pacer::new(rate),
            parked_until: Mutex::new(None),
        }
    }

    fn wants(&self, object: HubspotObject) -> bool {
        self.settings.create.contains(&object)
    }

    /// `/crm/v3/objects/{object}…` or `/crm/objects/{version}/{object}…`.
    fn url(&self, object: &str, suffix: &str) -> String {
        let base = self.settings.base_url.as_str().trim_end_matches('/');
        match &self.settings.api_version {
            ApiVersion::V3 => format!("{base}/crm/v3/objects/{object}{suffix}"),
            ApiVersion::Dated(v) => format!("{base}/crm/objects/{v}/{object}{suffix}"),
        }
    }

    fn request(&self, url: String, body: Value) -> Request {
        Request {
            secret_path: false,
            method: "POST".into(),
            url,
            headers: vec![
                ("content-type".into(), "application/json".into(), false),
                ("authorization".into(), self.authorization.clone(), true),
            ],
            body: body.to_string(),
        }
    }

    /// Renders a properties template: a JSON object whose values are sent as strings; empty
    /// and null values are left out, so a blank never erases what the CRM holds.
    fn properties(
        &self,
        template: &str,
        context: &Context,
    ) -> Result<Map<String, Value>, RenderError> {
        let text = self.shared.renderer.render(template, context)?;
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) else {
            return Err(RenderError::InvalidJson {
                name: template.to_string(),
                message: "must render a JSON object of properties".into(),
            });
        };
        Ok(map
            .into_iter()
            .filter_map(|(k, v)| {
                let text = match v {
                    Value::Null => return None,
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (!text.is_empty()).then_some((k, Value::String(text)))
            })
            .collect())
    }

    fn contact_request(&self, context: &Context, email: &str) -> Result<Request, RenderError> {
        let properties = self.properties(&self.settings.contact_template, context)?;
        let body =
            json!({ "inputs": [{ "idProperty": "email", "id": email, "properties": properties }] });
        Ok(self.request(self.url("contacts", "/batch/upsert"), body))
    }

    fn ticket_request(
        &self,
        context: &Context,
        contact: Option<&str>,
    ) -> Result<Request, RenderError> {
        let mut properties = self.properties(&self.settings.ticket_template, context)?;
        if let Some(Value::String(content)) = properties.get_mut("content") {
            if content.chars().count() > NOTE_LIMIT {
                let notice = "\n[The transcript is longer than a HubSpot property can hold; the rest is in the note.]";
                let keep = NOTE_LIMIT - notice.chars().count();
                *content = content.chars().take(keep).collect::<String>() + notice;
            }
        }
        let associations: Vec<Value> = contact
            .map(|c| association(c, TICKET_TO_CONTACT))
            .into_iter()
            .collect();
        Ok(self.request(
            self.url("tickets", ""),
            json!({ "properties": properties, "associations": associations }),
        ))
    }

    /// The note's context: `update.messages` holds the messages the note carries (those new
    /// since `previous` for a later version, else all).
    fn note_context(&self, context: &Context, previous: Option<&State>) -> Context {
        let mut context = context.clone();
        let data = context.data_mut();
        let after = previous.and_then(|p| p.last_sent_at);
        data["update"] = json!({
            "isUpdate": previous.is_some(),
            "messages": smartsupp::messages_after(data, after),
        });
        context
    }

    fn note_request(
        &self,
        context: &Context,
        contact: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<Request, RenderError> {
        let mut properties = self.properties(&self.settings.note_template, context)?;
        if let Some(Value::String(body)) = properties.get_mut("hs_note_body") {
            *body = fit_note(body);
        }
        let mut associations = Vec::new();
        if let Some(c) = contact {
            associations.push(association(c, NOTE_TO_CONTACT));
        }
        if let Some(t) = ticket {
            associations.push(association(t, NOTE_TO_TICKET));
        }
        Ok(self.request(
            self.url("notes", ""),
            json!({ "properties": properties, "associations": associations }),
        ))
    }

    fn search_request(&self, property: &str, key: &str) -> Request {
        let body = json!({
            "filterGroups": [{ "filters": [{ "propertyName": property, "operator": "EQ", "value": key }] }],
            "properties": ["subject"],
            "limit": 1
        });
        self.request(self.url("tickets", "/search"), body)
    }

    fn parked(&self) -> Option<Duration> {
        let until = (*self.parked_until.lock().unwrap_or_else(|p| p.into_inner()))?;
        until.checked_duration_since(Instant::now())
    }

    /// Sends one request within the pacing limit; answers other than 2xx become errors.
    async fn send(&self, request: &Request, what: &str) -> Result<Exchange, DeliveryError> {
        if let Some(wait) = self.parked() {
            return Err(DeliveryError::Deferred {
                reason: "HubSpot's daily quota is used up; the destination is parked".into(),
                wait,
            });
        }
        self.pacer.acquire().await;
        super::note_sent(request);
        let response = http::exchange(&self.shared.client, request).await?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        if response.status != 429 {
            return Err(response::failure(&response, what));
        }
        match response::rate_limit(&response, until_midnight_utc()) {
            Limit::Daily(wait) => {
                *self.parked_until.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Instant::now() + wait);
                tracing::warn!(destination = %self.name, parked_for_s = wait.as_secs(), "HubSpot daily quota used up; destination parked until it resets");
                Err(DeliveryError::Deferred {
                    reason: format!(
                        "HubSpot daily quota used up (429 DAILY) at {what}; parked for {}s",
                        wait.as_secs()
                    ),
                    wait,
                })
            }
            Limit::Wait(wait) => Err(DeliveryError::Retryable {
                reason: format!("HubSpot rate limit (429) at {what}"),
                status: Some(429),
                retry_after: Some(wait),
                excerpt: http::excerpt(&response.body),
            }),
        }
    }

    fn missing_id(response: &Exchange, what: &str) -> DeliveryError {
        let reason = match response::batch_error(&response.body) {
            Some(message) => format!("HubSpot refused {what}: {message}"),
            None => format!("HubSpot's answer to {what} has no id"),
        };
        DeliveryError::Permanent {
            reason,
            status: Some(response.status),
            excerpt: http::excerpt(&response.body),
        }
    }

    /// Where the sequence of `job` starts: what earlier attempts recorded, with the contact
    /// and ticket of the previous version of the conversation.
    fn start(job: &Job<'_>) -> Cursor {
        let previous = State::parse(job.previous);
        let mut state = State::parse(job.result).unwrap_or_default();
        if let Some(prev) = &previous {
            state.contact_id = state.contact_id.or(prev.contact_id.clone());
            state.ticket_id = state.ticket_id.or(prev.ticket_id.clone());
        }
        Cursor {
            state,
            previous,
            searched: false,
        }
    }

    /// The next step of the sequence from `at`, or `None` when it is complete: the one
    /// description of the sequence, which delivery follows and `render` prints.
    fn next_step(&self, job: &Job<'_>, at: &Cursor) -> Option<Step> {
        let state = &at.state;
        if self.wants(HubspotObject::Contact)
            && state.contact_id.is_none()
            && visitor_email(job).is_some()
        {
            return Some(Step::Contact);
        }
        if self.wants(HubspotObject::Ticket) && state.ticket_id.is_none() {
            // An earlier attempt may have created the ticket without hearing the answer.
            let search = job.retried && self.settings.conversation_key_property.is_some();
            return Some(if search && !at.searched {
                Step::TicketSearch
            } else {
                Step::Ticket
            });
        }
        if self.wants(HubspotObject::Note) && state.note_id.is_none() {
            return Some(Step::Note);
        }
        None
    }

    /// The request of `step` from `at`.
    fn step_request(&self, step: Step, job: &Job<'_>, at: &Cursor) -> Result<Request, RenderError> {
        let state = &at.state;
        match step {
            Step::Contact => {
                self.contact_request(job.context, visitor_email(job).unwrap_or_default())
            }
            Step::TicketSearch => Ok(self.search_request(
                self.settings
                    .conversation_key_property
                    .as_deref()
                    .unwrap_or_default(),
                &job.conversation.key,
            )),
            Step::Ticket => self.ticket_request(job.context, state.contact_id.as_deref()),
            Step::Note => {
                let context = self.note_context(job.context, at.previous.as_ref());
                self.note_request(
                    &context,
                    state.contact_id.as_deref(),
                    state.ticket_id.as_deref(),
                )
            }
        }
    }

    /// Sends the sequence, step after step, keeping each id with the delivery as it comes.
    async fn run(&self, job: &Job<'_>) -> Result<Delivered, DeliveryError> {
        let mut at = Self::start(job);
        let mut last: Option<Exchange> = None;
        while let Some(step) = self.next_step(job, &at) {
            let request = self.step_request(step, job, &at)?;
            let response = self.send(&request, step.what()).await?;
            let state = &mut at.state;
            match step {
                Step::Contact => {
                    let id = response::first_result_id(&response.body)
                        .ok_or_else(|| Self::missing_id(&response, step.what()))?;
                    state.contact_id = Some(id);
                }
                Step::TicketSearch => {
                    at.searched = true;
                    state.ticket_id = response::first_result_id(&response.body);
                    job.progress.set(state.json());
                    continue;
                }
                Step::Ticket => {
                    let id = response::created_id(&response.body)
                        .ok_or_else(|| Self::missing_id(&response, step.what()))?;
                    state.ticket_id = Some(id);
                }
                Step::Note => {
                    let id = response::created_id(&response.body)
                        .ok_or_else(|| Self::missing_id(&response, step.what()))?;
                    state.note_id = Some(id);
                }
            }
            job.progress.set(state.json());
            last = Some(response);
        }
        let mut state = at.state;
        state.last_sent_at = smartsupp::last_sent_at(job.context.data());
        tracing::info!(contact_id = ?state.contact_id, ticket_id = ?state.ticket_id, note_id = ?state.note_id, "HubSpot objects written");
        Ok(Delivered {
            status: last.as_ref().map(|r| r.status),
            excerpt: last.as_ref().and_then(|r| http::excerpt(&r.body)),
            result: Some(state.json()),
        })
    }
}

/// One request of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Upsert the visitor's contact by email.
    Contact,
    /// Look for a ticket an earlier attempt may have created (by the conversation key).
    TicketSearch,
    /// Create the ticket, associated to the contact.
    Ticket,
    /// Create the note with the transcript, associated to contact and ticket.
    Note,
}

impl Step {
    /// The step in words, for errors.
    fn what(self) -> &'static str {
        match self {
            Self::Contact => "the contact upsert",
            Self::TicketSearch => "the ticket search",
            Self::Ticket => "the ticket",
            Self::Note => "the note",
        }
    }
}

/// Where a sequence stands.
struct Cursor {
    /// What has been written.
    state: State,
    /// What the previous version of the conversation recorded.
    previous: Option<State>,
    /// Whether the ticket was searched for in this attempt.
    searched: bool,
}

impl Cursor {
    /// Takes `step` as done, with a stand-in for the id it would return (`render`).
    fn assume(&mut self, step: Step) {
        let state = &mut self.state;
        match step {
            Step::Contact => state.contact_id = Some(CONTACT_PLACEHOLDER.into()),
            Step::TicketSearch => self.searched = true,
            Step::Ticket => state.ticket_id = Some(TICKET_PLACEHOLDER.into()),
            Step::Note => state.note_id = Some(NOTE_PLACEHOLDER.into()),
        }
    }
}

/// The visitor's email when the conversation has a usable one.
fn visitor_email<'a>(job: &'a Job<'_>) -> Option<&'a str> {
    let data = job.context.data();
    (data["meta"]["hasEmail"] == true)
        .then(|| data["meta"]["email"].as_str())
        .flatten()
}

impl Destination for Hubspot {
    fn name(&self) -> &str {
        &self.name
    }

    /// The whole sequence, with stand-ins for the ids that earlier steps would return.
    fn requests(&self, job: &Job<'_>) -> Result<Vec<Request>, RenderError> {
        let mut at = Self::start(job);
        let mut out = Vec::new();
        while let Some(step) = self.next_step(job, &at) {
            out.push(self.step_request(step, job, &at)?);
            at.assume(step);
        }
        Ok(out)
    }

    fn deliver<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(self.run(job))
    }

    fn sample_previous(&self) -> Option<String> {
        Some(r#"{"contact_id": "1", "ticket_id": "2", "last_sent_at": 0}"#.into())
    }

    fn links(&self, result: &Value) -> Vec<super::Link> {
        let Ok(state) = State::deserialize(result) else {
            return Vec::new();
        };
        // Record pages need the account id: https://app.hubspot.com/contacts/{portal}/record/{type}/{id}
        let page = |object_type: &str, id: &str| {
            let portal = self.settings.portal_id.as_deref()?;
            let safe = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
            (safe(portal) && safe(id)).then(|| {
                format!("https://app.hubspot.com/contacts/{portal}/record/{object_type}/{id}")
            })
        };
        [
            ("contact", state.contact_id, Some("0-1")),
            ("ticket", state.ticket_id, Some("0-5")),
            ("note", state.note_id, None),
        ]
        .into_iter()
        .filter_map(|(label, id, object_type)| {
            let id = id?;
            Some(super::Link {
                label: label.into(),
                url: object_type.and_then(|t| page(t, &id)),
                id,
            })
        })
        .collect()
    }

    fn template_vars(&self) -> Map<String, Value> {
        let s = &self.settings;
        let mut vars = Map::new();
        vars.insert("kind".into(), json!("hubspot"));
        vars.insert("timeZone".into(), json!(s.time_zone.name()));
        vars.insert("pipeline".into(), json!(s.pipeline));
        vars.insert("stage".into(), json!(s.stage));
        vars.insert("priority".into(), json!(s.priority));
        vars.insert("ownerId".into(), json!(s.owner_id));
        vars.insert(
            "conversationKeyProperty".into(),
            json!(s.conversation_key_property),
        );
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_at_a_paragraph_with_a_notice() {
        let body = "<p>0123456789</p>".repeat(10_000);
        let fitted = fit_note(&body);
        assert!(fitted.chars().count() <= NOTE_LIMIT);
        assert!(fitted.ends_with("deskbridge.]</em></p>"));
        assert!(fitted.contains("</p><p><em>[The transcript is longer"));
        assert_eq!(fit_note("<p>short</p>"), "<p>short</p>");
    }
}
