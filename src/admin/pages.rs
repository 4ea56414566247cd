//! The dashboard's pages: overview, conversations, one conversation, dead letters, and the
//! retry form (post/redirect/get with a one-time notice); the error page every page shares.
//! Rendered from the views by [`super::templating`]; signing in and out is [`super::signin`].

use super::templating::{self, urlencode};
use super::views::{self, DeadQuery, ListQuery, KINDS};
use super::{notice, AdminError, AdminState, Caller, Live};
use crate::store::admin::{Replay, Replayer};
use crate::store::now_ms;
use crate::store::DeliveryState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// How often the overview reloads itself while open (its script; the admin may pause it).
const OVERVIEW_REFRESH_SECONDS: u32 = 30;

/// Renders a page with `status`.
pub(super) fn render(
    status: StatusCode,
    name: &str,
    data: &Value,
) -> Result<HttpResponse, AdminError> {
    let html = templating::render(name, data).map_err(AdminError::Render)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// Renders a signed-in page: with the one-time notice the request carries (shown once, then
/// cleared, so a reload does not show it again).
fn show(
    req: &HttpRequest,
    live: &Live,
    name: &str,
    mut data: Value,
) -> Result<HttpResponse, AdminError> {
    let pending = live
        .keys
        .as_ref()
        .and_then(|keys| notice::read(req, keys, now_ms()));
    if let (Some(Some(text)), Value::Object(d)) = (&pending, &mut data) {
        d.insert("notice".into(), Value::from(text.clone()));
    }
    let mut response = render(StatusCode::OK, name, &data)?;
    if pending.is_some() {
        if let Ok(value) = header::HeaderValue::from_str(&notice::clear_cookie()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// The answer to a failed page request: unauthenticated browsers go to the sign-in page,
/// anything else gets an error page with the right status.
pub(super) fn failed(req: &HttpRequest, e: AdminError) -> HttpResponse {
    if matches!(e, AdminError::Unauthorized) {
        let next = req.uri().path_and_query().map_or("/admin", |p| p.as_str());
        return see_other(&format!("/admin/login?next={}", urlencode(next)));
    }
    let status = e.status();
    let data = json!({
        "title": status.canonical_reason().unwrap_or("Error"),
        "csrf": null, "nav": null, "tz": null, "notice": null, "refresh": null,
        "status": format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
        "message": e.to_string(),
    });
    let mut response = render(status, "error", &data).unwrap_or_else(|e| {
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(e.to_string())
    });
    if let AdminError::TooMany(seconds) = e {
        if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A redirect target from a form: only a path of this dashboard.
pub(super) fn local_path(path: &str, fallback: &str) -> String {
    let ok = (path == "/admin" || path.starts_with("/admin/") || path.starts_with("/admin?"))
        && !path.contains("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control);
    if ok { path } else { fallback }.to_string()
}

/// Parses an `application/x-www-form-urlencoded` body.
pub(super) fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_urlencoded::from_bytes(body).map_err(|e| AdminError::BadRequest(format!("form: {e}")))
}

/// The common part of every signed-in page's data.
fn base(title: &str, nav: &str, caller: &Caller, live: &Live) -> Value {
    let csrf = match caller {
        Caller::Session(s) => Value::from(s.csrf.clone()),
        Caller::Bearer => Value::Null,
    };
    json!({
        "title": title, "nav": nav, "csrf": csrf, "tz": caller.tz(live).name(),
        "notice": null, "refresh": null,
    })
}

fn with(mut data: Value, extra: Value) -> Value {
    if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
        d.extend(e);
    }
    data
}

async fn overview(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let view = views::overview(&state.store, state.health(), &live.destinations).await?;
        let data = with(
            base("Overview", "overview", &caller, &live),
            json!({ "view": view, "refresh": OVERVIEW_REFRESH_SECONDS }),
        );
        show(&req, &live, "overview", data)
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

/// The address of a page of the conversation list with `query`'s filters.
fn list_url(query: &ListQuery, before: Option<i64>) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        ("q", &query.q),
        ("kind", &query.kind),
        ("state", &query.state),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{name}={}", urlencode(v)));
        }
    }
    if let Some(b) = before {
        parts.push(format!("before={b}"));
    }
    if parts.is_empty() {
        "/admin/conversations".into()
    } else {
        format!("/admin/conversations?{}", parts.join("&"))
    }
}

/// "12 conversations match", "More than 1000 conversations", with which of them are shown.
fn count_text(view: &views::ConversationsView, filtered: bool, later_page: bool) -> String {
    let n = view.count;
    let mut text = match (view.count_capped, n) {
        (true, _) => format!("More than {n} conversations"),
        (false, 1) => "1 conversation".to_string(),
        (false, _) => format!("{n} conversations"),
    };
    if filtered {
        text.push_str(if n == 1 && !view.count_capped {
            " matches"
        } else {
            " match"
        });
    }
    let shown = view.conversations.len();
    if later_page {
        text.push_str(&format!("; {shown} older ones shown here"));
    } else if view.next_before.is_some() {
        text.push_str(&format!("; the newest {shown} are shown"));
    }
    text.push('.');
    text
}

async fn conversations(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let view = views::conversations(&state.store, query.to_store()?).await?;
        let filtered = [&query.q, &query.kind, &query.state]
            .iter()
            .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()));
        let data = with(
            base("Conversations", "conversations", &caller, &live),
            json!({
                "count_text": count_text(&view, filtered, query.before.is_some()),
                "view": view,
                "q": query.q, "kind": query.kind, "state": query.state,
                "kinds": KINDS, "states": DeliveryState::ALL,
                "next_url": view.next_before.map(|b| list_url(&query, Some(b))),
                "first_url": query.before.map(|_| list_url(&query, None)),
            }),
        );
        show(&req, &live, "conversations", data)
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

async fn conversation(
    req: HttpRequest,
    state: web::Data<AdminState>,
    key: web::Path<String>,
) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let view = views::conversation(
            &state.store,
            &live.destinations,
            state.health(),
            &key,
            caller.tz(&live),
        )
        .await?;
        let data = with(
            base(&view.visitor.display_name, "conversations", &caller, &live),
            json!({ "view": view, "back": format!("/admin/conversations/{}", urlencode(&key)) }),
        );
        show(&req, &live, "conversation", data)
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

async fn dead(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<DeadQuery>,
) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let destination = query.destination();
        let view = views::dead(&state.store, destination.clone()).await?;
        let names: Vec<&str> = live.destinations.iter().map(|d| d.name()).collect();
        let back = match &destination {
            Some(d) => format!("/admin/dead?destination={}", urlencode(d)),
            None => "/admin/dead".into(),
        };
        let data = with(
            base("Dead letters", "dead", &caller, &live),
            json!({
                "view": view, "destinations": names, "destination": destination, "back": back,
            }),
        );
        show(&req, &live, "dead", data)
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

#[derive(Deserialize)]
struct RetryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ids: String,
    #[serde(default)]
    back: String,
    /// `send-again` when the deliveries were done (only the notice's words differ).
    #[serde(default)]
    action: String,
}

/// What the notice after a replay says: how many deliveries go again, and how many asked
/// for were left alone.
fn replay_notice(replayed: usize, asked: usize, send_again: bool) -> String {
    let things = |n: usize| format!("{n} {}", if n == 1 { "delivery" } else { "deliveries" });
    let mut text = match (replayed, send_again) {
        (0, _) => {
            "Nothing was sent again: the deliveries were pending already, or are gone.".to_string()
        }
        (n, true) => format!(
            "{} will be sent again within seconds (marked as replayed by admin).",
            things(n)
        ),
        (n, false) => format!(
            "{} {} due again and will be sent within seconds (marked as retried by admin).",
            things(n),
            if n == 1 { "is" } else { "are" }
        ),
    };
    if replayed > 0 && asked > replayed {
        text.push_str(&format!(
            " {} left alone: pending already, or gone.",
            things(asked - replayed)
        ));
    }
    text
}

async fn retry(
    req: HttpRequest,
    state: web::Data<AdminState>,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let form: RetryForm = form(&state.body(payload).await?)?;
        AdminState::check_change(&req, &caller, Some(&form.csrf))?;
        let ids = views::parse_ids(&form.ids)?;
        let asked = ids.len();
        let replayed = state
            .store
            .replay(Replay::Ids(ids), Replayer::Admin)
            .await?;
        state.wake_all();
        tracing::info!(replayed, "deliveries replayed from the admin dashboard");
        let mut answer = see_other(&local_path(&form.back, "/admin/dead"));
        if let Some(keys) = live.keys.as_ref() {
            let text = replay_notice(replayed, asked, form.action == "send-again");
            let secure = req.connection_info().scheme() == "https";
            let cookie = notice::set_cookie(keys, &text, now_ms(), secure);
            if let Ok(value) = header::HeaderValue::from_str(&cookie) {
                answer.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        Ok::<_, AdminError>(answer)
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

/// Registers the pages.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(overview))
        .route("/", web::get().to(overview))
        .route("/conversations", web::get().to(conversations))
        .route("/conversations/{key}", web::get().to(conversation))
        .route("/dead", web::get().to(dead))
        .route("/deliveries/retry", web::post().to(retry));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_in_the_dashboard() {
        assert_eq!(
            local_path("/admin/dead?destination=a", "/x"),
            "/admin/dead?destination=a"
        );
        assert_eq!(local_path("/admin", "/x"), "/admin");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/admin//evil",
            "/administrator",
            "/admin/\\evil",
            "",
        ] {
            assert_eq!(local_path(bad, "/x"), "/x", "{bad}");
        }
    }

    #[test]
    fn replay_notices_count_what_goes_again_and_what_was_left() {
        assert_eq!(
            replay_notice(1, 1, false),
            "1 delivery is due again and will be sent within seconds (marked as retried by admin)."
        );
        assert_eq!(
            replay_notice(2, 3, false),
            "2 deliveries are due again and will be sent within seconds (marked as retried by admin). 1 delivery left alone: pending already, or gone."
        );
        assert!(replay_notice(1, 1, true).starts_with("1 delivery will be sent again"));
        assert!(replay_notice(0, 2, false).starts_with("Nothing was sent again"));
    }
}
