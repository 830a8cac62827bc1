//! `POST /api/v1/admin/replays` (a dry run, answered with its report, or a replay, started in
//! the background: 202), `GET /api/v1/admin/replays/{id}` (the job, with its progress) and
//! `GET /api/v1/admin/replays?limit=`: forwarded to dlq-replayer ([`super`]).

use axum::{
    Extension, Json,
    extract::{RawQuery, State},
    http::{HeaderValue, StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use dlq_api::{OperatorReplay, ReplayAccepted, ReplayJob, ReplayJobs, ReplayReport, ReplayRequest};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{JobId, require_operator};
use crate::{
    AppState,
    auth::Principal,
    body::JsonBody,
    error::{ApiError, ErrorBody},
    openapi::{self, TAG_ADMIN},
};

/// What the replayer answers to a replay request: the report (dry run) or the started job.
#[derive(Deserialize)]
#[serde(untagged)]
enum Started {
    Accepted(ReplayAccepted),
    Report(ReplayReport),
}

/// Replay dead letters (or dry-run it)
///
/// `dryRun: true` answers with what would be sent and what skipped, and why; nothing is sent
/// (the dry run is still recorded as a job). `dryRun: false` starts a replay job in the
/// background and answers 202 with its id: each chosen dead letter is re-published to its
/// original topic, rate limited (`rate`), skipping those already replayed by a job, parked or
/// discarded, replayed `cap` times already or without a value; every step is audited with the
/// caller as the operator. Follow it with `GET /api/v1/admin/replays/{id}`. A replay that was
/// interrupted resumes with its `jobId` and the same filter. One replay runs at a time.
#[utoipa::path(
    post,
    path = "/api/v1/admin/replays",
    operation_id = "startReplay",
    tag = TAG_ADMIN,
    request_body(content = ReplayRequest, content_type = "application/json", description = "At most 64 KiB; unknown fields (`operator` too) are refused."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The dry run's report", body = ReplayReport),
        (status = 202, description = "The replay started", body = ReplayAccepted,
            headers(("Location" = String, description = "`/api/v1/admin/replays/{jobId}`")),
            links(("GetReplay" = (operation_id = "getReplay", parameters(("id" = "$response.body#/jobId")), description = "How far the job is")))),
        (status = 400, description = "`invalid_body`, `invalid_filter` or `invalid_replay` (`rate`, `cap`, a dry run with a `jobId`)", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`replay_job_not_found`: `jobId` names a job of another tenant", body = ErrorBody),
        (status = 409, description = "`replay_in_progress` (another replay is running; wait for it) or `job_filter_mismatch` (resume a job with its own filter)", body = ErrorBody),
        (status = 413, description = "`body_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as `application/json`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE_REPLAY, body = ErrorBody),
    )
)]
pub async fn start(State(state): State<AppState>, Extension(caller): Extension<Principal>, JsonBody(request): JsonBody<ReplayRequest>) -> Result<Response, ApiError> {
    require_operator(&caller)?;
    let body = OperatorReplay::new(request, caller.subject.clone());
    let (_, started) = state.dlq.post::<_, Started>(&caller, "replays", &body).await?;
    Ok(match started {
        Started::Report(report) => (StatusCode::OK, Json(report)).into_response(),
        Started::Accepted(mut accepted) => {
            accepted.status_url = format!("/api/v1/admin/replays/{}", accepted.job_id);
            let location = HeaderValue::from_str(&accepted.status_url);
            let mut response = (StatusCode::ACCEPTED, Json(accepted)).into_response();
            if let Ok(location) = location {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
    })
}

/// A replay job
///
/// Who started it, with which filter, its state (`running`, `finished`, `failed`: a failed or
/// interrupted job resumes with its id), its counts, its progress (`done` of `total` to send,
/// while it runs) and what it did with each dead letter.
#[utoipa::path(
    get,
    path = "/api/v1/admin/replays/{id}",
    operation_id = "getReplay",
    tag = TAG_ADMIN,
    params(JobId),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = ReplayJob),
        (status = 400, description = "`invalid_job_id`: not a UUID", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 404, description = "`replay_job_not_found`: no such job (for an `ops` caller: of its tenant)", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE, body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>, Extension(caller): Extension<Principal>, JobId(id): JobId) -> Result<Json<ReplayJob>, ApiError> {
    require_operator(&caller)?;
    state.dlq.get(&caller, &format!("replays/{id}"), None).await.map(|(_, job)| Json(job))
}

/// `?limit=` of the job list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, which is forwarded as it came
pub struct JobsQuery {
    /// How many (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// Recent replay jobs
///
/// The newest jobs first (dry runs too), with their counts; an `ops` caller sees those of its
/// tenant.
#[utoipa::path(
    get,
    path = "/api/v1/admin/replays",
    operation_id = "listReplays",
    tag = TAG_ADMIN,
    params(JobsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The jobs", body = ReplayJobs),
        (status = 400, description = "`invalid_limit`: limit is 1-100", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADMIN_FORBIDDEN, body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 502, description = openapi::ADMIN_FAILED, body = ErrorBody),
        (status = 503, description = openapi::ADMIN_UNAVAILABLE, body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Principal>, RawQuery(query): RawQuery) -> Result<Json<ReplayJobs>, ApiError> {
    require_operator(&caller)?;
    state.dlq.get(&caller, "replays", query.as_deref()).await.map(|(_, jobs)| Json(jobs))
}
