//! One test's whole system: infrastructure plus Brain's services as processes.

use std::{collections::BTreeMap, path::PathBuf};

use brain_events::{Codec, RegistryClient, codec::SchemaIds};
use dev_oidc::{MintRequest, RunningIssuer};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{
    free_port,
    infra::{self, Broker, Database, GraphCredentials, QboCredentials, ShareFileCredentials, VenturesCredentials},
    process::ServiceProcess,
    repo_root,
};

pub const VENTURES_SYNC: &str = "ventures-sync";
pub const PROJECTION_WRITER: &str = "projection-writer";
pub const API_GATEWAY: &str = "api-gateway";
pub const CHANGE_LISTENER: &str = "firestore-change-listener";
/// The QuickBooks Online mirror (flow 7).
pub const QBO_MIRROR: &str = "qbo-mirror";
/// Copies uploads from Cloud Storage into ShareFile (flow 4).
pub const SHAREFILE_SYNC: &str = "sharefile-sync";
/// Keeps staff availability fresh and books meetings in Microsoft Graph (flow 5).
pub const GRAPH_CALENDAR: &str = "graph-calendar";
/// `dlq-replayer serve`: the dead-letter API behind the gateway's `/api/v1/admin/...`.
pub const DLQ_REPLAYER: &str = "dlq-replayer";
/// The tenant ventures-sync stamps on the loans it reads from the simulator.
pub const VENTURES_TENANT: &str = "default";
/// The `aud` the gateway accepts from the test's issuer.
pub const AUDIENCE: &str = "brain";

pub struct Stack {
    pub logs: PathBuf,
    pub broker: Broker,
    pub db: Database,
    pub registry_url: String,
    pub sim: ventures_simulator::RunningSimulator,
    pub credentials: VenturesCredentials,
    /// The QBO simulator; its webhooks go to the gateway.
    pub qbo: qbo_simulator::RunningSimulator,
    pub qbo_credentials: QboCredentials,
    /// Where the apps upload (Cloud Storage), and ShareFile.
    pub storage: storage_simulator::RunningSimulator,
    pub sharefile: sharefile_simulator::RunningSimulator,
    pub sharefile_credentials: ShareFileCredentials,
    /// Microsoft Graph; its change notifications go to the gateway.
    pub graph: graph_simulator::RunningSimulator,
    pub graph_credentials: GraphCredentials,
    pub project_id: String,
    pub gateway_url: String,
    /// dlq-replayer's internal API (`dlq-replayer serve`), which the gateway forwards to.
    pub dlq_replayer_url: String,
    /// The dev OIDC issuer the gateway trusts (in this process): mint tokens with `token`.
    pub oidc: RunningIssuer,
    pub services: BTreeMap<&'static str, ServiceProcess>,
    pub http: reqwest::Client,
    _shutdown: DropGuard,
}

