//! Logs, traces and metrics.
//!
//! Logs are JSON lines with the fields of the current span (so a message's `correlation_id` and
//! `trace_id` appear on every line it causes). Traces always get W3C ids; they are exported over
//! OTLP/gRPC only when an endpoint is configured. Trace context crosses Kafka in the `traceparent`
//! header: producers inject the current span's context, consumers make it their parent.

use std::{collections::HashMap, sync::OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Flushes pending spans when dropped at the end of `main`.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs logging and tracing for a service. Call once, at the start of `main`.
pub fn init(service: &'static str, otlp_endpoint: Option<&str>, json: bool) -> anyhow::Result<TelemetryGuard> {
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    if let Some(endpoint) = otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    if json {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false))
            .try_init()?;
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()?;
    }
    Ok(TelemetryGuard { provider })
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                // Up to 10 minutes: the sync-lag objectives (P95 < 60 s, P99 < 180 s) are bucket edges.
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0],
            )
            .expect("non-empty buckets")
            .install_recorder()
            .expect("the Prometheus recorder is installed once per process")
    })
}

/// A metric name for `service`: `<service>_<rest>` with dashes as underscores.
pub fn metric_name(service: &str, rest: &str) -> String {
    format!("{}_{rest}", service.replace('-', "_"))
}

struct Carrier<'a>(&'a mut HashMap<String, String>);

impl Injector for Carrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

struct ReadCarrier<'a>(&'a HashMap<String, String>);

impl Extractor for ReadCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The current span's `traceparent` (and `tracestate`, if any) as header pairs.
pub fn current_trace_headers() -> HashMap<String, String> {
    let mut headers = HashMap::new();
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut Carrier(&mut headers));
    headers
}

/// Makes the trace context carried in `headers` the parent of `span`.
pub fn adopt_trace_headers(span: &tracing::Span, headers: &HashMap<String, String>) {
    let cx = TraceContextPropagator::new().extract(&ReadCarrier(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace id of `span`, if it has a valid one.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn trace_context_survives_the_trip_through_headers() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let producer_span = tracing::info_span!("produce");
            let headers = producer_span.in_scope(current_trace_headers);
            let traceparent = headers.get("traceparent").expect("a traceparent header");
            assert!(traceparent.starts_with("00-"), "{traceparent}");

            let consumer_span = tracing::info_span!("consume");
            adopt_trace_headers(&consumer_span, &headers);
            assert_eq!(trace_id(&consumer_span), trace_id(&producer_span));
            assert!(traceparent.contains(&trace_id(&producer_span).expect("valid trace id")));

            let unrelated = tracing::info_span!("other");
            adopt_trace_headers(&unrelated, &HashMap::new());
            assert_ne!(trace_id(&unrelated), trace_id(&producer_span));
        });
    }
}
