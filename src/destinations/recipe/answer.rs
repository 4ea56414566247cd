//! Reading a step's answer: the values it captures, and a failed answer as a delivery error
//! by the recipe's outcome rules, else the usual classification.

use super::format::{self, Capture, Outcome, Step};
use super::RecipeDestination;
use crate::destinations::{http, DeliveryError};
use serde_json::{Map, Value};

/// Longest text of a service's own error quoted in the attempt log.
const SERVICE_ERROR_CHARS: usize = 600;

impl RecipeDestination {
    /// A failed answer as a delivery error: the recipe's rule, else the usual classification.
    pub(super) fn failure(
        &self,
        step: &Step,
        answer: &http::Exchange,
        rule: Option<(Outcome, Option<&str>)>,
    ) -> DeliveryError {
        let excerpt = http::excerpt(&answer.body);
        let wait = match &step.retry_after {
            Some(header) => answer
                .header(header)
                .and_then(|v| http::parse_retry_after(v, std::time::SystemTime::now())),
            None => answer.retry_after,
        };
        let mut reason = format!("step {}: HTTP {}", step.id, answer.status);
        if let Some(words) = rule.and_then(|(_, m)| m) {
            reason.push_str(&format!(": {words}"));
        }
        if let Some(said) = step.error.as_ref().and_then(|e| read(e, answer)) {
            let said = match said {
                Value::String(s) => s,
                other => other.to_string(),
            };
            reason.push_str(&format!(
                ": {}",
                crate::text::truncate(&said, SERVICE_ERROR_CHARS, "…")
            ));
        }
        let static_credentials = self
            .recipe
            .auth
            .as_ref()
            .is_some_and(|a| !matches!(a, format::AuthSpec::Oauth2 { .. }));
        let refused = match rule {
            Some((outcome, _)) => outcome == Outcome::Credentials,
            None => answer.status == 401 && static_credentials,
        };
        if refused {
            return DeliveryError::Unauthorized {
                reason: format!(
                    "{reason}: the service refused deskbridge's credentials; fix the destination's secret settings, then the paused destination resumes"
                ),
                status: Some(answer.status),
            };
        }
        let classified = match rule {
            Some((Outcome::Retry, _)) => Err(DeliveryError::Retryable {
                reason: String::new(),
                status: Some(answer.status),
                retry_after: wait,
                excerpt: excerpt.clone(),
            }),
            Some(_) => Err(DeliveryError::Permanent {
                reason: String::new(),
                status: Some(answer.status),
                excerpt: excerpt.clone(),
            }),
            None => http::classify(answer.status, wait, excerpt.clone()),
        };
        match classified {
            Err(DeliveryError::Retryable {
                status,
                retry_after,
                excerpt,
                ..
            }) => DeliveryError::Retryable {
                reason,
                status,
                retry_after,
                excerpt,
            },
            Err(DeliveryError::Permanent {
                reason: said,
                status,
                excerpt,
            }) => DeliveryError::Permanent {
                reason: if said.contains("redirect") {
                    format!("step {}: {said}", step.id)
                } else {
                    reason
                },
                status,
                excerpt,
            },
            _ => DeliveryError::Permanent {
                reason,
                status: Some(answer.status),
                excerpt,
            },
        }
    }

    pub(super) fn missing(
        &self,
        step: &Step,
        answer: &http::Exchange,
        capture: &str,
    ) -> DeliveryError {
        DeliveryError::Permanent {
            reason: format!(
                "step {}: HTTP {} but the answer has no {capture} (the recipe captures it); check the recipe against the service's answer",
                step.id, answer.status
            ),
            status: Some(answer.status),
            excerpt: http::excerpt(&answer.body),
        }
    }
}

/// Every capture of `list` from `answer`; `Err` names the first required one missing.
pub(super) fn read_all(
    list: &indexmap::IndexMap<String, Capture>,
    answer: &http::Exchange,
    all_optional: bool,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, capture) in list {
        match read(capture, answer) {
            Some(value) => {
                out.insert(name.clone(), value);
            }
            None if capture.optional || all_optional => {}
            None => return Err(name.clone()),
        }
    }
    Ok(out)
}

/// One captured value; numbers and strings as they are, `None` when absent or empty.
pub(super) fn read(capture: &Capture, answer: &http::Exchange) -> Option<Value> {
    let value = if let Some(pointer) = &capture.json {
        let body: Value = serde_json::from_str(&answer.body).ok()?;
        body.pointer(pointer).cloned()?
    } else if let Some(header) = &capture.header {
        Value::String(answer.header(header)?.to_string())
    } else {
        let pattern = regex::Regex::new(capture.regex.as_deref()?).ok()?;
        let text = match capture
            .from
            .as_deref()
            .and_then(|f| f.strip_prefix("header:"))
        {
            Some(header) => answer.header(header)?,
            None => answer.body.as_str(),
        };
        Value::String(pattern.captures(text)?.get(1)?.as_str().to_string())
    };
    match &value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        _ => Some(value),
    }
}
