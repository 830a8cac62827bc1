//! The admin API for dead letters (flow 8), `/api/v1/admin/...`, for roles `ops` and `admin`
//! only (403 `forbidden` for the others). The gateway does not touch dead letters or the
//! replayer's audit itself: it forwards each request to dlq-replayer's internal API
//! (`dlq-replayer serve`, at `API_GATEWAY__DLQ_REPLAYER_URL`) with
//! - the operator: the token's subject, never anything the body says (bodies refuse `operator`);
//! - a tenant scope: an `ops` caller sees and acts on its own tenant's dead letters and replays
//!   only; an `admin` is the platform's operator and sees every tenant's, and those without a
//!   tenant (undecodable poison).
//!
//! Answers: the replayer's bodies ([`dlq_api`], checked on the way through), its 4xx and 503
//! codes as they are (each listed in `docs/errors.md`); 503 `dlq_replayer_unavailable` when it
//! cannot be reached or does not answer in time, 502 `dlq_replayer_failed` for anything else.

pub mod dead_letters;
pub mod replays;

use std::time::Duration;

use axum::{
    extract::{FromRequestParts, Path},
    http::{StatusCode, request::Parts},
};
use brain_runtime::settings::{Env, SettingsError};
use dlq_api::SCOPE_HEADER;
use serde::{Serialize, de::DeserializeOwned};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::{
    auth::{Principal, Role},
    error::ApiError,
};

/// Where dlq-replayer's API is.
#[derive(Debug, Clone)]
pub struct DlqSettings {
    /// `DLQ_REPLAYER_URL`: `http(s)://host:port` of `dlq-replayer serve`.
    pub url: reqwest::Url,
    /// `DLQ_REPLAYER_TIMEOUT_MS`: each forwarded request (below the gateway's own timeout).
    pub timeout: Duration,
}

impl DlqSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let raw: String = env.or("DLQ_REPLAYER_URL", "http://127.0.0.1:8085".to_string())?;
        let url = reqwest::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host() && u.query().is_none())
            .ok_or_else(|| SettingsError::Invalid { var: "API_GATEWAY__DLQ_REPLAYER_URL".into(), value: raw.clone(), reason: "an http(s) URL without a query".into() })?;
        Ok(Self { url, timeout: env.millis_in("DLQ_REPLAYER_TIMEOUT_MS", 9_000, 100..=600_000)? })
    }
}

impl Default for DlqSettings {
    fn default() -> Self {
        Self { url: reqwest::Url::parse("http://127.0.0.1:8085").expect("a valid URL"), timeout: Duration::from_secs(9) }
    }
}

/// The replayer's codes the gateway passes on (anything else is 502 `dlq_replayer_failed`).
const PASSED_ON: [&str; 15] = [
    "invalid_filter",
    "invalid_limit",
    "invalid_body",
    "invalid_dead_letter_id",
    "invalid_job_id",
    "invalid_replay",
    "invalid_disposition",
    "forbidden",
    "dead_letter_not_found",
    "replay_job_not_found",
    "replay_in_progress",
    "job_filter_mismatch",
    "dead_letters_unavailable",
    "audit_unavailable",
    "shutting_down",
];

fn unavailable() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "dlq_replayer_unavailable", "the dead-letter service (dlq-replayer) cannot be reached; retry later")
}

fn failed() -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "dlq_replayer_failed", "the dead-letter service (dlq-replayer) failed; see the gateway's and its logs")
}

/// A client of dlq-replayer's API; cheap to clone.
#[derive(Clone)]
pub struct DlqClient {
    http: reqwest::Client,
    base: reqwest::Url,
}

impl DlqClient {
    pub fn new(settings: &DlqSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(settings.timeout).user_agent(concat!("brain-api-gateway/", env!("CARGO_PKG_VERSION"))).build()?;
        Ok(Self { http, base: settings.url.clone() })
    }

    fn url(&self, path: &str, query: Option<&str>) -> Result<reqwest::Url, ApiError> {
        let mut url = self.base.join(path).map_err(|_| failed())?;
        url.set_query(query.filter(|q| !q.is_empty()));
        Ok(url)
    }

