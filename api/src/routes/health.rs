//! `GET /healthz` (the process is up), `GET /readyz` (the database answers) and `GET /metrics` (Prometheus).

use actix_web::{web, HttpResponse};
use diesel::RunQueryDsl;

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: answers as long as the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: 200 when a pooled connection runs `SELECT 1`, else 503.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.with_conn(|c| Ok(diesel::sql_query("SELECT 1").execute(c).map(|_| ())?)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(ackbox_runtime::ops::render(&state.metrics.registry))
}
