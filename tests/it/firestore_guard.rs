use std::time::Duration;

use brain_events::topics;
use brain_runtime::producer::EventProducer;
use projection_writer::{
    firestore::{self, Projections},
    handler::{COLLECTION, VERSION_FIELD},
};
use system_tests::{
    stack::{PROJECTION_WRITER, Stack},
    wait_for,
};

fn version_fields(version: i64) -> Vec<(&'static str, firestore::FirestoreValue)> {
    vec![(VERSION_FIELD, firestore::integer(version)), ("venturesStatus", firestore::string(format!("S{version}")))]
}

async fn version_of(projections: &Projections, id: &str) -> anyhow::Result<Option<i64>> {
    let docs = projections.get(COLLECTION, &[id.to_string()]).await?;
    Ok(docs.get(id).and_then(|fields| fields.get(VERSION_FIELD)).and_then(firestore::as_i64))
}

/// A write guarded by what its writer read under the lock fails once somebody else wrote the
/// document since: a slow `Commit` of an instance that lost its partition cannot move a
/// document back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_of_a_former_owner_cannot_move_a_document_back() -> anyhow::Result<()> {
    crate::init_logs();
    let stack = Stack::start("firestore-guard").await?;
    let projections = stack.projections().await?;
    let deadline = Duration::from_secs(10);
    let id = "app-guard";

    // Both owners read the missing document; the new owner writes first.
    let stale_read = projections.seen(COLLECTION, &[id], VERSION_FIELD, deadline).await?.remove(id).unwrap_or_default();
    let write = projections.merge_write(COLLECTION, id, version_fields(2), Some(&stale_read));
    projections.commit(vec![write], deadline).await?;
    let late = projections.merge_write(COLLECTION, id, version_fields(1), Some(&stale_read));
    let refused = projections.commit(vec![late], deadline).await.expect_err("the late create must be refused");
    assert!(firestore::is_precondition(&refused), "{refused:?}");

    // Same with an existing document: the precondition is its update time.
    let stale_read = projections.seen(COLLECTION, &[id], VERSION_FIELD, deadline).await?.remove(id).unwrap_or_default();
    assert_eq!(stale_read.version, Some(2));
    tokio::time::sleep(Duration::from_millis(5)).await;
    projections.commit(vec![projections.merge_write(COLLECTION, id, version_fields(3), Some(&stale_read))], deadline).await?;
    let late = projections.merge_write(COLLECTION, id, version_fields(2), Some(&stale_read));
    let refused = projections.commit(vec![late], deadline).await.expect_err("the late update must be refused");
    assert!(firestore::is_precondition(&refused), "{refused:?}");
    assert_eq!(version_of(&projections, id).await?, Some(3));
    println!("firestore guard: late create and late update refused ({}), document stays at version 3", refused.code());
    Ok(())
}

/// projection-writer never writes a version into Firestore that is older than the one there
/// (e.g. left by an instance whose PostgreSQL transaction then rolled back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_writer_does_not_write_an_older_version_over_a_newer_one() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("firestore-version").await?;
    let projections = stack.projections().await?;
    let id = "app-newer";
    projections.merge_fields(COLLECTION, id, version_fields(10)).await?;
    stack.start_services(&[PROJECTION_WRITER]).await?;
    let pool = stack.db.connect().await?;
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "guard-test")?;
    let event = system_tests::loan_event(id, 5);
    producer.send(topics::LOAN_STATUS_CHANGED, id, &event).await?;
    wait_for("the read model to take version 5", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let v: Option<i64> = sqlx::query_scalar("SELECT version FROM projection_writer.applications WHERE application_id = $1")
                .bind(id)
                .fetch_optional(&pool)
                .await?;
            Ok((v == Some(5)).then_some(()))
        }
    })
    .await?;
    assert_eq!(version_of(&projections, id).await?, Some(10), "Firestore kept the newer version");
    stack.stop_all().await?;
    Ok(())
}

/// projection-writer remembers each document's update time from its own last write. When an app
/// writes the document in between (its own fields), that guess is stale: the guarded write is
/// refused, projection-writer reads the document again and writes once more, and the app's field
/// stays as the app wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_by_an_app_in_between_is_kept_and_the_projection_still_lands() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("firestore-app-write").await?;
    let projections = stack.projections().await?;
    stack.start_services(&[PROJECTION_WRITER]).await?;
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "guard-test")?;
    let id = "app-shared";
    let projected = |version: i64| {
        let projections = projections.clone();
        async move { Ok((version_of(&projections, id).await? == Some(version)).then_some(())) }
    };
    producer.send(topics::LOAN_STATUS_CHANGED, id, &system_tests::loan_event(id, 1)).await?;
    wait_for("version 1 in Firestore", Duration::from_secs(60), || projected(1)).await?;

    // The borrower's app edits its own field of the same document.
    tokio::time::sleep(Duration::from_millis(5)).await;
    projections.merge_fields(COLLECTION, id, vec![("borrowerNote", firestore::string("call me after 5"))]).await?;

    producer.send(topics::LOAN_STATUS_CHANGED, id, &system_tests::loan_event(id, 2)).await?;
    wait_for("version 2 in Firestore", Duration::from_secs(60), || projected(2)).await?;
    let doc = projections.get(COLLECTION, &[id.to_string()]).await?.remove(id).unwrap_or_default();
    assert_eq!(doc.get("borrowerNote").and_then(firestore::as_str), Some("call me after 5"), "the app's field is kept");
    let rereads = stack.service(PROJECTION_WRITER).metric("projection_writer_firestore_rereads_total").await?;
    assert!(rereads >= 1.0, "the stale update time was caught by the precondition and read again ({rereads})");
    println!("firestore guard: app write in between caught by the precondition ({rereads} re-read), version 2 projected, app field kept");
    stack.stop_all().await?;
    Ok(())
}
