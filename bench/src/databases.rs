//! The databases the bench creates hold hundreds of thousands of rows: they are dropped after use.

use system_tests::infra::Database;

/// Drops a database the bench created (they hold hundreds of thousands of rows).
pub async fn drop_database(name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&Database::server_url()).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}
