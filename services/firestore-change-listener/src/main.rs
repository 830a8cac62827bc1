use brain_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = firestore_change_listener::Settings::from_env()?;
    let _telemetry = telemetry::init(firestore_change_listener::SERVICE, settings.common.otlp_endpoint.as_deref(), settings.common.log_json)?;
    tracing::info!(settings = ?settings, "starting");
    firestore_change_listener::run(settings, shutdown::on_signal()).await
}
