//! A notification endpoint for the tests, as a service under test would run one.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How the receiver answers validation handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// 200 `text/plain` with the decoded token, as Graph requires.
    Echo,
    /// 200 `text/plain`, but not the token.
    WrongBody,
    /// The token echoed as JSON.
    WrongContentType,
}

#[derive(Debug, Clone)]
struct ReceiverConfig {
    validation: Validation,
    /// Delay before answering anything.
    delay: Duration,
}

type ReceiverState = (Arc<Mutex<Vec<Value>>>, Arc<Mutex<ReceiverConfig>>);

/// A notification endpoint on port 0: answers validation handshakes and records notifications
/// (answering 202).
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Value>>>,
    config: Arc<Mutex<ReceiverConfig>>,
    shutdown: CancellationToken,
}

impl Receiver {
    pub async fn start(validation: Validation) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/notifications/graph",
            listener.local_addr().unwrap()
        );
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let config = Arc::new(Mutex::new(ReceiverConfig {
            validation,
            delay: Duration::ZERO,
        }));
        let app = axum::Router::new()
            .route("/notifications/graph", post(receive))
            .with_state((received.clone(), config.clone()));
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
            config,
            shutdown,
        }
    }

    pub fn set_delay(&self, delay: Duration) {
        self.config.lock().unwrap().delay = delay;
    }

    /// Every notification (`value[]` item) received, in order.
    pub fn notifications(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn receive(
    State((received, config)): State<ReceiverState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let config = config.lock().unwrap().clone();
    tokio::time::sleep(config.delay).await;
    let token = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(token) = token {
        return match config.validation {
            Validation::Echo => ([(header::CONTENT_TYPE, "text/plain")], token).into_response(),
            Validation::WrongBody => {
                ([(header::CONTENT_TYPE, "text/plain")], "hello").into_response()
            }
            Validation::WrongContentType => axum::Json(json!({"token": token})).into_response(),
        };
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let items = body["value"].as_array().cloned().unwrap_or_default();
    received.lock().unwrap().extend(items);
    StatusCode::ACCEPTED.into_response()
}
