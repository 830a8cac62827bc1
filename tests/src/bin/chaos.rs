//! `make chaos`: the chaos run with its invariant checker. Exits 1 on any violation.
//! Replay a run with `--seed N`. `--broker-restarts N` adds the opt-in broker-restart scenario
//! (broker on `s3://` storage; the dev broker's own losses are reported on a separate line and do
//! not fail the run).

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
    /// kill -9 and restart the broker N times (0: not run). The broker then stores on a local S3
    /// server (`moto_server`, installed by `make chaos`); see docs/chaos.md.
    #[arg(long, default_value_t = 0)]
    broker_restarts: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // With broker restarts, the harness's own Kafka clients log every refused reconnect: expected.
    let quiet = if args.broker_restarts > 0 { "warn,librdkafka=off,rdkafka::client=off" } else { "warn" };
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| quiet.into())).init();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut config = if args.smoke { ChaosConfig::smoke(seed) } else { ChaosConfig::full(seed) };
    config.changes = args.changes.unwrap_or(config.changes);
    config.loans = args.loans.unwrap_or(config.loans);
    config.rate = args.rate.unwrap_or(config.rate);
    config.dose.kills = args.kills.unwrap_or(config.dose.kills);
    config.dose.broker_restarts = args.broker_restarts;
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
