use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = brain_bench::Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    brain_bench::run(options).await?;
    Ok(())
}
