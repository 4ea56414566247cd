//! What Zendesk's answers mean: created tickets, validation errors with their details,
//! credentials and permissions, rate limits.

use crate::destinations::http::{classify, excerpt, Exchange};
use crate::destinations::DeliveryError;
use serde_json::Value;

/// The ticket id in a create, import or update answer (`{"ticket": {"id": …}}`).
pub fn ticket_id(body: &str) -> Option<i64> {
    let value: Value = serde_json::from_str(body).ok()?;
    value["ticket"]["id"].as_i64()
}

/// The ids of tickets listed by `GET /api/v2/tickets?external_id=…`, oldest first.
pub fn listed_ids(body: &str) -> Vec<i64> {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut ids: Vec<i64> = value["tickets"]
        .as_array()
        .map(|list| list.iter().filter_map(|t| t["id"].as_i64()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// `RecordInvalid` details in words: `requester: Email is invalid; status: …`.
pub fn validation_details(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut parts = Vec::new();
    if let Some(details) = value["details"].as_object() {
        for (field, problems) in details {
            let words: Vec<String> = problems
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|p| p["description"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            parts.push(format!("{field}: {}", words.join(", ")));
        }
    }
    let description = value["description"].as_str().unwrap_or("");
    match (description.is_empty(), parts.is_empty()) {
        (true, true) => String::from("no details given"),
        (false, true) => description.to_string(),
        (true, false) => parts.join("; "),
        (false, false) => format!("{description}: {}", parts.join("; ")),
    }
}

/// Whether an update was refused because the ticket is closed.
pub fn is_closed_ticket(response: &Exchange) -> bool {
    response.status == 422 && response.body.to_ascii_lowercase().contains("closed")
}

/// Whether Zendesk refused a reused `Idempotency-Key` with another body.
pub fn is_idempotency_conflict(response: &Exchange) -> bool {
    response.status == 400 && response.body.contains("IdempotentRequestError")
}

/// Classifies a non-2xx answer, with words that say what to check.
pub fn failure(response: &Exchange, what: &str) -> DeliveryError {
    let status = response.status;
    let excerpt = excerpt(&response.body);
    let permanent = |reason: String| DeliveryError::Permanent {
        reason,
        status: Some(status),
        excerpt: excerpt.clone(),
    };
    match status {
        // No request passes wrong credentials: pause rather than dead-letter.
        401 => DeliveryError::Unauthorized {
            reason: format!(
                "Zendesk refused the credentials (401) for {what}: check auth (OAuth), or email and api_token, or oauth_token"
            ),
            status: Some(status),
        },
        403 => permanent(format!(
            "Zendesk denied permission (403) for {what}: the API user must be an agent who may create tickets (Ticket Import needs an admin)"
        )),
        422 => permanent(format!(
            "Zendesk rejected {what} (422): {}",
            validation_details(&response.body)
        )),
        429 => DeliveryError::Retryable {
            reason: format!("Zendesk rate limit (429) for {what}"),
            status: Some(status),
            retry_after: response.retry_after,
            excerpt,
        },
        _ => match classify(status, response.retry_after, excerpt.clone()) {
            Err(DeliveryError::Retryable { retry_after, .. }) => DeliveryError::Retryable {
                reason: format!("Zendesk answered {status} for {what}"),
                status: Some(status),
                retry_after,
                excerpt,
            },
            _ => permanent(format!("Zendesk answered {status} for {what}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_details_name_fields_and_problems() {
        let body = r#"{"error":"RecordInvalid","description":"Record validation errors","details":{"requester":[{"description":"Requester: Email is invalid","error":"InvalidValue"}]}}"#;
        assert_eq!(
            validation_details(body),
            "Record validation errors: requester: Requester: Email is invalid"
        );
        assert_eq!(validation_details("not json"), "no details given");
    }

    #[test]
    fn ids_are_read_from_answers() {
        assert_eq!(
            ticket_id(r#"{"ticket":{"id":35436,"url":"x"}}"#),
            Some(35436)
        );
        assert_eq!(
            listed_ids(r#"{"tickets":[{"id":9},{"id":3}],"count":2}"#),
            vec![3, 9]
        );
        assert!(listed_ids("{}").is_empty());
    }
}
