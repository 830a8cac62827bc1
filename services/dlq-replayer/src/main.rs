//! `dlq-replayer`: list, count, show, replay, park and discard dead letters, or `serve` them over
//! HTTP. See `--help`.

use brain_runtime::{shutdown, telemetry};
use clap::{Args, Parser, Subcommand};
use dlq_replayer::{
    Settings, Tools, capabilities,
    dispose::{Action, Disposal, Scope},
    filter::{FieldMatch, Filter, parse_time},
    job::{self, JobRequest},
    read::{self, Item},
    replay::Tracker,
    serve::{self, ServeSettings},
    view,
};
use uuid::Uuid;

#[derive(Parser)]
#[command(version, about = "Inspect and replay Brain's dead letters (every deadletter.* topic of the namespace)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One line per dead letter (or JSON lines with --json).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Counts per topic, error class and kind, with the oldest age.
    Count {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        json: bool,
    },
    /// One dead letter in full: envelope, decoded event, headers, attempts.
    Show { id: String },
    /// Re-publish the chosen dead letters to their original topics.
    Replay {
        #[command(flatten)]
        filter: FilterArgs,
        /// Say what would be replayed and what skipped, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Messages per second at most.
        #[arg(long)]
        rate: Option<f64>,
        /// Resume this job (a crash or Ctrl-C mid-replay): what it sent is not sent again.
        #[arg(long)]
        job: Option<Uuid>,
        /// Who is replaying (recorded in the audit and the replay headers).
        #[arg(long, env = "DLQ_OPERATOR")]
        operator: Option<String>,
        /// Dead letters replayed this many times already are not replayed again.
        #[arg(long, default_value_t = 3)]
        cap: u32,
        #[arg(long)]
        json: bool,
    },
    /// Hold dead letters out of replays until unparked.
    Park(Disposition),
    /// Let parked dead letters be replayed again.
    Unpark(Disposition),
    /// Never replay these dead letters.
    Discard(Disposition),
    /// The replay jobs, newest first, with their counts.
    Jobs {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Capability flags: list, set or clear, history.
    #[command(subcommand)]
    Flags(capabilities::FlagsCommand),
    /// Panic mode: status, enable, disable.
    #[command(subcommand)]
    Panic(capabilities::PanicCommand),
    /// Run as a service: the HTTP API the gateway's admin API and the ops page use
    /// (`DLQ_REPLAYER__HTTP_ADDR`, default 127.0.0.1:8085), with /health, /ready and /metrics.
    Serve,
}

#[derive(Args)]
struct Disposition {
    /// Dead-letter ids.
    #[arg(required = true)]
    ids: Vec<String>,
    #[arg(long)]
    reason: String,
    #[arg(long, env = "DLQ_OPERATOR")]
    operator: Option<String>,
}

#[derive(Args, Default)]
struct FilterArgs {
    /// A dead-letter topic (catalogue name, e.g. deadletter.projection-writer.v1); repeatable.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Dead-lettered since: RFC 3339, or a duration ago (`15m`, `2h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// Dead-lettered before: RFC 3339, or a duration ago.
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    /// permanent or transient_exhausted.
    #[arg(long)]
    class: Option<String>,
    /// The error kind (validation, undecodable, http_4xx, ...).
    #[arg(long)]
    kind: Option<String>,
    /// A dead-letter id; repeatable.
    #[arg(long = "id")]
    ids: Vec<String>,
    /// `path=value` on the decoded original event, e.g. loan.status=Funded; repeatable.
    #[arg(long = "field")]
    fields: Vec<String>,
}

impl FilterArgs {
    fn filter(&self) -> anyhow::Result<Filter> {
        Ok(Filter {
            topics: self.topics.clone(),
            since: self.since.as_deref().map(parse_time).transpose().map_err(anyhow::Error::msg)?,
            until: self.until.as_deref().map(parse_time).transpose().map_err(anyhow::Error::msg)?,
            key: self.key.clone(),
            tenant: self.tenant.clone(),
            class: self.class.clone(),
            kind: self.kind.clone(),
            ids: self.ids.clone(),
            fields: self.fields.iter().map(|f| FieldMatch::parse(f)).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?,
        })
    }
}

