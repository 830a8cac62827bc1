use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use ventures_simulator::{Config, RunningSimulator, Simulator};

pub struct TestSim {
    pub sim: RunningSimulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn spawn_sim() -> TestSim {
    spawn_sim_with(|_| {}).await
}

pub async fn spawn_sim_with(tweak: impl FnOnce(&mut Config)) -> TestSim {
    let mut config = Config::new("test-client", "test-user", "test-password");
    config.listen_addr = "127.0.0.1:0".parse().unwrap();
    tweak(&mut config);
    let sim = Simulator::start(config)
        .await
        .expect("simulator starts")
        .spawn();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut test = TestSim {
        sim,
        http,
        token: String::new(),
    };
    test.token = test.new_token().await;
    test
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub async fn new_token(&self) -> String {
        let body =
            json!({"client": "test-client", "username": "test-user", "password": "test-password"});
        let response = self
            .http
            .post(self.url("/api/v4/token"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An authenticated `/api/v4` request builder.
    pub fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.api(Method::GET, path).send().await.unwrap()
    }

    pub async fn put_status(
        &self,
        loan_id: &str,
        key: &str,
        status: &str,
        expected_version: u64,
    ) -> Response {
        self.api(Method::PUT, &format!("/api/v4/loans/{loan_id}/status"))
            .header("Idempotency-Key", key)
            .json(&json!({"status": status, "expectedVersion": expected_version}))
            .send()
            .await
            .unwrap()
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

    pub async fn create_loan(&self, loan_id: &str) -> Value {
        let body = json!({
            "loanId": loan_id,
            "loanType": "7A",
            "borrower": {"entityId": format!("E-{loan_id}"), "name": "Acme Bakery LLC"},
            "amounts": {"requested": 250000},
            "externalId": format!("app-{loan_id}"),
        });
        self.control("/control/loans", body, StatusCode::CREATED)
            .await
    }
}

/// Asserts the Ventures error shape and returns the code.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    assert!(
        error["requestId"].as_str().is_some_and(|id| id.len() == 36),
        "{body}"
    );
    error["code"].as_str().unwrap().to_owned()
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
