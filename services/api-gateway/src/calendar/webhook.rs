//! `POST /api/v1/webhooks/graph`: Microsoft Graph's change notifications about the staff
//! calendars graph-calendar subscribed to. No bearer token: Graph proves itself with the
//! subscription's `clientState` (`API_GATEWAY__GRAPH_CLIENT_STATE`, compared in constant time).
//!
//! - **Validation handshake**: `?validationToken=...` is answered 200 `text/plain` with the
//!   decoded token, at once (Graph allows 10 s).
//! - **Notifications** `{"value": [...]}`: each one whose `clientState` matches becomes a
//!   `GraphNotificationReceived` on `gateway.graph.notification-received.v1` (key: the mailbox's
//!   user id), and graph-calendar refreshes that staff member's availability. The others are
//!   refused and not published (401 `invalid_client_state` when none matched). The answer comes
//!   once Kafka has the records, within `GRAPH_WEBHOOK_PUBLISH_TIMEOUT_MS` (Graph wants 3 s), else
//!   503 and Graph retries.
//!
//! Metric: `api_gateway_graph_notifications_total{outcome}`.

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, Uri, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use brain_runtime::{
    events::{GraphNotificationReceived, topics},
    telemetry::metric_name,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState, SERVICE,
    error::{ApiError, ErrorBody},
    openapi,
};

