//! The JSON admin API under `/admin/api`: what the pages show and do, for scripts (with the
//! admin token as `Authorization: Bearer`) and for signed-in browsers (POSTs then need the
//! `X-CSRF-Token` header). Documented in docs/ADMIN.md.

use super::views::{self, DeadQuery, ListQuery};
use super::{AdminError, AdminState};
use crate::config::HumanDuration;
use crate::store::admin::{DeliveryFilter, Replay, Replayer};
use crate::store::now_ms;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;

/// An API failure: the status and `{"error": "…"}`.
#[derive(Debug)]
struct ApiError(AdminError);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.0.status()
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match &self.0 {
            AdminError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            AdminError::TooMany(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        response.json(json!({ "error": self.0.to_string() }))
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        Self(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into())
    }
}

type Answer = Result<HttpResponse, ApiError>;

async fn overview(req: HttpRequest, state: web::Data<AdminState>) -> Answer {
    let (live, _) = state.authenticate(&req)?;
    let view = views::overview(&state.store, state.health(), &live.destinations).await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn conversations(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<ListQuery>,
) -> Answer {
    state.authenticate(&req)?;
    let view = views::conversations(&state.store, query.to_store()?).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
struct TzQuery {
    #[serde(default)]
    tz: Option<String>,
}

async fn conversation(
    req: HttpRequest,
    state: web::Data<AdminState>,
    key: web::Path<String>,
    query: web::Query<TzQuery>,
) -> Answer {
    let (live, caller) = state.authenticate(&req)?;
    let tz = match query.tz.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => t.parse().map_err(|_| {
            AdminError::BadRequest(format!(
                "tz {t:?} is not an IANA time zone such as Europe/Prague"
            ))
        })?,
        None => caller.tz(&live),
    };
    let view =
        views::conversation(&state.store, &live.destinations, state.health(), &key, tz).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

fn since(text: Option<&str>) -> Result<Option<i64>, AdminError> {
    match text.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            let d = HumanDuration::parse(s).map_err(|e| {
                AdminError::BadRequest(format!("since: {e} (use e.g. 30m, 2h, 7d)"))
            })?;
            Ok(Some(d.before(now_ms())))
        }
    }
}

async fn deliveries(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<DeliveriesQuery>,
) -> Answer {
    state.authenticate(&req)?;
    let query = query.into_inner();
    let rows = state
        .store
        .deliveries(DeliveryFilter {
            state: views::state_filter(query.state)?,
            destination: query.destination.filter(|d| !d.is_empty()),
            since: since(query.since.as_deref())?,
            limit: query.limit.unwrap_or(100).clamp(1, 1000),
        })
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// The dead letters page's view: dead deliveries grouped by destination and error.
async fn dead_letters(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<DeadQuery>,
) -> Answer {
    state.authenticate(&req)?;
    let view = views::dead(&state.store, query.destination()).await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn delivery(req: HttpRequest, state: web::Data<AdminState>, id: web::Path<String>) -> Answer {
    let (live, _) = state.authenticate(&req)?;
    let id: i64 = id
        .parse()
        .map_err(|_| AdminError::BadRequest(format!("{:?} is not a delivery id", id.as_str())))?;
    let view = views::delivery(&state.store, &live.destinations, state.health(), id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no delivery {id}")))?;
    Ok(HttpResponse::Ok().json(view))
}

/// What to replay: `{"ids": [1, 2]}` or `{"dead": true, "destination": "…", "since": "2h"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryRequest {
    #[serde(default)]
    ids: Vec<i64>,
    #[serde(default)]
    dead: bool,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    since: Option<String>,
}

async fn retry(req: HttpRequest, state: web::Data<AdminState>, payload: web::Payload) -> Answer {
    let (_, caller) = state.authenticate(&req)?;
    let csrf = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok());
    AdminState::check_change(&req, &caller, csrf)?;
    // Read only now: an unauthenticated caller never gets its body read.
    let body = state.body(payload).await?;
    let request: RetryRequest =
        serde_json::from_slice(&body).map_err(|e| AdminError::BadRequest(format!("body: {e}")))?;
    let what = match (request.ids.is_empty(), request.dead) {
        (false, false) => Replay::Ids(request.ids),
        (true, true) => Replay::Dead {
            destination: request.destination.filter(|d| !d.is_empty()),
            since: since(request.since.as_deref())?,
        },
        _ => {
            return Err(AdminError::BadRequest(
                "send either \"ids\": [delivery ids] or \"dead\": true (with optional \"destination\" and \"since\")".into(),
            )
            .into())
        }
    };
    let replayed = state.store.replay(what, Replayer::Admin).await?;
    state.wake_all();
    tracing::info!(replayed, "deliveries replayed through the admin API");
    Ok(HttpResponse::Ok().json(json!({ "replayed": replayed })))
}

/// This API's OpenAPI document (docs/openapi.yaml) as JSON.
async fn openapi(req: HttpRequest, state: web::Data<AdminState>) -> Answer {
    state.authenticate(&req)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(super::openapi::json()))
}

async fn not_found() -> Answer {
    Err(AdminError::NotFound("no such admin API endpoint (see docs/ADMIN.md)".into()).into())
}

/// Registers the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .route("/openapi.json", web::get().to(openapi))
            .route("/overview", web::get().to(overview))
            .route("/conversations", web::get().to(conversations))
            .route("/conversations/{key}", web::get().to(conversation))
            .route("/deliveries", web::get().to(deliveries))
            .route("/deliveries/retry", web::post().to(retry))
            .route("/deliveries/{id}", web::get().to(delivery))
            .route("/dead-letters", web::get().to(dead_letters))
            .default_service(web::to(not_found)),
    );
}
