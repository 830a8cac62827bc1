use std::time::Duration;

use brain_events::topics;
use brain_runtime::producer::EventProducer;
use dev_oidc::{Alg, MintRequest};
use serde_json::Value;
use system_tests::{
    loan_event,
    stack::{API_GATEWAY, AUDIENCE, PROJECTION_WRITER, Stack},
    wait_for,
};

/// GET `/api/v1/applications/{app}` with `token`: status and `code` (or `applicationId` on 200).
async fn get(stack: &Stack, token: Option<&str>, app: &str) -> anyhow::Result<(u16, String)> {
    let mut request = stack.http.get(format!("{}/api/v1/applications/{app}", stack.gateway_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    let field = if status == 200 { "applicationId" } else { "code" };
    Ok((status, body[field].as_str().unwrap_or_default().to_string()))
}

fn ok(app: &str) -> (u16, String) {
    (200, app.to_string())
}

fn code(status: u16, code: &str) -> (u16, String) {
    (status, code.to_string())
}

/// The gateway process against the dev issuer: each kind of bad token gets 401 with its code, a
/// staff token reads its own tenant only, a borrower token only its own applications (others are
/// 404, like applications that do not exist), and a rotated key is picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_verified_and_every_read_is_scoped_to_the_caller() -> anyhow::Result<()> {
    crate::init_logs();
    let mut stack = Stack::start("auth").await?;
    stack.start_services(&[PROJECTION_WRITER, API_GATEWAY]).await?;

    // Two applications of tenant A and one of tenant B, straight onto the topic.
    let producer = EventProducer::new(&stack.kafka_settings(), stack.codec(), "auth-test")?;
    for (app, tenant) in [("app-a1", "tenant-a"), ("app-a2", "tenant-a"), ("app-b1", "tenant-b")] {
        let mut event = loan_event(app, 1);
        event.tenant_id = tenant.into();
        producer.send(topics::LOAN_STATUS_CHANGED, app, &event).await?;
    }
    let pool = stack.db.connect().await?;
    wait_for("the three applications in the read model", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_writer.applications").fetch_one(&pool).await?;
            Ok((n == 3).then_some(()))
        }
    })
    .await?;

    // No token; expired; signed by a key the issuer never published; for another audience;
    // unsigned (alg none).
    assert_eq!(get(&stack, None, "app-a1").await?, code(401, "unauthenticated"));
    let staff_a = MintRequest::new("staff-a", "staff", "tenant-a");
    let mut expired = staff_a.clone();
    expired.ttl_secs = Some(-120);
    assert_eq!(get(&stack, Some(&stack.mint(&expired)), "app-a1").await?, code(401, "token_expired"));
    let mut forged = staff_a.clone();
    forged.untrusted_key = true;
    assert_eq!(get(&stack, Some(&stack.mint(&forged)), "app-a1").await?, code(401, "invalid_token"));
    let mut elsewhere = staff_a.clone();
    elsewhere.aud = Some("another-api".into());
    assert_eq!(get(&stack, Some(&stack.mint(&elsewhere)), "app-a1").await?, code(401, "invalid_token"));
    let now = chrono::Utc::now().timestamp();
    let unsigned = dev_oidc::unsigned(Some(&stack.oidc.issuer().current_kid(Alg::RS256)), &staff_a.claim_set(stack.oidc.url(), AUDIENCE, 300, now));
    assert_eq!(get(&stack, Some(&unsigned), "app-a1").await?, code(401, "invalid_token"));

    // Staff see their own tenant only: another tenant's application is "not found".
    let token_a = stack.token("staff", "tenant-a");
    assert_eq!(get(&stack, Some(&token_a), "app-a1").await?, ok("app-a1"));
    assert_eq!(get(&stack, Some(&token_a), "app-b1").await?, code(404, "application_not_found"));
    assert_eq!(get(&stack, Some(&token_a), "no-such-app").await?, code(404, "application_not_found"));
    assert_eq!(get(&stack, Some(&stack.token("staff", "tenant-b")), "app-b1").await?, ok("app-b1"));
    let mut es256 = MintRequest::new("staff-b", "staff", "tenant-b");
    es256.alg = Some(Alg::ES256);
    assert_eq!(get(&stack, Some(&stack.mint(&es256)), "app-b1").await?, ok("app-b1"));

    // A borrower sees the applications in their token, nothing else of the tenant.
    let borrower = stack.borrower_token("tenant-a", &["app-a1"]);
    assert_eq!(get(&stack, Some(&borrower), "app-a1").await?, ok("app-a1"));
    assert_eq!(get(&stack, Some(&borrower), "app-a2").await?, code(404, "application_not_found"));
    // Listing another tenant's application in the token does not help.
    let greedy = stack.borrower_token("tenant-a", &["app-a1", "app-b1"]);
    assert_eq!(get(&stack, Some(&greedy), "app-b1").await?, code(404, "application_not_found"));

    // Key rotation at the issuer: a token under the new kid makes the gateway refetch the JWKS;
    // the retired key's tokens stop working.
    let fetches_before = stack.oidc.issuer().stats().jwks_requests;
    stack.oidc.issuer().rotate(true)?;
    let rotated = stack.token("staff", "tenant-a");
    wait_for("the gateway to accept the new kid", Duration::from_secs(10), || {
        let (stack, rotated) = (&stack, &rotated);
        async move { Ok((get(stack, Some(rotated), "app-a1").await? == ok("app-a1")).then_some(())) }
    })
    .await?;
    let refetches = stack.oidc.issuer().stats().jwks_requests - fetches_before;
    assert!((1..=3).contains(&refetches), "{refetches} JWKS fetches for one rotation");
    assert_eq!(get(&stack, Some(&token_a), "app-a1").await?, code(401, "invalid_token"), "signed by the retired key");

    println!("auth: 401 for missing/expired/forged/wrong-audience/alg-none tokens, tenant and borrower scoping by 404, rotation picked up after {refetches} JWKS fetch(es)");
    stack.stop_all().await?;
    Ok(())
}
