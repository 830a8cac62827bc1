//! `dev-oidc`: serve the dev issuer (settings from `DEV_OIDC__*`), or talk to a running one:
//!
//! ```sh
//! dev-oidc                                   # serve on 127.0.0.1:8070
//! dev-oidc mint --role staff --tenant t1     # print a token
//! dev-oidc mint --role borrower --tenant t1 --application app-1 --application app-2
//! dev-oidc rotate                            # new keys (a new kid) for every algorithm
//! ```

use clap::{Parser, Subcommand};
use dev_oidc::{Alg, Config, DevOidc, MintRequest, client::Client};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(about = "A development OIDC issuer (loopback only): discovery, JWKS, token minting")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the issuer (the default).
    Serve,
    /// Ask a running issuer for a token and print it.
    Mint {
        /// borrower, staff, ops or admin.
        #[arg(long)]
        role: String,
        #[arg(long)]
        tenant: String,
        /// Default: dev-<role>.
        #[arg(long)]
        sub: Option<String>,
        /// An application a borrower may read (repeatable).
        #[arg(long = "application")]
        applications: Vec<String>,
        #[arg(long)]
        ttl_secs: Option<i64>,
        #[arg(long)]
        aud: Option<String>,
        #[arg(long, default_value = "RS256")]
        alg: Alg,
        #[arg(long, env = "DEV_OIDC_URL", default_value = "http://127.0.0.1:8070")]
        url: String,
    },
    /// Rotate the running issuer's keys.
    Rotate {
        /// Also drop the previous keys from the JWKS.
        #[arg(long)]
        retire_previous: bool,
        #[arg(long, env = "DEV_OIDC_URL", default_value = "http://127.0.0.1:8070")]
        url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Mint { role, tenant, sub, applications, ttl_secs, aud, alg, url } => {
            let mut request = MintRequest::new(sub.unwrap_or_else(|| format!("dev-{role}")), role, tenant);
            request.applications = (!applications.is_empty()).then_some(applications);
            request.ttl_secs = ttl_secs;
            request.aud = aud;
            request.alg = Some(alg);
            println!("{}", Client::new(&url).mint(&request).await?.token);
            Ok(())
        }
        Command::Rotate { retire_previous, url } => {
            for kid in Client::new(&url).rotate(retire_previous).await? {
                println!("{kid}");
            }
            Ok(())
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt().json().with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).init();
    let oidc = DevOidc::start(Config::from_env()?).await?;
    tracing::info!(listen_addr = %oidc.local_addr(), issuer = oidc.issuer().url(), audience = oidc.issuer().audience(), "dev OIDC issuer listening (development only)");
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    oidc.run_until(shutdown).await
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => terminate.recv().await,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops us");
                std::future::pending().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
    shutdown.cancel();
}
