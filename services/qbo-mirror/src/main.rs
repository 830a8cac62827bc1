//! `qbo-mirror`: the service, and `qbo-mirror connect` to add a client company (realm).

use brain_runtime::{shutdown, telemetry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Mirror QuickBooks Online companies into PostgreSQL (flow 7)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Connect (or reconnect) a realm with the refresh token of its OAuth consent; it syncs at once.
    Connect {
        #[arg(long)]
        realm: String,
        #[arg(long)]
        tenant: String,
        /// The advisor whose portfolio it is in (the token subject the gateway sees).
        #[arg(long)]
        advisor: String,
        #[arg(long)]
        company: Option<String>,
        /// The refresh token (or QBO_REFRESH_TOKEN, so it stays out of the shell history).
        #[arg(long, env = "QBO_REFRESH_TOKEN", hide_env_values = true)]
        refresh_token: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = qbo_mirror::Settings::from_env()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let _telemetry = telemetry::init(qbo_mirror::SERVICE, settings.common.otlp_endpoint.as_deref(), settings.common.log_json)?;
            tracing::info!(settings = ?settings, "starting");
            qbo_mirror::run(settings, shutdown::on_signal()).await
        }
        Command::Connect { realm, tenant, advisor, company, refresh_token } => {
            let parts = qbo_mirror::connect(&settings).await?;
            parts.realms.connect(&parts.vault, &realm, &tenant, &advisor, company.as_deref(), &refresh_token).await?;
            println!("realm {realm} connected for tenant {tenant}, advisor {advisor}; it syncs at once");
            Ok(())
        }
    }
}
