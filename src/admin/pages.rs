//! The dashboard's pages: sign-in, overview, conversations, one conversation, dead letters,
//! and the retry form. Rendered with Handlebars; every value is HTML-escaped (no template
//! uses triple braces).

use super::views::{self, ListQuery, KINDS, STATES};
use super::{auth, AdminError, AdminState, Caller, Live};
use crate::store::admin::{Replay, Replayer};
use crate::store::now_ms;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono_tz::Tz;
use handlebars::{handlebars_helper, Handlebars};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::LazyLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("login", include_str!("templates/login.hbs")),
    ("error", include_str!("templates/error.hbs")),
    ("overview", include_str!("templates/overview.hbs")),
    ("conversations", include_str!("templates/conversations.hbs")),
    ("conversation", include_str!("templates/conversation.hbs")),
    ("dead", include_str!("templates/dead.hbs")),
];

/// Percent-encodes `text` for a URL path segment or query value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

handlebars_helper!(urlencode_helper: |text: Value| match text {
    Value::String(s) => urlencode(&s),
    Value::Null => String::new(),
    other => urlencode(&other.to_string()),
});
handlebars_helper!(local_time_helper: |ms: Value, tz: str| {
    let tz: Tz = tz.parse().unwrap_or(Tz::UTC);
    crate::render::helpers::format_time(&ms, tz, "%Y-%m-%d %H:%M:%S").unwrap_or_else(|| "—".into())
});
handlebars_helper!(seconds_helper: |s: Value| match s.as_i64() {
    Some(s) => crate::render::helpers::human_duration(s),
    None => "—".into(),
});
handlebars_helper!(percent_helper: |p: Value| match p.as_f64() {
    Some(p) => format!("{p}%"),
    None => "—".into(),
});

fn engine() -> Result<Handlebars<'static>, String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::html_escape);
    hb.register_partial("layout", include_str!("templates/layout.hbs"))
        .map_err(|e| e.to_string())?;
    for (name, text) in TEMPLATES {
        hb.register_template_string(name, text)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    hb.register_helper("urlencode", Box::new(urlencode_helper));
    hb.register_helper("local_time", Box::new(local_time_helper));
    hb.register_helper("seconds", Box::new(seconds_helper));
    hb.register_helper("percent", Box::new(percent_helper));
    Ok(hb)
}

static ENGINE: LazyLock<Result<Handlebars<'static>, String>> = LazyLock::new(engine);

