use std::time::Duration;

use api_gateway::{
    Application, Settings,
    auth::{AuthSettings, config::parse_issuers},
};
use brain_runtime::{events::codec::SchemaIds, settings::KafkaSettings};
use dev_oidc::{Alg, Config, DevOidc, MintRequest, RunningIssuer};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::{CancellationToken, DropGuard};

struct Gateway {
    url: String,
    /// The dev issuer's name at this gateway (unique: metrics are per process).
    issuer: String,
    oidc: RunningIssuer,
    http: reqwest::Client,
    _stop: DropGuard,
}

/// A dev issuer and a gateway trusting it (plus an issuer that cannot be reached).
async fn spawn(min_refetch: Duration) -> Gateway {
    let oidc = DevOidc::start(Config { listen_addr: "127.0.0.1:0".parse().unwrap(), ..Config::default() }).await.unwrap().spawn();
    let issuer = format!("dev-{}", oidc.url().rsplit(':').next().unwrap());
    let issuers = json!([
        { "name": issuer, "issuer": oidc.url(), "audience": "brain" },
        { "name": "down", "issuer": "http://127.0.0.1:9/down", "audience": "brain" },
    ]);
    let settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        // Never reached by these tests.
        database_url: SecretString::from("postgres://nobody@127.0.0.1:9/none"),
        request_timeout: Duration::from_secs(10),
        otlp_endpoint: None,
        log_json: false,
        auth: AuthSettings { issuers: parse_issuers(&issuers.to_string()).unwrap(), jwks_min_refetch_interval: min_refetch, ..AuthSettings::default() },
        // Never reached by these tests either.
        kafka: KafkaSettings::new("127.0.0.1:9"),
        schema_registry_url: SecretString::from("http://127.0.0.1:9"),
        schema_ids: SchemaIds::AutoRegister,
        sync_health_refresh: Duration::from_secs(60),
        dlq_replayer: api_gateway::admin::DlqSettings::default(),
        qbo: api_gateway::qbo::QboSettings::default(),
        documents: api_gateway::documents::DocumentSettings::default(),
        calendar: api_gateway::calendar::CalendarSettings::default(),
    };
    let app = Application::build(&settings).await.unwrap();
    let url = format!("http://{}", app.local_addr());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until(stop.clone()));
    let gateway = Gateway { url, issuer, oidc, http: reqwest::Client::new(), _stop: stop.drop_guard() };
    // Wait for the start-up fetch of the keys, so that what follows is deterministic.
    let loaded = format!("api_gateway_jwks_keys{{issuer=\"{}\"}} 2", gateway.issuer);
    for _ in 0..200 {
        let metrics = gateway.http.get(format!("{}/metrics", gateway.url)).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|line| line == loaded) {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the gateway did not load the dev issuer's keys");
}

impl Gateway {
    fn borrower(&self) -> MintRequest {
        let mut request = MintRequest::new("borrower-1", "borrower", "t1");
        request.applications = Some(vec!["mine".into()]);
        request
    }

    fn mint(&self, request: &MintRequest) -> String {
        self.oidc.issuer().mint(request).unwrap().token
    }

