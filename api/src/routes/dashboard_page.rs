//! `GET /dashboard` and its script and style: static files compiled into the binary (no build step, nothing fetched
//! from the internet). The page holds no data: it asks for an admin key (or reads it from the URL fragment, which
//! browsers never send to a server) and calls `/dashboard/api/*` with it as a bearer token.

use actix_web::http::header;
use actix_web::HttpResponse;

const HTML: &str = include_str!("../../assets/dashboard.html");
const JS: &str = include_str!("../../assets/dashboard.js");
const CSS: &str = include_str!("../../assets/dashboard.css");

/// Only our own script and style, no framing, no referrer (the fragment may hold the key).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The page.
pub async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", HTML)
}

/// Its script.
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

/// Its style.
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}
