//! Capability flags and panic mode for operators: the current state (read from the flags topic),
//! changes (published there, audited here), and the audit history in `flag_changes`.

use std::{sync::Arc, time::Duration};

use brain_events::CapabilityFlagChanged;
use brain_runtime::{
    consumer::{Applied, Handler, Outcome, Source},
    db,
    flags::{Entry, FlagState, FlagWriter, Flags, reader},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Tools;

/// One audited change.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub change_id: Uuid,
    pub kind: String,
    pub integration: String,
    pub tenant: Option<String>,
    pub state: String,
    pub actor: String,
    pub reason: String,
    pub changed_at: DateTime<Utc>,
}

/// Records `change` once (by its id).
pub async fn record(pool: &PgPool, change: &CapabilityFlagChanged) -> Result<(), sqlx::Error> {
    let id = Uuid::parse_str(&change.change_id).unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, change.change_id.as_bytes()));
    sqlx::query(
        "INSERT INTO flag_changes (change_id, kind, integration, tenant, state, actor, reason, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (change_id) DO NOTHING",
    )
    .bind(id)
    .bind(&change.kind)
    .bind(&change.integration)
    .bind(&change.tenant)
    .bind(&change.state)
    .bind(&change.actor)
    .bind(&change.reason)
    .bind(DateTime::from_timestamp_millis(change.changed_at).unwrap_or_default())
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest `limit` changes, newest first.
pub async fn history(pool: &PgPool, limit: i64) -> Result<Vec<Change>, sqlx::Error> {
    sqlx::query_as("SELECT change_id, kind, integration, tenant, state, actor, reason, changed_at FROM flag_changes ORDER BY changed_at DESC, recorded_at DESC LIMIT $1")
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// The flags as the topic holds them now (reads it to its end, at most `wait`).
pub async fn current(tools: &Tools, wait: Duration) -> anyhow::Result<(Vec<Entry>, Vec<(String, bool)>)> {
    let overrides = Flags::overrides_from_env(&brain_runtime::settings::Env::new(crate::SERVICE))?;
    let flags = Flags::new(crate::SERVICE, overrides);
    let stop = CancellationToken::new();
    let task = tokio::spawn(reader::follow(flags.clone(), tools.settings.kafka.clone(), tools.codec.clone(), stop.clone()));
    let loaded = tokio::time::timeout(wait, flags.loaded()).await;
    stop.cancel();
    let _ = task.await;
    anyhow::ensure!(loaded.is_ok(), "the flags topic could not be read within {wait:?}");
    Ok((flags.entries(), flags.overrides()))
}

/// Sets a flag (or clears it), audited.
pub async fn set_flag(tools: &Tools, integration: &str, tenant: Option<&str>, state: FlagState, actor: &str, reason: &str) -> anyhow::Result<CapabilityFlagChanged> {
    let change = FlagWriter::new(tools.producer()?).set_flag(integration, tenant, state, actor, reason).await?;
    record(&tools.audit.pool, &change).await?;
    Ok(change)
}

/// Switches panic mode by hand, audited.
pub async fn set_panic(tools: &Tools, integration: &str, on: bool, actor: &str, reason: &str) -> anyhow::Result<CapabilityFlagChanged> {
    let change = FlagWriter::new(tools.producer()?).set_panic(integration, on, actor, reason).await?;
    record(&tools.audit.pool, &change).await?;
    Ok(change)
}

/// `dlq-replayer serve`'s consumer of the flags topic (group `dlq-replayer.flag-audit`): records
/// every change, automatic panic-mode switches included.
pub struct AuditHandler {
    pub pool: PgPool,
}

impl AuditHandler {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self { pool })
    }
}

impl Handler for AuditHandler {
    type Event = CapabilityFlagChanged;

    async fn handle(&self, _source: Source<'_>, change: CapabilityFlagChanged) -> Outcome {
        record(&self.pool, &change).await.map_err(db::classify)?;
        Ok(Applied::Processed)
    }
}

/// Maps `on`/`off`/`clear` to a state.
pub fn parse_state(raw: &str) -> Result<FlagState, String> {
    match raw {
        "on" => Ok(FlagState::On),
        "off" => Ok(FlagState::Off),
        "clear" | "cleared" => Ok(FlagState::Cleared),
        _ => Err(format!("{raw:?}: on, off or clear")),
    }
}

