//! The infrastructure a test runs against.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context;
use brain_events::topics::Namespace;
use brain_runtime::settings::KafkaSettings;
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::{free_port, repo_root, wait_for};

/// The broker a test runs against.
///
/// By default, the Apache Kafka cluster of the whole test run (`BRAIN_TEST_KAFKA_BROKERS`, started
/// by `make test`, `make bench` or `make chaos`); each test isolates itself with a namespace of its
/// own (every topic and consumer group is prefixed with it). With `BRAIN_BROKER=tansu`, a tansu
/// broker process of the test's own instead (in memory unless told otherwise).
pub struct Broker {
    pub bootstrap: String,
    /// Prefix of this test's topics and consumer groups.
    pub namespace: Namespace,
    /// How many times `restart` killed a broker (a node of the cluster) and started it again.
    pub restarts: u32,
    /// Leader elections forced by `move_leaders`.
    pub leader_elections: u32,
    kind: BrokerKind,
}

enum BrokerKind {
    Kafka { cluster: Option<String>, nodes: u32 },
    Tansu(Box<Tansu>),
}

/// Where tansu keeps its data. The default is `memory://tansu/`: fast, and lost on restart.
#[derive(Debug, Clone)]
pub struct BrokerStorage {
    /// tansu's `--storage-engine` URL, e.g. `s3://tansu/`.
    pub url: String,
    /// Extra environment of the broker process (e.g. the S3 backend's `AWS_*` variables).
    pub env: Vec<(String, String)>,
}

impl BrokerStorage {
    pub fn memory() -> Self {
        Self { url: "memory://tansu/".into(), env: vec![] }
    }

