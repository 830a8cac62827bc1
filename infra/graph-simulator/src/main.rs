//! `graph-simulator`: config from `GRAPH_SIM__*`, JSON logs, serve until SIGINT/SIGTERM.

use anyhow::Context;
use graph_simulator::{Config, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    simulator_kit::init_json_logs();
    let config = Config::from_env().context("loading GRAPH_SIM__* settings")?;
    let simulator = Simulator::start(config).await?;
    tracing::info!(
        listen_addr = %simulator.local_addr(),
        base_url = %simulator.base_url(),
        "graph simulator listening"
    );
    simulator_kit::run_until_signal(|shutdown| simulator.run_until(shutdown)).await?;
    tracing::info!("graph simulator stopped");
    Ok(())
}
