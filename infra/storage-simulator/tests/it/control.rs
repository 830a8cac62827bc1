use reqwest::StatusCode;
use serde_json::{Value, json};
use storage_simulator::md5_base64;

use crate::helpers::{BUCKET, spawn_sim};

#[tokio::test]
async fn put_list_read_and_reset() {
    let t = spawn_sim().await;
    let put = t
        .http
        .put(t.url("/control/objects/seeded-bucket/users/u-9/a.png"))
        .header("Content-Type", "image/png")
        .body(b"png".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let put: Value = put.json().await.unwrap();
    assert_eq!(
        (put["bucket"].as_str(), put["name"].as_str()),
        (Some("seeded-bucket"), Some("users/u-9/a.png"))
    );

    // The API sees it; control writes are not API effects.
    let media = t
        .http
        .get(t.url("/storage/v1/b/seeded-bucket/o/users%2Fu-9%2Fa.png?alt=media"))
        .send()
        .await
        .unwrap();
    assert_eq!(media.bytes().await.unwrap().as_ref(), b"png");
    assert_eq!(t.control_get("/control/stats").await["uploads"], 0);

    let listed = t.control_get("/control/objects?bucket=seeded-bucket").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["md5Hash"], md5_base64(b"png"));
    assert_eq!(listed[0]["contentType"], "image/png");
    let bytes = t
        .http
        .get(t.url("/control/objects/seeded-bucket/users/u-9/a.png?alt=media"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), b"png");

    let created = t
        .http
        .post(t.url("/control/buckets"))
        .json(&json!({"name": "Bad Name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::BAD_REQUEST);
    let buckets = t.control_get("/control/buckets").await;
    assert_eq!(
        buckets,
        json!([{"name": BUCKET, "objects": 0}, {"name": "seeded-bucket", "objects": 1}])
    );

    let reset = t.http.post(t.url("/control/reset")).send().await.unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        t.control_get("/control/buckets").await,
        json!([{"name": BUCKET, "objects": 0}])
    );
    assert_eq!(t.control_get("/control/ledger").await["entries"], json!([]));
}
