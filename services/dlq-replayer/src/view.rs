//! Dead letters as the CLI's `--json` output and the HTTP API show them ([`dlq_api`] types):
//! one line of a list, the counts per topic, class and kind, and one in full.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use dlq_api::{Attempts, ConsumerRef, CountGroup, DeadLetterCounts, DeadLetterDetail, DeadLetterSummary, Disposition, ErrorInfo, Header, Source};

use crate::read::Item;

/// Parked and discarded dead letters: id → (action, reason), as `Audit::dispositions` has them.
pub type Dispositions = HashMap<String, (String, String)>;

fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

pub fn summary(item: &Item, disposition: Option<&str>) -> DeadLetterSummary {
    let e = &item.envelope;
    DeadLetterSummary {
        id: e.dead_letter_id.clone(),
        topic: item.topic.clone(),
        source_topic: e.source_topic.clone(),
        class: e.error_class.clone(),
        kind: e.error_kind.clone(),
        message: e.error_message.clone(),
        key: text(e.key.as_deref()),
        tenant: item.tenant(),
        dead_lettered_at: DateTime::from_timestamp_millis(e.dead_lettered_at),
        replays: item.replays(),
        disposition: disposition.map(str::to_string),
    }
}

pub fn detail(item: &Item, disposition: Option<(String, String)>) -> DeadLetterDetail {
    let e = &item.envelope;
    DeadLetterDetail {
        id: e.dead_letter_id.clone(),
        dead_letter_topic: item.topic.clone(),
        source: Source {
            topic: e.source_topic.clone(),
            partition: e.source_partition,
            offset: e.source_offset,
            timestamp: e.source_timestamp.and_then(DateTime::from_timestamp_millis),
        },
        key: text(e.key.as_deref()),
        consumer: ConsumerRef { group: e.consumer_group.clone(), service: e.service.clone() },
        error: ErrorInfo { class: e.error_class.clone(), kind: e.error_kind.clone(), message: e.error_message.clone() },
        attempts: Attempts { count: e.attempts, first: DateTime::from_timestamp_millis(e.first_attempt_at), last: DateTime::from_timestamp_millis(e.last_attempt_at) },
        dead_lettered_at: DateTime::from_timestamp_millis(e.dead_lettered_at),
        trace_id: e.trace_id.clone(),
        replays: item.replays(),
        disposition: disposition.map(|(action, reason)| Disposition { action, reason }),
        headers: e.headers.iter().map(|h| Header { key: h.key.clone(), value: text(h.value.as_deref()) }).collect(),
        event: item.event.clone(),
        value_bytes: e.value.as_ref().map(Vec::len),
    }
}

/// Counts per topic, error class and kind, with the oldest one's age.
pub fn counts(items: &[Item]) -> DeadLetterCounts {
    let mut groups: BTreeMap<(&str, &str, &str), (usize, i64)> = BTreeMap::new();
    for item in items {
        let e = &item.envelope;
        let slot = groups.entry((item.topic.as_str(), e.error_class.as_str(), e.error_kind.as_str())).or_insert((0, i64::MAX));
        slot.0 += 1;
        slot.1 = slot.1.min(e.dead_lettered_at);
    }
    let now = Utc::now().timestamp_millis();
    let groups = groups
        .into_iter()
        .map(|((topic, class, kind), (count, oldest))| CountGroup {
            topic: topic.to_string(),
            class: class.to_string(),
            kind: kind.to_string(),
            count,
            oldest_age_seconds: (now - oldest).max(0) / 1000,
        })
        .collect();
    DeadLetterCounts { total: items.len(), groups }
}
