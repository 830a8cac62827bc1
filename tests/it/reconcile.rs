//! Reconciliation of the Firestore projections with the read model: a projection corrupted
//! behind Brain's back (another version and status) and one deleted are found by
//! projection-writer's periodic round (no change listener runs here), restored from the read model,
//! and reported as `ProtectedFieldViolation` events.

use std::time::Duration;

use brain_events::{ProtectedFieldViolation, topics};
use brain_runtime::producer::EventProducer;
use projection_writer::{
    firestore,
    handler::{COLLECTION, VERSION_FIELD},
};
use system_tests::{
    loan_event,
    stack::{PROJECTION_WRITER, Stack},
    topics::TopicReader,
    wait_for,
};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_and_deleted_projections_are_restored_from_the_read_model() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("reconcile").await?;
    stack.service(PROJECTION_WRITER).set_env("PROJECTION_WRITER__RECONCILE_INTERVAL_MS", "1000");
    stack.start_services(&[PROJECTION_WRITER]).await?;
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "reconcile-test")?;
    let apps = ["app-rec-1", "app-rec-2", "app-rec-3"];
    for app in apps {
        producer.send(topics::LOAN_STATUS_CHANGED, app, &loan_event(app, 2)).await?;
    }
    let projections = stack.projections().await?;
    let state = |id: &'static str| {
        let projections = projections.clone();
        async move {
            let docs = projections.get(COLLECTION, &[id.to_string()]).await?;
            let fields = docs.get(id);
            let version = fields.and_then(|f| f.get(VERSION_FIELD)).and_then(firestore::as_i64);
            let status = fields.and_then(|f| f.get("venturesStatus")).and_then(firestore::as_str).map(str::to_string);
            anyhow::Ok((version, status))
        }
    };
    for app in apps {
        wait_for(&format!("{app} projected"), WAIT, || async { Ok((state(app).await?.0 == Some(2)).then_some(())) }).await?;
    }

    // Behind Brain's back: one document moved to another version and status, one deleted.
    projections.merge_fields(COLLECTION, "app-rec-1", vec![(VERSION_FIELD, firestore::integer(1)), ("venturesStatus", firestore::string("Hacked"))]).await?;
    projections.delete(COLLECTION, "app-rec-2").await?;
    assert_eq!(state("app-rec-2").await?, (None, None));

    for app in ["app-rec-1", "app-rec-2"] {
        wait_for(&format!("{app} restored from the read model"), WAIT, || async { Ok((state(app).await? == (Some(2), Some("Status2".into()))).then_some(())) }).await?;
    }
    let violations = TopicReader::new(&stack, topics::PROTECTED_FIELD_VIOLATION).await?;
    let mut reported = Vec::new();
    while let Some(v) = violations.next::<ProtectedFieldViolation>(Duration::from_secs(3)).await? {
        reported.push(v.application_id);
    }
    reported.sort();
    reported.dedup();
    assert_eq!(reported, vec!["app-rec-1", "app-rec-2"], "each drift reported once as an event");
    let drift = stack.service(PROJECTION_WRITER).metric("projection_writer_drift_total").await?;
    assert!(drift >= 2.0, "drift counted: {drift}");
    println!("reconcile: 2 drifted projections restored; drift metric {drift}");
    assert_eq!(state("app-rec-3").await?, (Some(2), Some("Status2".into())), "the untouched one is as it was");
    stack.stop_all().await?;
    Ok(())
}
