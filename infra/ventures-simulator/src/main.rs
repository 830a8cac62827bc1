//! `ventures-simulator`: config from `VENTURES_SIM__*`, JSON logs, serve until SIGINT/SIGTERM.

use ventures_simulator::{Config, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    simulator_kit::init_json_logs();
    let config = Config::from_env()?;
    let simulator = Simulator::start(config).await?;
    tracing::info!(
        listen_addr = %simulator.local_addr(),
        base_url = %simulator.base_url(),
        "ventures simulator listening"
    );
    simulator_kit::run_until_signal(|shutdown| simulator.run_until(shutdown)).await?;
    tracing::info!("ventures simulator stopped");
    Ok(())
}
