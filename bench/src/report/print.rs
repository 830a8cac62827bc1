//! The run's figures as a table on stdout.

use super::*;

impl Report {
    pub fn print(&self) {
        let t = &self.throughput;
        let m = &self.machine;
        let r = &t.ratios;
        println!();
        let dirty = if self.commit.ends_with("-dirty") {
            " (with uncommitted changes)"
        } else {
            ""
        };
        println!(
            "Brain benchmarks ({} run) · commit {}{dirty} · {}",
            self.mode,
            &self.commit[..self.commit.len().min(12)],
            self.timestamp
        );
        println!(
            "machine: {} cores · {:.1} GiB · {} · Linux {} · load {} at start, {} at end",
            m.nproc,
            m.memory_bytes as f64 / (1u64 << 30) as f64,
            m.cpu_model,
            m.kernel,
            m.load_average_at_start,
            m.load_average_at_end
        );
        println!(
            "build: bench {} · services from {}",
            self.build.bench, self.build.services
        );
        println!();
        println!(
            "Consuming {} records of {} B over {} keys and {} partitions (produced in {:.1} s); batches of {}",
            t.records, t.record_bytes, t.keys, t.partitions, t.produce_seconds, t.batch_size
        );
        row(
            "(1) limit: bare rdkafka consumer, no processing",
            &rate(&t.limit),
        );
        let p = &t.perf_test;
        row(
            "(1) limit: kafka-consumer-perf-test (Java, same Kafka)",
            &format!(
                "{:>9.0} records/s · {:.1} MB/s without the join ({:.2} s); {:.0} records/s · {:.1} MB/s with it",
                p.fetch_records_per_sec,
                p.fetch_mb_per_sec,
                p.fetch_seconds,
                p.records_per_sec,
                p.mb_per_sec
            ),
        );
        row(
            "(2) Brain runtime: batched processed records + upserts",
            &format!(
                "{} · {:.3} × bare · {:.3} × perf-test",
                rate(&t.runtime),
                r.runtime_vs_limit,
                r.runtime_vs_perf_test
            ),
        );
        let b = &t.runtime_batches;
        row(
            "    runtime batches: calls · mean size · partitions in the effect",
            &format!(
                "{} · {:.0} records · {:.2} of {} on average",
                b.batches, b.mean_batch, b.partitions_busy, t.partitions
            ),
        );
        row(
            "(2) effect-only limit: the same rows, no Kafka",
            &format!(
                "{} · Brain {:.2} × effect-only",
                rate(&t.effect_only),
                r.runtime_vs_effect_only
            ),
        );
        row(
            "(3) peer: Python, one record at a time",
            &format!("{} · Brain {:.1} × peer", rate(&t.peer), r.runtime_vs_peer),
        );
        row(
            "(3) peer: Python, batched, same set-wise statements",
            &format!(
                "{} · Brain {:.2} × peer",
                rate(&t.peer_batched),
                r.runtime_vs_peer_batched
            ),
        );
        let c = &t.connect;
        row(
            "(3) peer: Kafka Connect + Debezium JDBC sink, JSON, upsert",
            &format!(
                "{} · Brain {:.2} × Connect",
                rate(&c.throughput),
                r.runtime_vs_connect
            ),
        );
        row(
            "    Connect: tasks · JSON record · start → first write · JVM CPU",
            &format!(
                "{} · {} B · {:.1} s · {:.1} s timed ({:.1} s in all)",
                c.tasks,
                c.record_bytes,
                c.startup_seconds,
                c.jvm_cpu_seconds,
                c.jvm_cpu_seconds_total
            ),
        );
        for (name, cpu) in [
            ("bare", t.limit_cpu),
            ("perf-test", t.perf_test_cpu),
            ("runtime", t.runtime_cpu),
            ("effect-only", t.effect_only_cpu),
            ("peer", t.peer_cpu),
            ("batched peer", t.peer_batched_cpu),
            ("Kafka Connect", t.connect_cpu),
        ] {
            row(
                &format!("    CPU while {name} ran"),
                &format!(
                    "consumer {:.1} s · broker {:.1} s · PostgreSQL {:.1} s",
                    cpu.consumer_seconds, cpu.broker_seconds, cpu.database_seconds
                ),
            );
        }
        let k = &t.runtime_cpu_per_10k;
        row(
            "    runtime: CPU s per 10k records",
            &format!(
                "Brain {:.2} s · broker {:.2} s · PostgreSQL {:.2} s",
                k.consumer_seconds, k.broker_seconds, k.database_seconds
            ),
        );
        println!();
        println!(
            "Pipeline latency (bench → flow topic → projection-writer → Firestore + read model)"
        );
        let c = &self.pipeline.cold_start;
        row(
            &format!(
                "cold start (first load after start-up): {}/s for {:.0} s",
                c.rate_per_sec, c.seconds
            ),
            &percentiles(&c.committed),
        );
        let f = &self.pipeline.fixed;
        rate_run(f);
        let s = &self.pipeline.search;
        for step in &s.steps {
            rate_run(step);
        }
        row(
            &format!(
                "    maximum sustained rate (P99 < {:.0} ms, steps of {:.0} s)",
                s.p99_limit_ms, s.step_seconds
            ),
            &format!(
                "{} events/s (lowest failing: {}; search {:.0} s{})",
                s.max_sustained_per_sec
                    .map_or("none".into(), |r| r.to_string()),
                s.first_failing_per_sec
                    .map_or("none".into(), |r| r.to_string()),
                s.seconds,
                if s.drained {
                    ""
                } else {
                    ", backlog not drained"
                }
            ),
        );
        let e = &self.end_to_end;
        row(
            &format!(
                "end to end: simulator change → Firestore doc ({} changes, sweep {} ms)",
                e.changes, e.sweep_interval_ms
            ),
            &percentiles(&e.latency),
        );
        println!();
        println!(
            "Gateway: GET /api/v1/applications/{{id}} · load: {} · {} connections",
            self.load_client.name, self.load_client.connections
        );
        for g in &self.gateway {
            let mode = g
                .offered_rps
                .map_or("saturation".to_string(), |r| format!("fixed {r} rps"));
            row(
                &format!("{} · {mode}", g.target),
                &format!(
                    "{:.0} req/s · p50 {:.2} ms · p99 {:.2} ms",
                    g.requests_per_sec, g.p50_ms, g.p99_ms
                ),
            );
        }
        println!();
        let p = &self.replay;
        println!(
            "Replay (8): dlq-replayer, {} dead letters read and decoded in {:.2} s, replayed in {:.2} s = {:.0}/s · {:.2} × producing them ({:.0}/s)",
            p.messages, p.scan_seconds, p.replay_seconds, p.replay_per_sec, p.replay_vs_produce, p.produce_per_sec
        );
        println!();
        let a = &self.advisor;
        println!(
            "Advisor views (9): {} companies × {} documents (mirror filled in {:.1} s), 50 connections at saturation",
            a.realms, a.documents_per_realm, a.seed_seconds
        );
        for g in &a.runs {
            row(&g.target, &format!("{:.0} req/s · p50 {:.2} ms · p95 {:.2} ms · p99 {:.2} ms", g.requests_per_sec, g.p50_ms, g.p95_ms, g.p99_ms));
        }
        let n = &a.naive_digest;
        row(
            "naive digest query (no aggregates), 50 clients on 16 connections",
            &format!("{:.0} q/s · p50 {:.2} ms · p95 {:.2} ms · p99 {:.2} ms · {:.1} × the gateway digest's p95", n.queries_per_sec, n.p50_ms, n.p95_ms, n.p99_ms, a.digest_p95_vs_naive),
        );
        println!();
        let q = &self.qbo_sync;
        println!(
            "qbo-mirror initial sync (10): {} realms × {} documents seeded in the QBO simulator ({:.1} s), connected with the CLI ({:.1} s)",
            q.realms, q.documents_per_realm, q.seed_seconds, q.connect_seconds
        );
        row(
            "qbo-mirror start → every realm mirrored (counts equal QBO's)",
            &format!(
                "{:.0} documents/s · {} documents in {:.1} s (start-up {:.2} s) · {} log rows",
                q.documents_per_sec, q.documents, q.sync_seconds, q.startup_seconds, q.log_rows
            ),
        );
        row(
            "    QBO requests · token refreshes · 429 responses",
            &format!("{} · {} · {}", q.qbo_requests, q.token_refreshes, q.throttled),
        );
        row(
            "    CPU: qbo-mirror · PostgreSQL · simulator (bench process)",
            &format!(
                "{:.1} s · {:.1} s · {:.1} s",
                q.mirror_cpu_seconds, q.database_cpu_seconds, q.simulator_cpu_seconds
            ),
        );
        let f = &q.fetch;
        row(
            "reference: one realm's query pages fetched by the bench",
            &format!(
                "{:.0} documents/s ({} documents, {} requests, {:.2} s) · mirror {:.3} × fetch",
                f.documents_per_sec, f.documents, f.requests, f.seconds, q.mirror_vs_fetch
            ),
        );
        println!();
        let s = &self.qbo_stream;
        println!(
            "qbo-mirror under a webhook stream (11): {} changes ({:.1}/s for {:.0} s) to {} documents of {} realms; scheduled CDC every {:.0} s",
            s.changes, s.changes_per_sec, s.stream_seconds, s.documents, s.realms, s.backstop_seconds
        );
        row(
            "    webhook deliveries · dropped · sent twice",
            &format!("{} · {} · {}", s.webhook_deliveries, s.webhooks_dropped, s.webhooks_repeated),
        );
        row(
            "change → transaction_log row: p50 · p95 · p99 · max",
            &format!("{:.2} s · {:.2} s · {:.2} s · {:.2} s ({} over 10 s)", s.lag_p50_s, s.lag_p95_s, s.lag_p99_s, s.lag_max_s, s.over_10_s),
        );
        row(
            "    log rows · changes with their row · superseded · extra rows · lost",
            &format!("{} · {} · {} · {} · {}", s.log_rows, s.logged_changes, s.superseded, s.extra_rows, s.lost),
        );
        row(
            "    stream end → converged · QBO requests · 429s",
            &format!("{:.1} s · {} · {}", s.converged_seconds, s.qbo_requests, s.throttled),
        );
        println!();
        println!("projection-writer scaled out (13): the same backlog drained by 1, 2 and 3 instances of one group");
        for run in &self.scale {
            row(
                &format!("{} instance(s), {} events over {} applications", run.instances, run.records, run.keys),
                &format!("{:.0} events/s in {:.1} s · {:.2} × one instance", run.records_per_sec, run.seconds, run.vs_one),
            );
        }
        println!();
        let k = &self.slots;
        println!(
            "Calendar slots with Graph down (12): {} staff, every Graph call answering 503; the answer holds {} slots, {:.0} s old ({})",
            k.staff,
            k.slots_in_answer,
            k.availability_age_seconds,
            k.refresh_error.as_deref().unwrap_or("no refresh error recorded")
        );
        for run in &k.runs {
            row(
                &format!("{} at {}/s: p50 · p95 · p99 · max", run.target, run.offered_rps.unwrap_or_default()),
                &format!("{:.2} ms · {:.2} ms · {:.2} ms · {:.2} ms ({:.0} req/s, {:.0} % 200)", run.p50_ms, run.p95_ms, run.p99_ms, run.max_ms, run.requests_per_sec, run.success_rate * 100.0),
            );
        }
        row("    slots p99 ÷ bare handler p99", &format!("{:.1} ×", k.p99_vs_bare));
        println!();
        let c = &self.codec;
        println!(
            "Codec: decoding {} records of {} B into LoanStatusChanged (median of {} rounds)",
            c.records, c.record_bytes, c.rounds
        );
        row("ours: brain_events::Codec::decode", &rate(&c.ours));
        row(
            "schema_registry_converter 6.0 + from_value",
            &format!(
                "{} · ours {:.2} × crate",
                rate(&c.schema_registry_converter),
                c.ours_vs_crate
            ),
        );
        row(
            "    ours, another writer version (decode_body: resolution)",
            &rate(&c.ours_resolving),
        );
        row(
            "    ours with the reader built once instead of per record",
            &rate(&c.reader_built_once),
        );
        println!();
        println!("Footprint");
        for f in &self.footprint {
            row(
                &f.service,
                &format!(
                    "start → ready {:.2} s · RSS idle {} · under pipeline load {}",
                    f.startup_seconds,
                    mib(f.rss_idle_bytes),
                    mib(f.rss_load_bytes)
                ),
            );
        }
        println!();
        println!("Targets");
        for t in &self.targets {
            row(
                &t.figure,
                &format!(
                    "{:.3} {} {} {} {}",
                    t.measured,
                    t.comparison,
                    t.target,
                    t.unit,
                    if t.met { "met" } else { "MISSED" }
                ),
            );
        }
        println!();
        println!("total {:.0} s", self.total_seconds);
    }
}

