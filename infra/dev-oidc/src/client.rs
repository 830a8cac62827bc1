//! A client of a running dev issuer (the CLI's `mint` and `rotate`, and tools that drive the dev
//! stack from outside).

use anyhow::Context;
use serde_json::json;

use crate::{Minted, Stats, token::MintRequest};

pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base_url: &str) -> Self {
        Self { base: base_url.trim_end_matches('/').to_string(), http: reqwest::Client::new() }
    }

    pub async fn mint(&self, request: &MintRequest) -> anyhow::Result<Minted> {
        let response = self.http.post(format!("{}/mint", self.base)).json(request).send().await.with_context(|| format!("POST {}/mint", self.base))?;
        Self::json(response).await
    }

    /// Rotates the keys; returns the kids now current.
    pub async fn rotate(&self, retire_previous: bool) -> anyhow::Result<Vec<String>> {
        let response = self
            .http
            .post(format!("{}/control/rotate", self.base))
            .json(&json!({ "retire_previous": retire_previous }))
            .send()
            .await
            .with_context(|| format!("POST {}/control/rotate", self.base))?;
        let body: serde_json::Value = Self::json(response).await?;
        Ok(serde_json::from_value(body["current_kids"].clone())?)
    }

    pub async fn stats(&self) -> anyhow::Result<Stats> {
        let response = self.http.get(format!("{}/control/stats", self.base)).send().await.with_context(|| format!("GET {}/control/stats", self.base))?;
        Self::json(response).await
    }

    async fn json<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
        let status = response.status();
        let body = response.text().await?;
        anyhow::ensure!(status.is_success(), "dev-oidc answered {status}: {body}");
        Ok(serde_json::from_str(&body)?)
    }
}
