//! `GET /v1/callbacks/secret`: the caller's tenant's callback signing secret, made at first use.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::callbacks::sign::new_secret;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// A tenant's callback signing secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CallbackSecret {
    /// `whsec_` and the base64 of the HMAC-SHA256 key, as the Standard Webhooks libraries take it: verify
    /// `webhook-signature` against `"{webhook-id}.{webhook-timestamp}.{body}"` with it, and refuse a
    /// `webhook-timestamp` far from now (replays).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// Get the callback signing secret of the caller's tenant.
#[utoipa::path(
    get, path = "/v1/callbacks/secret", tag = "callbacks",
    responses(
        (status = 200, description = "The secret every callback of this tenant's jobs is signed with", body = CallbackSecret),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or the database unreachable; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_callback_secret(state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ApiError> {
    let id = tenant.0;
    let secret = state
        .with_conn(move |c| Ok(ackbox_db::callbacks::secret(c, id, &new_secret())?))
        .await?
        // An authenticated key's tenant exists.
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(CallbackSecret { secret }))
}
