//! Signing in and out: the sign-in form (refused clients are answered before their body is
//! read), the session cookie it sets, and signing out everywhere.

use super::pages::{failed, form, local_path, render, see_other};
use super::{auth, AdminError, AdminState, Caller};
use crate::store::now_ms;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::json;

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
        "title": "Sign in", "nav": null, "csrf": null, "tz": null, "notice": null,
        "refresh": null, "next": local_path(next, "/admin"), "error": error,
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

/// Registers `/login` and `/logout`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout));
}
