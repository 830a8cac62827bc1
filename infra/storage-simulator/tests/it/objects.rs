use reqwest::StatusCode;
use serde_json::{Value, json};
use storage_simulator::{crc32c_base64, md5_base64};

use crate::helpers::{BUCKET, encode, gcs_error, spawn_sim};

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 a tiny receipt photo";
const NAME: &str = "users/u-1/receipts/2026 06 01.jpg";

#[tokio::test]
async fn upload_then_metadata_and_media() {
    let t = spawn_sim().await;
    let response = t.upload(NAME, JPEG, "").await;
    assert_eq!(response.status(), StatusCode::OK);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["kind"], "storage#object");
    assert_eq!(
        (stored["name"].as_str(), stored["bucket"].as_str()),
        (Some(NAME), Some(BUCKET))
    );
    assert_eq!(stored["size"], JPEG.len().to_string());
    assert_eq!(stored["contentType"], "image/jpeg");
    assert_eq!(stored["md5Hash"], md5_base64(JPEG));
    assert_eq!(stored["crc32c"], crc32c_base64(JPEG));
    assert_eq!(stored["metageneration"], "1");
    let generation = stored["generation"].as_str().unwrap();
    assert!(generation.parse::<i64>().unwrap() > 0);
    assert_eq!(stored["id"], format!("{BUCKET}/{NAME}/{generation}"));
    assert!(stored["updated"].as_str().unwrap().ends_with('Z'));
    assert!(stored["timeCreated"].is_string());

    let metadata: Value = t.get_object(NAME, "").await.json().await.unwrap();
    assert_eq!(metadata, stored);

    let media = t.get_object(NAME, "?alt=media").await;
    assert_eq!(media.status(), StatusCode::OK);
    assert_eq!(media.headers()["content-type"], "image/jpeg");
    assert_eq!(media.headers()["x-goog-generation"], generation);
    let hash = media.headers()["x-goog-hash"].to_str().unwrap().to_owned();
    assert!(
        hash.contains(&format!("md5={}", md5_base64(JPEG))),
        "{hash}"
    );
    assert_eq!(media.bytes().await.unwrap().as_ref(), JPEG);

    let via_link = t
        .http
        .get(stored["mediaLink"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(via_link.bytes().await.unwrap().as_ref(), JPEG);

    let stats = t.control_get("/control/stats").await;
    assert_eq!(
        stats["uploadsByObject"],
        json!({format!("{BUCKET}/{NAME}"): 1})
    );
    assert_eq!(
        (stats["downloads"].as_u64(), stats["metadataReads"].as_u64()),
        (Some(2), Some(1))
    );
}

#[tokio::test]
async fn not_found_bodies_list_and_delete() {
    let t = spawn_sim().await;
    let missing = t.get_object("nope.jpg", "").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], 404);
    assert_eq!(body["error"]["errors"][0]["domain"], "global");
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    assert_eq!(
        body["error"]["message"],
        format!("No such object: {BUCKET}/nope.jpg")
    );

    let no_bucket = t
        .http
        .get(t.url("/storage/v1/b/other-bucket/o/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(gcs_error(no_bucket).await, (404, "notFound".into()));

    for name in ["a/1.jpg", "a/2.jpg", "b/1.jpg"] {
        assert_eq!(t.upload(name, b"x", "").await.status(), StatusCode::OK);
    }
    let list: Value = t
        .http
        .get(t.url(&format!("/storage/v1/b/{BUCKET}/o?prefix=a/")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["kind"], "storage#objects");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a/1.jpg", "a/2.jpg"]);

    let url = t.url(&format!("/storage/v1/b/{BUCKET}/o/{}", encode("a/1.jpg")));
    assert_eq!(
        t.http.delete(&url).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.http.delete(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(t.control_get("/control/stats").await["deletes"], 1);
}

#[tokio::test]
async fn bad_uploads_and_generation_preconditions() {
    let t = spawn_sim().await;
    let no_name = t
        .http
        .post(t.url(&format!("/upload/storage/v1/b/{BUCKET}/o?uploadType=media")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(gcs_error(no_name).await, (400, "required".into()));
    let resumable = t
        .http
        .post(t.url(&format!(
            "/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name=x"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resumable.status(), StatusCode::BAD_REQUEST);

    // ifGenerationMatch=0: create only if absent, so a retried upload cannot store twice.
    assert_eq!(
        t.upload("p.jpg", b"one", "&ifGenerationMatch=0")
            .await
            .status(),
        StatusCode::OK
    );
    let again = t.upload("p.jpg", b"two", "&ifGenerationMatch=0").await;
    assert_eq!(again.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(gcs_error(again).await, (412, "conditionNotMet".into()));
    let object = t
        .control_get(&format!("/control/objects/{BUCKET}/p.jpg"))
        .await;
    assert_eq!(object["md5Hash"], md5_base64(b"one"));

    let generation = object["generation"].as_str().unwrap();
    let stale = t.get_object("p.jpg", "?generation=1").await;
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
    let current = t
        .get_object("p.jpg", &format!("?generation={generation}"))
        .await;
    assert_eq!(current.status(), StatusCode::OK);
    let overwrite = t
        .upload("p.jpg", b"two", &format!("&ifGenerationMatch={generation}"))
        .await;
    assert_eq!(overwrite.status(), StatusCode::OK);
    assert_eq!(
        t.control_get("/control/stats").await["uploadsByObject"][format!("{BUCKET}/p.jpg")],
        2
    );
}
