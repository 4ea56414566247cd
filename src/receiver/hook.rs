//! `POST /hooks/smartsupp/{token}`: authenticate, limit, identify, route, commit, answer.

use super::{ReceiveError, ReceiverState};
use crate::metrics::HookOutcome;
use crate::smartsupp::{Identity, Stored};
use crate::store::{now_ms, Ingested, NewConversation};
use crate::telemetry::spans::HookTrace;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// Handles `/hooks/smartsupp/…`; the answer is 200 only after the conversation is committed.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ReceiverState>,
) -> Result<HttpResponse, ReceiveError> {
    let token = req
        .path()
        .strip_prefix(super::HOOK_PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|t| !t.is_empty() && !t.contains('/'));
    let Some(token) = token else {
        return Ok(HttpResponse::NotFound().finish());
    };
    if req.method() != actix_web::http::Method::POST {
        return Ok(HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, "POST"))
            .finish());
    }
    let arrived = std::time::Instant::now();
    let mut trace = HookTrace::start(state.tracer.as_ref());
    let result = accept(&req, token, payload, &state, &mut trace).await;
    match &result {
        Ok((response, outcome)) => {
            state.metrics.hook(*outcome);
            if *outcome == HookOutcome::Accepted {
                state
                    .metrics
                    .hook_committed(arrived.elapsed().as_secs_f64());
            }
            trace.finish(response.status().as_u16(), outcome.label());
        }
        Err(e) => {
            state.metrics.hook(e.outcome());
            trace.finish(
                actix_web::ResponseError::status_code(e).as_u16(),
                e.outcome().label(),
            );
            if let ReceiveError::Unavailable(cause) = e {
                tracing::error!(error = %cause, "hook refused: store unavailable");
            } else {
                tracing::debug!(error = %e, "hook refused");
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
    trace: &mut HookTrace,
) -> Result<(HttpResponse, HookOutcome), ReceiveError> {
    let live = state.live();
    let (body, client) = super::authenticated_body(req, token, payload, state, &live).await?;
    let identity = Identity::read(&body)?;
    let digest: [u8; 32] = Sha256::digest(&body).into();
    trace.identified(&identity.key, &digest);
    let received_at = now_ms();
    let mut destinations = live.route(&body, &identity.key, received_at)?;
    // Room in the lanes, reserved before the commit: those deliveries are committed claimed
    // and handed straight to their lane, without a claim from the store.
    let reserved = live.wakers.reserve(&mut destinations, received_at);
    let raw = body.clone();
    let conversation = NewConversation {
        key: identity.key,
        digest,
        raw: body,
        received_at,
        client_ip: client.map(|c| c.ip.to_string()),
        kind: identity.kind,
        visitor_name: identity.name,
        visitor_email: identity.email,
        began_at: identity.began_at,
        ended_at: identity.ended_at,
        destinations,
    };
    let key = conversation.key.clone();
    let client = conversation.client_ip.clone().unwrap_or_default();
    trace.commit_started();
    let ingested = state.store.ingest(conversation).await;
    trace.committed(match &ingested {
        Ok(Ingested::Accepted {
            version,
            deliveries,
            ..
        }) => Ok(Some((*version, *deliveries))),
        Ok(Ingested::Duplicate) => Ok(None),
        Err(_) => Err("the store could not commit"),
    });
    let ingested = ingested.map_err(ReceiveError::Unavailable)?;
    match ingested {
        Ingested::Accepted {
            version,
            deliveries,
            leased,
        } => {
            let stored = Stored {
                key,
                version,
                received_at,
            };
            reserved.hand_over(&leased, &stored, &raw);
            let key = stored.key;
            tracing::debug!(conversation = %key, version, deliveries, client = %client, "hook accepted");
            let body = serde_json::json!({
                "status": "accepted",
                "conversation": key,
                "version": version,
                "deliveries": deliveries,
            });
            Ok((HttpResponse::Ok().json(body), HookOutcome::Accepted))
        }
        Ingested::Duplicate => {
            tracing::debug!(conversation = %key, client = %client, "duplicate hook");
            let body = serde_json::json!({
                "status": "duplicate",
                "conversation": key,
                "deliveries": 0,
            });
            Ok((HttpResponse::Ok().json(body), HookOutcome::Duplicate))
        }
    }
}