    /// tansu's `s3://` engine against `server` (bucket `tansu`, created by `S3Server::start`).
    pub fn s3(server: &S3Server) -> Self {
        Self {
            url: format!("s3://{}/", S3Server::BUCKET),
            env: [
                ("AWS_ENDPOINT", server.endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", "brain-chaos"),
                ("AWS_SECRET_ACCESS_KEY", "brain-chaos"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ALLOW_HTTP", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }
}

impl Broker {
    /// Whether tests run on tansu processes of their own (`BRAIN_BROKER=tansu`).
    pub fn is_tansu() -> bool {
        std::env::var("BRAIN_BROKER").is_ok_and(|b| b == "tansu")
    }

    pub async fn start(log: PathBuf) -> anyhow::Result<Self> {
        let namespace = Namespace::new(&format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])).expect("valid namespace");
        if Self::is_tansu() {
            let tansu = Tansu::start(log, BrokerStorage::memory()).await?;
            return Ok(Self { bootstrap: tansu.bootstrap(), namespace, restarts: 0, leader_elections: 0, kind: BrokerKind::Tansu(Box::new(tansu)) });
        }
        let bootstrap = std::env::var("BRAIN_TEST_KAFKA_BROKERS")
            .context("BRAIN_TEST_KAFKA_BROKERS is not set: run the tests through `make test` (it starts the run's Kafka), or set BRAIN_BROKER=tansu")?;
        let cluster = std::env::var("BRAIN_TEST_KAFKA_CLUSTER").ok();
        let nodes = std::env::var("BRAIN_TEST_KAFKA_NODES").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
        Ok(Self { bootstrap, namespace, restarts: 0, leader_elections: 0, kind: BrokerKind::Kafka { cluster, nodes } })
    }

    /// Kafka settings for this test's namespace.
    pub fn settings(&self) -> KafkaSettings {
        let mut settings = KafkaSettings::new(self.bootstrap.clone());
        settings.namespace = self.namespace.clone();
        settings.topic_replication = self.replication();
        settings
    }

    /// The real name of catalogue topic `base` in this test's namespace.
    pub fn topic(&self, base: &str) -> String {
        self.namespace.topic(base)
    }

    /// Nodes of the cluster (1 for tansu).
    pub fn nodes(&self) -> u32 {
        match &self.kind {
            BrokerKind::Kafka { nodes, .. } => *nodes,
            BrokerKind::Tansu(_) => 1,
        }
    }

    /// The replication factor topics get: 3 on a cluster of three or more nodes.
    pub fn replication(&self) -> i32 {
        if self.nodes() >= 3 { 3 } else { 1 }
    }

    fn cluster(&self) -> anyhow::Result<&str> {
        match &self.kind {
            BrokerKind::Kafka { cluster: Some(cluster), nodes } if *nodes >= 3 => Ok(cluster),
            _ => anyhow::bail!("broker faults need a Kafka cluster of 3 nodes of this run's own (make chaos starts one)"),
        }
    }

    /// tansu: SIGKILL (no flush, no shutdown) and start again on the same port and storage.
    /// A Kafka cluster: SIGKILL node `node` (1-based) and start it again; the others keep serving.
    /// Clients keep the same bootstrap list and reconnect by themselves.
    pub async fn restart(&mut self, node: u32) -> anyhow::Result<()> {
        if let BrokerKind::Tansu(tansu) = &mut self.kind {
            tansu.restart().await?;
        } else {
            let cluster = self.cluster()?.to_string();
            kafka_sh(&["kill", &cluster, "--node", &node.to_string()]).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            kafka_sh(&["start-node", &cluster, "--node", &node.to_string()]).await?;
        }
        self.restarts += 1;
        Ok(())
    }

    /// Every node in turn: SIGTERM (a clean, controlled shutdown), start, wait until it is back.
    pub async fn rolling_restart(&mut self) -> anyhow::Result<()> {
        let cluster = self.cluster()?.to_string();
        for node in 1..=self.nodes() {
            kafka_sh(&["stop", &cluster, "--node", &node.to_string()]).await?;
            kafka_sh(&["start-node", &cluster, "--node", &node.to_string()]).await?;
            self.restarts += 1;
        }
        Ok(())
    }

    /// Moves partition leadership back to the preferred replicas (a leader change for every
    /// partition whose leader moved while a node was down).
    pub async fn move_leaders(&mut self) -> anyhow::Result<()> {
        let cluster = self.cluster()?.to_string();
        kafka_sh(&["elect-leaders", &cluster]).await?;
        self.leader_elections += 1;
        Ok(())
    }

    /// tansu only: restarts the broker on the same port with `storage` instead. Anything in the
    /// old storage stays behind, so use it before any client has written.
    pub async fn switch_storage(&mut self, storage: BrokerStorage) -> anyhow::Result<()> {
        match &mut self.kind {
            BrokerKind::Tansu(tansu) => tansu.switch_storage(storage).await,
            BrokerKind::Kafka { .. } => anyhow::bail!("Apache Kafka keeps its data on disk; there is no storage to switch"),
        }
    }
}

/// Runs `infra/kafka/kafka.sh` with `args` and fails with its output when it fails.
async fn kafka_sh(args: &[&str]) -> anyhow::Result<()> {
    let script = repo_root().join("infra/kafka/kafka.sh");
    let output = Command::new("bash").arg(&script).args(args).output().await.with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "kafka.sh {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).lines().rev().take(10).collect::<Vec<_>>().join(" | ")
    );
    Ok(())
}

/// A tansu broker process of one test's own.
struct Tansu {
    storage: BrokerStorage,
    bin: PathBuf,
    port: u16,
    log: PathBuf,
    child: Child,
}

impl Tansu {
    async fn start(log: PathBuf, storage: BrokerStorage) -> anyhow::Result<Self> {
        let bin = std::env::var("BRAIN_TANSU").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".cache/bin/tansu"));
        anyhow::ensure!(bin.exists(), "no broker at {} — run `make setup` (or `make test`) first", bin.display());
        let port = free_port();
        std::fs::File::create(&log)?;
        let child = Self::spawn(&bin, port, &storage, &log).await?;
        Ok(Self { storage, bin, port, log, child })
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn spawn(bin: &std::path::Path, port: u16, storage: &BrokerStorage, log: &std::path::Path) -> anyhow::Result<Child> {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", &storage.url])
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(storage.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(std::fs::File::options().append(true).open(log)?))
            .stderr(Stdio::from(std::fs::File::options().append(true).open(log)?))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let bootstrap = format!("127.0.0.1:{port}");
        wait_for("the broker to accept connections", Duration::from_secs(20), || {
            let addr = bootstrap.clone();
            async move { Ok(tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())) }
        })
        .await?;
        Ok(child)
    }

