//! Figures (10) and (11) in a `make bench` run: qbo-mirror's initial sync of the companies,
//! then the same companies under a lossy webhook stream (`qbo_sync`, `qbo_stream`).

use std::time::{Duration, Instant};

use system_tests::stack::Stack;

use crate::{
    qbo_stream::{self, QboStreamFigures},
    qbo_sync::{self, QboSyncFigures},
};

/// (10) then (11), full size or the smoke sizes.
pub async fn measure(stack: &mut Stack, smoke: bool, started: Instant) -> anyhow::Result<(QboSyncFigures, QboStreamFigures)> {
    let (qbo_realms, qbo_documents) = if smoke { (10, 500) } else { (100, 5_000) };
    say!(started, "(10) qbo-mirror initial sync: {qbo_realms} realms × {qbo_documents} documents");
    let qbo_timeout = Duration::from_secs(if smoke { 300 } else { 1_800 });
    let qbo_sync = qbo_sync::measure(stack, qbo_realms, qbo_documents, qbo_timeout).await?;
    say!(
        started,
        "    {:.0} documents/s ({} in {:.1} s) · {} QBO requests · {} 429s · fetch {:.0} documents/s",
        qbo_sync.documents_per_sec,
        qbo_sync.documents,
        qbo_sync.sync_seconds,
        qbo_sync.qbo_requests,
        qbo_sync.throttled,
        qbo_sync.fetch.documents_per_sec
    );
    let stream_secs = Duration::from_secs(if smoke { 10 } else { 60 });
    say!(started, "(11) qbo-mirror under a webhook stream for {} s (10 % dropped, 10 % twice)", stream_secs.as_secs());
    let qbo_stream = qbo_stream::measure(stack, stream_secs, qbo_stream::BACKSTOP + Duration::from_secs(180)).await?;
    say!(
        started,
        "    {} changes ({:.1}/s): lag p50 {:.1} s · p95 {:.1} s · max {:.1} s · {} lost · {} extra log rows",
        qbo_stream.changes,
        qbo_stream.changes_per_sec,
        qbo_stream.lag_p50_s,
        qbo_stream.lag_p95_s,
        qbo_stream.lag_max_s,
        qbo_stream.lost,
        qbo_stream.extra_rows
    );
    Ok((qbo_sync, qbo_stream))
}
