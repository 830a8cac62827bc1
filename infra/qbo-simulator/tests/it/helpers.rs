use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode as AxumStatus},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use qbo_simulator::{Config, RunningSimulator, Simulator};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";
pub const VERIFIER: &str = "test-verifier-token";

pub struct TestSim {
    pub sim: RunningSimulator,
    pub http: reqwest::Client,
}

/// A realm's OAuth state as a client keeps it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub realm_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

pub async fn spawn_sim() -> TestSim {
    spawn_sim_with(|_| {}).await
}

pub async fn spawn_sim_with(tweak: impl FnOnce(&mut Config)) -> TestSim {
    let mut config = Config::new(CLIENT_ID, CLIENT_SECRET, VERIFIER);
    config.listen_addr = "127.0.0.1:0".parse().unwrap();
    tweak(&mut config);
    let sim = Simulator::start(config)
        .await
        .expect("simulator starts")
        .spawn();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    TestSim { sim, http }
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// POSTs to the control API and returns the JSON body, asserting the status.
    pub async fn control(&self, path: &str, body: Value, expected: StatusCode) -> Value {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "POST {path}");
        response.json().await.unwrap_or(Value::Null)
    }

    pub async fn control_get(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// Seeds realms and returns `(realm id, refresh token)` per realm.
    pub async fn seed(&self, spec: Value) -> Vec<(String, String)> {
        let body = self
            .control("/control/seed", spec, StatusCode::CREATED)
            .await;
        body["realms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["realmId"].as_str().unwrap().to_owned(),
                    r["refreshToken"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub async fn refresh_with(&self, client: (&str, &str), refresh_token: &str) -> Response {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .finish();
        let basic = STANDARD.encode(format!("{}:{}", client.0, client.1));
        self.http
            .post(self.url("/oauth2/v1/tokens/bearer"))
            .header("Authorization", format!("Basic {basic}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.refresh_with((CLIENT_ID, CLIENT_SECRET), refresh_token)
            .await
    }

    /// Exchanges the refresh token for an access token (and the next refresh token).
    pub async fn connect(&self, realm_id: &str, refresh_token: &str) -> Connection {
        let response = self.refresh(refresh_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        Connection {
            realm_id: realm_id.to_owned(),
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// One seeded realm with `docs` documents, connected.
    pub async fn one_realm(&self, docs: usize) -> Connection {
        let realms = self
            .seed(json!({"realms": 1, "documentsPerRealm": docs, "seed": 1}))
            .await;
        self.connect(&realms[0].0, &realms[0].1).await
    }

    /// `GET /v3/company/{realm}{path}` with the connection's token.
    pub async fn get(&self, conn: &Connection, path: &str) -> Response {
        self.http
            .get(self.url(&format!("/v3/company/{}{path}", conn.realm_id)))
            .bearer_auth(&conn.access_token)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap()
    }

    pub async fn query(&self, conn: &Connection, query: &str) -> Response {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .append_pair("minorversion", "75")
            .finish();
        self.get(conn, &format!("/query?{q}")).await
    }

    /// `POST /v3/company/{realm}/{entity}?{params}` with a JSON body.
    pub async fn post(&self, conn: &Connection, path_and_query: &str, body: &Value) -> Response {
        self.http
            .post(self.url(&format!("/v3/company/{}{path_and_query}", conn.realm_id)))
            .bearer_auth(&conn.access_token)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts the QBO Fault shape and returns `(type, code)`.
pub async fn fault(response: Response) -> (String, String) {
    let body: Value = response.json().await.unwrap();
    let fault = &body["Fault"];
    assert!(body["time"].is_string(), "{body}");
    let error = &fault["Error"][0];
    assert!(
        error["Message"].is_string() && error["Detail"].is_string(),
        "{body}"
    );
    (
        fault["type"].as_str().unwrap().to_owned(),
        error["code"].as_str().unwrap().to_owned(),
    )
}

/// Polls `check` every 20 ms until it returns true or `within` elapses.
pub async fn eventually<F, Fut>(within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One webhook POST as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A webhook endpoint on port 0 that records what it receives and answers with the statuses in
/// `answers` in turn (200 once they run out).
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Vec<u16>>>,
    shutdown: CancellationToken,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/qbo", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answers: Arc<Mutex<Vec<u16>>> = Arc::default();
        let app = axum::Router::new()
            .route("/webhooks/qbo", post(receive))
            .with_state((received.clone(), answers.clone()));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            url,
            received,
            answers,
            shutdown,
        }
    }

    pub fn answer_next(&self, statuses: &[u16]) {
        self.answers.lock().unwrap().extend(statuses.iter().rev());
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

type ReceiverState = (Arc<Mutex<Vec<Received>>>, Arc<Mutex<Vec<u16>>>);

async fn receive(
    State((received, answers)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    received.lock().unwrap().push(Received { headers, body });
    let status = answers.lock().unwrap().pop().unwrap_or(200);
    AxumStatus::from_u16(status).unwrap()
}