    /// `GET {path}?{query}` as `caller`.
    pub async fn get<T: DeserializeOwned>(&self, caller: &Principal, path: &str, query: Option<&str>) -> Result<(StatusCode, T), ApiError> {
        let request = self.http.get(self.url(path, query)?);
        self.send(caller, request).await
    }

    /// `POST {path}` with a JSON `body` as `caller`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, caller: &Principal, path: &str, body: &B) -> Result<(StatusCode, T), ApiError> {
        let request = self.http.post(self.url(path, None)?).json(body);
        self.send(caller, request).await
    }

    async fn send<T: DeserializeOwned>(&self, caller: &Principal, mut request: reqwest::RequestBuilder) -> Result<(StatusCode, T), ApiError> {
        if let Some(tenant) = scope(caller) {
            request = request.header(SCOPE_HEADER, tenant);
        }
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "dlq-replayer cannot be reached");
            unavailable()
        })?;
        let status = StatusCode::from_u16(response.status().as_u16()).map_err(|_| failed())?;
        let bytes = response.bytes().await.map_err(|e| {
            tracing::warn!(error = %e, "dlq-replayer's answer could not be read");
            unavailable()
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map(|body| (status, body)).map_err(|e| {
                tracing::error!(%status, error = %e, "dlq-replayer answered with a body the gateway does not know");
                failed()
            });
        }
        let error: Option<dlq_api::ErrorBody> = serde_json::from_slice(&bytes).ok();
        let known = error.as_ref().and_then(|e| PASSED_ON.iter().find(|c| **c == e.code));
        match (known, error) {
            (Some(code), Some(error)) if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE => Err(ApiError::new(status, code, error.detail)),
            (_, error) => {
                tracing::error!(%status, code = error.as_ref().map(|e| e.code.as_str()), "dlq-replayer failed");
                Err(failed())
            }
        }
    }
}

/// The tenant an `ops` caller is limited to; an `admin` (or a gateway without authentication)
/// sees every tenant.
fn scope(caller: &Principal) -> Option<&str> {
    if caller.role == Role::Admin { None } else { caller.tenant.as_deref() }
}

/// 403 `forbidden` unless the caller is `ops` or `admin`.
pub fn require_operator(caller: &Principal) -> Result<(), ApiError> {
    caller.require_role(&[Role::Ops, Role::Admin]).map_err(ApiError::from)
}

/// The UUID `{id}` of the path, else 400 with `code`.
async fn uuid_path<S: Send + Sync>(parts: &mut Parts, state: &S, code: &'static str, detail: &'static str) -> Result<Uuid, ApiError> {
    let id = Path::<String>::from_request_parts(parts, state).await.ok().and_then(|Path(id)| Uuid::parse_str(&id).ok());
    id.ok_or_else(|| ApiError::bad_request(code, detail))
}

/// `{id}` of a dead-letter route: a UUID, else 400 `invalid_dead_letter_id`.
#[derive(Debug, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct DeadLetterId(
    /// The dead letter's id (`id` in a list).
    #[param(value_type = String, format = Uuid, example = "0196b3c2-6a4e-7c1d-9f00-3b1f2a4c5d6e")]
    pub Uuid,
);

impl<S: Send + Sync> FromRequestParts<S> for DeadLetterId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        uuid_path(parts, state, "invalid_dead_letter_id", "dead-letter ids are UUIDs").await.map(Self)
    }
}

/// `{id}` of a replay-job route: a UUID, else 400 `invalid_job_id`.
#[derive(Debug, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct JobId(
    /// The job id of the 202 that started it (or of a dry run).
    #[param(value_type = String, format = Uuid, example = "0196b3c2-7b10-7e55-8a01-9c2d3e4f5a6b")]
    pub Uuid,
);

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        uuid_path(parts, state, "invalid_job_id", "replay job ids are UUIDs").await.map(Self)
    }
}
