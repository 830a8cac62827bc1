//! The bench's command line (`brain-bench --help`).

use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(about = "Brain's benchmarks: throughput, pipeline latency, gateway, footprint, codec")]
pub struct Options {
    /// Tiny sizes (2,000 records, 3 s pipeline, one 2 s search step, 2 s gateway): checks that the
    /// bench works.
    #[arg(long)]
    pub smoke: bool,
    /// Records for figures (1)-(3) [default: 200,000; smoke 2,000].
    #[arg(long)]
    pub records: Option<u64>,
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Application ids the records are keyed by [default: 10,000; smoke 200].
    #[arg(long)]
    pub keys: Option<u64>,
    /// The fixed pipeline rate, events/s, where the search starts [default: 2,000; smoke 100].
    #[arg(long)]
    pub pipeline_rate: Option<u32>,
    /// Seconds of the fixed-rate pipeline run [default: 60; smoke 3].
    #[arg(long)]
    pub pipeline_secs: Option<f64>,
    /// Seconds of the cold-start run before it, on keys of its own [default: 5; smoke 1].
    #[arg(long)]
    pub cold_start_secs: Option<f64>,
    /// Seconds of each step of the maximum-rate search [default: 15; smoke 2].
    #[arg(long)]
    pub step_secs: Option<f64>,
    /// Most steps of the search (each doubles the rate) [default: 5; smoke 1].
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// No new step once the search has taken this long, seconds [default: 240; smoke 20].
    #[arg(long)]
    pub search_budget_secs: Option<f64>,
    /// Seconds of the end-to-end run [default: 30; smoke 3].
    #[arg(long)]
    pub e2e_secs: Option<f64>,
    /// Simulator status changes per second in the end-to-end run.
    #[arg(long, default_value_t = 10.0)]
    pub e2e_rate: f64,
    /// Seconds of each gateway load run [default: 10; smoke 2].
    #[arg(long)]
    pub gateway_secs: Option<f64>,
    /// The gateway's fixed request rate, requests/s.
    #[arg(long, default_value_t = 1000)]
    pub gateway_rps: u32,
    /// The calendar slots endpoint's fixed request rate with Graph down (figure (12)), requests/s.
    #[arg(long, default_value_t = 500)]
    pub slots_rps: u32,
    /// Records each decoder decodes in the codec figure [default: 50,000; smoke 2,000].
    #[arg(long)]
    pub codec_records: Option<u64>,
    /// Dead letters replayed in figure (8) [default: 10,000; smoke 1,000].
    #[arg(long)]
    pub replay_messages: Option<u64>,
    /// Where the JSON goes [default: <repo>/bench-results].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The Python with confluent-kafka and psycopg [default: <repo>/.cache/venv/bin/python].
    #[arg(long)]
    pub python: Option<PathBuf>,
}

impl Options {
    /// `given`, else the full or the smoke default.
    pub fn pick<T>(&self, given: Option<T>, full: T, smoke: T) -> T {
        given.unwrap_or(if self.smoke { smoke } else { full })
    }
}
