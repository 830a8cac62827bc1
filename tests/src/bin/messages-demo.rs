//! `make run`'s message step (flow 6) against a running dev stack: a staff member's message asking
//! for the Teams relay is written into Firestore as the console would; it is answered `sent` and
//! posted to the Teams channel (the Graph simulator); the borrower's app writes its read receipt;
//! the message becomes `read`. Prints one line with the times.

use std::time::{Duration, Instant};

use clap::Parser;
use projection_writer::firestore as fs;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "SCENARIO_FIRESTORE_PROJECT", default_value = "brain-dev")]
    firestore_project: String,
    /// The Graph simulator (its control API lists the Teams channel's messages).
    #[arg(long, default_value = "http://127.0.0.1:8094")]
    graph: String,
}

/// `delivery.status` and `teamsRelay.status` of the message.
async fn statuses(projections: &fs::Projections, collection: &str, id: &str) -> anyhow::Result<(Option<String>, Option<String>)> {
    let docs = projections.get(collection, &[id.to_string()]).await?;
    let status = |field: &str| docs.get(id).and_then(|d| d.get(field)).and_then(fs::as_map).and_then(|m| m.get("status")).and_then(fs::as_str).map(str::to_string);
    Ok((status("delivery"), status("teamsRelay")))
}

async fn until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    while !check().await? {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "{what} not within 30 s (.dev/logs/firestore-change-listener.log, projection-writer.log, graph-calendar.log)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let projections = fs::Projections::connect(&args.firestore_project).await?;
    let app = format!("dev-msgs-{}", chrono::Utc::now().timestamp());
    let collection = format!("applications/{app}/messages");
    let fields = vec![
        ("text", fs::string("Your appraisal is in; please review the conditions list.")),
        ("senderRole", fs::string("staff")),
        ("authorId", fs::string("dev-staff")),
        ("relayToTeams", fs::boolean(true)),
        ("tenantId", fs::string("default")),
    ];
    let started = Instant::now();
    projections.merge_fields(&collection, "m-1", fields).await?;
    let sent = until("delivery sent", || async { Ok(statuses(&projections, &collection, "m-1").await?.0.is_some()) }).await?;
    let relayed = until("the Teams relay", || async { Ok(statuses(&projections, &collection, "m-1").await?.1.as_deref() == Some("relayed")) }).await? + sent;
    let total = started.elapsed();
    projections.merge_fields(&collection, "m-1", vec![("receipts", fs::map(vec![("borrower", fs::string("read"))]))]).await?;
    let read = until("delivery read", || async { Ok(statuses(&projections, &collection, "m-1").await?.0.as_deref() == Some("read")) }).await?;
    let posts: serde_json::Value = reqwest::get(format!("{}/control/teams/messages", args.graph)).await?.error_for_status()?.json().await?;
    println!(
        "  Messages: staff message in {app} → sent in {sent:.2} s → Teams channel in {relayed:.2} s (posts in the channel: {}) → the borrower read it → read in {read:.2} s ({:.2} s in all)",
        posts["messages"].as_array().map_or(0, Vec::len),
        total.as_secs_f64() + read
    );
    Ok(())
}