    async fn restart(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        self.child = Self::spawn(&self.bin, self.port, &self.storage, &self.log).await?;
        Ok(())
    }

    async fn switch_storage(&mut self, storage: BrokerStorage) -> anyhow::Result<()> {
        self.child.kill().await?;
        self.storage = storage;
        self.child = Self::spawn(&self.bin, self.port, &self.storage, &self.log).await?;
        Ok(())
    }
}

/// A local S3-compatible server (moto's `moto_server`, in memory) for the broker's `s3://`
/// storage, with the bucket `tansu` created. The broker's data survives the broker's restarts,
/// not this server's.
pub struct S3Server {
    pub endpoint: String,
    _child: Child,
}

impl S3Server {
    pub const BUCKET: &str = "tansu";

    /// `BRAIN_MOTO_SERVER`, else `.cache/chaos-venv/bin/moto_server` (`make chaos` installs it
    /// from `infra/dev/requirements-chaos.txt` when broker restarts are asked for).
    pub fn binary() -> PathBuf {
        std::env::var("BRAIN_MOTO_SERVER").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".cache/chaos-venv/bin/moto_server"))
    }

    pub async fn start(log: PathBuf) -> anyhow::Result<Self> {
        let bin = Self::binary();
        anyhow::ensure!(bin.exists(), "no S3 server at {} — run it through `make chaos`, which installs it", bin.display());
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log)?))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let bucket = format!("{endpoint}/{}", Self::BUCKET);
        // moto accepts unsigned requests: a path-style PUT creates the bucket.
        wait_for("the S3 server to create the bucket", Duration::from_secs(30), || {
            let (http, bucket) = (http.clone(), bucket.clone());
            async move { Ok(http.put(&bucket).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
        })
        .await?;
        Ok(Self { endpoint, _child: child })
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

/// Credentials generated for one test's ShareFile simulator (API client and service account);
/// never stored.
#[derive(Debug, Clone)]
pub struct ShareFileCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
}

impl ShareFileCredentials {
    pub fn generate() -> Self {
        let random = || uuid::Uuid::new_v4().simple().to_string();
        Self { client_id: format!("sf-client-{}", &random()[..8]), client_secret: random(), username: format!("brain-{}@example.com", &random()[..8]), password: random() }
    }
}

/// The bucket the tests' apps upload into (the gateway's default `UPLOAD_BUCKETS`).
pub const UPLOAD_BUCKET: &str = "brain-uploads";
/// The ShareFile folder the applications' folders are made in.
pub const SHAREFILE_ROOT: &str = "/Clients";

/// The ShareFile simulator, in this process, with `/Clients`.
pub async fn sharefile_simulator(credentials: &ShareFileCredentials) -> anyhow::Result<sharefile_simulator::RunningSimulator> {
    let mut config = sharefile_simulator::Config::new(&credentials.client_id, &credentials.client_secret, &credentials.username, &credentials.password);
    config.listen_addr = "127.0.0.1:0".parse()?;
    config.root_folders = vec![SHAREFILE_ROOT.to_string()];
    Ok(sharefile_simulator::Simulator::start(config).await?.spawn())
}

/// The Cloud Storage simulator, in this process, with the upload bucket.
pub async fn storage_simulator() -> anyhow::Result<storage_simulator::RunningSimulator> {
    let config = storage_simulator::Config { listen_addr: "127.0.0.1:0".parse()?, buckets: vec![UPLOAD_BUCKET.to_string()], ..storage_simulator::Config::default() };
    Ok(storage_simulator::Simulator::start(config).await?.spawn())
}

/// Credentials generated for one test's QBO simulator: the OAuth client, the webhook verifier and
/// qbo-mirror's token key; never stored.
#[derive(Debug, Clone)]
pub struct QboCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub verifier: String,
    /// 32 random bytes, base64.
    pub token_key: String,
}