/// `dlq-replayer flags ...`
#[derive(Debug, clap::Subcommand)]
pub enum FlagsCommand {
    /// Every flag and panic-mode record, and this shell's emergency overrides.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Switch an integration on or off, globally or for one tenant; `clear` removes the flag.
    Set {
        /// ventures, sharefile, graph, qbo or firestore.
        integration: String,
        /// on, off or clear.
        state: String,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        reason: String,
        #[arg(long, env = "DLQ_OPERATOR")]
        operator: Option<String>,
    },
    /// Who changed what, when and why, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

/// `dlq-replayer panic ...`
#[derive(Debug, clap::Subcommand)]
pub enum PanicCommand {
    /// Panic mode per integration: on or off, since when, by whom, why.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Switch panic mode on (the integration off for everyone, probing) now.
    Enable {
        integration: String,
        #[arg(long)]
        reason: String,
        #[arg(long, env = "DLQ_OPERATOR")]
        operator: Option<String>,
    },
    /// Switch panic mode off without waiting for the probes.
    Disable {
        integration: String,
        #[arg(long)]
        reason: String,
        #[arg(long, env = "DLQ_OPERATOR")]
        operator: Option<String>,
    },
}

const READ_WAIT: Duration = Duration::from_secs(15);

pub async fn run_flags(tools: &Tools, command: FlagsCommand, operator: impl Fn(Option<String>) -> String) -> anyhow::Result<()> {
    match command {
        FlagsCommand::List { json } => {
            let (entries, overrides) = current(tools, READ_WAIT).await?;
            let flags: Vec<&Entry> = entries.iter().filter(|e| e.kind == "flag").collect();
            if json {
                println!("{}", serde_json::json!({ "flags": flags, "panic": entries.iter().filter(|e| e.kind == "panic").collect::<Vec<_>>(), "overrides": overrides }));
                return Ok(());
            }
            if flags.is_empty() {
                println!("no flags: every capability is on unless panic mode or an override says otherwise");
            }
            for e in flags {
                let s = &e.setting;
                println!(
                    "{:<10} {:<14} {:<4} since {}  by {}  ({})",
                    e.integration,
                    e.tenant.as_deref().unwrap_or("* (global)"),
                    if s.on { "on" } else { "off" },
                    s.changed_at.format("%Y-%m-%d %H:%M:%S"),
                    s.actor,
                    s.reason
                );
            }
            for (name, on) in overrides {
                println!("override in this shell's environment: {name}={}", if on { "on" } else { "off" });
            }
        }
        FlagsCommand::Set { integration, state, tenant, reason, operator: who } => {
            let state = parse_state(&state).map_err(anyhow::Error::msg)?;
            let change = set_flag(tools, &integration, tenant.as_deref(), state, &operator(who), &reason).await?;
            println!("{} {} for {}: published as change {}", integration, change.state, tenant.as_deref().unwrap_or("every tenant"), change.change_id);
        }
        FlagsCommand::History { limit, json } => {
            for c in history(&tools.audit.pool, limit).await? {
                if json {
                    println!("{}", serde_json::to_string(&c)?);
                } else {
                    println!(
                        "{}  {:<5} {:<10} {:<14} {:<7} by {}  ({})",
                        c.changed_at.format("%Y-%m-%d %H:%M:%S"),
                        c.kind,
                        c.integration,
                        c.tenant.as_deref().unwrap_or("*"),
                        c.state,
                        c.actor,
                        c.reason
                    );
                }
            }
        }
    }
    Ok(())
}

pub async fn run_panic(tools: &Tools, command: PanicCommand, operator: impl Fn(Option<String>) -> String) -> anyhow::Result<()> {
    match command {
        PanicCommand::Status { json } => {
            let (entries, _) = current(tools, READ_WAIT).await?;
            let rows: Vec<serde_json::Value> = brain_runtime::flags::INTEGRATIONS
                .iter()
                .map(|i| {
                    let p = entries.iter().find(|e| e.kind == "panic" && e.integration == *i);
                    serde_json::json!({ "integration": i, "on": p.is_some_and(|p| p.setting.on), "changedAt": p.map(|p| p.setting.changed_at), "actor": p.map(|p| &p.setting.actor), "reason": p.map(|p| &p.setting.reason) })
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for r in rows {
                    let state = if r["on"] == true { "ON " } else { "off" };
                    let detail = match r["changedAt"].as_str() {
                        Some(at) => format!("since {at}  by {}  ({})", r["actor"].as_str().unwrap_or_default(), r["reason"].as_str().unwrap_or_default()),
                        None => "never switched".into(),
                    };
                    println!("{:<10} {state}  {detail}", r["integration"].as_str().unwrap_or_default());
                }
            }
        }
        PanicCommand::Enable { integration, reason, operator: who } => {
            let change = set_panic(tools, &integration, true, &operator(who), &reason).await?;
            println!("panic mode on for {integration}: published as change {}", change.change_id);
        }
        PanicCommand::Disable { integration, reason, operator: who } => {
            let change = set_panic(tools, &integration, false, &operator(who), &reason).await?;
            println!("panic mode off for {integration}: published as change {}", change.change_id);
        }
    }
    Ok(())
}