fn operator(given: Option<String>) -> String {
    given.or_else(|| std::env::var("USER").ok()).filter(|o| !o.is_empty()).unwrap_or_else(|| "unknown".into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Serve = cli.command {
        let settings = ServeSettings::from_env()?;
        let _telemetry = telemetry::init(dlq_replayer::SERVICE, settings.otlp_endpoint.as_deref(), settings.log_json)?;
        tracing::info!(settings = ?settings, "starting");
        return serve::run(settings, shutdown::on_signal()).await;
    }
    tracing_subscriber_init();
    let tools = Tools::connect(Settings::from_env()?).await?;
    match cli.command {
        Command::Serve => unreachable!("handled above"),
        Command::Flags(command) => capabilities::run_flags(&tools, command, operator).await?,
        Command::Panic(command) => capabilities::run_panic(&tools, command, operator).await?,
        Command::List { filter, json, limit } => {
            let items = read::scan(&tools.settings.kafka, &tools.codec, &filter.filter()?).await?;
            let set_aside = tools.audit.dispositions().await?;
            for item in items.iter().take(limit) {
                let disposition = set_aside.get(&item.envelope.dead_letter_id).map(|(a, _)| a.as_str());
                if json {
                    println!("{}", serde_json::to_string(&view::summary(item, disposition))?);
                } else {
                    let e = &item.envelope;
                    let key = e.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                    println!(
                        "{}  {}  {:>6}  {}/{}  key={key}  tenant={}  replays={}{}",
                        e.dead_letter_id,
                        item.topic,
                        age(item),
                        e.error_class,
                        e.error_kind,
                        item.tenant().unwrap_or_else(|| "?".into()),
                        item.replays(),
                        disposition.map(|d| format!("  [{d}]")).unwrap_or_default()
                    );
                }
            }
            if !json {
                eprintln!("{} dead letters{}", items.len(), if items.len() > limit { format!(" ({limit} shown)") } else { String::new() });
            }
        }
        Command::Count { filter, json } => {
            let items = read::scan(&tools.settings.kafka, &tools.codec, &filter.filter()?).await?;
            let counts = view::counts(&items);
            if json {
                println!("{}", serde_json::to_string(&counts)?);
            } else {
                for g in &counts.groups {
                    println!("{:>6}  {}  {}/{}  oldest {} s ago", g.count, g.topic, g.class, g.kind, g.oldest_age_seconds);
                }
                println!("{:>6}  total", counts.total);
            }
        }
        Command::Show { id } => {
            let filter = Filter { ids: vec![id.clone()], ..Filter::default() };
            let items = read::scan(&tools.settings.kafka, &tools.codec, &filter).await?;
            let item = items.first().ok_or_else(|| anyhow::anyhow!("no dead letter {id}"))?;
            let disposition = tools.audit.dispositions().await?.remove(&id);
            println!("{}", serde_json::to_string_pretty(&view::detail(item, disposition))?);
        }
        Command::Replay { filter, dry_run, rate, job, operator: who, cap, json } => {
            let request = JobRequest { filter: filter.filter()?, dry_run, rate, cap, operator: operator(who), resume: job };
            let prepared = job::prepare(&tools, request).await?;
            let job_id = prepared.job_id;
            let producer = tools.producer()?;
            let report = job::execute(&tools, &producer, prepared, &Tracker::default(), !json).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let verb = if dry_run { "would send" } else { "sent" };
                println!("job {job_id} ({}): {} matched · {verb} {} · skipped {} · failed {} · {:.1} s", if dry_run { "dry run" } else { "replay" }, report.matched, report.sent.len(), report.skipped.len(), report.failed.len(), report.seconds);
                for (id, reason) in &report.skipped {
                    println!("  skipped {id}: {reason}");
                }
                for (id, error) in &report.failed {
                    println!("  failed  {id}: {error}");
                }
                if dry_run {
                    for id in &report.sent {
                        println!("  would send {id}");
                    }
                }
            }
            anyhow::ensure!(report.failed.is_empty(), "{} dead letters could not be re-published; resume with --job {job_id}", report.failed.len());
        }
        Command::Park(d) => dispose(&tools, d, Action::Park).await?,
        Command::Unpark(d) => dispose(&tools, d, Action::Unpark).await?,
        Command::Discard(d) => dispose(&tools, d, Action::Discard).await?,
        Command::Jobs { limit } => {
            for job in tools.audit.jobs(limit).await? {
                println!(
                    "{}  {}  {}{}  by {}  matched {} · sent {} · skipped {} · failed {}  filter {}",
                    job.job_id,
                    job.started_at.format("%Y-%m-%d %H:%M:%S"),
                    job.state,
                    if job.dry_run { " (dry run)" } else { "" },
                    job.operator,
                    job.matched,
                    job.sent,
                    job.skipped,
                    job.failed,
                    job.filter
                );
            }
        }
    }
    Ok(())
}

async fn dispose(tools: &Tools, d: Disposition, action: Action) -> anyhow::Result<()> {
    let disposal = Disposal { ids: d.ids, action, reason: d.reason, operator: operator(d.operator) };
    disposal.apply(tools, &Scope::default()).await?;
    println!("{} {} dead letter(s)", action.done(), disposal.ids.len());
    Ok(())
}

fn age(item: &Item) -> String {
    let s = item.age().num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Warnings and errors of the libraries on stderr (more with `DLQ_REPLAYER_LOG=info`; the
/// services' `RUST_LOG` is not read, so a shell set up for them stays quiet); the command's own
/// output is on stdout.
fn tracing_subscriber_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DLQ_REPLAYER_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