    /// GET someone else's application: 404 means the token was accepted.
    async fn get(&self, token: Option<&str>) -> (StatusCode, Value, Option<String>) {
        let mut request = self.http.get(format!("{}/api/v1/applications/not-mine", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
        (status, response.json().await.unwrap_or(Value::Null), challenge)
    }

    async fn code(&self, token: &str) -> (StatusCode, String) {
        let (status, body, _) = self.get(Some(token)).await;
        (status, body["code"].as_str().unwrap_or_default().to_string())
    }
}

fn accepted() -> (StatusCode, String) {
    (StatusCode::NOT_FOUND, "application_not_found".into())
}

fn invalid() -> (StatusCode, String) {
    (StatusCode::UNAUTHORIZED, "invalid_token".into())
}

#[tokio::test]
async fn tokens_are_verified_and_bad_ones_refused_with_stable_codes() {
    let gw = spawn(Duration::from_secs(30)).await;

    // Open routes need no token.
    for path in ["/health", "/api/v1/health", "/metrics", "/ready", "/health/deps"] {
        let status = gw.http.get(format!("{}{path}", gw.url)).send().await.unwrap().status();
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let unknown = gw.http.get(format!("{}/no/such/route", gw.url)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // No token, or not a bearer JWT.
    let (status, body, challenge) = gw.get(None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="brain""#));
    for header in ["Basic dXNlcjpwdw==", "Bearer not-a-jwt"] {
        let response = gw.http.get(format!("{}/api/v1/applications/x", gw.url)).header("authorization", header).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "unauthenticated");
    }

    // Good tokens, both algorithms.
    let mut request = gw.borrower();
    assert_eq!(gw.code(&gw.mint(&request)).await, accepted());
    request.alg = Some(Alg::ES256);
    assert_eq!(gw.code(&gw.mint(&request)).await, accepted());
    // Within the 30 s leeway on either side.
    request.ttl_secs = Some(-10);
    assert_eq!(gw.code(&gw.mint(&request)).await, accepted());
    request.ttl_secs = None;
    request.not_before_secs = Some(10);
    assert_eq!(gw.code(&gw.mint(&request)).await, accepted());

    // Expired, not yet valid.
    let mut request = gw.borrower();
    request.ttl_secs = Some(-120);
    let (status, body, challenge) = gw.get(Some(&gw.mint(&request))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_expired")));
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="brain", error="invalid_token""#));
    let mut request = gw.borrower();
    request.not_before_secs = Some(300);
    assert_eq!(gw.code(&gw.mint(&request)).await, invalid());

    // Forged: another key under the published kid; the RSA kid on an ES256 token; alg none; HS256
    // with the kid of a published key.
    let mut request = gw.borrower();
    request.untrusted_key = true;
    assert_eq!(gw.code(&gw.mint(&request)).await, invalid());
    let mut request = gw.borrower();
    request.alg = Some(Alg::ES256);
    request.kid = Some(gw.oidc.issuer().current_kid(Alg::RS256));
    assert_eq!(gw.code(&gw.mint(&request)).await, invalid());
    let claims = gw.borrower().claim_set(gw.oidc.url(), "brain", 300, chrono_now());
    let kid = gw.oidc.issuer().current_kid(Alg::RS256);
    assert_eq!(gw.code(&dev_oidc::unsigned(Some(&kid), &claims)).await, invalid());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.clone());
    let hs256 = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(kid.as_bytes())).unwrap();
    assert_eq!(gw.code(&hs256).await, invalid());

    // Wrong audience; an issuer the gateway does not trust; no kid.
    let mut request = gw.borrower();
    request.aud = Some("another-api".into());
    let (status, body, _) = gw.get(Some(&gw.mint(&request))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
    assert!(body["detail"].as_str().unwrap().contains("aud"), "{body}");
    let mut request = gw.borrower();
    request.iss = Some("https://evil.example.com".into());
    assert_eq!(gw.code(&gw.mint(&request)).await, invalid());

    // Valid, but no role Brain knows, or no tenant: 403.
    let request = MintRequest::new("u", "guest", "t1");
    assert_eq!(gw.code(&gw.mint(&request)).await, (StatusCode::FORBIDDEN, "forbidden".into()));
    let mut request = MintRequest::new("u", "staff", "t1");
    request.claims = Some(serde_json::from_value(json!({ "tenant": null })).unwrap());
    assert_eq!(gw.code(&gw.mint(&request)).await, (StatusCode::FORBIDDEN, "forbidden".into()));

    // A configured issuer whose keys cannot be fetched: 503, nothing cached.
    let mut request = gw.borrower();
    request.iss = Some("http://127.0.0.1:9/down".into());
    assert_eq!(gw.code(&gw.mint(&request)).await, (StatusCode::SERVICE_UNAVAILABLE, "issuer_unavailable".into()));

    let deps: Value = gw.http.get(format!("{}/health/deps", gw.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(deps["issuers"][&gw.issuer]["ok"], true, "{deps}");
    assert_eq!(deps["issuers"]["down"]["ok"], false, "{deps}");
}

#[tokio::test]
async fn unknown_kids_refetch_the_jwks_at_most_once_per_interval() {
    let gw = spawn(Duration::from_secs(3600)).await;
    assert_eq!(gw.code(&gw.mint(&gw.borrower())).await, accepted());
    let before = gw.oidc.issuer().stats().jwks_requests;
    for i in 0..20 {
        let mut request = gw.borrower();
        request.kid = Some(format!("random-kid-{i}"));
        assert_eq!(gw.code(&gw.mint(&request)).await, invalid());
    }
    let refetches = gw.oidc.issuer().stats().jwks_requests - before;
    assert_eq!(refetches, 1, "20 unknown kids: one refetch, then rate limited");
    // Known kids never fetch.
    let before = gw.oidc.issuer().stats().jwks_requests;
    for _ in 0..20 {
        assert_eq!(gw.code(&gw.mint(&gw.borrower())).await, accepted());
    }
    assert_eq!(gw.oidc.issuer().stats().jwks_requests, before);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_a_retired_one_refused() {
    let gw = spawn(Duration::from_secs(30)).await;
    let old = gw.mint(&gw.borrower());
    assert_eq!(gw.code(&old).await, accepted());
    let before = gw.oidc.issuer().stats().jwks_requests;
    gw.oidc.issuer().rotate(true).unwrap();
    let new = gw.mint(&gw.borrower());
    assert_eq!(gw.code(&new).await, accepted(), "new kid → one refetch → verified");
    assert_eq!(gw.oidc.issuer().stats().jwks_requests, before + 1);
    // The old key left the JWKS: the cached verification of `old` no longer counts.
    assert_eq!(gw.code(&old).await, invalid());
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
