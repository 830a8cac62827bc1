//! `POST /v1.0/teams/{team}/channels/{channel}/messages` `{"body":{"contentType","content"}}` →
//! 201 `chatMessage`; `GET` the same path lists the channel's messages, newest first, `$top`
//! (default 20, at most 50) per page with an `@odata.nextLink` carrying a `$skiptoken`. Any team and channel id is accepted; every message is kept for
//! `/control/teams/messages`. (Real Graph wants a delegated token or a bot for this; the
//! simulator accepts the app token and reports the app as the sender.)

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{error::GraphError, events::parse_body, state::SharedState};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsMessage {
    pub id: String,
    pub team_id: String,
    pub channel_id: String,
    pub created_date_time: DateTime<Utc>,
    pub content_type: String,
    pub content: String,
    pub subject: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageInput {
    body: Option<ItemBody>,
    subject: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody {
    content_type: Option<String>,
    content: Option<String>,
}

fn millis(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn web_url(message: &TeamsMessage) -> String {
    format!(
        "https://teams.microsoft.com/l/message/{}/{}?groupId={}&createdTime={}",
        message.channel_id,
        message.id,
        message.team_id,
        message.created_date_time.timestamp_millis()
    )
}

/// A message as Graph's `chatMessage` resource.
fn resource(state: &SharedState, message: &TeamsMessage) -> Value {
    let created = millis(message.created_date_time);
    json!({
        "id": message.id,
        "replyToId": null,
        "etag": message.id,
        "messageType": "message",
        "createdDateTime": created,
        "lastModifiedDateTime": created,
        "deletedDateTime": null,
        "subject": message.subject,
        "summary": null,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": web_url(message),
        "channelIdentity": {"teamId": message.team_id, "channelId": message.channel_id},
        "from": {
            "application": {
                "id": state.config.client_id,
                "displayName": "Brain",
                "applicationIdentityType": "bot",
            },
            "device": null,
            "user": null,
        },
        "body": {"contentType": message.content_type, "content": message.content},
        "attachments": [],
        "mentions": [],
        "reactions": [],
    })
}

/// `GET /v1.0/teams/{team}/channels/{channel}/messages`: newest first, paged.
pub async fn list_messages(
    State(state): State<SharedState>,
    Path((team, channel)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, GraphError> {
    let top = match query.get("$top") {
        None => 20,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|t| (1..=50).contains(t))
            .ok_or_else(|| {
                GraphError::bad_request(format!("Invalid $top '{t}': expected 1 to 50."))
            })?,
    };
    let skip = match query.get("$skiptoken") {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| GraphError::bad_request("Invalid $skiptoken."))?,
    };
    let messages = state.teams();
    let mut channel_messages: Vec<&TeamsMessage> = messages
        .iter()
        .filter(|m| m.team_id == team && m.channel_id == channel)
        .collect();
    channel_messages.reverse();
    let page: Vec<Value> = channel_messages
        .iter()
        .skip(skip)
        .take(top)
        .map(|m| resource(&state, m))
        .collect();
    let mut body = json!({
        "@odata.context": format!(
            "https://graph.microsoft.com/v1.0/$metadata#teams('{team}')/channels('{channel}')/messages"
        ),
        "@odata.count": page.len(),
        "value": page,
    });
    if skip + top < channel_messages.len() {
        body["@odata.nextLink"] = json!(format!(
            "https://graph.microsoft.com/v1.0/teams/{team}/channels/{channel}/messages?$top={top}&$skiptoken={}",
            skip + top
        ));
    }
    Ok(Json(body))
}

pub async fn post_message(
    State(state): State<SharedState>,
    Path((team, channel)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), GraphError> {
    let input: MessageInput = parse_body(&body)?;
    let body = input
        .body
        .ok_or_else(|| GraphError::bad_request("Message body is required."))?;
    let content = body
        .content
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| GraphError::bad_request("Message body content cannot be empty."))?;
    let content_type = body.content_type.unwrap_or_else(|| "text".to_owned());
    if !matches!(content_type.to_ascii_lowercase().as_str(), "html" | "text") {
        return Err(GraphError::bad_request(format!(
            "Invalid contentType '{content_type}': expected html or text."
        )));
    }
    let now = Utc::now();
    let mut messages = state.teams();
    // Graph's message ids are the creation time in epoch milliseconds; kept unique when two
    // messages land in the same millisecond.
    let mut id = now.timestamp_millis();
    while messages.iter().any(|m| m.id == id.to_string()) {
        id += 1;
    }
    let message = TeamsMessage {
        id: id.to_string(),
        team_id: team,
        channel_id: channel,
        created_date_time: now,
        content_type: content_type.to_ascii_lowercase(),
        content,
        subject: input.subject,
    };
    messages.push(message.clone());
    drop(messages);
    let mut body = resource(&state, &message);
    body["@odata.context"] = json!(format!(
        "https://graph.microsoft.com/v1.0/$metadata#teams('{}')/channels('{}')/messages/$entity",
        message.team_id, message.channel_id
    ));
    Ok((StatusCode::CREATED, Json(body)))
}
