use brain_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = api_gateway::Settings::from_env()?;
    let _telemetry = telemetry::init(api_gateway::SERVICE, settings.otlp_endpoint.as_deref(), settings.log_json)?;
    tracing::info!(settings = ?settings, "starting");
    let app = api_gateway::Application::build(&settings).await?;
    app.run_until(shutdown::on_signal()).await
}
