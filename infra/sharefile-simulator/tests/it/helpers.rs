use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sharefile_simulator::{Config, RunningSimulator, Simulator};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const USERNAME: &str = "robot@example.com";
pub const PASSWORD: &str = "test-password";

pub struct TestSim {
    pub sim: RunningSimulator,
    pub http: reqwest::Client,
    /// The access token from the password grant.
    pub token: String,
}

pub async fn spawn_sim() -> TestSim {
    spawn_sim_with(|_| {}).await
}

/// A simulator with `/Clients` and a logged-in client.
pub async fn spawn_sim_with(tweak: impl FnOnce(&mut Config)) -> TestSim {
    let mut config = Config::new(CLIENT_ID, CLIENT_SECRET, USERNAME, PASSWORD);
    config.listen_addr = "127.0.0.1:0".parse().unwrap();
    config.root_folders = vec!["/Clients".into()];
    tweak(&mut config);
    let sim = Simulator::start(config)
        .await
        .expect("simulator starts")
        .spawn();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut t = TestSim {
        sim,
        http,
        token: String::new(),
    };
    let response = t.password_grant(USERNAME, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    t.token = body["access_token"].as_str().unwrap().to_owned();
    t
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub async fn token_request(&self, fields: &[(&str, &str)]) -> Response {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.http
            .post(self.url("/oauth/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn password_grant(&self, username: &str, password: &str) -> Response {
        self.token_request(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", username),
            ("password", password),
        ])
        .await
    }

    /// `GET /sf/v3/{path}` with the bearer token.
    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(&format!("/sf/v3/{path}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /sf/v3/{path}` with a JSON body and the bearer token.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(&format!("/sf/v3/{path}")))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The item at `path` (asserting it exists).
    pub async fn by_path(&self, path: &str) -> Value {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("path", path)
            .finish();
        let response = self.get(&format!("Items/ByPath?{query}")).await;
        assert_eq!(response.status(), StatusCode::OK, "ByPath {path}");
        response.json().await.unwrap()
    }

    pub async fn create_folder(&self, parent_id: &str, name: &str) -> Response {
        self.post(
            &format!("Items({parent_id})/Folder"),
            &json!({"Name": name, "Description": "made by a test"}),
        )
        .await
    }

    /// `Upload2` for `name` in the folder; returns the `UploadSpecification`.
    pub async fn upload2(
        &self,
        folder_id: &str,
        name: &str,
        size: usize,
        overwrite: bool,
    ) -> Value {
        let body = json!({"Method": "Standard", "Raw": true, "FileName": name, "FileSize": size, "Overwrite": overwrite});
        let response = self
            .post(&format!("Items({folder_id})/Upload2"), &body)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// POSTs the bytes to a `ChunkUri` (no bearer token) and returns the body text.
    pub async fn chunk(&self, chunk_uri: &str, bytes: &[u8]) -> (StatusCode, String) {
        let response = self
            .http
            .post(chunk_uri)
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// `Upload2` then the `ChunkUri`: the `ChunkUri`'s answer.
    pub async fn upload(&self, folder_id: &str, name: &str, bytes: &[u8]) -> String {
        let spec = self.upload2(folder_id, name, bytes.len(), false).await;
        let (status, text) = self.chunk(spec["ChunkUri"].as_str().unwrap(), bytes).await;
        assert_eq!(status, StatusCode::OK);
        text
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

    pub async fn fault(&self, spec: Value) {
        self.control("/control/faults", spec, StatusCode::CREATED)
            .await;
    }
}

/// Asserts the ShareFile error shape and returns `reason`.
pub async fn reason(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"]["lang"], "en-US", "{body}");
    assert!(body["message"]["value"].is_string(), "{body}");
    assert!(body["code"].is_string(), "{body}");
    body["reason"].as_str().unwrap().to_owned()
}
