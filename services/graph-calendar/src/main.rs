use brain_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = graph_calendar::Settings::from_env()?;
    let _telemetry = telemetry::init(graph_calendar::SERVICE, settings.common.otlp_endpoint.as_deref(), settings.common.log_json)?;
    tracing::info!(settings = ?settings, "starting");
    graph_calendar::run(settings, shutdown::on_signal()).await
}
