//! `GET /healthz` (the process is up) and `GET /readyz` (the database answers) on the public port, for load
//! balancers. `/metrics` is on the ops port only (`ACKBOX_API_OPS_BIND`, `ackbox_runtime::ops`).

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
