//! `GET /api/v1/admin/dead-letters` (list), `.../counts`, `.../{id}` (one, decoded) and
//! `POST .../park`, `.../unpark`, `.../discard`: forwarded to dlq-replayer ([`super`]).

use axum::{
    Extension, Json,
    extract::{RawQuery, State},
};
use dlq_api::{DeadLetterCounts, DeadLetterDetail, DeadLetterList, DispositionDone, DispositionRequest, OperatorDisposition};
use utoipa::IntoParams;

use super::{DeadLetterId, require_operator};
use crate::{
    AppState,
    auth::Principal,
    body::JsonBody,
    error::{ApiError, ErrorBody},
    openapi::{self, TAG_ADMIN},
};

/// The filter of a list, as query parameters: every one given must hold; `topic`, `id` and
/// `field` may be repeated.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, which is forwarded as it came
pub struct ListQuery {
    /// A dead-letter topic (catalogue name), e.g. `deadletter.ventures-sync.commands.v1`.
    #[param(pattern = r"^deadletter\.[A-Za-z0-9._-]{1,200}$")]
    topic: Option<Vec<String>>,
    /// Dead-lettered since: RFC 3339, or a duration ago (`15m`, `2h`, `7d`).
    #[param(max_length = 64, example = "2h")]
    since: Option<String>,
    /// Dead-lettered before: RFC 3339, or a duration ago.
    #[param(max_length = 64)]
    until: Option<String>,
    /// The original message's key.
    #[param(max_length = 256)]
    key: Option<String>,
    /// The decoded event's `tenant_id` (an `ops` caller: its own tenant only).
    #[param(max_length = 256)]
    tenant: Option<String>,
    /// `permanent` or `transient_exhausted`.
    #[param(max_length = 64)]
    class: Option<String>,
    /// The error kind (`validation`, `undecodable`, `http_5xx`, ...).
    #[param(max_length = 64)]
    kind: Option<String>,
    /// A dead-letter id.
    #[param(value_type = Option<Vec<String>>, format = Uuid)]
    id: Option<Vec<String>>,
    /// `path=value` on the decoded original event, e.g. `to_status=Open`.
    #[param(max_length = 512)]
    field: Option<Vec<String>>,
    /// How many to list (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// [`ListQuery`] without `limit`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, which is forwarded as it came
pub struct CountQuery {
    #[param(pattern = r"^deadletter\.[A-Za-z0-9._-]{1,200}$")]
    topic: Option<Vec<String>>,
    #[param(max_length = 64, example = "2h")]
    since: Option<String>,
    #[param(max_length = 64)]
    until: Option<String>,
    #[param(max_length = 256)]
    key: Option<String>,
    #[param(max_length = 256)]
    tenant: Option<String>,
    #[param(max_length = 64)]
    class: Option<String>,
    #[param(max_length = 64)]
    kind: Option<String>,
    #[param(value_type = Option<Vec<String>>, format = Uuid)]
    id: Option<Vec<String>>,
    #[param(max_length = 512)]
    field: Option<Vec<String>>,
}

/// List dead letters
///
/// Every `deadletter.*` topic's dead letters that match the filter, oldest first per partition,
/// decoded: topic, error class and kind, message, key, tenant, replays so far and whether an
/// operator parked or discarded it. Roles `ops` (its tenant's) and `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters",
    operation_id = "listDeadLetters",
    tag = TAG_ADMIN,
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The first `limit` that match, and how many match", body = DeadLetterList),
        (status = 400, description = openapi::ADMIN_BAD_FILTER, body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE, body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Principal>, RawQuery(query): RawQuery) -> Result<Json<DeadLetterList>, ApiError> {
    require_operator(&caller)?;
    state.dlq.get(&caller, "dead-letters", query.as_deref()).await.map(|(_, body)| Json(body))
}

/// Count dead letters
///
/// Per dead-letter topic, error class and kind: how many match the filter and the oldest one's
/// age. Roles `ops` (its tenant's) and `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters/counts",
    operation_id = "countDeadLetters",
    tag = TAG_ADMIN,
    params(CountQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The counts", body = DeadLetterCounts),
        (status = 400, description = openapi::ADMIN_BAD_FILTER, body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE, body = ErrorBody),
    )
)]
pub async fn counts(State(state): State<AppState>, Extension(caller): Extension<Principal>, RawQuery(query): RawQuery) -> Result<Json<DeadLetterCounts>, ApiError> {
    require_operator(&caller)?;
    state.dlq.get(&caller, "dead-letters/counts", query.as_deref()).await.map(|(_, body)| Json(body))
}

