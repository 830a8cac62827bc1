//! A toy simulator built on the kit, driven over HTTP: faults, the ledger, `/control` and the
//! server's life cycle, as a real simulator uses them.

mod control;
mod faults;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    http::{HeaderValue, StatusCode, header},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::post,
};
use reqwest::Client;
use serde::Serialize;
use serde_json::{Value, json};
use simulator_kit::{
    App, Built, Call, CallCounts, ConfigError, Core, RunningSimulator, SimError, Simulated,
    Standard, Target, control_router, inject_faults, observe,
};

struct Toy {
    core: Core<Standard, Detail, CallCounts>,
    created: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
struct Detail {
    target: Option<String>,
}

impl Simulated for Toy {
    type Fault = Standard;
    type Entry = Detail;
    type Tally = CallCounts;

    fn core(&self) -> &Core<Standard, Detail, CallCounts> {
        &self.core
    }

    fn error_answer(status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let mut response = (status, Json(json!({"toyError": status.as_u16()}))).into_response();
        if let Some(secs) = retry_after_secs {
            let value = HeaderValue::from(secs);
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }

    fn custom_answer(answer: Infallible) -> Response {
        match answer {}
    }

    fn describe(&self, _call: &Call, response: &mut Response) -> Detail {
        let target = response.extensions().get::<Target>().map(|t| t.0.clone());
        Detail { target }
    }

    fn stats(&self) -> Value {
        let mut value = json!(self.core.ledger().stats());
        value["created"] = json!(self.created.load(Ordering::SeqCst));
        value
    }

    fn reset(&self) {
        self.created.store(0, Ordering::SeqCst);
        self.core.reset();
    }
}

struct ToyApp;

impl App for ToyApp {
    type Config = SocketAddr;

    fn listen_addr(config: &SocketAddr) -> SocketAddr {
        *config
    }

    fn validate(config: &SocketAddr) -> Result<(), ConfigError> {
        match config.ip().is_multicast() {
            true => Err(ConfigError::constraint("listen_addr", "not multicast")),
            false => Ok(()),
        }
    }

    fn build(_config: SocketAddr) -> Result<Built, SimError> {
        let state = Arc::new(Toy {
            core: Core::new(100, 7),
            created: AtomicU64::new(0),
        });
        let api = Router::new()
            .route("/api/things", post(create).get(|| async { "[]" }))
            .route_layer(from_fn_with_state(state.clone(), inject_faults::<Toy>))
            .layer(from_fn_with_state(state.clone(), observe::<Toy>));
        let app = api.merge(control_router::<Toy>()).with_state(state);
        Ok(Built::new(app))
    }
}

async fn create(axum::extract::State(state): axum::extract::State<Arc<Toy>>) -> Response {
    let n = state.created.fetch_add(1, Ordering::SeqCst) + 1;
    let mut response = (StatusCode::CREATED, Json(json!({"id": n}))).into_response();
    response
        .extensions_mut()
        .insert(Target(format!("thing/{n}")));
    response
}

type Sim = simulator_kit::Simulator<ToyApp>;

async fn spawn() -> (RunningSimulator, Client, String) {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_eq!(sim.base_url(), format!("http://{}", sim.local_addr()));
    let sim = sim.spawn();
    let base = sim.base_url();
    (sim, Client::new(), base)
}

async fn send(client: &Client, method: &str, url: String, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
