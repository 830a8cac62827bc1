//! `make chaos`: the chaos run with its invariant checker. Exits 1 on any violation.
//! Replay a run with `--seed N`. On the 3-node Apache Kafka cluster `make chaos` starts, the run
//! also kills brokers, restarts the cluster node by node and moves partition leaders
//! (`--broker-restarts`, `--rolling-restarts`, `--leader-changes` tune it; `--no-broker-faults`
//! leaves them out). With `BRAIN_BROKER=tansu`, broker restarts are opt-in and tansu's own
//! losses are reported on a separate line.

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
    /// kill -9 and restart a broker N times (default on a 3-node cluster: 3).
    #[arg(long)]
    broker_restarts: Option<usize>,
    /// Rolling restarts of the whole cluster (default on a 3-node cluster: 1).
    #[arg(long)]
    rolling_restarts: Option<usize>,
    /// Forced leader elections (default on a 3-node cluster: 2).
    #[arg(long)]
    leader_changes: Option<usize>,
    /// No broker faults even on a 3-node cluster.
    #[arg(long)]
    no_broker_faults: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster_nodes: u32 = std::env::var("BRAIN_TEST_KAFKA_NODES").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
    let broker_faults = !args.no_broker_faults && (cluster_nodes >= 3 || args.broker_restarts.is_some_and(|n| n > 0));
    // With broker faults, the harness's own Kafka clients log every refused reconnect: expected.
    let quiet = if broker_faults { "warn,librdkafka=off,rdkafka::client=off" } else { "warn" };
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| quiet.into())).init();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut config = if args.smoke { ChaosConfig::smoke(seed) } else { ChaosConfig::full(seed) };
    config.changes = args.changes.unwrap_or(config.changes);
    config.loans = args.loans.unwrap_or(config.loans);
    config.rate = args.rate.unwrap_or(config.rate);
    config.dose.kills = args.kills.unwrap_or(config.dose.kills);
    if broker_faults && cluster_nodes >= 3 {
        config = config.with_broker_faults();
    }
    if !args.no_broker_faults {
        config.dose.broker_restarts = args.broker_restarts.unwrap_or(config.dose.broker_restarts);
        config.dose.rolling_restarts = args.rolling_restarts.unwrap_or(config.dose.rolling_restarts);
        config.dose.leader_changes = args.leader_changes.unwrap_or(config.dose.leader_changes);
    }
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
