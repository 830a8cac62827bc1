//! `POST /api/v1/webhooks/qbo`: QuickBooks Online's webhooks. No bearer token: Intuit signs the
//! raw body (`intuit-signature` = base64(HMAC-SHA256(verifier token, body))), checked in constant
//! time against `API_GATEWAY__QBO_WEBHOOK_VERIFIER`. Checked in order: webhooks configured (503
//! `webhooks_not_configured`), the body's size (413), the signature (401 `invalid_signature`,
//! nothing published), the content type (415), the payload ([`payload`]; 400 `invalid_webhook`).
//!
//! Then one `QboWebhookReceived` per realm goes to `gateway.qbo.webhook-received.v1` (key: the
//! realm id), and the answer, once Kafka has acknowledged every record, is 200
//! `{"accepted": <realms>}`; Kafka not acknowledging within `QBO_WEBHOOK_PUBLISH_TIMEOUT_MS` is 503
//! `broker_unavailable`, and Intuit retries. A record's `event_id` is a UUID v5 of the realm and the
//! sorted CloudEvent ids (legacy: of the realm and the body's SHA-256), so a redelivery carries the
//! same id. CloudEvents already published by this instance ([`super::seen`]) are left out; a
//! delivery whose events were all seen is answered 200 with `accepted: 0`.
//!
//! Metric: `api_gateway_qbo_webhooks_total{outcome}`.

use std::fmt::Write as _;

use aws_lc_rs::{digest, hmac};
use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use brain_runtime::{
    events::{QboWebhookReceived, topics},
    telemetry::metric_name,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::payload::{self, Delivery, Format, RealmBatch};
use crate::{
    AppState, SERVICE,
    error::{ApiError, ErrorBody},
    openapi::TAG_QBO,
};

/// The header Intuit signs with.
pub const SIGNATURE_HEADER: &str = "intuit-signature";
/// Namespace of the records' `event_id`s.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x3b9f_5a0e_81c4_4f27_a6d2_5e0b_7c19_d843);

/// The answer to a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// How many realms were published (one record each); 0 when every CloudEvent was already seen.
    #[schema(minimum = 0, example = 1)]
    pub accepted: usize,
}

/// Whether `signature` (the header's value) is the base64 HMAC-SHA256 of `body` under `key`.
/// The comparison is constant-time.
pub fn verify(key: &hmac::Key, body: &[u8], signature: Option<&str>) -> bool {
    let Some(tag) = signature.map(str::trim).and_then(|s| STANDARD.decode(s).ok()) else { return false };
    hmac::verify(key, body, &tag).is_ok()
}

/// The signature Intuit would send for `body` (tests and the simulator's counterpart).
pub fn sign(key: &hmac::Key, body: &[u8]) -> String {
    STANDARD.encode(hmac::sign(key, body).as_ref())
}

/// The record of one realm's batch.
pub fn record(batch: &RealmBatch, format: Format, body: &[u8], correlation_id: &str, received_at: i64) -> QboWebhookReceived {
    let mut name = format!("{}\n{}\n", format.as_str(), batch.realm_id);
    match format {
        Format::CloudEvents => name.push_str(&batch.event_ids.join("\n")),
        Format::Legacy => {
            for byte in digest::digest(&digest::SHA256, body).as_ref() {
                let _ = write!(name, "{byte:02x}");
            }
        }
    }
    let event_id = Uuid::new_v5(&EVENT_NAMESPACE, name.as_bytes());
    QboWebhookReceived {
        event_id: event_id.to_string(),
        received_at,
        realm_id: batch.realm_id.clone(),
        format: format.as_str().to_string(),
        entities: batch.entities.clone(),
        correlation_id: if correlation_id.is_empty() { event_id.to_string() } else { correlation_id.to_string() },
        producer: SERVICE.to_string(),
    }
}

fn count(outcome: &'static str) {
    metrics::counter!(metric_name(SERVICE, "qbo_webhooks_total"), "outcome" => outcome).increment(1);
}

fn refuse(outcome: &'static str, error: ApiError) -> ApiError {
    count(outcome);
    error
}

/// The content types Intuit sends (none at all is taken too).
fn json_content(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else { return true };
    let essence = value.to_str().ok().and_then(|v| v.split(';').next()).map(|v| v.trim().to_ascii_lowercase());
    matches!(essence.as_deref(), Some("application/json" | "application/cloudevents+json" | "application/cloudevents-batch+json"))
}

