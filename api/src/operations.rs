//! A job in the two shapes standard long-running-operation clients poll, beside Ackbox's own status document:
//!
//! - [`StatusMonitor`], the Azure REST API guidelines' status monitor (`GET /v1/operations/{id}`, the 202's
//!   `Operation-Location`): `status` is one of `NotStarted`, `Running`, `Succeeded`, `Failed`, `Canceled`, and a
//!   succeeded job names its result in `resourceLocation`. The Azure SDKs' `LROBasePolling` drives it unchanged.
//! - [`Operation`], `google.longrunning.Operation` in proto3 JSON (AIP-151; `GET /v1/jobs/{id}/operation`): `name`,
//!   `metadata`, `done`, and `response` or `error` once done.
//!
//! Both are views of the same row: the same tenant scoping (another tenant's id is 404) and the same moment.

use ackbox_db::models::{Job, JobStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::document::Links;

/// The status values the Azure guidelines define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum MonitorStatus {
    /// Accepted, no attempt started yet.
    NotStarted,
    /// An attempt runs, or the job waits for its next attempt after a failed one.
    Running,
    /// Done; the result is at `resourceLocation`.
    Succeeded,
    /// Done; it failed for good (`error` says why).
    Failed,
    /// Done; it was cancelled.
    Canceled,
}

impl MonitorStatus {
    /// Ackbox's state in the guidelines' terms. A `queued` job that already had an attempt (waiting out a retry
    /// backoff, or requeued after a lost lease) is `Running`: the operation is under way, not new.
    pub fn of(job: &Job) -> Self {
        match job.status {
            JobStatus::Queued if job.attempts == 0 => Self::NotStarted,
            JobStatus::Queued | JobStatus::Running => Self::Running,
            JobStatus::Succeeded => Self::Succeeded,
            JobStatus::Failed => Self::Failed,
            JobStatus::Cancelled => Self::Canceled,
        }
    }
}

/// `{code, message}` of a failed or cancelled job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MonitorError {
    /// Ackbox's error code (e.g. `timeout`, `deliberate_failure`, `cancelled`).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// The Azure-style status monitor of a job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusMonitor {
    /// The job id.
    pub id: Uuid,
    /// `NotStarted`, `Running`, `Succeeded`, `Failed` or `Canceled`.
    pub status: MonitorStatus,
    /// When the job was accepted.
    pub created_date_time: DateTime<Utc>,
    /// Its last change.
    pub last_action_date_time: DateTime<Utc>,
    /// The running attempt's last progress report, 0–100, when it made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_complete: Option<f64>,
    /// Why it failed or was cancelled (only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<MonitorError>,
    /// Absolute URL of the result (only once `Succeeded`): a poller's final GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_location: Option<String>,
}

fn error_of(job: &Job) -> Option<MonitorError> {
    let field = |k: &str| job.error_field(k).map(str::to_string);
    match job.status {
        JobStatus::Failed => Some(MonitorError {
            code: field("code").unwrap_or_else(|| "failed".into()),
            message: field("message").unwrap_or_else(|| "the job failed".into()),
        }),
        JobStatus::Cancelled => Some(MonitorError {
            code: "cancelled".into(),
            message: field("message")
                .filter(|_| job.error_field("code") == Some("cancelled"))
                .unwrap_or_else(|| "the job was cancelled".into()),
        }),
        _ => None,
    }
}

impl StatusMonitor {
    /// The monitor of `job`, its links under `base`.
    pub fn new(job: &Job, base: &str) -> Self {
        let status = MonitorStatus::of(job);
        Self {
            id: job.id,
            status,
            created_date_time: job.created_at,
            last_action_date_time: job.updated_at,
            percent_complete: job.progress.as_ref().and_then(|p| p.get("percent")).and_then(|p| p.as_f64()),
            error: error_of(job),
            resource_location: (status == MonitorStatus::Succeeded).then(|| Links::new(base, job.id).result),
        }
    }
}

/// A `google.protobuf.Any` holding a well-known type, in proto3 JSON: `{"@type": ..., "value": ...}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnyValue {
    /// `type.googleapis.com/google.protobuf.Value` (a result: any JSON) or `…/google.protobuf.Struct` (metadata).
    #[serde(rename = "@type")]
    pub type_url: String,
    /// The value.
    pub value: serde_json::Value,
}

/// `google.rpc.Status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RpcStatus {
    /// `google.rpc.Code`: 1 CANCELLED for a cancelled job, 4 DEADLINE_EXCEEDED for a timeout, 2 UNKNOWN otherwise.
    pub code: i32,
    /// What happened.
    pub message: String,
    /// One `google.rpc.ErrorInfo` whose `reason` is Ackbox's error code, `domain` `ackbox`.
    pub details: Vec<serde_json::Value>,
}

/// A job as a `google.longrunning.Operation` (AIP-151), in proto3 JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    /// `jobs/{id}/operation`: `GET /v1/{name}` reads it again.
    pub name: String,
    /// A `google.protobuf.Struct`: id, kind, Ackbox status, attempts, times, progress.
    pub metadata: AnyValue,
    /// True once succeeded, failed or cancelled.
    pub done: bool,
    /// Once succeeded: the result as a `google.protobuf.Value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<AnyValue>,
    /// Once failed or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcStatus>,
}

/// The resource name of a job's operation.
pub fn operation_name(id: Uuid) -> String {
    format!("jobs/{id}/operation")
}

impl Operation {
    /// The operation view of `job`.
    pub fn new(job: &Job) -> Self {
        let metadata = serde_json::json!({
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "attempts": job.attempts,
            "maxAttempts": job.max_attempts,
            "createTime": job.created_at,
            "updateTime": job.updated_at,
            "progress": job.progress,
        });
        let error = error_of(job).map(|e| RpcStatus {
            code: match (job.status, e.code.as_str()) {
                (JobStatus::Cancelled, _) => 1,
                (_, "timeout") => 4,
                _ => 2,
            },
            details: vec![serde_json::json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": e.code,
                "domain": "ackbox",
            })],
            message: e.message,
        });
        Self {
            name: operation_name(job.id),
            metadata: AnyValue { type_url: "type.googleapis.com/google.protobuf.Struct".into(), value: metadata },
            done: job.status.is_terminal(),
            response: (job.status == JobStatus::Succeeded).then(|| AnyValue {
                type_url: "type.googleapis.com/google.protobuf.Value".into(),
                value: job.result.clone().unwrap_or(serde_json::Value::Null),
            }),
            error,
        }
    }
}