impl QboCredentials {
    pub fn generate() -> Self {
        use base64::Engine;
        let random = || uuid::Uuid::new_v4().simple().to_string();
        let key: Vec<u8> = [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat();
        Self {
            client_id: format!("qbo-client-{}", &random()[..8]),
            client_secret: random(),
            verifier: random(),
            token_key: base64::engine::general_purpose::STANDARD.encode(key),
        }
    }
}

/// The QBO simulator, in this process, sending its webhooks to `webhook_url`.
pub async fn qbo_simulator(credentials: &QboCredentials, webhook_url: String) -> anyhow::Result<qbo_simulator::RunningSimulator> {
    let mut config = qbo_simulator::Config::new(&credentials.client_id, &credentials.client_secret, &credentials.verifier);
    config.listen_addr = "127.0.0.1:0".parse()?;
    config.webhook.url = Some(webhook_url);
    Ok(qbo_simulator::Simulator::start(config).await?.spawn())
}

/// Credentials generated for one test's Graph simulator (the Entra tenant and app registration)
/// and the `clientState` of graph-calendar's subscriptions; never stored.
#[derive(Debug, Clone)]
pub struct GraphCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub client_state: String,
}

impl GraphCredentials {
    pub fn generate() -> Self {
        let random = || uuid::Uuid::new_v4().to_string();
        Self { tenant_id: random(), client_id: random(), client_secret: random(), client_state: random() }
    }
}

/// The Microsoft Graph simulator, in this process.
pub async fn graph_simulator(credentials: &GraphCredentials) -> anyhow::Result<graph_simulator::RunningSimulator> {
    let mut config = graph_simulator::Config::new(&credentials.tenant_id, &credentials.client_id, &credentials.client_secret);
    config.listen_addr = "127.0.0.1:0".parse()?;
    Ok(graph_simulator::Simulator::start(config).await?.spawn())
}

/// graph-calendar's settings against the simulator at `graph_base`, its subscriptions pointing
/// at the gateway (`gateway_url`); no staff (a test sets `GRAPH_CALENDAR__STAFF`).
pub fn graph_calendar_env(prefix: &str, graph_base: &str, credentials: &GraphCredentials, gateway_url: &str) -> Vec<(String, String)> {
    [
        ("GRAPH_API_BASE", format!("{graph_base}/v1.0")),
        ("GRAPH_TOKEN_URL", format!("{graph_base}/{}/oauth2/v2.0/token", credentials.tenant_id)),
        ("GRAPH_CLIENT_ID", credentials.client_id.clone()),
        ("GRAPH_CLIENT_SECRET", credentials.client_secret.clone()),
        ("NOTIFICATION_URL", format!("{gateway_url}/api/v1/webhooks/graph")),
        ("CLIENT_STATE", credentials.client_state.clone()),
        ("REFRESH_INTERVAL_MS", "5000".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{prefix}__{k}"), v))
    .collect()
}

/// The Ventures simulator, in this process.
pub async fn simulator(credentials: &VenturesCredentials) -> anyhow::Result<ventures_simulator::RunningSimulator> {
    let mut config = ventures_simulator::Config::new(&credentials.client, &credentials.username, &credentials.password);
    config.listen_addr = "127.0.0.1:0".parse()?;
    Ok(ventures_simulator::Simulator::start(config).await?.spawn())
}

/// The dev OIDC issuer, in this process, on a free port.
pub async fn oidc() -> anyhow::Result<dev_oidc::RunningIssuer> {
    let config = dev_oidc::Config { listen_addr: "127.0.0.1:0".parse()?, audience: crate::stack::AUDIENCE.into(), ..dev_oidc::Config::default() };
    Ok(dev_oidc::DevOidc::start(config).await?.spawn())
}

/// The shared emulator's address; `make test` starts it and exports the variable.
pub fn emulator_host() -> anyhow::Result<String> {
    std::env::var("FIRESTORE_EMULATOR_HOST").context("FIRESTORE_EMULATOR_HOST is not set: run the tests with `make test`")
}
