//! `dlq-replayer`: list, count, show, replay, park and discard dead letters. See `--help`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use clap::{Args, Parser, Subcommand};
use dlq_replayer::{
    Settings, Tools,
    filter::{FieldMatch, Filter},
    read::{self, Item},
    replay,
};
use serde_json::{Value, json};
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
            since: self.since.as_deref().map(when).transpose()?,
            until: self.until.as_deref().map(when).transpose()?,
            key: self.key.clone(),
            tenant: self.tenant.clone(),
            class: self.class.clone(),
            kind: self.kind.clone(),
            ids: self.ids.clone(),
            fields: self.fields.iter().map(|f| FieldMatch::parse(f)).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?,
        })
    }
}

/// RFC 3339, or `<n>s|m|h|d` ago.
fn when(raw: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| anyhow::anyhow!("{raw:?}: expected RFC 3339 or a duration like 15m, 2h, 7d"))?;
    let ago = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => anyhow::bail!("{raw:?}: the unit is s, m, h or d"),
    };
    Ok(Utc::now() - ago)
}

fn operator(given: Option<String>) -> String {
    given.or_else(|| std::env::var("USER").ok()).filter(|o| !o.is_empty()).unwrap_or_else(|| "unknown".into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber_init();
    let cli = Cli::parse();
    let tools = Tools::connect(Settings::from_env()?).await?;
    match cli.command {
        Command::List { filter, json, limit } => {
            let items = read::scan(&tools.settings.kafka, &tools.codec, &filter.filter()?).await?;
            let set_aside = tools.audit.dispositions().await?;
            for item in items.iter().take(limit) {
                let disposition = set_aside.get(&item.envelope.dead_letter_id).map(|(a, _)| a.as_str());
                if json {
                    println!("{}", summary(item, disposition));
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
            let mut groups: BTreeMap<(String, String, String), (usize, i64)> = BTreeMap::new();
            for item in &items {
                let e = &item.envelope;
                let slot = groups.entry((item.topic.clone(), e.error_class.clone(), e.error_kind.clone())).or_insert((0, i64::MAX));
                slot.0 += 1;
                slot.1 = slot.1.min(e.dead_lettered_at);
            }
            let rows: Vec<Value> = groups
                .iter()
                .map(|((topic, class, kind), (count, oldest))| json!({ "topic": topic, "class": class, "kind": kind, "count": count, "oldestAgeSeconds": (Utc::now().timestamp_millis() - oldest) / 1000 }))
                .collect();
            if json {
                println!("{}", json!({ "total": items.len(), "groups": rows }));
            } else {
                for r in &rows {
                    println!("{:>6}  {}  {}/{}  oldest {} s ago", r["count"], r["topic"].as_str().unwrap_or_default(), r["class"].as_str().unwrap_or_default(), r["kind"].as_str().unwrap_or_default(), r["oldestAgeSeconds"]);
                }
                println!("{:>6}  total", items.len());
            }
        }
        Command::Show { id } => {
            let filter = Filter { ids: vec![id.clone()], ..Filter::default() };
            let items = read::scan(&tools.settings.kafka, &tools.codec, &filter).await?;
            let item = items.first().ok_or_else(|| anyhow::anyhow!("no dead letter {id}"))?;
            let disposition = tools.audit.dispositions().await?.remove(&id);
            println!("{}", serde_json::to_string_pretty(&detail(item, disposition))?);
        }
        Command::Replay { filter, dry_run, rate, job, operator: who, cap, json } => {
            let filter = filter.filter()?;
            anyhow::ensure!(rate.is_none_or(|r| r > 0.0), "--rate must be positive");
            let job_id = job.unwrap_or_else(Uuid::now_v7);
            let operator = operator(who);
            let filter_json = serde_json::to_value(&filter)?;
            let resumed = match job {
                Some(id) => tools.audit.job(id).await?,
                None => None,
            };
            if let Some(previous) = &resumed {
                anyhow::ensure!(previous.filter == filter_json, "job {job_id} was started with filter {}; resume it with the same filter", previous.filter);
            }
            if !dry_run {
                tools.audit.start(job_id, &operator, &filter_json, false, rate).await?;
            }
            let items = read::scan(&tools.settings.kafka, &tools.codec, &filter).await?;
            let options = replay::Options { job_id, operator: operator.clone(), dry_run, rate, cap, progress: !json };
            let producer = tools.producer()?;
            let result = replay::run(items, &tools.audit, &producer, &tools.settings.kafka.namespace, &options).await;
            let report = match result {
                Ok(report) => report,
                Err(e) => {
                    if !dry_run {
                        tools.audit.finish(job_id, "failed", 0, None, Some(&e.to_string())).await?;
                    }
                    return Err(e);
                }
            };
            if dry_run {
                tools.audit.start(job_id, &operator, &filter_json, true, rate).await?;
                let counts = (report.sent.len() as i64, report.skipped.len() as i64, 0);
                tools.audit.finish(job_id, "finished", report.matched as i64, Some(counts), Some("dry run: nothing sent")).await?;
            } else {
                tools.audit.finish(job_id, "finished", report.matched as i64, None, None).await?;
            }
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
        Command::Park(d) => dispose(&tools, d, Some("parked")).await?,
        Command::Unpark(d) => dispose(&tools, d, None).await?,
        Command::Discard(d) => dispose(&tools, d, Some("discarded")).await?,
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

async fn dispose(tools: &Tools, d: Disposition, action: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(!d.reason.trim().is_empty(), "--reason must say why");
    tools.audit.set_disposition(&d.ids, action, d.reason.trim(), &operator(d.operator)).await?;
    match action {
        Some(how) => {
            // The topic and age of each, for the gateway's count of dead letters still waiting.
            let found = read::scan(&tools.settings.kafka, &tools.codec, &Filter { ids: d.ids.clone(), ..Filter::default() }).await?;
            let handled: Vec<_> = found
                .iter()
                .map(|i| (i.envelope.dead_letter_id.clone(), i.topic.clone(), DateTime::from_timestamp_millis(i.envelope.dead_lettered_at).unwrap_or_default(), how))
                .collect();
            tools.audit.mark_handled(&handled).await?;
        }
        None => tools.audit.unmark_parked(&d.ids).await?,
    }
    println!("{} {} dead letter(s)", action.unwrap_or("unparked"), d.ids.len());
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

fn summary(item: &Item, disposition: Option<&str>) -> Value {
    let e = &item.envelope;
    json!({
        "id": e.dead_letter_id, "topic": item.topic, "sourceTopic": e.source_topic, "class": e.error_class, "kind": e.error_kind,
        "message": e.error_message, "key": e.key.as_deref().map(String::from_utf8_lossy), "tenant": item.tenant(),
        "deadLetteredAt": DateTime::from_timestamp_millis(e.dead_lettered_at), "replays": item.replays(), "disposition": disposition,
    })
}

fn detail(item: &Item, disposition: Option<(String, String)>) -> Value {
    let e = &item.envelope;
    let headers: Vec<Value> = e.headers.iter().map(|h| json!({ "key": h.key, "value": h.value.as_deref().map(String::from_utf8_lossy) })).collect();
    json!({
        "id": e.dead_letter_id,
        "deadLetterTopic": item.topic,
        "source": { "topic": e.source_topic, "partition": e.source_partition, "offset": e.source_offset, "timestamp": e.source_timestamp.and_then(DateTime::from_timestamp_millis) },
        "key": e.key.as_deref().map(String::from_utf8_lossy),
        "consumer": { "group": e.consumer_group, "service": e.service },
        "error": { "class": e.error_class, "kind": e.error_kind, "message": e.error_message },
        "attempts": { "count": e.attempts, "first": DateTime::from_timestamp_millis(e.first_attempt_at), "last": DateTime::from_timestamp_millis(e.last_attempt_at) },
        "deadLetteredAt": DateTime::from_timestamp_millis(e.dead_lettered_at),
        "traceId": e.trace_id,
        "replays": item.replays(),
        "disposition": disposition.map(|(action, reason)| json!({ "action": action, "reason": reason })),
        "headers": headers,
        "event": item.event,
        "valueBytes": e.value.as_ref().map(Vec::len),
    })
}

/// Warnings and errors of the libraries on stderr (more with `DLQ_REPLAYER_LOG=info`; the
/// services' `RUST_LOG` is not read, so a shell set up for them stays quiet); the command's own
/// output is on stdout.
fn tracing_subscriber_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DLQ_REPLAYER_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
