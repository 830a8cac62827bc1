//! The independent checker of a chaos run. It reads the sources of truth directly: the Ventures
//! simulator's loans, `event_log`, the read model, Firestore and the dead-letter topic. It never
//! asks the services what they did.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use brain_events::{Codec, DeadLetter, LoanStatusChanged, topics};
use anyhow::Context;
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::OwnedMessage,
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
    /// The injected poison payloads not found on the dead-letter topic.
    pub missing_payloads: Vec<Vec<u8>>,
}

impl DeadLetterReport {
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.unexpected == 0 && self.undecodable == 0
    }
}

/// Reads `deadletter.<group>.v1` from the start up to its high watermarks; while injected poison
/// is still missing, reads again (a poison record after the last valid one of its partition may
/// be dead-lettered after the read model converged), for at most `patience`.
pub async fn dead_letters(broker: &crate::infra::Broker, codec: &Codec, group: &str, injected: &BTreeSet<Vec<u8>>, patience: Duration) -> anyhow::Result<DeadLetterReport> {
    let topic = broker.topic(&topics::dead_letter(group));
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let mut report = DeadLetterReport { injected: injected.len(), ..Default::default() };
        let mut seen = BTreeSet::new();
        for message in read_to_end(&broker.bootstrap, &topic).await? {
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
        }
        report.missing_payloads = injected.difference(&seen).cloned().collect();
        report.missing = report.missing_payloads.len();
        if report.missing == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every record of `topic` from the start up to the high watermark each partition has now (the
/// broker's real watermarks: no waiting for the topic to go quiet).
pub async fn read_to_end(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<OwnedMessage>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("chaos-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(15);
    let (assignment, mut ends) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let mut assignment = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
            if high > low {
                ends.insert(partition.id(), high);
                assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
            }
        }
        Ok((assignment, ends))
    })?;
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&assignment)?;
    while !ends.is_empty() {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .with_context(|| format!("{topic}: partitions {:?} not read to their end within 60 s", ends.keys().collect::<Vec<_>>()))??;
        if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
            ends.remove(&message.partition());
        }
        records.push(message.detach());
    }
    Ok(records)
}

/// What the flow topic holds after the run, read from the start by a fresh consumer.
#[derive(Debug, Default, Clone)]
pub struct FlowTopic {
    pub records: usize,
    /// Every (application, version) of a decodable `LoanStatusChanged` on the topic.
    pub versions: BTreeSet<(String, i64)>,
    /// Payloads that do not decode (the injected poison).
    pub undecodable: BTreeSet<Vec<u8>>,
}

/// Reads the whole flow topic, up to its high watermarks.
pub async fn flow_topic(broker: &crate::infra::Broker, codec: &Codec) -> anyhow::Result<FlowTopic> {
    let mut topic = FlowTopic::default();
    for message in read_to_end(&broker.bootstrap, &broker.topic(topics::LOAN_STATUS_CHANGED)).await? {
        topic.records += 1;
        let payload = message.payload().unwrap_or_default();
        match codec.decode::<LoanStatusChanged>(payload).await {
            Ok(event) => {
                let key = message.key().map(String::from_utf8_lossy).unwrap_or_default();
                if key != event.application_id {
                    tracing::warn!(%key, application_id = %event.application_id, "flow record keyed by another application");
                }
                topic.versions.insert((event.application_id, event.version));
            }
            Err(_) => {
                topic.undecodable.insert(payload.to_vec());
            }
        }
    }
    anyhow::ensure!(topic.records > 0, "the flow topic {} is empty", topics::LOAN_STATUS_CHANGED);
    Ok(topic)
}

/// Every source (application, version) with no `event_log` row.
pub async fn missing_from_event_log(pool: &sqlx::PgPool, expected: &Expected) -> anyhow::Result<Vec<(String, i64)>> {
    let ids: Vec<String> = expected.loans.keys().cloned().collect();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT DISTINCT entity_id, version FROM projection_writer.event_log WHERE entity_type = 'application' AND entity_id = ANY($1)")
            .bind(&ids)
            .fetch_all(pool)
            .await?;
    let applied: BTreeSet<(String, i64)> = rows.into_iter().collect();
    let mut missing = Vec::new();
    for (app, (_, final_version, _)) in &expected.loans {
        missing.extend((1..=*final_version).map(|v| (app.clone(), v)).filter(|key| !applied.contains(key)));
    }
    Ok(missing)
}

