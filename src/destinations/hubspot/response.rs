//! What HubSpot's answers mean: ids of written objects, validation and scope errors, and the
//! three rate-limit policies.

use crate::destinations::http::{classify, excerpt, Exchange};
use crate::destinations::DeliveryError;
use serde_json::Value;
use std::time::Duration;

/// How a 429 should be waited out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Retry after this long (10 s policy, secondly policy, or Retry-After).
    Wait(Duration),
    /// The daily quota is used up: park the destination this long.
    Daily(Duration),
}

/// The wait a 429 answer asks for, by `policyName` and `Retry-After`.
pub fn rate_limit(response: &Exchange, until_midnight: Duration) -> Limit {
    let body: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    match body["policyName"].as_str().unwrap_or("") {
        "DAILY" => Limit::Daily(response.retry_after.unwrap_or(until_midnight)),
        "SECONDLY" => Limit::Wait(response.retry_after.unwrap_or(Duration::from_secs(1))),
        _ => Limit::Wait(response.retry_after.unwrap_or(Duration::from_secs(10))),
    }
}

/// The `id` of a created object (`{"id": "512", …}`).
pub fn created_id(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    id_text(&value["id"])
}

/// The id of the first result of a batch upsert or a search.
pub fn first_result_id(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    id_text(&value["results"][0]["id"])
}

/// The first error message of a batch answer with `errors[]` (status 207).
pub fn batch_error(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value["errors"][0]["message"].as_str().map(str::to_string)
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A permanent or retryable failure for a non-2xx answer other than 429, in HubSpot's words.
pub fn failure(response: &Exchange, what: &str) -> DeliveryError {
    let status = response.status;
    let body: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    let message = body["message"].as_str().unwrap_or("no message");
    let category = body["category"].as_str().unwrap_or("");
    let permanent = |reason: String| DeliveryError::Permanent {
        reason,
        status: Some(status),
        excerpt: excerpt(&response.body),
    };
    match status {
        401 => permanent(format!(
            "HubSpot refused the access token (401) for {what}: {message}; create a new private app token and set access_token"
        )),
        403 => {
            // The scopes stand in `context`, or in each of `errors[].context`.
            let contexts = std::iter::once(&body["context"]).chain(
                body["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| &e["context"]),
            );
            let mut scopes: Vec<&str> = contexts
                .flat_map(|c| {
                    ["requiredGranularScopes", "requiredScopes"]
                        .into_iter()
                        .filter_map(move |k| c[k].as_array())
                        .flatten()
                        .filter_map(Value::as_str)
                })
                .collect();
            scopes.dedup();
            let missing = if scopes.is_empty() {
                String::new()
            } else {
                format!("; missing scopes: {}", scopes.join(", "))
            };
            permanent(format!("HubSpot denied {what} (403 {category}): {message}{missing}"))
        }
        400..=499 if status != 408 && status != 425 => {
            permanent(format!("HubSpot rejected {what} ({status} {category}): {message}"))
        }
        _ => match classify(status, response.retry_after, excerpt(&response.body)) {
            Err(DeliveryError::Retryable { retry_after, excerpt, .. }) => DeliveryError::Retryable {
                reason: format!("HubSpot answered {status} for {what}"),
                status: Some(status),
                retry_after,
                excerpt,
            },
            _ => permanent(format!("HubSpot answered {status} for {what}: {message}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Exchange {
        Exchange {
            status,
            retry_after: None,
            headers: Default::default(),
            body: body.into(),
        }
    }

    #[test]
    fn policies_set_the_wait() {
        let day = Duration::from_secs(5000);
        assert_eq!(
            rate_limit(&answer(429, r#"{"policyName":"DAILY"}"#), day),
            Limit::Daily(day)
        );
        assert_eq!(
            rate_limit(&answer(429, r#"{"policyName":"SECONDLY"}"#), day),
            Limit::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            rate_limit(
                &answer(429, r#"{"policyName":"TEN_SECONDLY_ROLLING"}"#),
                day
            ),
            Limit::Wait(Duration::from_secs(10))
        );
    }

    #[test]
    fn scope_errors_name_the_missing_scopes() {
        let body = r#"{"status":"error","message":"This app hasn't been granted all required scopes to make this call.","category":"MISSING_SCOPES","context":{"requiredGranularScopes":["tickets"]}}"#;
        let e = failure(&answer(403, body), "the ticket").to_string();
        assert!(e.contains("missing scopes: tickets"), "{e}");
    }

    #[test]
    fn scopes_are_found_inside_errors_too() {
        let body = r#"{"status":"error","message":"missing scopes","category":"MISSING_SCOPES","errors":[{"message":"x","context":{"requiredGranularScopes":["crm.objects.contacts.write"]}}]}"#;
        let e = failure(&answer(403, body), "the contact").to_string();
        assert!(
            e.contains("missing scopes: crm.objects.contacts.write"),
            "{e}"
        );
    }

    #[test]
    fn ids_are_read_as_strings() {
        assert_eq!(created_id(r#"{"id":"512"}"#).as_deref(), Some("512"));
        assert_eq!(
            first_result_id(r#"{"results":[{"id":7,"new":true}]}"#).as_deref(),
            Some("7")
        );
        assert_eq!(
            batch_error(r#"{"errors":[{"message":"Property values were not valid"}]}"#).as_deref(),
            Some("Property values were not valid")
        );
    }
}
