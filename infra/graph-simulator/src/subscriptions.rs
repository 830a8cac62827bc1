//! Change-notification subscriptions on a mailbox's events: `POST /v1.0/subscriptions` (after
//! the validation handshake with the `notificationUrl` succeeds), list, get, renew by `PATCH`
//! (`expirationDateTime`), `DELETE`. An expired subscription is gone for the API and gets no more
//! notifications; `/control/subscriptions` still shows it.

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{error::GraphError, events::parse_body, state::SharedState, time};

const MAX_CLIENT_STATE: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    Created,
    Updated,
    Deleted,
}

impl ChangeType {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "created" => Some(Self::Created),
            "updated" => Some(Self::Updated),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub resource: String,
    /// The mailbox the resource names (its id).
    pub user_id: String,
    pub change_type: String,
    #[serde(skip)]
    change_types: Vec<ChangeType>,
    pub notification_url: String,
    pub expiration_date_time: DateTime<Utc>,
    pub client_state: Option<String>,
    pub created_date_time: DateTime<Utc>,
    pub renewals: u32,
}

impl Subscription {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expiration_date_time > now
    }

    fn to_json(&self, application_id: &str) -> Value {
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": application_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": null,
            "expirationDateTime": time::format_instant(self.expiration_date_time),
            "creatorId": application_id,
            "includeResourceData": false,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": null,
            "encryptionCertificateId": null,
            "notificationUrlAppId": null,
        })
    }
}

#[derive(Debug, Default)]
pub struct Subscriptions {
    by_id: HashMap<String, Subscription>,
}

impl Subscriptions {
    /// Live subscriptions on `user_id`'s events that want `change`.
    pub fn matching(&self, user_id: &str, change: ChangeType) -> Vec<Subscription> {
        let now = Utc::now();
        self.by_id
            .values()
            .filter(|s| s.user_id == user_id && s.is_live(now) && s.change_types.contains(&change))
            .cloned()
            .collect()
    }

    /// All of them, expired ones included, oldest first.
    pub fn all(&self) -> Vec<Subscription> {
        let mut all: Vec<Subscription> = self.by_id.values().cloned().collect();
        all.sort_by_key(|s| s.created_date_time);
        all
    }

    fn live(&mut self, id: &str) -> Result<&mut Subscription, GraphError> {
        self.by_id
            .get_mut(id)
            .filter(|s| s.is_live(Utc::now()))
            .ok_or_else(not_found)
    }
}

fn not_found() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "The object was not found.",
    )
}

fn invalid(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionInput {
    change_type: Option<String>,
    notification_url: Option<String>,
    resource: Option<String>,
    expiration_date_time: Option<String>,
    client_state: Option<String>,
}

/// `expirationDateTime` in the future and within the longest lifetime.
fn expiration(state: &SharedState, text: Option<&str>) -> Result<DateTime<Utc>, GraphError> {
    let text = text.ok_or_else(|| invalid("expirationDateTime is required."))?;
    let at = time::parse_date_time(text)?;
    let now = Utc::now();
    let max = TimeDelta::from_std(state.config.max_subscription_lifetime).unwrap_or(TimeDelta::MAX);
    if at <= now {
        return Err(invalid("Subscription expiration must be in the future."));
    }
    if at > now + max {
        return Err(invalid(format!(
            "Subscription expiration can only be {} minutes in the future.",
            max.num_minutes()
        )));
    }
    Ok(at)
}

/// `users/{id}/events` (also `/Users/{id}/Events`, `users/{id}/calendar/events`) → the user.
fn resource_user(resource: &str) -> Option<&str> {
    let parts: Vec<&str> = resource.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [users, user, events] | [users, user, "calendar", events]
            if users.eq_ignore_ascii_case("users") && events.eq_ignore_ascii_case("events") =>
        {
            Some(user)
        }
        _ => None,
    }
}

/// `POST /v1.0/subscriptions`.
pub async fn create(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), GraphError> {
    let input: SubscriptionInput = parse_body(&body)?;
    let change_type = input
        .change_type
        .ok_or_else(|| invalid("changeType is required."))?;
    let change_types = change_type
        .split(',')
        .map(|c| ChangeType::parse(c).ok_or_else(|| invalid(format!("Invalid changeType '{c}'."))))
        .collect::<Result<Vec<_>, _>>()?;
    let url = input
        .notification_url
        .ok_or_else(|| invalid("notificationUrl is required."))?;
    if !reqwest::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(invalid(format!("Invalid notification url '{url}'.")));
    }
    let resource = input
        .resource
        .ok_or_else(|| invalid("resource is required."))?;
    let user = resource_user(&resource)
        .ok_or_else(|| invalid(format!("Resource '{resource}' is not supported.")))?;
    let user_id = state
        .resolve(user)
        .ok_or_else(|| GraphError::invalid_user(user))?;
    let expires = expiration(&state, input.expiration_date_time.as_deref())?;
    if input
        .client_state
        .as_ref()
        .is_some_and(|c| c.len() > MAX_CLIENT_STATE)
    {
        return Err(invalid("clientState can be at most 128 characters."));
    }
    if let Err(reason) = state.notifier.validate(&url).await {
        tracing::debug!(%url, %reason, "subscription validation failed");
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!(
                "Subscription validation request failed. Notification endpoint must respond \
                 with 200 OK to validation request. ({reason})"
            ),
        ));
    }
    let subscription = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        resource,
        user_id,
        change_type,
        change_types,
        notification_url: url,
        expiration_date_time: expires,
        client_state: input.client_state,
        created_date_time: Utc::now(),
        renewals: 0,
    };
    let body = subscription.to_json(&state.config.client_id);
    state
        .subscriptions()
        .by_id
        .insert(subscription.id.clone(), subscription);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1.0/subscriptions`: the live ones.
pub async fn list(State(state): State<SharedState>) -> Json<Value> {
    let now = Utc::now();
    let value: Vec<Value> = state
        .subscriptions()
        .all()
        .iter()
        .filter(|s| s.is_live(now))
        .map(|s| s.to_json(&state.config.client_id))
        .collect();
    Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
        "value": value,
    }))
}

pub async fn read(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, GraphError> {
    let mut subscriptions = state.subscriptions();
    Ok(Json(
        subscriptions.live(&id)?.to_json(&state.config.client_id),
    ))
}

/// `PATCH /v1.0/subscriptions/{id}` `{"expirationDateTime"}`: a renewal.
pub async fn renew(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, GraphError> {
    let input: SubscriptionInput = parse_body(&body)?;
    let expires = expiration(&state, input.expiration_date_time.as_deref())?;
    let mut subscriptions = state.subscriptions();
    let subscription = subscriptions.live(&id)?;
    subscription.expiration_date_time = expires;
    subscription.renewals += 1;
    Ok(Json(subscription.to_json(&state.config.client_id)))
}

pub async fn delete(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<StatusCode, GraphError> {
    let mut subscriptions = state.subscriptions();
    subscriptions.live(&id)?;
    subscriptions.by_id.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_name_a_mailbox_s_events() {
        assert_eq!(resource_user("users/ann/events"), Some("ann"));
        assert_eq!(resource_user("/Users/ann@x.com/Events"), Some("ann@x.com"));
        assert_eq!(resource_user("users/ann/calendar/events"), Some("ann"));
        assert_eq!(resource_user("users/ann/messages"), None);
        assert_eq!(resource_user("me/events"), None);
    }
}
