use reqwest::StatusCode;
use serde_json::{Value, json};
use sharefile_simulator::md5_hex;

use crate::helpers::{reason, spawn_sim};

const PDF: &[u8] = b"%PDF-1.7 a tiny bank statement";

#[tokio::test]
async fn upload2_then_chunk_uri_stores_the_file_once() {
    let t = spawn_sim().await;
    let clients = t.by_path("/Clients").await;
    let folder_id = clients["Id"].as_str().unwrap();
    let spec = t
        .upload2(folder_id, "statement.pdf", PDF.len(), false)
        .await;
    assert_eq!(spec["Method"], "Standard");
    assert_eq!(spec["FinishUri"], Value::Null);
    assert_eq!(
        (spec["IsResume"].as_bool(), spec["ResumeIndex"].as_u64()),
        (Some(false), Some(0))
    );
    assert_eq!(spec["MaxNumberOfThreads"], 1);
    assert_eq!(spec["IsDuplicateFileName"], false);
    let chunk_uri = spec["ChunkUri"].as_str().unwrap();
    assert!(
        chunk_uri.starts_with(&t.url("/upload.aspx?uploadid=")),
        "{chunk_uri}"
    );

    assert_eq!(
        t.chunk(chunk_uri, PDF).await,
        (StatusCode::OK, "OK".to_owned())
    );
    // The session is used up: a repeat is refused, not stored twice.
    let (status, repeat) = t.chunk(chunk_uri, PDF).await;
    assert_eq!(status, StatusCode::OK);
    assert!(repeat.starts_with("ERROR:"), "{repeat}");

    let file = t.by_path("/Clients/statement.pdf").await;
    assert_eq!(file["odata.type"], "ShareFile.Api.Models.File");
    assert!(file["Id"].as_str().unwrap().starts_with("fi"));
    assert_eq!(file["FileName"], "statement.pdf");
    assert_eq!(file["FileSizeBytes"], PDF.len());
    assert_eq!(file["Hash"], md5_hex(PDF));
    assert_eq!(file["Parent"]["Id"], folder_id);
    assert!(file["CreationDate"].is_string());

    let id = file["Id"].as_str().unwrap();
    let download = t.get(&format!("Items({id})/Download")).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.unwrap().as_ref(), PDF);
    let content = t
        .http
        .get(t.url(&format!("/control/files/{id}/content")))
        .send()
        .await
        .unwrap();
    assert_eq!(content.bytes().await.unwrap().as_ref(), PDF);
    let summary = t
        .control_get("/control/files?path=/Clients/statement.pdf")
        .await;
    assert_eq!(
        (summary["hash"].as_str(), summary["size"].as_u64()),
        (Some(md5_hex(PDF).as_str()), Some(PDF.len() as u64))
    );

    let stats = t.control_get("/control/stats").await;
    assert_eq!(stats["uploadsStored"], 1);
    assert_eq!(stats["uploadsByPath"], json!({"/Clients/statement.pdf": 1}));
    assert_eq!(stats["uploadErrors"], 1);
    let ledger = t.control_get("/control/ledger").await;
    let stored: Vec<&Value> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "/Clients/statement.pdf")
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0]["method"].as_str(), stored[0]["path"].as_str()),
        (Some("POST"), Some("/upload.aspx"))
    );
}

#[tokio::test]
async fn a_size_mismatch_is_an_error_inside_a_200() {
    let t = spawn_sim().await;
    let folder = t.by_path("/Clients").await;
    let spec = t
        .upload2(
            folder["Id"].as_str().unwrap(),
            "a.pdf",
            PDF.len() + 1,
            false,
        )
        .await;
    let chunk_uri = spec["ChunkUri"].as_str().unwrap();
    let (status, text) = t.chunk(chunk_uri, PDF).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.starts_with("ERROR:") && text.contains("size"),
        "{text}"
    );
    assert_eq!(
        t.get("Items/ByPath?path=/Clients/a.pdf").await.status(),
        StatusCode::NOT_FOUND
    );
    let mut right = PDF.to_vec();
    right.push(b'\n');
    assert_eq!(
        t.chunk(chunk_uri, &right).await.1,
        "OK",
        "the session stays open after ERROR:"
    );
}

#[tokio::test]
async fn duplicate_names_are_renamed_or_overwritten() {
    let t = spawn_sim().await;
    let folder = t.by_path("/Clients").await;
    let folder_id = folder["Id"].as_str().unwrap();
    assert_eq!(t.upload(folder_id, "a.pdf", b"one").await, "OK");
    let spec = t.upload2(folder_id, "a.pdf", 3, false).await;
    assert_eq!(spec["IsDuplicateFileName"], true);
    assert_eq!(
        t.chunk(spec["ChunkUri"].as_str().unwrap(), b"two").await.1,
        "OK"
    );
    assert_eq!(
        t.by_path("/Clients/a (1).pdf").await["Hash"],
        md5_hex(b"two")
    );

    let spec = t.upload2(folder_id, "a.pdf", 5, true).await;
    assert_eq!(
        t.chunk(spec["ChunkUri"].as_str().unwrap(), b"three")
            .await
            .1,
        "OK"
    );
    assert_eq!(t.by_path("/Clients/a.pdf").await["Hash"], md5_hex(b"three"));
    let stats = t.control_get("/control/stats").await;
    assert_eq!(
        (stats["uploadsStored"].as_u64(), stats["files"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (
            stats["uploadsRenamed"].as_u64(),
            stats["uploadsReplaced"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(stats["uploadsByPath"]["/Clients/a.pdf"], 3);
}

#[tokio::test]
async fn file_size_and_quota_limits() {
    let t = spawn_sim().await;
    let folder = t.by_path("/Clients").await;
    let folder_id = folder["Id"].as_str().unwrap();
    let limits = json!({"quotaBytes": 10, "maxFileSizeBytes": 8});
    let response = t
        .http
        .put(t.url("/control/limits"))
        .json(&limits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let upload2 = async |size: usize| {
        let body =
            json!({"Method": "Standard", "Raw": true, "FileName": "big.pdf", "FileSize": size});
        t.post(&format!("Items({folder_id})/Upload2"), &body).await
    };
    let too_large = upload2(9).await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reason(too_large).await, "FileTooLarge");
    assert_eq!(t.upload(folder_id, "six.pdf", b"123456").await, "OK");
    let over_quota = upload2(5).await;
    assert_eq!(over_quota.status(), StatusCode::FORBIDDEN);
    assert_eq!(reason(over_quota).await, "QuotaExceeded");

    // Limits lowered between Upload2 and the ChunkUri: ERROR: at upload time.
    let spec = t.upload2(folder_id, "four.pdf", 4, false).await;
    let limits = json!({"quotaBytes": 8});
    t.http
        .put(t.url("/control/limits"))
        .json(&limits)
        .send()
        .await
        .unwrap();
    let (_, text) = t.chunk(spec["ChunkUri"].as_str().unwrap(), b"1234").await;
    assert!(text.starts_with("ERROR:"), "{text}");

    let not_raw = json!({"Method": "Standard", "Raw": false, "FileName": "x.pdf"});
    let response = t
        .post(&format!("Items({folder_id})/Upload2"), &not_raw)
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