fn rate_run(r: &RateRun) {
    row(
        &format!(
            "{}/s for {:.0} s ({} events): event → committed",
            r.rate_per_sec, r.seconds, r.events
        ),
        &percentiles(&r.committed),
    );
    row(
        "    sustained (committed ÷ first send → last commit)",
        &format!(
            "{:.0} events/s{} · produced {:.0}/s",
            r.sustained_per_sec,
            if r.complete {
                ""
            } else {
                " (NOT all committed in time)"
            },
            r.produced_per_sec
        ),
    );
    row(
        "    event → event_log.recorded_at (transaction start)",
        &percentiles(&r.event_log),
    );
    row(
        "    projection-writer: RSS max · CPU (per 10k events)",
        &format!(
            "{} · {:.1} s ({:.2} s)",
            mib(r.service_rss_max_bytes),
            r.service_cpu_seconds,
            r.service_cpu_seconds * 10_000.0 / r.events.max(1) as f64,
        ),
    );
    row(
        "    CPU: broker · emulator · PostgreSQL · bench",
        &format!(
            "{:.1} s · {:.1} s · {:.1} s · {:.1} s",
            r.broker_cpu_seconds,
            r.emulator_cpu_seconds,
            r.database_cpu_seconds,
            r.bench_cpu_seconds
        ),
    );
}

fn row(label: &str, value: &str) {
    println!("  {label:<62} {value}");
}

fn rate(t: &Throughput) -> String {
    format!("{:>9.0} records/s ({:.2} s)", t.records_per_sec, t.seconds)
}

fn percentiles(l: &crate::pipeline::Latency) -> String {
    format!(
        "P50 {:.0} ms · P95 {:.0} ms · P99 {:.0} ms · max {:.0} ms",
        l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
    )
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}
