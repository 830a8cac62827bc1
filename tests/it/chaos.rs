use system_tests::chaos::{self, ChaosConfig};

/// The short chaos run: every kind of fault, the independent checker, all invariants hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_keeps_every_invariant() -> anyhow::Result<()> {
    crate::init_logs();
    let seed = rand::random();
    let outcome = chaos::run(&ChaosConfig::smoke(seed)).await?;
    println!("{outcome}");
    assert!(outcome.is_clean(), "chaos seed {seed} violated an invariant (replay: make chaos ARGS='--smoke --seed {seed}')");
    assert!(outcome.kills >= 4);
    assert!(outcome.duplicates_sent > 0, "duplicates were injected");
    Ok(())
}
