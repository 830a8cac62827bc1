//! `make test` runs the bench at tiny sizes (`--smoke`) so it cannot rot. Behaviour only: every
//! figure is present, finite and positive. Never how fast anything is.
//!
//! Needs what `make test` provides: PostgreSQL (`DATABASE_URL`), a Firestore emulator
//! (`FIRESTORE_EMULATOR_HOST`), the venv and broker from `make setup`, and the service binaries.

use std::{path::PathBuf, process::Command};

use serde_json::Value;

/// Every number under `value` is finite and positive; `null` only where a figure is optional.
fn all_positive(path: &str, value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            // CPU is counted in 10 ms ticks: a tiny run may use none of the broker's. Whether a
            // target is met is a speed: its `measured` may be anything finite.
            // A partition's number and the start of its first batch may be 0.
            let least = if path.contains("_cpu")
                || path.contains("cpu_seconds")
                || path.contains(".partitions[")
            {
                0.0
            } else if path.starts_with("targets") {
                f64::MIN
            } else {
                f64::MIN_POSITIVE
            };
            if !(x.is_finite() && x >= least) {
                problems.push(format!("{path} = {x}"));
            }
        }
        // Optional by nature: no offered rate at saturation; a search that found no passing (or
        // no failing) rate. Which rates pass is speed, which the smoke never checks.
        Value::Null
            if path.ends_with(".offered_rps")
                || path.ends_with(".max_sustained_per_sec")
                || path.ends_with(".first_failing_per_sec") => {}
        Value::Null => problems.push(format!("{path} is null")),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| all_positive(&format!("{path}[{i}]"), v, problems)),
        Value::Object(fields) => fields
            .iter()
            .for_each(|(k, v)| all_positive(&format!("{path}.{k}"), v, problems)),
        Value::Bool(_) | Value::String(_) => {}
    }
}

#[test]
fn the_smoke_bench_reports_every_figure() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-smoke-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_brain-bench"))
        .args(["--smoke", "--out"])
        .arg(&out)
        .status()
        .expect("run brain-bench");
    assert!(status.success(), "brain-bench --smoke failed: {status}");

    let files: Vec<_> = std::fs::read_dir(&out)
        .expect("results folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "one JSON file per run: {files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "json"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).expect("read JSON"))
            .expect("valid JSON");

    assert_eq!(report["mode"], "smoke");
    assert!(
        report["commit"].as_str().is_some_and(|c| c.len() >= 40),
        "commit id: {}",
        report["commit"]
    );
    let mut problems = Vec::new();
    for section in [
        "machine",
        "throughput",
        "pipeline",
        "end_to_end",
        "gateway",
        "footprint",
        "codec",
        "targets",
    ] {
        assert!(!report[section].is_null(), "{section} is missing");
        all_positive(section, &report[section], &mut problems);
    }
    assert!(
        problems.is_empty(),
        "figures that are not positive: {problems:#?}"
    );

    let t = &report["throughput"];
    let records = t["records"].as_u64().expect("records");
    for consumer in [
        "limit",
        "perf_test",
        "runtime",
        "effect_only",
        "peer",
        "peer_batched",
    ] {
        assert_eq!(
            t[consumer]["records"].as_u64(),
            Some(records),
            "{consumer} read every record"
        );
    }
    assert_eq!(
        t["connect"]["throughput"]["records"].as_u64(),
        Some(records),
        "Kafka Connect read every record"
    );
    for ratio in [
        "runtime_vs_limit",
        "runtime_vs_perf_test",
        "runtime_vs_effect_only",
        "runtime_vs_peer",
        "runtime_vs_peer_batched",
        "runtime_vs_connect",
    ] {
        assert!(t["ratios"][ratio].is_f64(), "ratio {ratio} missing");
    }
    let fixed = &report["pipeline"]["fixed"];
    assert_eq!(fixed["complete"], true, "the fixed-rate run drained");
    assert_eq!(
        fixed["committed"]["samples"], fixed["events"],
        "every event observed committed"
    );
    assert_eq!(
        fixed["event_log"]["samples"], fixed["events"],
        "every event in event_log"
    );
    let steps = report["pipeline"]["search"]["steps"]
        .as_array()
        .expect("search steps");
    assert!(!steps.is_empty(), "the search ran at least one step");
    assert_eq!(
        report["codec"]["ours"]["records"],
        report["codec"]["schema_registry_converter"]["records"]
    );
    let targets = report["targets"].as_array().expect("targets");
    assert!(
        targets.iter().all(|t| t["met"].is_boolean()),
        "every target says whether it was met"
    );
    assert_eq!(
        report["end_to_end"]["latency"]["samples"],
        report["end_to_end"]["changes"]
    );
    let gateway = report["gateway"].as_array().expect("gateway runs");
    let runs: Vec<(&str, &str)> = gateway
        .iter()
        .map(|g| {
            (
                g["target"].as_str().unwrap_or(""),
                g["mode"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for target in ["api-gateway", "bare-axum-query", "bare-axum"] {
        for mode in ["fixed", "saturation"] {
            assert!(
                runs.contains(&(target, mode)),
                "gateway run {target} {mode} missing: {runs:?}"
            );
        }
    }
    let services: Vec<&str> = report["footprint"]
        .as_array()
        .expect("footprint")
        .iter()
        .filter_map(|f| f["service"].as_str())
        .collect();
    assert_eq!(
        services,
        ["ventures-sync", "projection-writer", "api-gateway"]
    );
    // Figure (11): the webhook stream reached the mirror, every change accounted for.
    let stream = &report["qbo_stream"];
    assert!(stream["changes"].as_u64().is_some_and(|n| n > 0), "the stream made changes: {stream}");
    assert_eq!(stream["lost"], 0, "no change lost: {stream}");
    assert_eq!(stream["extra_rows"], 0, "no log row that is no change: {stream}");
    assert_eq!(
        stream["logged_changes"].as_u64().zip(stream["superseded"].as_u64()).map(|(a, b)| a + b),
        stream["changes"].as_u64(),
        "every change logged or superseded: {stream}"
    );
    assert!(stream["lag_p95_s"].as_f64().is_some_and(f64::is_finite), "{stream}");
    let _ = std::fs::remove_dir_all(&out);
}
