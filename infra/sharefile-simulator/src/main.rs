//! `sharefile-simulator`: config from `SHAREFILE_SIM__*`, JSON logs, serve until SIGINT/SIGTERM.

use anyhow::Context;
use sharefile_simulator::{Config, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    simulator_kit::init_json_logs();
    let config = Config::from_env().context("loading SHAREFILE_SIM__* settings")?;
    let simulator = Simulator::start(config).await?;
    simulator.run_until_signal("sharefile simulator").await?;
    Ok(())
}
