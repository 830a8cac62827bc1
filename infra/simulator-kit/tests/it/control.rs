//! `/control` errors and reset, and the server's life cycle.

use std::net::SocketAddr;

use reqwest::Client;
use serde_json::{Value, json};
use simulator_kit::{App, Built, ConfigError, SimError};

use crate::{Sim, ToyApp, send, spawn};

#[tokio::test]
async fn control_errors_and_reset() {
    let (sim, client, base) = spawn().await;
    let url = format!("{base}/control/faults");
    let response = client.post(&url).body("{").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body: "),
        "{body}"
    );
    let (status, body) = send(&client, "POST", url.clone(), Some(json!({"status": 404}))).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "status must be one of 429, 500, 502, 503, 504"})
        )
    );
    let (status, _) = send(&client, "DELETE", format!("{url}/9"), None).await;
    assert_eq!(status, 404);
    let (status, _) = send(&client, "POST", url.clone(), Some(json!({"status": 500}))).await;
    assert_eq!(status, 201);
    let (status, _) = send(
        &client,
        "GET",
        format!("{base}/control/ledger?limit=x"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    send(&client, "POST", format!("{base}/api/things"), None).await;
    let (status, _) = send(&client, "POST", format!("{base}/control/reset"), None).await;
    assert_eq!(status, 204);
    let (_, faults) = send(&client, "GET", url, None).await;
    let (_, stats) = send(&client, "GET", format!("{base}/control/stats"), None).await;
    assert_eq!((faults, stats["requests"].clone()), (json!([]), json!(0)));
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn start_validates_and_stop_shuts_down_with_the_companion() {
    let err = Sim::start("224.0.0.1:0".parse().unwrap())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SimError::Config(_)), "{err}");
    let sim = Sim::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let running = sim.spawn();
    assert_ne!(running.port(), 0);
    let token = running.shutdown_token();
    let base = running.base_url();
    running.stop().await.unwrap();
    assert!(token.is_cancelled());
    assert!(
        Client::new()
            .get(format!("{base}/api/things"))
            .send()
            .await
            .is_err()
    );

    let (tx, rx) = tokio::sync::oneshot::channel();
    let built = ToyApp::build("127.0.0.1:0".parse().unwrap()).unwrap();
    let built = built.with_companion(|stop| async move {
        stop.cancelled().await;
        let _ = tx.send("stopped");
    });
    // A companion runs beside the server and is stopped with it.
    let sim = CompanionSim::start(built).await.unwrap().spawn();
    sim.stop().await.unwrap();
    assert_eq!(rx.await.unwrap(), "stopped");
}

/// An app whose config is an already built app, to test the companion task.
struct CompanionApp;
type CompanionSim = simulator_kit::Simulator<CompanionApp>;

impl App for CompanionApp {
    type Config = Built;

    fn listen_addr(_config: &Built) -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn validate(_config: &Built) -> Result<(), ConfigError> {
        Ok(())
    }

    fn build(config: Built) -> Result<Built, SimError> {
        Ok(config)
    }
}
