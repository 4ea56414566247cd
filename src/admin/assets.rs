//! The dashboard's stylesheet and its one small script, built into the binary (no CDN: the
//! dashboard works offline).

use actix_web::{http::header, web, HttpResponse};

const CSS: &str = include_str!("assets/admin.css");
const JS: &str = include_str!("assets/admin.js");
const ICON: &str = include_str!("assets/favicon.svg");

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

async fn icon() -> HttpResponse {
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// `GET /admin/static/admin.css`, `admin.js` and `favicon.svg`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/admin.css", web::get().to(css))
        .route("/static/admin.js", web::get().to(js))
        .route("/static/favicon.svg", web::get().to(icon));
}
