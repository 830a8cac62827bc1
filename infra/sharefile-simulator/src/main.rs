//! `sharefile-simulator`: config from `SHAREFILE_SIM__*`, JSON logs, serve until SIGINT/SIGTERM.

use anyhow::Context;
use sharefile_simulator::{Config, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    simulator_kit::init_json_logs();
    let config = Config::from_env().context("loading SHAREFILE_SIM__* settings")?;
    let simulator = Simulator::start(config).await?;
    tracing::info!(
        listen_addr = %simulator.local_addr(),
        base_url = %simulator.base_url(),
        "sharefile simulator listening"
    );
    simulator_kit::run_until_signal(|shutdown| simulator.run_until(shutdown)).await?;
    tracing::info!("sharefile simulator stopped");
    Ok(())
}
