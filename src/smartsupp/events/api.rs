//! Smartsupp's REST API v2: what events do not carry (the contact, the whole message list,
//! agent names), and the search `deskbridge import smartsupp` pages through. Requests are
//! paced (`smartsupp.api_rate_limit`); failures are classified like a destination's.

use super::assemble::{ApiData, ContactLookup};
use crate::config::SmartsuppSettings;
use crate::destinations::pacing::Pacer;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Messages asked for per page.
const PAGE_SIZE: u32 = 100;
/// Pages of messages read at most for one conversation.
const MAX_PAGES: usize = 100;

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Worth trying again (network, timeout, 408, 425, 429, 5xx), not before `retry_after`.
    #[error("{reason}")]
    Retryable {
        /// What happened.
        reason: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Trying again will not help (401, 403, 400, 422 …).
    #[error("{reason}")]
    Permanent {
        /// What happened.
        reason: String,
    },
    /// 404.
    #[error("not found")]
    NotFound,
}

/// A REST API client with a token; cheap to clone.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    pacer: Arc<Pacer>,
}

impl Api {
    /// A client when `smartsupp.api_token` is set.
    pub fn from_settings(s: &SmartsuppSettings) -> anyhow::Result<Option<Self>> {
        let Some(token) = s
            .api_token
            .as_ref()
            .filter(|t| !t.expose().trim().is_empty())
        else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(s.api_timeout.0)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Self {
            http,
            base: s.api_base_url.trim_end_matches('/').to_string(),
            token: token.expose().trim().to_string(),
            pacer: Arc::new(Pacer::new(s.api_rate_limit)),
        }))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.pacer.acquire().await;
        let url = format!("{}/{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| ApiError::Retryable {
            reason: format!(
                "{method} {path}: {}",
                crate::destinations::http::error_chain(&e)
            ),
            retry_after: None,
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::destinations::http::parse_retry_after(v, SystemTime::now()));
        let text = response.text().await.map_err(|e| ApiError::Retryable {
            reason: format!("{method} {path}: reading the answer: {e}"),
            retry_after: None,
        })?;
        match status {
            200..=299 => serde_json::from_str(&text).map_err(|e| ApiError::Permanent {
                reason: format!("{method} {path}: the answer is not JSON: {e}"),
            }),
            404 => Err(ApiError::NotFound),
            408 | 425 | 429 | 500 | 502..=599 => Err(ApiError::Retryable {
                reason: format!("{method} {path}: HTTP {status}"),
                retry_after,
            }),
            _ => Err(ApiError::Permanent {
                reason: format!(
                    "{method} {path}: HTTP {status}{}",
                    crate::destinations::http::excerpt(&text)
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            }),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `GET conversations/{id}`.
    pub async fn conversation(&self, id: &str) -> Result<Value, ApiError> {
        self.get(&format!("conversations/{}", segment(id))).await
    }

    /// Every message of a conversation, oldest first (answers come newest first).
    pub async fn messages(&self, id: &str) -> Result<Vec<Value>, ApiError> {
        let mut all: Vec<Value> = Vec::new();
        let mut after: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!("conversations/{}/messages?size={PAGE_SIZE}", segment(id));
            if let Some(a) = &after {
                let a = match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                path.push_str(&format!("&after={}", segment(&a)));
            }
            let page = self.get(&path).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let done = items.is_empty();
            all.extend(items);
            after = page.get("after").filter(|a| !a.is_null()).cloned();
            if done || after.is_none() {
                break;
            }
        }
        all.sort_by_key(|m| {
            m.get("created_at")
                .and_then(super::envelope::millis)
                .unwrap_or(i64::MAX)
        });
        Ok(all)
    }

    /// `GET contacts/{id}`.
    pub async fn contact(&self, id: &str) -> Result<Value, ApiError> {
        self.get(&format!("contacts/{}", segment(id))).await
    }

    /// Agent names by id (`GET agents`).
    pub async fn agents(&self) -> Result<HashMap<String, String>, ApiError> {
        let answer = self.get("agents").await?;
        let list = answer
            .get("agents")
            .or_else(|| answer.get("items"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(list
            .iter()
            .filter_map(|a| {
                let id = a.get("id").and_then(super::envelope::id_of)?;
                let name = a
                    .get("name")
                    .or_else(|| a.get("full_name"))
                    .and_then(crate::smartsupp::non_empty)?;
                Some((id, name))
            })
            .collect())
    }

    /// One page of finished conversations created within `[since, until)` (epoch ms),
    /// newest first.
    pub async fn search(
        &self,
        since: i64,
        until: i64,
        size: u32,
        after: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let iso = |ms: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        let mut body = json!({
            "size": size,
            "query": [
                {"field": "status", "value": "closed"},
                {"field": "created_at", "gte": iso(since), "lt": iso(until)},
            ],
            "sort": [{"created_at": "desc"}],
        });
        if let Some(after) = after {
            body["after"] = after.clone();
        }
        self.send(reqwest::Method::POST, "conversations/search", Some(&body))
            .await
    }

    /// Everything the API adds to a conversation: details, messages, contact (404 is an
    /// answer, not a failure) and agent names.
    pub async fn complete(
        &self,
        conversation_id: &str,
        contact_hint: Option<String>,
    ) -> Result<ApiData, ApiError> {
        let conversation = self.conversation(conversation_id).await?;
        let messages = self.messages(conversation_id).await?;
        let contact_id = conversation
            .get("contact_id")
            .and_then(super::envelope::id_of)
            .or(contact_hint);
        let contact = match contact_id {
            Some(id) => match self.contact(&id).await {
                Ok(c) => ContactLookup::Found(c),
                Err(ApiError::NotFound) => ContactLookup::NotFound,
                Err(e) => return Err(e),
            },
            None => ContactLookup::NotAsked,
        };
        let agents = match self.agents().await {
            Ok(a) => a,
            Err(ApiError::NotFound) => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(ApiData {
            conversation: Some(conversation),
            messages: Some(messages),
            contact,
            agents,
            failed: None,
        })
    }
}

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
