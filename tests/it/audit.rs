use system_tests::infra::Database;

/// `event_log` is append-only for the role projection-writer runs as, and for everyone else.
#[tokio::test]
async fn event_log_is_append_only() -> anyhow::Result<()> {
    let db = Database::create().await?;
    let url = secrecy::SecretString::from(db.url(None));
    let pool = brain_runtime::db::connect(&url, "projection_writer", &projection_writer::MIGRATOR, Some(projection_writer::DB_ROLE), 2).await?;
    sqlx::query(
        "INSERT INTO event_log (event_id, event_type, tenant_id, entity_type, entity_id, version, occurred_at, correlation_id, producer, change)
         VALUES (gen_random_uuid(), 'test', 't', 'application', 'a', 1, now(), 'c', 'test', '{}')",
    )
    .execute(&pool)
    .await?;
    for statement in ["UPDATE event_log SET version = 2", "DELETE FROM event_log", "TRUNCATE event_log"] {
        let error = sqlx::query(statement).execute(&pool).await.expect_err(statement).to_string();
        assert!(error.contains("permission denied"), "{statement}: {error}");
    }
    // Even the owner cannot rewrite history.
    let owner = db.connect().await?;
    for statement in ["UPDATE projection_writer.event_log SET version = 2", "DELETE FROM projection_writer.event_log"] {
        let error = sqlx::query(statement).execute(&owner).await.expect_err(statement).to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    // The gateway's role reads the published view and nothing else.
    let reader = sqlx::PgPool::connect(&db.url(Some("brain_gateway_reader"))).await?;
    sqlx::query("SELECT count(*) FROM read_api.applications").execute(&reader).await?;
    let error = sqlx::query("SELECT count(*) FROM projection_writer.event_log").execute(&reader).await.expect_err("no access").to_string();
    assert!(error.contains("permission denied"), "{error}");
    Ok(())
}
