use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{reason, spawn_sim};

#[tokio::test]
async fn by_path_create_and_expand_children() {
    let t = spawn_sim().await;
    let missing = t.get("Items/ByPath?path=/Clients/Acme").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["reason"].as_str()),
        (Some("NotFound"), Some("NotFound"))
    );
    assert_eq!(body["message"]["lang"], "en-US");

    let clients = t.by_path("/Clients").await;
    assert_eq!(clients["odata.type"], "ShareFile.Api.Models.Folder");
    let clients_id = clients["Id"].as_str().unwrap();
    assert!(clients_id.starts_with("fo"));

    let created = t.create_folder(clients_id, "Acme").await;
    assert_eq!(created.status(), StatusCode::OK);
    let acme: Value = created.json().await.unwrap();
    assert_eq!(acme["Name"], "Acme");
    assert_eq!(acme["Description"], "made by a test");
    assert_eq!(acme["Parent"]["Id"], clients_id);
    assert!(
        acme["odata.metadata"]
            .as_str()
            .unwrap()
            .ends_with("#Items/ShareFile.Api.Models.Folder@Element")
    );
    assert_eq!(t.by_path("/Clients/Acme").await["Id"], acme["Id"]);

    // A taken name (case-insensitively) is a 409 Conflict; with overwrite=true the existing one.
    let again = t.create_folder(clients_id, "ACME").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(reason(again).await, "Conflict");
    let overwrite = t
        .post(
            &format!("Items({clients_id})/Folder?overwrite=true"),
            &json!({"Name": "Acme"}),
        )
        .await;
    assert_eq!(overwrite.status(), StatusCode::OK);
    assert_eq!(overwrite.json::<Value>().await.unwrap()["Id"], acme["Id"]);

    let expanded: Value = t
        .get(&format!("Items({clients_id})?$expand=Children"))
        .await
        .json()
        .await
        .unwrap();
    let children = expanded["Children"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["Name"], "Acme");
    assert!(
        t.get(&format!("Items({clients_id})"))
            .await
            .json::<Value>()
            .await
            .unwrap()
            .get("Children")
            .is_none()
    );

    let unknown = t.create_folder("fo-unknown", "X").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let invalid = t.create_folder(clients_id, "a/b").await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);

    let stats = t.control_get("/control/stats").await;
    assert_eq!(stats["foldersCreated"], 1);
    assert_eq!(stats["foldersByPath"]["/Clients/Acme"], 1);
}

#[tokio::test]
async fn control_folders_and_tree() {
    let t = spawn_sim().await;
    let made = t
        .control(
            "/control/folders",
            json!({"path": "/Clients/Beta/2026"}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(made["path"], "/Clients/Beta/2026");
    let items = t.control_get("/control/items").await;
    let clients = &items["tree"]["children"][0];
    assert_eq!(clients["path"], "/Clients");
    assert_eq!(clients["children"][0]["children"][0]["name"], "2026");
    // Not an API effect.
    assert_eq!(t.control_get("/control/stats").await["foldersCreated"], 0);

    t.control("/control/reset", Value::Null, StatusCode::NO_CONTENT)
        .await;
    let items = t.control_get("/control/items").await;
    let top = items["tree"]["children"].as_array().unwrap();
    assert_eq!(top.len(), 1, "only the configured /Clients remains");
    assert!(top[0]["children"].as_array().unwrap().is_empty());
}
