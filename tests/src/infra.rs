//! The infrastructure a test runs against.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context;
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::{free_port, repo_root, wait_for};

/// A Kafka-API broker (tansu, in memory) of this test's own.
pub struct Broker {
    pub bootstrap: String,
    _child: Child,
}

impl Broker {
    pub async fn start(log: PathBuf) -> anyhow::Result<Self> {
        let bin = std::env::var("BRAIN_TANSU").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".cache/bin/tansu"));
        anyhow::ensure!(bin.exists(), "no broker at {} — run `make setup` (or `make test`) first", bin.display());
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"])
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log)?))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let bootstrap = format!("127.0.0.1:{port}");
        wait_for("the broker to accept connections", Duration::from_secs(20), || {
            let addr = bootstrap.clone();
            async move { Ok(tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())) }
        })
        .await?;
        Ok(Self { bootstrap, _child: child })
    }
}

/// A PostgreSQL database of this test's own on the server at `DATABASE_URL`.
pub struct Database {
    pub name: String,
    server: String,
}

impl Database {
    pub fn server_url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&Self::server_url()).await
    }

    /// A new database on the server at `server`.
    pub async fn create_on(server: &str) -> anyhow::Result<Self> {
        let server = server.to_string();
        let name = format!("brain_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&server).await.context("connecting to PostgreSQL (DATABASE_URL)")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        Ok(Self { name, server })
    }

    /// The URL of this database for `user` (the server URL's user when `None`).
    pub fn url(&self, user: Option<&str>) -> String {
        let mut url = reqwest::Url::parse(&self.server).expect("valid DATABASE_URL");
        url.set_path(&format!("/{}", self.name));
        if let Some(user) = user {
            url.set_username(user).expect("URL with a host");
            url.set_password(None).expect("URL with a host");
        }
        url.to_string()
    }

    pub async fn connect(&self) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&self.url(None)).await?)
    }
}

/// The schema registry, in this process, storing in `db`.
pub async fn registry(db: &Database, shutdown: CancellationToken) -> anyhow::Result<String> {
    let app = schema_registry::Application::build(schema_registry::Settings {
        database_url: db.url(None),
        listen_addr: "127.0.0.1:0".parse()?,
    })
    .await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(shutdown));
    Ok(url)
}

/// Credentials generated for one test's simulator; never stored.
#[derive(Debug, Clone)]
pub struct VenturesCredentials {
    pub client: String,
    pub username: String,
    pub password: String,
}

impl VenturesCredentials {
    pub fn generate() -> Self {
        let random = || uuid::Uuid::new_v4().simple().to_string();
        Self { client: format!("client-{}", &random()[..8]), username: format!("user-{}", &random()[..8]), password: random() }
    }
}

/// The Ventures simulator, in this process.
pub async fn simulator(credentials: &VenturesCredentials) -> anyhow::Result<ventures_simulator::RunningSimulator> {
    let mut config = ventures_simulator::Config::new(&credentials.client, &credentials.username, &credentials.password);
    config.listen_addr = "127.0.0.1:0".parse()?;
    Ok(ventures_simulator::Simulator::start(config).await?.spawn())
}

/// The shared emulator's address; `make test` starts it and exports the variable.
pub fn emulator_host() -> anyhow::Result<String> {
    std::env::var("FIRESTORE_EMULATOR_HOST").context("FIRESTORE_EMULATOR_HOST is not set: run the tests with `make test`")
}
