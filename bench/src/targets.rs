//! The targets of the brief, as measured in one run: each figure beside its bound.

use crate::{
    gateway::LoadRun,
    pipeline::RateRun,
    report::{Target, ThroughputFigures},
};

/// Every target, from the run's figures.
pub fn of(
    replay: &crate::replay::ReplayFigures,
    throughput: &ThroughputFigures,
    fixed: &RateRun,
    gateway_runs: &[LoadRun],
    advisor: &crate::advisor::AdvisorFigures,
    pipeline_rate: u32,
    gateway_rps: u32,
) -> Vec<Target> {
    let r = &throughput.ratios;
    let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
    let run_of = |name: &str, fixed: bool| {
        gateway_runs
            .iter()
            .find(|g| g.target == name && g.offered_rps.is_some() == fixed)
    };
    let gateway_vs_query = match (run_of("api-gateway", false), run_of("bare-axum-query", false)) {
        (Some(g), Some(q)) => g.requests_per_sec / q.requests_per_sec,
        _ => 0.0,
    };
    let gateway_fixed_p99 = run_of("api-gateway", true).map_or(f64::INFINITY, |g| g.p99_ms);
    let mut targets: Vec<Target> = advisor
        .runs
        .iter()
        .map(|run| Target::at_most(&format!("(9) {} p95, {} companies, 50 concurrent", run.target, advisor.realms), run.p95_ms, 50.0, "ms"))
        .collect();
    // Every load run answered 200 to every request (a shed request is reported here, not fatal).
    targets.extend(gateway_runs.iter().chain(&advisor.runs).map(|run| Target::at_least(&format!("(5/9) {} {}: 200s ÷ requests", run.target, run.mode), run.success_rate, 1.0, "")));
    targets.extend(vec![
        Target::at_least("(8) dlq-replayer replay rate", replay.replay_per_sec, 5_000.0, "/s"),
        Target::at_least(
            "(2) Brain ÷ per-record Python peer",
            r.runtime_vs_peer,
            15.0,
            "×",
        ),
        Target::at_least(
            "(2) Brain ÷ bare rdkafka consumer",
            r.runtime_vs_limit,
            0.05,
            "×",
        ),
        Target::at_least(
            "(2) Brain ÷ effect-only limit",
            r.runtime_vs_effect_only,
            0.5,
            "×",
        ),
        Target::at_least(
            "(3) Brain ÷ batched Python peer",
            r.runtime_vs_peer_batched,
            1.0,
            "×",
        ),
        Target::at_least(
            "(3) Brain ÷ Kafka Connect peer",
            r.runtime_vs_connect,
            1.0,
            "×",
        ),
        Target::at_most(
            &format!("(4) {pipeline_rate}/s: event → committed P50"),
            fixed.committed.p50_ms,
            50.0,
            "ms",
        ),
        Target::at_most(
            &format!("(4) {pipeline_rate}/s: event → committed P99"),
            fixed.committed.p99_ms,
            250.0,
            "ms",
        ),
        Target::at_most(
            &format!("(4) {pipeline_rate}/s: projection-writer RSS max"),
            mib(fixed.service_rss_max_bytes),
            100.0,
            "MiB",
        ),
        Target::at_least(
            "(5) gateway with token verification ÷ bare axum running the same query (saturation)",
            gateway_vs_query,
            0.5,
            "×",
        ),
        Target::at_most(
            &format!("(5) gateway p99 at {} req/s", gateway_rps),
            gateway_fixed_p99,
            2.0,
            "ms",
        ),
    ]);
    targets
}

/// Figure (10)'s target: the initial sync within QBO's limits, not one 429.
pub fn qbo_sync(qbo_sync: &crate::qbo_sync::QboSyncFigures) -> Target {
    Target::at_most(
        &format!(
            "(10) qbo-mirror initial sync, {} realms × {} documents: 429 responses",
            qbo_sync.realms, qbo_sync.documents_per_realm
        ),
        qbo_sync.throttled as f64,
        0.0,
        "429s",
    )
}

/// Figure (11): P95 of change → mirror under lossy webhooks; nothing lost, one row per change.
pub fn qbo_stream(stream: &crate::qbo_stream::QboStreamFigures) -> Vec<Target> {
    let of = format!("{} realms, 10 % of webhooks dropped, 10 % twice", stream.realms);
    vec![
        Target::at_most(&format!("(11) change → mirror p95, {of}"), stream.lag_p95_s, 60.0, "s"),
        Target::at_most(&format!("(11) changes lost, {of}"), stream.lost as f64, 0.0, "changes"),
        Target::at_most(&format!("(11) log rows that are no change, {of}"), stream.extra_rows as f64, 0.0, "rows"),
    ]
}

/// Figure (12): the slots endpoint answers from its store while Graph is down.
pub fn slots(slots: &crate::slots::SlotsFigures) -> Target {
    let run = &slots.runs[0];
    Target::at_most(&format!("(12) calendar slots p99 at {} req/s, Graph down", run.offered_rps.unwrap_or_default()), run.p99_ms, 10.0, "ms")
}
