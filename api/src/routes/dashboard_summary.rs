//! `GET /dashboard/api/summary` (admin key): everything the dashboard shows, in one document and one blocking task.

use std::time::Duration;

use ackbox_db::models::consumer_lag::{self, LagRow};
use ackbox_db::models::job::{counts_by_status_and_kind, list_all, AdminFilter};
use ackbox_db::models::JobStatus;
use ackbox_db::outbox::{self, BacklogSample, OutboxStats};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

/// The chart's window.
const HISTORY: Duration = Duration::from_secs(3600);
/// Failures listed.
const RECENT_FAILURES: i64 = 10;

/// One (status, kind) count.
#[derive(Serialize)]
struct Count {
    status: JobStatus,
    kind: String,
    count: i64,
}

/// A recent failure.
#[derive(Serialize)]
struct Failure {
    id: Uuid,
    kind: String,
    tenant: Option<String>,
    attempts: i32,
    code: Option<String>,
    message: Option<String>,
    finished_at: Option<DateTime<Utc>>,
}

/// The dashboard's document.
#[derive(Serialize)]
struct Summary {
    generated_at: DateTime<Utc>,
    jobs: Vec<Count>,
    outbox: OutboxStats,
    backlog_history: Vec<BacklogSample>,
    consumer_lag: Vec<LagRow>,
    recent_failures: Vec<Failure>,
}

/// Serves the summary.
pub async fn summary(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let summary = state
        .with_conn(|c| {
            let jobs = counts_by_status_and_kind(c)?
                .into_iter()
                .map(|(status, kind, count)| Count { status, kind, count })
                .collect();
            let failed = AdminFilter { status: Some(JobStatus::Failed), limit: RECENT_FAILURES, ..Default::default() };
            let recent_failures = list_all(c, &failed)?
                .into_iter()
                .map(|(j, tenant)| {
                    let field =
                        |k: &str| j.error.as_ref().and_then(|e| e.get(k)).and_then(|v| v.as_str()).map(String::from);
                    Failure {
                        id: j.id,
                        kind: j.kind.clone(),
                        tenant,
                        attempts: j.attempts,
                        code: field("code"),
                        message: field("message"),
                        finished_at: j.finished_at,
                    }
                })
                .collect();
            Ok(Summary {
                generated_at: Utc::now(),
                jobs,
                outbox: outbox::stats(c)?,
                backlog_history: outbox::backlog_history(c, HISTORY)?,
                consumer_lag: consumer_lag::current(c, consumer_lag::FRESH)?,
                recent_failures,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(summary))
}
