use std::time::{Duration, Instant};

use graph_simulator::{Config, RunningSimulator, Simulator};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

pub use crate::receiver::{Receiver, Validation};

pub struct TestSim {
    pub sim: RunningSimulator,
    pub http: reqwest::Client,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
}

pub async fn spawn_sim() -> TestSim {
    spawn_sim_with(|_| {}).await
}

/// A simulator on port 0 with credentials generated for this test.
pub async fn spawn_sim_with(tweak: impl FnOnce(&mut Config)) -> TestSim {
    let tenant = uuid::Uuid::new_v4().to_string();
    let client_id = uuid::Uuid::new_v4().to_string();
    let client_secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let mut config = Config::new(&tenant, &client_id, &client_secret);
    config.listen_addr = "127.0.0.1:0".parse().unwrap();
    tweak(&mut config);
    let sim = Simulator::start(config)
        .await
        .expect("simulator starts")
        .spawn();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    TestSim {
        sim,
        http,
        tenant,
        client_id,
        client_secret,
    }
}

/// `ann` and `bob`, Monday to Friday 09:00-17:00 UTC, no busy items.
pub fn two_staff() -> Value {
    json!({"staff": [
        {"id": "ann", "displayName": "Ann Lee", "mail": "ann@contoso.example",
         "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                          "startTime": "09:00", "endTime": "17:00", "timeZone": "UTC"}},
        {"id": "bob", "displayName": "Bob Ray"},
    ]})
}

/// An event body for 2026-06-01 (a Monday) from `start` to `end` ("HH:MM"), UTC.
pub fn event_body(start: &str, end: &str, transaction_id: Option<&str>) -> Value {
    let mut body = json!({
        "subject": "Loan review",
        "body": {"contentType": "HTML", "content": "Let's review the file."},
        "start": {"dateTime": format!("2026-06-01T{start}:00"), "timeZone": "UTC"},
        "end": {"dateTime": format!("2026-06-01T{end}:00"), "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": "borrower@example.com", "name": "Borrower"},
                       "type": "required"}],
        "isOnlineMeeting": true,
        "onlineMeetingProvider": "teamsForBusiness",
    });
    if let Some(txn) = transaction_id {
        body["transactionId"] = json!(txn);
    }
    body
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub async fn token_with(&self, tenant: &str, secret: &str, scope: &str) -> Response {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", secret)
            .append_pair("scope", scope)
            .finish();
        self.http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap()
    }

    /// A fresh app-only access token.
    pub async fn token(&self) -> String {
        let response = self
            .token_with(
                &self.tenant,
                &self.client_secret,
                "https://graph.microsoft.com/.default",
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A Graph call with `token` as the bearer.
    pub async fn api(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    pub async fn create_event(&self, token: &str, user: &str, body: &Value) -> Response {
        let path = format!("/v1.0/users/{user}/events");
        self.api(token, Method::POST, &path, Some(body)).await
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

    pub async fn control_put(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .put(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "PUT {path}");
        response.json().await.unwrap()
    }

    pub async fn control_get(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn seed(&self, spec: Value) {
        self.control("/control/seed", spec, StatusCode::CREATED)
            .await;
    }

    pub async fn fault(&self, spec: Value) {
        self.control("/control/faults", spec, StatusCode::CREATED)
            .await;
    }
}

/// Asserts the Graph error shape (request id as in the headers) and returns `error.code`.
pub async fn graph_error(response: Response) -> String {
    let header_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    assert_eq!(
        error["innerError"]["request-id"],
        header_id.as_str(),
        "{body}"
    );
    assert!(error["innerError"]["date"].is_string(), "{body}");
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
