//! Microsoft Graph, the parts flow 5 uses: an app-only token (client credentials, renewed once
//! on a 401), `getSchedule`, events (create with a `transactionId`, look up by it, cancel,
//! update), change-notification subscriptions and Teams channel messages (`teams`).
//!
//! Errors say whether a retry may help ([`GraphError::is_transient`]): 429, and 503 with
//! `Retry-After`, are throttling (honour the hint); 408 and 5xx (but 501) and network failures
//! are Graph failing; our credentials refused is our outage; any other 4xx is an answer. Every
//! call feeds the `graph` circuit breaker: a failure of Graph counts against it, any real answer
//! (a refusal included) for it, throttling neither.

mod teams;
mod types;

use std::time::Duration;

use brain_runtime::breaker::Breaker;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::sync::Mutex;

pub use teams::{Channel, ChatMessage};
pub use types::{DateTimeTimeZone, Event, GraphError, ScheduleItem, Subscription, error_of, graph_time};

#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.microsoft.com/v1.0`.
    pub api_base: String,
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub timeout: Duration,
}

/// What a new meeting is.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub subject: String,
    pub body_html: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub attendee_email: String,
    pub attendee_name: Option<String>,
    pub transaction_id: String,
}

pub struct GraphClient {
    config: GraphConfig,
    http: reqwest::Client,
    token: Mutex<Option<SecretString>>,
    breaker: Breaker,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// Graph's `attendees` of one required attendee.
pub fn attendees(email: &str, name: Option<&str>) -> Value {
    json!([{ "type": "required", "emailAddress": { "address": email, "name": name.unwrap_or(email) } }])
}

impl GraphClient {
    pub fn new(config: GraphConfig, breaker: Breaker) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).connect_timeout(Duration::from_secs(3)).build()?;
        Ok(Self { config, http, token: Mutex::new(None), breaker })
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The items of `user`'s calendar between `start` and `end`.
    pub async fn get_schedule(&self, user: &str, start: DateTime<Utc>, end: DateTime<Utc>, interval_minutes: u32) -> Result<Vec<ScheduleItem>, GraphError> {
        let body = json!({ "schedules": [user], "startTime": graph_time(start), "endTime": graph_time(end), "availabilityViewInterval": interval_minutes });
        let answer: types::ScheduleAnswer = self.call(Method::POST, &format!("users/{}/calendar/getSchedule", path(user)), &[], Some(body)).await?;
        let info = answer.value.into_iter().next().ok_or_else(|| GraphError::Rejected { status: 200, code: "EmptySchedule".into(), message: format!("no schedule for {user}") })?;
        if let Some(error) = info.error {
            let code = error["responseCode"].as_str().unwrap_or("ScheduleError").to_string();
            return Err(GraphError::Rejected { status: 200, code, message: error["message"].as_str().unwrap_or_default().to_string() });
        }
        Ok(info.schedule_items)
    }

    /// Creates the meeting in `user`'s calendar as a Teams meeting. The `transactionId` makes a
    /// repeated create answer the event the first one made.
    pub async fn create_event(&self, user: &str, event: &NewEvent) -> Result<Event, GraphError> {
        let body = json!({
            "subject": event.subject,
            "body": { "contentType": "html", "content": event.body_html },
            "start": graph_time(event.start),
            "end": graph_time(event.end),
            "attendees": attendees(&event.attendee_email, event.attendee_name.as_deref()),
            "isOnlineMeeting": true,
            "onlineMeetingProvider": "teamsForBusiness",
            "showAs": "busy",
            "transactionId": event.transaction_id,
        });
        self.call(Method::POST, &format!("users/{}/events", path(user)), &[], Some(body)).await
    }

    /// The event an earlier create with `transaction_id` made, if any. The filter is a hint:
    /// the answer is checked here too.
    pub async fn find_by_transaction(&self, user: &str, transaction_id: &str) -> Result<Option<Event>, GraphError> {
        let filter = format!("transactionId eq '{}'", transaction_id.replace('\'', "''"));
        let list: types::EventList = self.call(Method::GET, &format!("users/{}/events", path(user)), &[("$filter", &filter)], None).await?;
        Ok(list.value.into_iter().find(|e| e.transaction_id.as_deref() == Some(transaction_id)))
    }

    /// Cancels the meeting: Graph sends the cancellation to the attendees. A second cancel
    /// changes nothing.
    pub async fn cancel_event(&self, user: &str, event_id: &str, comment: &str) -> Result<(), GraphError> {
        let _: Value = self.call(Method::POST, &format!("users/{}/events/{}/cancel", path(user), path(event_id)), &[], Some(json!({ "Comment": comment }))).await?;
        Ok(())
    }

