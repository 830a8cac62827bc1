use brain_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = projection_writer::Settings::from_env()?;
    let _telemetry = telemetry::init(projection_writer::SERVICE, settings.common.otlp_endpoint.as_deref(), settings.common.log_json)?;
    tracing::info!(settings = ?settings, "starting");
    projection_writer::run(settings, shutdown::on_signal()).await
}
