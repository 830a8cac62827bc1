//! `storage-simulator`: config from `STORAGE_SIM__*`, JSON logs, serve until SIGINT/SIGTERM.

use anyhow::Context;
use storage_simulator::{Config, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    simulator_kit::init_json_logs();
    let config = Config::from_env().context("loading STORAGE_SIM__* settings")?;
    let simulator = Simulator::start(config).await?;
    tracing::info!(
        listen_addr = %simulator.local_addr(),
        base_url = %simulator.base_url(),
        "storage simulator listening"
    );
    simulator_kit::run_until_signal(|shutdown| simulator.run_until(shutdown)).await?;
    tracing::info!("storage simulator stopped");
    Ok(())
}
