//! `spawn_app()`: a fresh database on the local PostgreSQL server (env `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and the app on port 0.

use reqwest::{Client, Response};
use schema_registry::{Application, Settings};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub client: Client,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The app on a database of its own.
pub async fn spawn_app() -> TestApp {
    spawn_on(&create_database().await).await
}

/// The app on an existing database (to test restarts).
pub async fn spawn_on(database_url: &str) -> TestApp {
    let settings = Settings {
        database_url: database_url.to_owned(),
        listen_addr: "127.0.0.1:0".parse().unwrap(),
    };
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        address,
        database_url: database_url.to_owned(),
        client: Client::new(),
        shutdown,
        task,
    }
}

async fn create_database() -> String {
    let server_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.into());
    let name = format!("schema_registry_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&server_url)
        .await
        .expect("PostgreSQL reachable at DATABASE_URL");
    // The name is ours (a uuid), so formatting it into the statement is safe.
    sqlx::query(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.ok();
    with_database(&server_url, &name)
}

async fn drop_database(database_url: &str) {
    let server_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.into());
    let name = database_url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .expect("database name in URL");
    assert!(name.starts_with("schema_registry_test_"), "{name}");
    let mut conn = PgConnection::connect(&server_url)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
    )))
    .execute(&mut conn)
    .await
    .expect("drop test database");
    conn.close().await.ok();
}

/// `server_url` with its database name replaced by `name`.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

pub fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"User","namespace":"brain.test","fields":[{fields}]}}"#)
}

pub fn user_v1() -> String {
    record(r#"{"name":"id","type":"long"}"#)
}

pub fn user_with_default() -> String {
    record(r#"{"name":"id","type":"long"},{"name":"name","type":"string","default":""}"#)
}

pub fn user_without_default() -> String {
    record(r#"{"name":"id","type":"long"},{"name":"name","type":"string"}"#)
}

impl TestApp {
    /// Stops the app gracefully, keeping its database (to start another app on it).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("app task joins")
            .expect("app stops cleanly");
    }

    /// Stops the app and drops its database. A failed test skips this and leaves its database
    /// (`schema_registry_test_*`) for inspection.
    pub async fn finish(self) {
        let database_url = self.database_url.clone();
        self.stop().await;
        drop_database(&database_url).await;
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.address))
            .header("content-type", schema_registry::CONTENT_TYPE)
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, subject: &str, schema: &str) -> Response {
        self.post(
            &format!("/subjects/{subject}/versions"),
            &json!({ "schema": schema }),
        )
        .await
    }

    /// Registers and returns the id, failing the test on anything but 200.
    pub async fn register_ok(&self, subject: &str, schema: &str) -> i64 {
        let body = expect_json(self.register(subject, schema).await, 200).await;
        body["id"].as_i64().expect("id in answer")
    }

    pub async fn set_level(&self, subject: &str, level: &str) {
        let response = self
            .put(
                &format!("/config/{subject}"),
                &json!({ "compatibility": level }),
            )
            .await;
        expect_json(response, 200).await;
    }
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body readable");
    assert_eq!(actual, status, "unexpected status, body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// Asserts a Confluent error answer.
pub async fn expect_error(response: Response, status: u16, error_code: i64) -> Value {
    let body = expect_json(response, status).await;
    assert_eq!(body["error_code"], error_code, "{body}");
    assert!(body["message"].is_string(), "{body}");
    body
}

#[test]
fn replaces_the_database_name() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    assert_eq!(
        with_database("postgres://h/db?sslmode=disable", "x"),
        "postgres://h/x?sslmode=disable"
    );
}
