//! The independent checker of a chaos run. It reads the sources of truth directly: the Ventures
//! simulator's loans, `event_log`, the read model, Firestore and the dead-letter topic. It never
//! asks the services what they did.

use std::{collections::BTreeSet, time::Duration};

use brain_events::{Codec, DeadLetter, topics};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
};
use serde_json::{Value, json};

use crate::workload::Expected;

/// Every loan's final version and status, as the Ventures simulator (the source) has them.
pub async fn source_truth(http: &reqwest::Client, sim_url: &str, credentials: &crate::infra::VenturesCredentials) -> anyhow::Result<Expected> {
    let token: Value = http
        .post(format!("{sim_url}/api/v4/token"))
        .json(&json!({ "client": credentials.client, "username": credentials.username, "password": credentials.password }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["token"].as_str().unwrap_or_default().to_string();
    let mut expected = Expected::default();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = http.get(format!("{sim_url}/api/v4/loans")).bearer_auth(&token).query(&[("limit", "500")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page: Value = request.send().await?.error_for_status()?.json().await?;
        for loan in page["loans"].as_array().into_iter().flatten() {
            let app = loan["externalId"].as_str().unwrap_or_default().to_string();
            let entry = (
                loan["loanId"].as_str().unwrap_or_default().to_string(),
                loan["version"].as_i64().unwrap_or_default(),
                loan["status"].as_str().unwrap_or_default().to_string(),
            );
            expected.loans.insert(app, entry);
        }
        if page["hasMore"] != true {
            return Ok(expected);
        }
        cursor = page["nextCursor"].as_str().map(str::to_string);
    }
}

/// What the dead-letter topic holds compared with the poison injected.
#[derive(Debug, Default, Clone)]
pub struct DeadLetterReport {
    pub injected: usize,
    pub found: usize,
    pub missing: usize,
    pub unexpected: usize,
    pub undecodable: usize,
}

impl DeadLetterReport {
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.unexpected == 0 && self.undecodable == 0
    }
}

/// Reads `deadletter.<group>.v1` from the start until it has been quiet for `quiet`.
pub async fn dead_letters(bootstrap: &str, codec: &Codec, group: &str, injected: &BTreeSet<Vec<u8>>, quiet: Duration) -> anyhow::Result<DeadLetterReport> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("chaos-checker-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topics::dead_letter(group)])?;
    let mut report = DeadLetterReport { injected: injected.len(), ..Default::default() };
    let mut seen = BTreeSet::new();
    // The first assignment can take a while on the dev broker; after that, stop once quiet.
    let mut wait = Duration::from_secs(60).max(quiet);
    while let Ok(message) = tokio::time::timeout(wait, consumer.recv()).await {
        let message = message?;
        report.found += 1;
        match codec.decode::<DeadLetter>(message.payload().unwrap_or_default()).await {
            Ok(envelope) => {
                let value = envelope.value.unwrap_or_default();
                if injected.contains(&value) {
                    seen.insert(value);
                } else {
                    report.unexpected += 1;
                    tracing::warn!(kind = %envelope.error_kind, error = %envelope.error_message, "unexpected dead letter");
                }
            }
            Err(e) => {
                report.undecodable += 1;
                tracing::warn!(error = %e, "dead-letter envelope does not decode");
            }
        }
        wait = if seen.len() == injected.len() { quiet } else { Duration::from_secs(60) };
    }
    report.missing = injected.len() - seen.len();
    Ok(report)
}
