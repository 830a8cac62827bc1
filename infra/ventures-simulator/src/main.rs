//! `ventures-simulator`: config from `VENTURES_SIM__*`, JSON logs, serve until SIGINT/SIGTERM.

use tokio_util::sync::CancellationToken;
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
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(simulator_kit::cancel_on_signal(shutdown.clone()));
    simulator.run_until(shutdown).await?;
    signals.abort();
    tracing::info!("ventures simulator stopped");
    Ok(())
}