/// A QuickBooks Online webhook
///
/// Intuit's change notifications, legacy or CloudEvents (an array of up to 100), authenticated
/// by `intuit-signature` (base64 HMAC-SHA256 of the raw body with the app's verifier token), not
/// by a bearer token. One record per realm is published for qbo-mirror, which syncs the realm;
/// the answer comes once Kafka has them (well within Intuit's 3 s). CloudEvents already seen are
/// not published again.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/qbo",
    operation_id = "qboWebhook",
    tag = TAG_QBO,
    params(
        ("intuit-signature" = String, Header, description = "base64(HMAC-SHA256(verifier token, raw body))"),
    ),
    request_body(content = Object, content_type = "application/json",
        description = "Legacy `{\"eventNotifications\": [...]}` or an array of 1-100 CloudEvents (also as `application/cloudevents+json`); at most 64 KiB"),
    responses(
        (status = 200, description = "Published: one record per realm (0 when every CloudEvent was already seen)", body = WebhookAccepted),
        (status = 400, description = "`invalid_webhook`: neither format, or a field missing or malformed (the detail names it)", body = ErrorBody),
        (status = 401, description = "`invalid_signature`: `intuit-signature` missing or not the body's HMAC; nothing was published", body = ErrorBody),
        (status = 413, description = "`body_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json` or `application/cloudevents+json`", body = ErrorBody),
        (status = 500, description = "`internal`: see the gateway's log for the request id", body = ErrorBody),
        (status = 503, description = "`webhooks_not_configured` (no `API_GATEWAY__QBO_WEBHOOK_VERIFIER`), `broker_unavailable` (Kafka did not acknowledge in time; nothing is lost, Intuit retries) or `request_timeout`", body = ErrorBody),
    )
)]
pub async fn receive(State(state): State<AppState>, request: Request) -> Result<Json<WebhookAccepted>, ApiError> {
    let Some(key) = state.qbo.key.clone() else {
        return Err(refuse("not_configured", ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "webhooks_not_configured", "QBO webhooks are not configured on this gateway")));
    };
    let headers = request.headers().clone();
    let body = Bytes::from_request(request, &state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            refuse("body_too_large", ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the body is larger than the gateway accepts"))
        } else {
            refuse("invalid_webhook", ApiError::bad_request("invalid_webhook", "the body could not be read"))
        }
    })?;
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !verify(&key, &body, signature) {
        tracing::info!(signed = signature.is_some(), "QBO webhook refused: bad signature");
        let detail = if signature.is_some() { "intuit-signature is not the body's signature" } else { "intuit-signature is missing" };
        return Err(refuse("invalid_signature", ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", detail)));
    }
    if !json_content(&headers) {
        let error = ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json or application/cloudevents+json");
        return Err(refuse("unsupported_media_type", error));
    }
    let delivery = payload::parse(&body).map_err(|e| {
        tracing::info!(detail = %e, "QBO webhook refused: malformed");
        refuse("invalid_webhook", ApiError::bad_request("invalid_webhook", e.0))
    })?;
    let seen = &state.qbo.seen;
    let batches = payload::batches(&delivery, |id| seen.contains(id));
    if batches.is_empty() {
        count("duplicate");
        return Ok(Json(WebhookAccepted { accepted: 0 }));
    }
    let correlation_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = chrono::Utc::now().timestamp_millis();
    let records: Vec<(String, QboWebhookReceived)> = batches
        .iter()
        .map(|b| (b.realm_id.clone(), record(b, delivery.format(), &body, correlation_id, now)))
        .collect();
    let sent = tokio::time::timeout(state.qbo.publish_timeout, state.producer.send_all::<QboWebhookReceived, _>(topics::QBO_WEBHOOK_RECEIVED, &records)).await;
    let failure = match sent {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no acknowledgement within {:?}", state.qbo.publish_timeout)),
    };
    if let Some(error) = failure {
        tracing::warn!(%error, realms = records.len(), "QBO webhook not published; Intuit will retry");
        return Err(refuse("broker_unavailable", ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", "the webhook could not be published; retry")));
    }
    if let Delivery::CloudEvents(_) = &delivery {
        seen.remember(batches.iter().flat_map(|b| b.event_ids.iter().map(String::as_str)));
    }
    count("accepted");
    tracing::debug!(format = delivery.format().as_str(), realms = records.len(), "QBO webhook published");
    Ok(Json(WebhookAccepted { accepted: records.len() }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, b"verifier-token")
    }

    #[test]
    fn signatures_are_the_hmac_of_the_raw_body() {
        let body = br#"{"eventNotifications":[{"realmId":"1"}]}"#;
        // base64(HMAC-SHA256("verifier-token", body)), computed independently:
        // printf '%s' "$body" | openssl dgst -sha256 -hmac verifier-token -binary | base64
        let good = "BzJAuWyYwin1r0EagEGAVYWJ87S1efEh9gazDjAnFA8=".to_string();
        assert_eq!(sign(&key(), body), good);
        assert!(verify(&key(), body, Some(&good)));
        assert!(verify(&key(), body, Some(&format!(" {good} "))), "surrounding blanks are ignored");
        assert!(!verify(&key(), body, None), "missing");
        assert!(!verify(&key(), body, Some("")), "empty");
        assert!(!verify(&key(), body, Some("not base64!")), "not base64");
        assert!(!verify(&key(), &body[1..], Some(&good)), "another body");
        assert!(!verify(&hmac::Key::new(hmac::HMAC_SHA256, b"other"), body, Some(&good)), "another token");
        let mut tag = STANDARD.decode(&good).unwrap();
        tag[31] ^= 1;
        assert!(!verify(&key(), body, Some(&STANDARD.encode(&tag))), "one bit off");
        assert!(!verify(&key(), body, Some(&STANDARD.encode(&tag[..16]))), "truncated");
    }

    #[test]
    fn a_known_signature_verifies() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let bytes: Vec<u8> = (0..tag.len()).step_by(2).map(|i| u8::from_str_radix(&tag[i..i + 2], 16).unwrap()).collect();
        assert!(verify(&key, b"what do ya want for nothing?", Some(&STANDARD.encode(bytes))));
    }

    #[test]
    fn a_redelivery_has_the_same_event_id() {
        let cloud = json!([
            { "specversion": "1.0", "id": "b", "type": "qbo.bill.updated.v1", "intuitentityid": "1", "intuitaccountid": "9" },
            { "specversion": "1.0", "id": "a", "type": "qbo.bill.updated.v1", "intuitentityid": "2", "intuitaccountid": "9" },
        ]);
        let reordered = json!([cloud[1], cloud[0]]);
        let ids = |body: &serde_json::Value| {
            let bytes = body.to_string().into_bytes();
            let delivery = payload::parse(&bytes).unwrap();
            payload::batches(&delivery, |_| false).iter().map(|b| record(b, delivery.format(), &bytes, "req-1", 0)).collect::<Vec<_>>()
        };
        let first = ids(&cloud);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].event_id, ids(&reordered)[0].event_id, "sorted ids: the order of the array does not matter");
        assert_eq!((first[0].format.as_str(), first[0].producer.as_str(), first[0].correlation_id.as_str()), ("cloudevents", "api-gateway", "req-1"));

        let legacy = json!({ "eventNotifications": [{ "realmId": "9", "dataChangeEvent": { "entities": [] } }, { "realmId": "8" }] });
        let again = ids(&legacy);
        assert_eq!(again.len(), 2);
        assert_eq!(again.iter().map(|r| &r.event_id).collect::<Vec<_>>(), ids(&legacy).iter().map(|r| &r.event_id).collect::<Vec<_>>());
        assert_ne!(again[0].event_id, again[1].event_id, "one id per realm");
        let other = json!({ "eventNotifications": [{ "realmId": "9", "dataChangeEvent": { "entities": [{ "name": "Bill", "id": "1", "operation": "Update" }] } }] });
        assert_ne!(ids(&other)[0].event_id, again[1].event_id);
        assert_eq!(again[0].format, "legacy");
    }

    #[test]
    fn intuit_content_types_are_taken() {
        let headers = |value: Option<&str>| {
            let mut map = HeaderMap::new();
            if let Some(v) = value {
                map.insert(CONTENT_TYPE, v.parse().unwrap());
            }
            map
        };
        for ok in [None, Some("application/json"), Some("application/json; charset=utf-8"), Some("application/cloudevents+json"), Some("Application/CloudEvents-Batch+JSON")] {
            assert!(json_content(&headers(ok)), "{ok:?}");
        }
        assert!(!json_content(&headers(Some("text/plain"))));
    }

    mod route {
        use std::time::Duration;

        use axum::{body::Body, http::Request};
        use serde_json::Value;
        use tower::ServiceExt;

        use super::*;
        use crate::qbo::{QboSettings, QboState};

        fn router(verifier: Option<&str>) -> (axum::Router, QboState) {
            let mut state = crate::testing::state();
            let settings = QboSettings { webhook_verifier: verifier.map(|v| v.to_string().into()), webhook_publish_timeout: Duration::from_millis(500), ..QboSettings::default() };
            state.qbo = QboState::new(&settings);
            let qbo = state.qbo.clone();
            (crate::router(state, Duration::from_secs(5)), qbo)
        }

        async fn post(router: &axum::Router, body: &str, signature: Option<String>, content_type: &str) -> (StatusCode, Value) {
            let mut request = Request::post("/api/v1/webhooks/qbo").header("content-type", content_type);
            if let Some(signature) = signature {
                request = request.header(SIGNATURE_HEADER, signature);
            }
            let response = router.clone().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }

        fn signed(body: &str) -> Option<String> {
            Some(sign(&key(), body.as_bytes()))
        }

        #[tokio::test]
        async fn unconfigured_unsigned_and_malformed_deliveries_are_refused() {
            let body = json!([{ "specversion": "1.0", "id": "e1", "type": "qbo.bill.updated.v1", "intuitentityid": "1", "intuitaccountid": "9" }]).to_string();
            let (unconfigured, _) = router(None);
            let (status, answer) = post(&unconfigured, &body, signed(&body), "application/json").await;
            assert_eq!((status, answer["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("webhooks_not_configured")));

            let (router, qbo) = router(Some("verifier-token"));
            for signature in [None, Some("x".to_string()), Some(sign(&key(), b"another body"))] {
                let (status, answer) = post(&router, &body, signature.clone(), "application/json").await;
                assert_eq!((status, answer["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_signature")), "{signature:?}");
            }
            for malformed in ["", "{", "{}", "[]", r#"[{"specversion":"1.0"}]"#, r#"{"eventNotifications":[{"realmId":""}]}"#] {
                let (status, answer) = post(&router, malformed, signed(malformed), "application/json").await;
                assert_eq!((status, answer["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_webhook")), "{malformed}: {answer}");
            }
            let (status, answer) = post(&router, &body, signed(&body), "text/plain").await;
            assert_eq!((status, answer["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));
            let big = format!("[{}]", " ".repeat(crate::MAX_BODY_BYTES));
            let (status, answer) = post(&router, &big, signed(&big), "application/json").await;
            assert_eq!((status, answer["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")));
            assert!(qbo.seen.is_empty());
        }

        #[tokio::test]
        async fn seen_cloud_events_are_not_published_again_and_kafka_down_is_503() {
            let (router, qbo) = router(Some("verifier-token"));
            let body = json!([
                { "specversion": "1.0", "id": "e1", "type": "qbo.bill.updated.v1", "intuitentityid": "1", "intuitaccountid": "9" },
                { "specversion": "1.0", "id": "e2", "type": "qbo.invoice.created.v1", "intuitentityid": "2", "intuitaccountid": "8" },
            ])
            .to_string();
            // Nothing listens where the state's registry and Kafka are: nothing can be published.
            let started = std::time::Instant::now();
            let (status, answer) = post(&router, &body, signed(&body), "application/cloudevents+json").await;
            assert_eq!((status, answer["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("broker_unavailable")));
            assert!(started.elapsed() < Duration::from_secs(3), "answered within Intuit's 3 s");
            assert!(qbo.seen.is_empty(), "not published: not remembered, so Intuit's retry is published");

            qbo.seen.remember(["e1", "e2"]);
            let (status, answer) = post(&router, &body, signed(&body), "application/cloudevents+json").await;
            assert_eq!((status, answer), (StatusCode::OK, json!({ "accepted": 0 })));
        }
    }
}
