use std::time::Instant;

use serde_json::json;

use crate::helpers::spawn_sim;

/// Realms of the acceptance size (5,000 documents each), seeded in one call. `make test` seeds 20
/// of them (the whole machine is busy with other tests); the bench's figure (10) seeds all 100.
#[tokio::test]
async fn seeds_realms_of_5000_documents() {
    let t = spawn_sim().await;
    let started = Instant::now();
    let realms = t
        .seed(json!({"realms": 20, "documentsPerRealm": 5000, "seed": 42}))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(realms.len(), 20);
    eprintln!("seeded 20 × 5,000 in {elapsed:?}");
    let listed = t.control_get("/control/realms").await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 20);
    for realm in listed {
        let docs = &realm["documents"];
        let n = ["Bill", "Invoice"]
            .iter()
            .map(|k| docs[k]["active"].as_u64().unwrap() + docs[k]["deleted"].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(n, 5000, "{realm}");
    }
    // Same spec and seed, same data (timestamps too, with a fixed asOf).
    let (x, y) = (spawn_sim().await, spawn_sim().await);
    let spec =
        json!({"realms": 2, "documentsPerRealm": 50, "seed": 42, "asOf": "2026-01-01T00:00:00Z"});
    let (rx, ry) = (x.seed(spec.clone()).await, y.seed(spec).await);
    assert_eq!(rx[1].0, ry[1].0);
    let path = format!("/control/realms/{}/bill/7", rx[1].0);
    let (bx, by) = (x.control_get(&path).await, y.control_get(&path).await);
    assert_eq!(bx, by);
    assert_eq!(bx["Id"], "7");
}
