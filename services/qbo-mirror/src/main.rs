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
    /// Compare the mirror with QBO now and repair what drifted (every realm, or one).
    Reconcile {
        #[arg(long)]
        realm: Option<String>,
        #[arg(long)]
        json: bool,
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
        Command::Reconcile { realm, json } => {
            let parts = qbo_mirror::connect(&settings).await?;
            let syncer = qbo_mirror::syncer(&settings, &parts)?;
            let (drifts, failed) = qbo_mirror::reconcile_all(&syncer, &parts.realms, realm.as_deref()).await?;
            for d in &drifts {
                if json {
                    println!("{}", serde_json::to_string(d)?);
                } else {
                    println!("{}  compared {} · missing {} · differs {} · extra {}{}", d.realm_id, d.compared, d.missing, d.differs, d.extra, if d.total() > 0 { " (repaired)" } else { "" });
                }
            }
            for (realm, error) in &failed {
                eprintln!("{realm}: could not reconcile: {error}");
            }
            anyhow::ensure!(failed.is_empty(), "{} realm(s) could not be reconciled", failed.len());
            anyhow::ensure!(realm.is_none() || !drifts.is_empty(), "no active realm {}", realm.unwrap_or_default());
            Ok(())
        }
    }
}
