//! `make chaos`: the chaos run with its invariant checker. Exits 1 on any violation.
//! Replay a run with `--seed N`.

use clap::Parser;
use system_tests::chaos::{self, ChaosConfig};

#[derive(Parser)]
struct Args {
    /// The seed of the fault schedule (random when absent; printed either way).
    #[arg(long, env = "CHAOS_SEED")]
    seed: Option<u64>,
    /// The short run `make test` uses.
    #[arg(long)]
    smoke: bool,
    #[arg(long)]
    changes: Option<usize>,
    #[arg(long)]
    loans: Option<usize>,
    /// Status changes per second.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long)]
    kills: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into())).init();
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut config = if args.smoke { ChaosConfig::smoke(seed) } else { ChaosConfig::full(seed) };
    config.changes = args.changes.unwrap_or(config.changes);
    config.loans = args.loans.unwrap_or(config.loans);
    config.rate = args.rate.unwrap_or(config.rate);
    config.dose.kills = args.kills.unwrap_or(config.dose.kills);
    println!("chaos: seed {seed} (replay with --seed {seed}); {} changes over {} loans at {}/s; {:?}", config.changes, config.loans, config.rate, config.dose);
    let outcome = match chaos::run(&config).await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("chaos seed {seed}: the run failed: {e:#}");
            std::process::exit(1);
        }
    };
    println!("{outcome}");
    if !outcome.is_clean() {
        std::process::exit(1);
    }
    Ok(())
}
