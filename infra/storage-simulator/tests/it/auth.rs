use reqwest::StatusCode;
use secrecy::SecretString;

use crate::helpers::{BUCKET, gcs_error, spawn_sim_with};

#[tokio::test]
async fn bearer_token_when_configured() {
    let t = spawn_sim_with(|c| c.bearer_token = Some(SecretString::from("test-token"))).await;
    let missing = t.upload("a.jpg", b"x", "").await;
    assert_eq!(gcs_error(missing).await, (401, "required".into()));
    let url = t.url(&format!(
        "/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=a.jpg"
    ));
    let wrong = t
        .http
        .post(&url)
        .bearer_auth("nope")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(gcs_error(wrong).await, (401, "authError".into()));
    let right = t
        .http
        .post(&url)
        .bearer_auth("test-token")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    // /control never needs it.
    assert_eq!(t.control_get("/control/health").await["status"], "ok");
}
