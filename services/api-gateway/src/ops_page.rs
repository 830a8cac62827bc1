//! `GET /ops`: the operators' page (flow 8). A self-contained HTML page (script and styles in the
//! binary, nothing loaded from elsewhere) that calls the gateway's own API with the operator's
//! bearer token, which it asks for and keeps in the tab's `sessionStorage` (`?token=` also sets
//! it, and is removed from the address at once). It shows the sync health per integration
//! (`GET /api/v1/health/sync`), lists, counts and shows dead letters with filters, and runs dry
//! runs and replays with their progress (`/api/v1/admin/...`). The page itself holds no data, so
//! it needs no token, like `/api/v1/docs`.
//!
//! Its script is a list of sections (`section({...})`): a later one (capability flags, panic
//! mode) is one more entry, beside the others.

use axum::{
    http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName},
    response::IntoResponse,
};

use crate::{error::ErrorBody, openapi::{TAG_OPERATIONS, TIMEOUT}};

/// Inline script and styles only; the API on the same origin; no framing, no referrer (the
/// address may carry `?token=` for a moment).
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The ops page
///
/// A self-contained HTML page for operators: sync health, dead letters (filter, inspect
/// decoded, park, discard) and replays (dry run, replay, progress). It calls the API with a
/// bearer token of role `ops` or `admin` that the operator pastes in. No token needed for the
/// page itself.
#[utoipa::path(
    get,
    path = "/ops",
    operation_id = "opsPage",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 503, description = TIMEOUT, body = ErrorBody),
    )
)]
pub async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (HeaderName::from_static("content-security-policy"), CSP),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
            (HeaderName::from_static("x-frame-options"), "DENY"),
            (CACHE_CONTROL, "no-store"),
        ],
        include_str!("ops.html"),
    )
}