/// Namespace of the records' `event_id`s.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x2e6b_0c58_d917_4a3f_b4e0_81a7_5c2d_9f63);
/// Longest validation token echoed.
const MAX_TOKEN_CHARS: usize = 1_024;

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationsAccepted {
    /// Notifications published (those with the right `clientState`).
    pub accepted: usize,
    /// Notifications refused: a wrong `clientState`, or no mailbox in `resource`.
    pub refused: usize,
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

fn count(outcome: &'static str, n: usize) {
    metrics::counter!(metric_name(SERVICE, "graph_notifications_total"), "outcome" => outcome).increment(n as u64);
}

/// Equal bytes, compared in constant time (for equal lengths).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The mailbox of `Users/{user}/Events/{id}` (any case).
pub fn user_of(resource: &str) -> Option<&str> {
    let mut parts = resource.trim_start_matches('/').split('/');
    let (users, user) = (parts.next()?, parts.next()?);
    (users.eq_ignore_ascii_case("users") && !user.is_empty()).then_some(user)
}

/// The record of one notification: its id stays the same when Graph sends it again.
pub fn record(n: &Value, user: &str, correlation_id: &str, received_at: i64) -> GraphNotificationReceived {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (subscription, change, resource) = (text(&n["subscriptionId"]), text(&n["changeType"]), text(&n["resource"]));
    let etag = text(&n["resourceData"]["@odata.etag"]);
    let event_id = Uuid::new_v5(&EVENT_NAMESPACE, format!("{subscription}\n{change}\n{resource}\n{etag}").as_bytes());
    GraphNotificationReceived {
        event_id: event_id.to_string(),
        received_at,
        subscription_id: subscription,
        change_type: change,
        resource,
        user_id: user.to_string(),
        graph_event_id: n["resourceData"]["id"].as_str().map(str::to_string),
        correlation_id: if correlation_id.is_empty() { event_id.to_string() } else { correlation_id.to_string() },
        producer: SERVICE.to_string(),
    }
}

/// A Microsoft Graph change notification
///
/// Graph's validation handshake (`?validationToken=`, echoed as `text/plain`) and change
/// notifications about staff calendars, authenticated by the subscription's `clientState`, not
/// by a bearer token. Each notification makes graph-calendar refresh that staff member's
/// availability.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/graph",
    operation_id = "graphWebhook",
    tag = openapi::TAG_CALENDAR,
    params(("validationToken" = Option<String>, Query, description = "Graph's validation handshake: answered with the token itself")),
    request_body(content = Object, content_type = "application/json", description = "`{\"value\": [notification, ...]}`; empty for the handshake; at most 64 KiB"),
    responses(
        (status = 200, description = "The validation token, echoed", content_type = "text/plain", body = String),
        (status = 202, description = "Published: one record per notification with the right `clientState`", body = NotificationsAccepted),
        (status = 400, description = "`invalid_webhook`: not `{\"value\": [...]}`, or a validation token over 1,024 characters", body = ErrorBody),
        (status = 401, description = "`invalid_client_state`: no notification carried the subscription's `clientState`; nothing was published", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = "`webhooks_not_configured` (no `API_GATEWAY__GRAPH_CLIENT_STATE`), `broker_unavailable` (Kafka did not acknowledge in time; Graph retries) or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn receive(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let Some(client_state) = state.calendar.settings.client_state.clone() else {
        count("not_configured", 1);
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "webhooks_not_configured", "Graph notifications are not configured on this gateway"));
    };
    let handshake = Query::<Handshake>::try_from_uri(&uri).map(|Query(h)| h.validation_token).unwrap_or(None);
    if let Some(token) = handshake {
        if token.chars().count() > MAX_TOKEN_CHARS {
            return Err(ApiError::bad_request("invalid_webhook", "the validation token is too long"));
        }
        count("validation", 1);
        return Ok((StatusCode::OK, [(CONTENT_TYPE, "text/plain")], token).into_response());
    }
    let json = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_none_or(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json"));
    }
    let parsed: Value = serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("invalid_webhook", "the body is not JSON"))?;
    let items = parsed["value"].as_array().filter(|v| !v.is_empty()).ok_or_else(|| ApiError::bad_request("invalid_webhook", "the body is not {\"value\": [notification, ...]}"))?;
    let correlation_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = chrono::Utc::now().timestamp_millis();
    let secret = client_state.expose_secret().as_bytes();
    let records: Vec<(String, GraphNotificationReceived)> = items
        .iter()
        .filter(|n| same(n["clientState"].as_str().unwrap_or_default().as_bytes(), secret))
        .filter_map(|n| {
            let user = user_of(n["resource"].as_str()?)?;
            Some((user.to_string(), record(n, user, correlation_id, now)))
        })
        .collect();
    let refused = items.len() - records.len();
    if records.is_empty() {
        count("refused", refused);
        tracing::info!(refused, "Graph notifications refused: wrong clientState or no mailbox");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_client_state", "no notification carried this subscription's clientState"));
    }
    let timeout = state.calendar.settings.publish_timeout;
    let sent = tokio::time::timeout(timeout, state.producer.send_all::<GraphNotificationReceived, _>(topics::GRAPH_NOTIFICATION_RECEIVED, &records)).await;
    if !matches!(sent, Ok(Ok(()))) {
        tracing::warn!(records = records.len(), ?timeout, "Graph notifications not published; Graph will retry");
        count("broker_unavailable", records.len());
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", "the notifications could not be published; retry"));
    }
    count("accepted", records.len());
    count("refused", refused);
    Ok((StatusCode::ACCEPTED, Json(NotificationsAccepted { accepted: records.len(), refused })).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_mailbox_comes_from_the_resource() {
        assert_eq!(user_of("Users/ann/Events/AAMk1"), Some("ann"));
        assert_eq!(user_of("/users/ann@contoso.example/events/x"), Some("ann@contoso.example"));
        assert_eq!(user_of("groups/g1/events"), None);
        assert_eq!(user_of("Users//Events/x"), None);
    }

    #[test]
    fn a_repeated_notification_has_the_same_id() {
        let n = json!({ "subscriptionId": "s1", "changeType": "created", "resource": "Users/ann/Events/e1", "resourceData": { "id": "e1", "@odata.etag": "W/\"1\"" }, "clientState": "x" });
        let (a, b) = (record(&n, "ann", "", 1), record(&n, "ann", "req", 2));
        assert_eq!(a.event_id, b.event_id);
        assert_eq!((a.user_id.as_str(), a.graph_event_id.as_deref(), b.correlation_id.as_str()), ("ann", Some("e1"), "req"));
        let mut updated = n.clone();
        updated["changeType"] = json!("updated");
        assert_ne!(record(&updated, "ann", "", 1).event_id, a.event_id);
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