/// Show one dead letter
///
/// The envelope (source topic, partition and offset, consumer, error, attempts, trace id,
/// headers) and the original event decoded with its writer's schema (null when it is not
/// decodable). Roles `ops` (its tenant's) and `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters/{id}",
    operation_id = "getDeadLetter",
    tag = TAG_ADMIN,
    params(DeadLetterId),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetterDetail),
        (status = 400, description = "`invalid_dead_letter_id`: not a UUID", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`dead_letter_not_found`: no such dead letter (for an `ops` caller: in its tenant)", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE, body = ErrorBody),
    )
)]
pub async fn show(State(state): State<AppState>, Extension(caller): Extension<Principal>, DeadLetterId(id): DeadLetterId) -> Result<Json<DeadLetterDetail>, ApiError> {
    require_operator(&caller)?;
    state.dlq.get(&caller, &format!("dead-letters/{id}"), None).await.map(|(_, body)| Json(body))
}

async fn dispose(state: AppState, caller: Principal, request: DispositionRequest, action: &str) -> Result<Json<DispositionDone>, ApiError> {
    require_operator(&caller)?;
    let body = OperatorDisposition { ids: request.ids, reason: request.reason, operator: caller.subject.clone() };
    state.dlq.post(&caller, &format!("dead-letters/{action}"), &body).await.map(|(_, body)| Json(body))
}

/// Park dead letters
///
/// Holds them out of replays until they are unparked; audited with the caller and the reason.
/// They no longer count as waiting in `GET /api/v1/health/sync`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/dead-letters/park",
    operation_id = "parkDeadLetters",
    tag = TAG_ADMIN,
    request_body(content = DispositionRequest, content_type = "application/json", description = "At most 64 KiB; unknown fields (`operator` too) are refused."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Parked", body = DispositionDone),
        (status = 400, description = openapi::ADMIN_BAD_DISPOSITION, body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 404, description = openapi::ADMIN_DISPOSITION_NOT_FOUND, body = ErrorBody),
        (status = 413, description = "`body_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as `application/json`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE, body = ErrorBody),
    )
)]
pub async fn park(State(state): State<AppState>, Extension(caller): Extension<Principal>, JsonBody(request): JsonBody<DispositionRequest>) -> Result<Json<DispositionDone>, ApiError> {
    dispose(state, caller, request, "park").await
}

/// Unpark dead letters
///
/// Lets parked dead letters be replayed again; audited with the caller and the reason.
#[utoipa::path(
    post,
    path = "/api/v1/admin/dead-letters/unpark",
    operation_id = "unparkDeadLetters",
    tag = TAG_ADMIN,
    request_body(content = DispositionRequest, content_type = "application/json", description = "At most 64 KiB; unknown fields (`operator` too) are refused."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unparked", body = DispositionDone),
        (status = 400, description = openapi::ADMIN_BAD_DISPOSITION, body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 404, description = openapi::ADMIN_DISPOSITION_NOT_FOUND, body = ErrorBody),
        (status = 413, description = "`body_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as `application/json`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE, body = ErrorBody),
    )
)]
pub async fn unpark(State(state): State<AppState>, Extension(caller): Extension<Principal>, JsonBody(request): JsonBody<DispositionRequest>) -> Result<Json<DispositionDone>, ApiError> {
    dispose(state, caller, request, "unpark").await
}

/// Discard dead letters
///
/// They are never replayed; audited with the caller and the reason. They no longer count as
/// waiting in `GET /api/v1/health/sync`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/dead-letters/discard",
    operation_id = "discardDeadLetters",
    tag = TAG_ADMIN,
    request_body(content = DispositionRequest, content_type = "application/json", description = "At most 64 KiB; unknown fields (`operator` too) are refused."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Discarded", body = DispositionDone),
        (status = 400, description = openapi::ADMIN_BAD_DISPOSITION, body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 404, description = openapi::ADMIN_DISPOSITION_NOT_FOUND, body = ErrorBody),
        (status = 413, description = "`body_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as `application/json`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE, body = ErrorBody),
    )
)]
pub async fn discard(State(state): State<AppState>, Extension(caller): Extension<Principal>, JsonBody(request): JsonBody<DispositionRequest>) -> Result<Json<DispositionDone>, ApiError> {
    dispose(state, caller, request, "discard").await
}
