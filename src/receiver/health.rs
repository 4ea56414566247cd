//! `/healthz` (process up), `/readyz` (a commit can succeed) and `/metrics` (Prometheus text).

use super::ReceiverState;
use crate::store::now_ms;
use actix_web::{web, HttpResponse};

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// A conversation can be committed now (the store answers; after a failed commit, a write
/// probe succeeds).
pub async fn readyz(state: web::Data<ReceiverState>) -> HttpResponse {
    match state.store.ready().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "unavailable", "error": e.to_string() })),
    }
}

/// Counters, histograms and store gauges.
pub async fn metrics(state: web::Data<ReceiverState>) -> HttpResponse {
    let stats = state.store.stats().await.ok();
    if let Ok(waiting) = state.store.assemblies_pending().await {
        state.metrics.set_events_pending(waiting);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(stats, now_ms()))
}