/// Renders a page with `status`.
fn render(status: StatusCode, name: &str, data: &Value) -> Result<HttpResponse, AdminError> {
    let hb = ENGINE.as_ref().map_err(|e| AdminError::Render(e.clone()))?;
    let html = hb
        .render(name, data)
        .map_err(|e| AdminError::Render(e.to_string()))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// The answer to a failed page request: unauthenticated browsers go to the sign-in page,
/// anything else gets an error page with the right status.
fn failed(req: &HttpRequest, e: AdminError) -> HttpResponse {
    if matches!(e, AdminError::Unauthorized) {
        let next = req.uri().path_and_query().map_or("/admin", |p| p.as_str());
        return see_other(&format!("/admin/login?next={}", urlencode(next)));
    }
    let status = e.status();
    let data = json!({
        "title": status.canonical_reason().unwrap_or("Error"),
        "csrf": null, "nav": null, "tz": null,
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

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A redirect target from a form: only a path of this dashboard.
fn local_path(path: &str, fallback: &str) -> String {
    let ok = (path == "/admin" || path.starts_with("/admin/") || path.starts_with("/admin?"))
        && !path.contains("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control);
    if ok { path } else { fallback }.to_string()
}

/// The common part of every signed-in page's data.
fn base(title: &str, nav: &str, caller: &Caller, live: &Live) -> Value {
    let csrf = match caller {
        Caller::Session(s) => Value::from(s.csrf.clone()),
        Caller::Bearer => Value::Null,
    };
    json!({ "title": title, "nav": nav, "csrf": csrf, "tz": caller.tz(live).name() })
}

fn with(mut data: Value, extra: Value) -> Value {
    if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
        d.extend(e);
    }
    data
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

async fn login_page(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    match state.authenticate(&req) {
        Ok((_, Caller::Session(_))) => return see_other(&local_path(&query.next, "/admin")),
        Err(AdminError::NotFound(m)) => return failed(&req, AdminError::NotFound(m)),
        _ => {}
    }
    login_form(StatusCode::OK, &query.next, None).unwrap_or_else(|e| failed(&req, e))
}

fn login_form(
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> Result<HttpResponse, AdminError> {
    let data = json!({
        "title": "Sign in", "nav": null, "csrf": null, "tz": null,
        "next": local_path(next, "/admin"), "error": error,
    });
    render(status, "login", &data)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    tz: String,
    #[serde(default)]
    next: String,
}

/// Parses an `application/x-www-form-urlencoded` body.
fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_urlencoded::from_bytes(body).map_err(|e| AdminError::BadRequest(format!("form: {e}")))
}

async fn login(
    req: HttpRequest,
    state: web::Data<AdminState>,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        let live = state.live();
        let keys = live.keys.as_ref().ok_or_else(AdminError::off)?;
        if !auth::same_origin(&req) {
            return Err(AdminError::csrf());
        }
        // A client refused by the limiter is answered before its body is read.
        let client = state.client(&req, &live);
        state.limiter.check(client).map_err(AdminError::TooMany)?;
        let form: LoginForm = form(&state.body(payload).await?)?;
        if !keys.token_ok(form.token.trim()) {
            state.limiter.failed(client);
            tracing::warn!(client = ?client.map(|c| c.ip), "admin sign-in refused: wrong token");
            return login_form(
                StatusCode::UNAUTHORIZED,
                &form.next,
                Some("That is not the admin token."),
            );
        }
        let tz: Tz = form.tz.parse().unwrap_or(live.default_tz);
        let now = now_ms();
        let cookie = keys.issue(now, now, tz);
        let secure = req.connection_info().scheme() == "https";
        tracing::info!(client = ?client.map(|c| c.ip), "admin signed in");
        Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, local_path(&form.next, "/admin")))
            .insert_header((
                header::SET_COOKIE,
                auth::set_cookie(&cookie, secure, auth::SESSION_TTL),
            ))
            .finish())
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Signs out: ends every session issued until now, on every instance.
async fn logout(
    req: HttpRequest,
    state: web::Data<AdminState>,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        let (_, caller) = state.authenticate(&req)?;
        let form: CsrfForm = form(&state.body(payload).await?)?;
        AdminState::check_change(&req, &caller, Some(&form.csrf))?;
        state.sign_out_everywhere().await?;
        tracing::info!("admin signed out; every session issued before now has ended");
        Ok::<_, AdminError>(
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/login"))
                .insert_header((header::SET_COOKIE, auth::clear_cookie()))
                .finish(),
        )
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

async fn overview(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let view = views::overview(&state.store, state.health(), &live.destinations).await?;
        let data = with(
            base("Overview", "overview", &caller, &live),
            json!({ "view": view }),
        );
        render(StatusCode::OK, "overview", &data)
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

async fn conversations(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let view = views::conversations(&state.store, query.to_store()?).await?;
        let data = with(
            base("Conversations", "conversations", &caller, &live),
            json!({
                "view": view,
                "q": query.q, "kind": query.kind, "state": query.state,
                "kinds": KINDS, "states": STATES,
                "next_url": view.next_before.map(|b| list_url(&query, Some(b))),
                "first_url": query.before.map(|_| list_url(&query, None)),
            }),
        );
        render(StatusCode::OK, "conversations", &data)
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

#[derive(Deserialize)]
struct Notice {
    #[serde(default)]
    retried: Option<u64>,
    #[serde(default)]
    destination: Option<String>,
}

async fn conversation(
    req: HttpRequest,
    state: web::Data<AdminState>,
    key: web::Path<String>,
    notice: web::Query<Notice>,
) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let view =
            views::conversation(&state.store, &live.destinations, &key, caller.tz(&live)).await?;
        let data = with(
            base(&view.visitor.display_name, "conversations", &caller, &live),
            json!({ "view": view, "retried": notice.retried }),
        );
        render(StatusCode::OK, "conversation", &data)
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

async fn dead(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<Notice>,
) -> HttpResponse {
    let result = async {
        let (live, caller) = state.authenticate(&req)?;
        let destination = query.destination.clone().filter(|d| !d.is_empty());
        let view = views::dead(&state.store, destination.clone()).await?;
        let names: Vec<&str> = live.destinations.iter().map(|d| d.name()).collect();
        let back = match &destination {
            Some(d) => format!("/admin/dead?destination={}", urlencode(d)),
            None => "/admin/dead".into(),
        };
        let data = with(
            base("Dead letters", "dead", &caller, &live),
            json!({
                "view": view, "destinations": names, "destination": destination,
                "retried": query.retried, "back": back,
            }),
        );
        render(StatusCode::OK, "dead", &data)
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
}

async fn retry(
    req: HttpRequest,
    state: web::Data<AdminState>,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        let (_, caller) = state.authenticate(&req)?;
        let form: RetryForm = form(&state.body(payload).await?)?;
        AdminState::check_change(&req, &caller, Some(&form.csrf))?;
        let ids = views::parse_ids(&form.ids)?;
        let replayed = state
            .store
            .replay(Replay::Ids(ids), Replayer::Admin)
            .await?;
        state.wake_all();
        tracing::info!(replayed, "deliveries replayed from the admin dashboard");
        let back = local_path(&form.back, "/admin/dead");
        let separator = if back.contains('?') { '&' } else { '?' };
        Ok::<_, AdminError>(see_other(&format!("{back}{separator}retried={replayed}")))
    };
    result.await.unwrap_or_else(|e| failed(&req, e))
}

/// Registers the pages.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(overview))
        .route("/", web::get().to(overview))
        .route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/conversations", web::get().to(conversations))
        .route("/conversations/{key}", web::get().to(conversation))
        .route("/dead", web::get().to(dead))
        .route("/deliveries/retry", web::post().to(retry));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile() {
        engine().unwrap();
    }

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
    fn urlencode_leaves_only_unreserved_characters() {
        assert_eq!(urlencode("a b/č?&"), "a%20b%2F%C4%8D%3F%26");
    }
}