/// Who lost what in a run with broker restarts. A source version missing from `event_log` is
/// the broker's loss when the flow topic no longer holds any record of it after the run,
/// Brain's when it is on the topic but was never applied.
#[derive(Debug, Default, Clone)]
pub struct LossAttribution {
    pub broker_restarts: u32,
    pub topic_records: usize,
    /// Records on the flow topic that repeat an (application, version) already there: the
    /// injected duplicates plus what producers re-sent (after a kill, or a retry across a broker
    /// fault). The consumers absorb them; counted apart from Brain's own duplicates.
    pub topic_duplicates: usize,
    /// Missing from `event_log` and from the flow topic.
    pub broker_lost: usize,
    /// Missing from `event_log` although on the flow topic.
    pub brain_lost: usize,
    /// Applications whose final source version is not on the flow topic (their read model and
    /// Firestore document cannot reach it; the version itself is counted in `broker_lost`).
    pub final_versions_lost: usize,
    /// Read-model / Firestore mismatches of the applications whose final version is on the topic.
    pub brain_read_model_mismatches: usize,
    pub brain_firestore_mismatches: usize,
    /// Injected poison neither on the dead-letter topic nor on the flow topic any more.
    pub poison_lost_by_broker: usize,
    /// Injected poison on the flow topic but not on the dead-letter topic.
    pub poison_missing_brain: usize,
    /// Undecodable flow records that are not injected poison (the checker could not judge them).
    pub undecodable_other: usize,
}

impl LossAttribution {
    pub fn attribute(
        broker_restarts: u32,
        topic: &FlowTopic,
        missing: &[(String, i64)],
        expected: &Expected,
        dead_letters: &DeadLetterReport,
        poison: &BTreeSet<Vec<u8>>,
    ) -> (Self, Expected) {
        let topic_duplicates = topic.records.saturating_sub(topic.versions.len() + topic.undecodable.len());
        let mut a = Self { broker_restarts, topic_records: topic.records, topic_duplicates, ..Self::default() };
        for key in missing {
            if topic.versions.contains(key) {
                a.brain_lost += 1;
                tracing::warn!(application = %key.0, version = key.1, "on the flow topic, never applied");
            } else {
                a.broker_lost += 1;
                tracing::info!(application = %key.0, version = key.1, "lost by the broker");
            }
        }
        // The applications whose final state Brain can reach: their final version is on the topic.
        let reachable: BTreeMap<_, _> = expected.loans.iter().filter(|(app, (_, v, _))| topic.versions.contains(&((*app).clone(), *v))).map(|(k, v)| (k.clone(), v.clone())).collect();
        a.final_versions_lost = expected.loans.len() - reachable.len();
        for payload in &dead_letters.missing_payloads {
            if topic.undecodable.contains(payload) {
                a.poison_missing_brain += 1;
            } else {
                a.poison_lost_by_broker += 1;
            }
        }
        a.undecodable_other = topic.undecodable.difference(poison).count();
        (a, Expected { loans: reachable, changes: expected.changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(loans: &[(&str, i64)]) -> Expected {
        let loans = loans.iter().map(|(app, v)| (app.to_string(), (format!("L-{app}"), *v, "Open".to_string()))).collect();
        Expected { loans, changes: 0 }
    }

    #[test]
    fn a_version_gone_from_the_topic_is_the_brokers_loss_and_one_on_it_is_brains() {
        let truth = expected(&[("a", 3), ("b", 2)]);
        // The topic lost a-2 and b-2 (b's final version); a-3 is there but was never applied.
        let topic = FlowTopic {
            records: 4,
            versions: [("a", 1), ("a", 3), ("b", 1)].iter().map(|(app, v)| (app.to_string(), *v)).collect(),
            undecodable: [b"poison-1".to_vec()].into(),
        };
        let missing = vec![("a".to_string(), 2), ("a".to_string(), 3), ("b".to_string(), 2)];
        let poison: BTreeSet<Vec<u8>> = [b"poison-1".to_vec(), b"poison-2".to_vec()].into();
        let dead_letters = DeadLetterReport { injected: 2, missing: 2, missing_payloads: poison.iter().cloned().collect(), ..Default::default() };
        let (a, reachable) = LossAttribution::attribute(2, &topic, &missing, &truth, &dead_letters, &poison);
        assert_eq!((a.broker_lost, a.brain_lost, a.final_versions_lost), (2, 1, 1));
        assert_eq!((a.poison_missing_brain, a.poison_lost_by_broker, a.undecodable_other), (1, 1, 0));
        assert_eq!(reachable.loans.keys().collect::<Vec<_>>(), ["a"]);
    }
}
