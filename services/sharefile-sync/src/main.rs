use brain_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = sharefile_sync::Settings::from_env()?;
    let _telemetry = telemetry::init(sharefile_sync::SERVICE, settings.common.otlp_endpoint.as_deref(), settings.common.log_json)?;
    tracing::info!(settings = ?settings, "starting");
    sharefile_sync::run(settings, shutdown::on_signal()).await
}
