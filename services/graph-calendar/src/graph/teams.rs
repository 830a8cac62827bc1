//! Teams channel messages: post one, and page through a channel's messages to find an earlier
//! post (Graph has no idempotency key for channel messages).

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{GraphClient, GraphError, path};

/// A channel message as Graph returns it (the fields Brain reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub created_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub body: Option<ChatBody>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatBody {
    #[serde(default)]
    pub content: String,
}

#[derive(Deserialize)]
struct ChatMessages {
    value: Vec<ChatMessage>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// Which channel, and how far back a search for an earlier post goes.
#[derive(Debug, Clone)]
pub struct Channel {
    pub team_id: String,
    pub channel_id: String,
}

impl GraphClient {
    /// Posts `html` to the channel: 201 with the new message.
    pub async fn post_channel_message(&self, channel: &Channel, html: &str) -> Result<ChatMessage, GraphError> {
        let body = json!({ "body": { "contentType": "html", "content": html } });
        self.call(Method::POST, &messages_path(channel), &[], Some(body)).await
    }

    /// The first message of the channel whose content contains `marker`, searching the newest
    /// `max_pages` pages of 50 and stopping at a page whose messages are all older than `since`.
    pub async fn find_channel_message(&self, channel: &Channel, marker: &str, since: DateTime<Utc>, max_pages: u32) -> Result<Option<ChatMessage>, GraphError> {
        let mut skip_token: Option<String> = None;
        for _ in 0..max_pages {
            let mut query = vec![("$top", "50".to_string())];
            if let Some(token) = &skip_token {
                query.push(("$skiptoken", token.clone()));
            }
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page: ChatMessages = self.call(Method::GET, &messages_path(channel), &query, None).await?;
            if let Some(found) = page.value.iter().find(|m| m.body.as_ref().is_some_and(|b| b.content.contains(marker))) {
                return Ok(Some(found.clone()));
            }
            let all_older = !page.value.is_empty() && page.value.iter().all(|m| m.created_date_time.is_some_and(|t| t < since));
            skip_token = page.next_link.as_deref().and_then(skip_token_of);
            if all_older || skip_token.is_none() {
                break;
            }
        }
        Ok(None)
    }
}

fn messages_path(channel: &Channel) -> String {
    format!("teams/{}/channels/{}/messages", path(&channel.team_id), path(&channel.channel_id))
}

/// The `$skiptoken` of a `@odata.nextLink`.
fn skip_token_of(link: &str) -> Option<String> {
    let query = link.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "$skiptoken").map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_give_their_skip_token() {
        let link = "https://graph.microsoft.com/v1.0/teams/t/channels/c/messages?$top=50&$skiptoken=abc%3D%3D";
        assert_eq!(skip_token_of(link).as_deref(), Some("abc=="));
        assert_eq!(skip_token_of("https://x/messages"), None);
    }
}