impl Stack {
    /// Starts the infrastructure for test `name`; services start with `start_services`.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        Self::start_on(name, &Database::server_url()).await
    }

    /// Like `start`, with the test's database on the PostgreSQL server at `database_server`.
    pub async fn start_on(name: &str, database_server: &str) -> anyhow::Result<Self> {
        let logs = repo_root().join("target/system-tests").join(format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        std::fs::create_dir_all(&logs)?;
        infra::emulator_host()?;
        let shutdown = CancellationToken::new();
        let broker = Broker::start(logs.join("broker.log")).await?;
        let db = Database::create_on(database_server).await?;
        let registry_url = infra::registry(&db, shutdown.clone()).await?;
        let credentials = VenturesCredentials::generate();
        let sim = infra::simulator(&credentials).await?;
        let oidc = infra::oidc().await?;
        let project_id = format!("brain-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let gateway_port = free_port();
        let dlq_replayer_port = free_port();
        let qbo_credentials = QboCredentials::generate();
        let qbo = infra::qbo_simulator(&qbo_credentials, format!("http://127.0.0.1:{gateway_port}/api/v1/webhooks/qbo")).await?;
        let storage = infra::storage_simulator().await?;
        let sharefile_credentials = ShareFileCredentials::generate();
        let sharefile = infra::sharefile_simulator(&sharefile_credentials).await?;
        let graph_credentials = GraphCredentials::generate();
        let graph = infra::graph_simulator(&graph_credentials).await?;
        let mut stack = Self {
            logs,
            broker,
            db,
            registry_url,
            sim,
            credentials,
            qbo,
            qbo_credentials,
            storage,
            sharefile,
            sharefile_credentials,
            graph,
            graph_credentials,
            project_id,
            gateway_url: format!("http://127.0.0.1:{gateway_port}"),
            dlq_replayer_url: format!("http://127.0.0.1:{dlq_replayer_port}"),
            oidc,
            services: BTreeMap::new(),
            http: reqwest::Client::new(),
            _shutdown: shutdown.drop_guard(),
        };
        for name in [VENTURES_SYNC, PROJECTION_WRITER, CHANGE_LISTENER, API_GATEWAY, QBO_MIRROR, SHAREFILE_SYNC, GRAPH_CALENDAR] {
            let process = stack.process(name, gateway_port, name);
            stack.services.insert(name, process);
        }
        let replayer = stack.process(DLQ_REPLAYER, dlq_replayer_port, DLQ_REPLAYER);
        stack.services.insert(DLQ_REPLAYER, replayer);
        tracing::info!(logs = %stack.logs.display(), "stack started");
        Ok(stack)
    }

    /// Another instance of worker `name` (same group, own ops port and log `<log_name>.log`),
    /// owned by the caller: scaling out is starting it.
    pub fn instance(&self, name: &'static str, log_name: &str) -> ServiceProcess {
        self.process(name, free_port(), log_name)
    }

    /// `port`: the gateway's (or dlq-replayer's) HTTP port; the workers get an ops port of their own.
    fn process(&self, name: &'static str, port: u16, log_name: &str) -> ServiceProcess {
        let prefix = name.to_uppercase().replace('-', "_");
        let mut env: Vec<(String, String)> = vec![
            ("BRAIN__KAFKA_BROKERS".into(), self.broker.bootstrap.clone()),
            ("BRAIN__KAFKA_NAMESPACE".into(), self.broker.namespace.to_string()),
            ("BRAIN__TOPIC_REPLICATION".into(), self.broker.replication().to_string()),
            ("BRAIN__SCHEMA_REGISTRY_URL".into(), self.registry_url.clone()),
            ("BRAIN__DATABASE_URL".into(), self.db.url(None)),
        ];
        // The whole suite can run on the KIP-848 protocol: BRAIN_TEST_GROUP_PROTOCOL=consumer.
        if let Ok(protocol) = std::env::var("BRAIN_TEST_GROUP_PROTOCOL") {
            env.push(("BRAIN__GROUP_PROTOCOL".into(), protocol));
        }
        let ops_port = free_port();
        let mut ready = format!("http://127.0.0.1:{ops_port}/ready");
        env.push((format!("{prefix}__OPS_ADDR"), format!("127.0.0.1:{ops_port}")));
        match name {
            VENTURES_SYNC => env.extend([
                (format!("{prefix}__VENTURES_BASE_URL"), self.sim.base_url()),
                (format!("{prefix}__VENTURES_CLIENT"), self.credentials.client.clone()),
                (format!("{prefix}__VENTURES_USERNAME"), self.credentials.username.clone()),
                (format!("{prefix}__VENTURES_PASSWORD"), self.credentials.password.clone()),
                (format!("{prefix}__SWEEP_INTERVAL_MS"), "200".into()),
                (format!("{prefix}__TENANT_ID"), VENTURES_TENANT.into()),
            ]),
            PROJECTION_WRITER | CHANGE_LISTENER => env.push((format!("{prefix}__FIRESTORE_PROJECT_ID"), self.project_id.clone())),
            QBO_MIRROR => env.extend([
                (format!("{prefix}__QBO_API_BASE"), self.qbo.base_url()),
                (format!("{prefix}__QBO_TOKEN_URL"), format!("{}/oauth2/v1/tokens/bearer", self.qbo.base_url())),
                (format!("{prefix}__QBO_CLIENT_ID"), self.qbo_credentials.client_id.clone()),
                (format!("{prefix}__QBO_CLIENT_SECRET"), self.qbo_credentials.client_secret.clone()),
                (format!("{prefix}__TOKEN_KEY"), self.qbo_credentials.token_key.clone()),
                (format!("{prefix}__SYNC_INTERVAL_MS"), "3000".into()),
            ]),
            SHAREFILE_SYNC => env.extend([
                (format!("{prefix}__SHAREFILE_API_BASE"), format!("{}/sf/v3", self.sharefile.base_url())),
                (format!("{prefix}__SHAREFILE_TOKEN_URL"), format!("{}/oauth/token", self.sharefile.base_url())),
                (format!("{prefix}__SHAREFILE_CLIENT_ID"), self.sharefile_credentials.client_id.clone()),
                (format!("{prefix}__SHAREFILE_CLIENT_SECRET"), self.sharefile_credentials.client_secret.clone()),
                (format!("{prefix}__SHAREFILE_USERNAME"), self.sharefile_credentials.username.clone()),
                (format!("{prefix}__SHAREFILE_PASSWORD"), self.sharefile_credentials.password.clone()),
                (format!("{prefix}__ROOT_FOLDER"), infra::SHAREFILE_ROOT.into()),
                (format!("{prefix}__STORAGE_BASE_URL"), self.storage.base_url()),
            ]),
            GRAPH_CALENDAR => env.extend(infra::graph_calendar_env(&prefix, &self.graph.base_url(), &self.graph_credentials, &self.gateway_url)),
            // `port`: its API, where it also serves /ready.
            DLQ_REPLAYER => {
                env.push((format!("{prefix}__HTTP_ADDR"), format!("127.0.0.1:{port}")));
                ready = format!("http://127.0.0.1:{port}/ready");
            }
            _ => {
                env.push((format!("{prefix}__LISTEN_ADDR"), format!("127.0.0.1:{port}")));
                env.push((format!("{prefix}__DATABASE_URL"), self.db.url(Some("brain_gateway_reader"))));
                let issuers = serde_json::json!([{ "name": "dev", "issuer": self.oidc.url(), "audience": AUDIENCE }]);
                env.push((format!("{prefix}__OIDC_ISSUERS"), issuers.to_string()));
                // Key rotation in a test is seen within a second.
                env.push((format!("{prefix}__JWKS_MIN_REFETCH_INTERVAL_MS"), "1000".into()));
                env.push((format!("{prefix}__SYNC_HEALTH_REFRESH_MS"), "1000".into()));
                env.push((format!("{prefix}__DLQ_REPLAYER_URL"), self.dlq_replayer_url.clone()));
                env.push((format!("{prefix}__QBO_WEBHOOK_VERIFIER"), self.qbo_credentials.verifier.clone()));
                env.push((format!("{prefix}__STORAGE_BASE_URL"), self.storage.base_url()));
                env.push((format!("{prefix}__GRAPH_CLIENT_STATE"), self.graph_credentials.client_state.clone()));
                ready = format!("http://127.0.0.1:{port}/ready");
            }
        }
        let process = ServiceProcess::new(name, env, ready, self.logs.join(format!("{log_name}.log")));
        if name == DLQ_REPLAYER { process.with_args(&["serve"]) } else { process }
    }

    pub async fn start_services(&mut self, names: &[&'static str]) -> anyhow::Result<()> {
        for name in names {
            self.service(name).start().await?;
        }
        Ok(())
    }

    pub fn service(&mut self, name: &str) -> &mut ServiceProcess {
        self.services.get_mut(name).unwrap_or_else(|| panic!("no service {name}"))
    }

    /// Creates a loan in the simulator for application `app` in `status` (version 1); its JSON.
    pub async fn create_loan(&self, app: &str, status: &str) -> anyhow::Result<serde_json::Value> {
        let body = serde_json::json!({
            "loanType": "7A", "status": status, "externalId": app,
            "borrower": { "entityId": format!("B-{app}"), "name": "Test Borrower" }, "amounts": { "requested": 100000.0 },
        });
        Ok(self.http.post(format!("{}/control/loans", self.sim.base_url())).json(&body).send().await?.error_for_status()?.json().await?)
    }

    /// A Ventures API token of the simulator's staff user.
    pub async fn ventures_token(&self) -> anyhow::Result<String> {
        let c = &self.credentials;
        let body = serde_json::json!({ "client": c.client, "username": c.username, "password": c.password });
        let answer: serde_json::Value = self.http.post(format!("{}/api/v4/token", self.sim.base_url())).json(&body).send().await?.error_for_status()?.json().await?;
        Ok(answer["token"].as_str().unwrap_or_default().to_string())
    }

    /// Moves a loan condition as Ventures' staff would: the API with `If-Match` of its version.
    pub async fn patch_condition(&self, token: &str, loan: &str, condition: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let sim = self.sim.base_url();
        let all: serde_json::Value = self.http.get(format!("{sim}/api/v4/loans/{loan}/conditions")).bearer_auth(token).send().await?.error_for_status()?.json().await?;
        let version = all["conditions"].as_array().into_iter().flatten().find(|c| c["conditionId"] == condition).and_then(|c| c["version"].as_i64()).unwrap_or_default();
        self.http
            .patch(format!("{sim}/api/v4/loans/{loan}/conditions/{condition}"))
            .bearer_auth(token)
            .header("if-match", format!("\"{version}\""))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// A token of the test's issuer for `role` in `tenant` (valid for an hour).
    pub fn token(&self, role: &str, tenant: &str) -> String {
        self.mint(&MintRequest::new(format!("test-{role}"), role, tenant))
    }

    /// A borrower's token that lets them read `applications`.
    pub fn borrower_token(&self, tenant: &str, applications: &[&str]) -> String {
        let mut request = MintRequest::new("test-borrower", "borrower", tenant);
        request.applications = Some(applications.iter().map(|a| a.to_string()).collect());
        self.mint(&request)
    }

    /// Any token the test's issuer can make (expired, forged, for another audience, ...).
    pub fn mint(&self, request: &MintRequest) -> String {
        self.oidc.issuer().mint(request).expect("the dev issuer mints").token
    }

    /// Kafka settings in this test's namespace.
    pub fn kafka_settings(&self) -> brain_runtime::settings::KafkaSettings {
        self.broker.settings()
    }

    /// The real name of catalogue topic `base` in this test's namespace.
    pub fn topic(&self, base: &str) -> String {
        self.broker.topic(base)
    }

    /// A codec talking to this test's registry.
    pub fn codec(&self) -> Codec {
        Codec::new(RegistryClient::new(&self.registry_url).expect("registry client"), SchemaIds::AutoRegister)
    }

    /// Firestore, as projection-writer sees it.
    pub async fn projections(&self) -> anyhow::Result<projection_writer::firestore::Projections> {
        projection_writer::firestore::Projections::connect(&self.project_id).await
    }

    /// Runs `qbo-mirror <args>` (e.g. `connect`) against this stack; its stdout.
    pub async fn qbo_mirror_cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let process = self.services.get(QBO_MIRROR).ok_or_else(|| anyhow::anyhow!("no qbo-mirror"))?;
        let output = tokio::process::Command::new(crate::process::binary("qbo-mirror")).args(args).envs(process.env_pairs()).output().await?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        anyhow::ensure!(output.status.success(), "qbo-mirror {args:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        Ok(stdout)
    }

    /// Runs the operator's CLI, `dlq-replayer <args>`, against this stack (operator
    /// `test-operator`); its stdout, or an error with its output.
    pub async fn dlq_replayer(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = tokio::process::Command::new(crate::process::binary("dlq-replayer"))
            .args(args)
            .env("BRAIN__KAFKA_BROKERS", &self.broker.bootstrap)
            .env("BRAIN__KAFKA_NAMESPACE", self.broker.namespace.to_string())
            .env("BRAIN__SCHEMA_REGISTRY_URL", &self.registry_url)
            .env("BRAIN__DATABASE_URL", self.db.url(None))
            .env("DLQ_OPERATOR", "test-operator")
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        anyhow::ensure!(output.status.success(), "dlq-replayer {args:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        Ok(stdout)
    }

    pub async fn stop_all(&mut self) -> anyhow::Result<()> {
        for service in self.services.values_mut() {
            service.stop().await?;
        }
        Ok(())
    }
}
