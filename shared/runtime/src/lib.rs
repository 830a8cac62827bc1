//! The shared event runtime every Brain service is built on: settings, telemetry, the ops
//! endpoint, the producer, the consumer loop with its delivery contract, retries and PostgreSQL
//! helpers. See `consumer` for the contract.

pub mod breaker;
pub mod consumer;
pub mod db;
pub mod flags;
pub mod kafka;
pub mod ops;
pub mod producer;
pub mod retry;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use brain_events as events;
