//! `qbo-simulator`: config from `QBO_SIM__*`, JSON logs, serve until SIGINT/SIGTERM.

use anyhow::Context;
use qbo_simulator::{Config, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    simulator_kit::init_json_logs();
    let config = Config::from_env().context("loading QBO_SIM__* settings")?;
    let simulator = Simulator::start(config).await?;
    tracing::info!(
        listen_addr = %simulator.local_addr(),
        base_url = %simulator.base_url(),
        "qbo simulator listening"
    );
    simulator_kit::run_until_signal(|shutdown| simulator.run_until(shutdown)).await?;
    tracing::info!("qbo simulator stopped");
    Ok(())
}
