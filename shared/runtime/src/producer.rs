//! A producer that awaits delivery of every record.
//!
//! Idempotent (no duplicates or reordering from internal retries), `acks=all`, a finite delivery
//! timeout, and a flush on shutdown. Every record carries the current trace context
//! (`traceparent`) and the producing service in headers. Topics are named by their catalogue
//! names; the Kafka settings' namespace is prefixed here, and schemas are registered under the
//! real topic's subject.

use std::time::Duration;

use brain_events::{Codec, CodecError, Record, topics::Namespace};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use thiserror::Error;

use crate::{kafka, settings::KafkaSettings, telemetry};

#[derive(Debug, Error)]
pub enum ProduceError {
    #[error("encoding failed: {0}")]
    Encode(#[from] CodecError),
    #[error("delivery failed: {0}")]
    Delivery(#[from] rdkafka::error::KafkaError),
    #[error("delivery was cancelled")]
    Cancelled,
}

impl ProduceError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Encode(e) => e.is_transient(),
            Self::Delivery(_) | Self::Cancelled => true,
        }
    }
}

/// One record to send, already encoded.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub headers: Vec<(String, Vec<u8>)>,
}

#[derive(Clone)]
pub struct EventProducer {
    inner: FutureProducer,
    codec: Codec,
    service: &'static str,
    namespace: Namespace,
}

impl EventProducer {
    pub fn new(settings: &KafkaSettings, codec: Codec, service: &'static str) -> anyhow::Result<Self> {
        let inner = kafka::client_config(settings, service)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5")
            .create()?;
        Ok(Self { inner, codec, service, namespace: settings.namespace.clone() })
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Encodes `record` for catalogue topic `topic` (its real topic's subject).
    pub async fn encode<T: Record>(&self, topic: &str, record: &T) -> Result<Vec<u8>, ProduceError> {
        Ok(self.codec.encode(&self.namespace.topic(topic), record).await?)
    }

    fn headers(&self, extra: &[(String, Vec<u8>)], event_type: Option<&str>) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new();
        for (key, value) in telemetry::current_trace_headers() {
            headers = headers.insert(Header { key: &key, value: Some(value.as_bytes()) });
        }
        headers = headers.insert(Header { key: "brain-producer", value: Some(self.service.as_bytes()) });
        if let Some(t) = event_type {
            headers = headers.insert(Header { key: "brain-event-type", value: Some(t.as_bytes()) });
        }
        for (key, value) in extra {
            headers = headers.insert(Header { key, value: Some(value.as_slice()) });
        }
        headers
    }

    /// Enqueues a record without waiting; records enqueued in order keep their order per partition.
    fn enqueue(&self, out: &Outgoing<'_>, event_type: Option<&str>) -> Result<DeliveryFuture, ProduceError> {
        let topic = self.namespace.topic(out.topic);
        let mut record = FutureRecord::to(&topic).payload(out.payload).headers(self.headers(&out.headers, event_type));
        if let Some(key) = out.key {
            record = record.key(key);
        }
        loop {
            match self.inner.send_result(record) {
                Ok(future) => return Ok(future),
                Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.inner.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    async fn delivered(&self, future: DeliveryFuture, topic: &str) -> Result<(), ProduceError> {
        let outcome = match future.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(ProduceError::Delivery(e)),
            Err(_) => Err(ProduceError::Cancelled),
        };
        let label = if outcome.is_ok() { "delivered" } else { "failed" };
        metrics::counter!(telemetry::metric_name(self.service, "producer_messages_total"), "topic" => topic.to_string(), "outcome" => label).increment(1);
        outcome
    }

    /// Sends already-encoded bytes and waits for the broker's acknowledgement.
    pub async fn send_raw(&self, out: Outgoing<'_>) -> Result<(), ProduceError> {
        let future = self.enqueue(&out, None)?;
        self.delivered(future, out.topic).await
    }

    /// Encodes and sends one event, waiting for the acknowledgement.
    pub async fn send<T: Record>(&self, topic: &str, key: &str, event: &T) -> Result<(), ProduceError> {
        self.send_all::<T, &T>(topic, std::slice::from_ref(&(key.to_string(), event))).await
    }

    /// Encodes and sends events in order, then waits until every one is acknowledged.
    pub async fn send_all<T: Record, E: std::borrow::Borrow<T>>(&self, topic: &str, events: &[(String, E)]) -> Result<(), ProduceError> {
        let mut pending = Vec::with_capacity(events.len());
        for (key, event) in events {
            let payload = self.encode(topic, event.borrow()).await?;
            let out = Outgoing { topic, key: Some(key.as_bytes()), payload: &payload, headers: Vec::new() };
            pending.push(self.enqueue(&out, Some(T::FULL_NAME))?);
        }
        let mut first_error = None;
        for future in pending {
            if let Err(e) = self.delivered(future, topic).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits up to `timeout` for every enqueued record to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.inner.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
    }
}
