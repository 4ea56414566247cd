//! `POST /hooks/smartsupp/events/{token}`: Smartsupp's Webhooks API. Checks in order: token,
//! size, signature, JSON, envelope; then the event is committed before the 200. Closed
//! conversations are assembled later by the [`super::Assembler`], from the store.

use super::{ReceiveError, ReceiverState};
use crate::metrics::EventOutcome;
use crate::smartsupp::events::{signature, Envelope};
use crate::smartsupp::Identity;
use crate::store::events::{EventIngested, NewEvent};
use crate::store::{now_ms, Ingested, NewConversation};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Handles `/hooks/smartsupp/events/…`; the answer is 200 only after the event is committed.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ReceiverState>,
) -> Result<HttpResponse, ReceiveError> {
    let rest = req.path().strip_prefix(super::EVENTS_PREFIX).unwrap_or("");
    if rest.is_empty() {
        // `/hooks/smartsupp/events` itself is the legacy hook with the token "events".
        return super::hook::receive(req, payload, state).await;
    }
    let token = rest
        .strip_prefix('/')
        .filter(|t| !t.is_empty() && !t.contains('/'));
    let live = state.live();
    let Some(token) = token.filter(|_| live.smartsupp.events_enabled()) else {
        return Ok(HttpResponse::NotFound().finish());
    };
    if req.method() != actix_web::http::Method::POST {
        return Ok(HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, "POST"))
            .finish());
    }
    let result = accept(&req, token, payload, &state).await;
    match &result {
        Ok((_, outcome)) => state.metrics.event(*outcome),
        Err(e) => {
            state.metrics.event(EventOutcome::Refused(e.outcome()));
            if let ReceiveError::Unavailable(cause) = e {
                tracing::error!(error = %cause, "event refused: store unavailable");
            } else {
                tracing::debug!(error = %e, "event refused");
            }
        }
    }
    result.map(|(response, _)| response)
}

async fn accept(
    req: &HttpRequest,
    token: &str,
    payload: web::Payload,
    state: &ReceiverState,
) -> Result<(HttpResponse, EventOutcome), ReceiveError> {
    let live = state.live();
    let (body, client) = super::authenticated_body(req, token, payload, state, &live).await?;
    let header = req
        .headers()
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok());
    if !signature::verify(&live.smartsupp.webhook_secrets.0, &body, header) {
        state.limiter.failed(client);
        return Err(ReceiveError::BadSignature);
    }
    let envelope = Envelope::read(&body)?;
    if !live.smartsupp.stores(&envelope.event) {
        let answer = serde_json::json!({"status": "ignored", "event": envelope.event});
        return Ok((HttpResponse::Ok().json(answer), EventOutcome::Ignored));
    }
    let received_at = now_ms();
    let event = NewEvent {
        digest: Sha256::digest(&body).into(),
        raw: body,
        event: envelope.event,
        account_id: envelope.account_id,
        conversation_id: envelope.conversation_id,
        contact_id: envelope.contact_id,
        occurred_at: envelope.occurred_at,
        received_at,
        client_ip: client.map(|c| c.ip.to_string()),
        due_at: received_at + live.smartsupp.settle.0.as_millis() as i64,
    };
    let key = event.conversation_key();
    let name = event.event.clone();
    let ingested = state
        .store
        .ingest_event(event)
        .await
        .map_err(ReceiveError::Unavailable)?;
    match ingested {
        EventIngested::Stored { scheduled, .. } => {
            tracing::debug!(event = %name, conversation = ?key, scheduled, "event accepted");
            let answer = serde_json::json!({
                "status": "accepted",
                "event": name,
                "conversation": key,
                "assembly": if scheduled { "scheduled" } else { "waiting" },
            });
            Ok((HttpResponse::Ok().json(answer), EventOutcome::Accepted))
        }
        EventIngested::Duplicate => {
            let answer = serde_json::json!({
                "status": "duplicate",
                "event": name,
                "conversation": key,
            });
            Ok((HttpResponse::Ok().json(answer), EventOutcome::Duplicate))
        }
    }
}

/// The root span of a conversation version assembled from events (or imported): in the trace
/// its delivery attempts join, with the span id they name as parent, as a hook's arrival is
/// for a legacy hook.
fn assembled_span(
    tracer: &crate::telemetry::otlp::Tracer,
    started: u64,
    key: &str,
    digest: &[u8; 32],
    version: i64,
    deliveries: usize,
) {
    use crate::telemetry::trace::{ingest_ids, Kind, Span};
    let mut span = Span::start_at(
        tracer,
        ingest_ids(key, digest),
        None,
        "assemble conversation",
        Kind::Internal,
        started,
    );
    span.set("deskbridge.conversation.key", key.to_string());
    span.set("deskbridge.conversation.version", version);
    span.set("deskbridge.deliveries", deliveries as i64);
    span.stop();
}

/// What committing an assembled (or imported) conversation did.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The conversation key.
    pub key: String,
    /// New version (with its deliveries) or duplicate.
    pub ingested: Ingested,
}

/// Commits an assembled conversation body exactly as the hook commits a received one:
/// routed by each destination's `when`, versioned by key, one delivery per destination.
pub async fn commit_assembled(
    state: &ReceiverState,
    body: Bytes,
) -> Result<Committed, ReceiveError> {
    let live = state.live();
    let identity = Identity::read(&body)?;
    let received_at = now_ms();
    let started = state
        .tracer
        .as_ref()
        .map(|_| crate::telemetry::trace::now_nanos());
    let destinations = live.route(&body, &identity.key, received_at)?;
    let wake: Vec<String> = destinations
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.destination.clone())
        .collect();
    let digest: [u8; 32] = Sha256::digest(&body).into();
    let conversation = NewConversation {
        key: identity.key.clone(),
        digest,
        raw: body,
        received_at,
        client_ip: None,
        kind: identity.kind,
        visitor_name: identity.name,
        visitor_email: identity.email,
        began_at: identity.began_at,
        ended_at: identity.ended_at,
        destinations,
    };
    let ingested = state
        .store
        .ingest(conversation)
        .await
        .map_err(ReceiveError::Unavailable)?;
    if let Ingested::Accepted {
        version,
        deliveries,
        ..
    } = ingested
    {
        if let (Some(tracer), Some(started)) = (&state.tracer, started) {
            assembled_span(tracer, started, &identity.key, &digest, version, deliveries);
        }
        for destination in &wake {
            live.wakers.wake(destination);
        }
    }
    Ok(Committed {
        key: identity.key,
        ingested,
    })
}