    /// Sends the invitation again: the organizer's update of the attendees makes Exchange send
    /// it to them once more.
    pub async fn resend_invitation(&self, user: &str, event_id: &str, attendee_email: &str, attendee_name: Option<&str>) -> Result<Event, GraphError> {
        self.call(Method::PATCH, &format!("users/{}/events/{}", path(user), path(event_id)), &[], Some(json!({ "attendees": attendees(attendee_email, attendee_name) }))).await
    }

    /// Subscribes to changes of `user`'s events; Graph first checks `notification_url` with the
    /// validation handshake.
    pub async fn create_subscription(&self, user: &str, notification_url: &str, client_state: &SecretString, expires: DateTime<Utc>) -> Result<Subscription, GraphError> {
        let body = json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "resource": format!("users/{user}/events"),
            "expirationDateTime": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "clientState": client_state.expose_secret(),
        });
        self.call(Method::POST, "subscriptions", &[], Some(body)).await
    }

    /// Renews a subscription; `Ok(None)` when Graph no longer has it.
    pub async fn renew_subscription(&self, id: &str, expires: DateTime<Utc>) -> Result<Option<Subscription>, GraphError> {
        let body = json!({ "expirationDateTime": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) });
        match self.call(Method::PATCH, &format!("subscriptions/{}", path(id)), &[], Some(body)).await {
            Ok(s) => Ok(Some(s)),
            Err(GraphError::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "graph.request", skip_all, fields(otel.kind = "client", http.request.method = %method, url.path = path))]
    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, query: &[(&str, &str)], body: Option<Value>) -> Result<T, GraphError> {
        for renewed in [false, true] {
            let token = self.token(renewed).await?;
            let url = format!("{}/{path}", self.config.api_base.trim_end_matches('/'));
            let mut request = self.http.request(method.clone(), url).bearer_auth(token.expose_secret()).header("client-request-id", uuid::Uuid::new_v4().to_string());
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = self.observe(request.send().await.map_err(GraphError::Network))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !renewed {
                tracing::info!("Graph refused the access token; renewing it once");
                continue;
            }
            let retry_after = retry_after(&response);
            let bytes = response.bytes().await.map_err(GraphError::Network);
            let bytes = self.observe(bytes)?;
            if status.is_success() {
                // 202 and 204 have no body.
                let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
                return serde_json::from_slice(bytes).map_err(GraphError::Decode);
            }
            return self.observe(Err(error_of(status.as_u16(), retry_after, &bytes)));
        }
        Err(GraphError::Credentials { status: 401 })
    }

    /// Feeds the breaker: Graph failing (5xx, network) is a failure, any real answer a success,
    /// throttling neither.
    fn observe<T>(&self, result: Result<T, GraphError>) -> Result<T, GraphError> {
        match &result {
            Err(GraphError::Unavailable { .. } | GraphError::Network(_)) => {
                self.breaker.failure();
            }
            Err(GraphError::Throttled { .. }) => {}
            _ => self.breaker.success(),
        }
        result
    }

    async fn token(&self, renew: bool) -> Result<SecretString, GraphError> {
        let mut slot = self.token.lock().await;
        if let (Some(token), false) = (slot.as_ref(), renew) {
            return Ok(token.clone());
        }
        let c = &self.config;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose_secret()),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let request = self.http.post(&c.token_url).header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        let response = self.observe(request.send().await.map_err(GraphError::Network))?;
        let status = response.status();
        let retry_after = retry_after(&response);
        let bytes = self.observe(response.bytes().await.map_err(GraphError::Network))?;
        if !status.is_success() {
            let error = match error_of(status.as_u16(), retry_after, &bytes) {
                GraphError::Rejected { status: 400..=403, .. } => GraphError::Credentials { status: status.as_u16() },
                other => other,
            };
            return self.observe(Err(error));
        }
        let TokenResponse { access_token } = serde_json::from_slice(&bytes).map_err(GraphError::Decode)?;
        let token = SecretString::from(access_token);
        *slot = Some(token.clone());
        Ok(token)
    }
}

/// A path segment, percent-encoded (user ids may be mail addresses).
fn path(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path("ann@contoso.example"), "ann%40contoso.example");
        assert_eq!(path("a b/c"), "a%20b%2Fc");
    }
}
