use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::Value;
use storage_simulator::{Config, RunningSimulator, Simulator};

pub const BUCKET: &str = "brain-uploads";

pub struct TestSim {
    pub sim: RunningSimulator,
    pub http: reqwest::Client,
}

pub async fn spawn_sim() -> TestSim {
    spawn_sim_with(|_| {}).await
}

/// A simulator with the bucket [`BUCKET`].
pub async fn spawn_sim_with(tweak: impl FnOnce(&mut Config)) -> TestSim {
    let mut config = Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        buckets: vec![BUCKET.into()],
        ..Config::default()
    };
    tweak(&mut config);
    let sim = Simulator::start(config)
        .await
        .expect("simulator starts")
        .spawn();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestSim { sim, http }
}

/// Percent-encodes an object name for a URL path segment (`/` included).
pub fn encode(name: &str) -> String {
    form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// `POST /upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=...{extra}` as the app does.
    pub async fn upload(&self, name: &str, bytes: &[u8], extra: &str) -> Response {
        let url = self.url(&format!(
            "/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={}{extra}",
            encode(name)
        ));
        self.http
            .post(url)
            .header("Content-Type", "image/jpeg")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// `GET /storage/v1/b/{BUCKET}/o/{name}{query}`.
    pub async fn get_object(&self, name: &str, query: &str) -> Response {
        let url = self.url(&format!("/storage/v1/b/{BUCKET}/o/{}{query}", encode(name)));
        self.http.get(url).send().await.unwrap()
    }

    pub async fn control_get(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn fault(&self, spec: Value) {
        let response = self
            .http
            .post(self.url("/control/faults"))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{spec}");
    }
}

/// Asserts the GCS error shape and returns `(code, reason)`.
pub async fn gcs_error(response: Response) -> (u64, String) {
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    let detail = &error["errors"][0];
    assert!(
        detail["domain"].is_string() && detail["message"].is_string(),
        "{body}"
    );
    (
        error["code"].as_u64().unwrap(),
        detail["reason"].as_str().unwrap().to_owned(),
    )
}
