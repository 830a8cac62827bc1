//! A development schema registry speaking Confluent Schema Registry's REST API (AVRO only),
//! stored in PostgreSQL. For local runs and tests; production uses Confluent's.
//!
//! Ids are global and survive restarts; the same schema under any subject gets the same id.
//! The compatibility rules live in [`compat`] for reuse.

mod avro;
pub mod compat;
mod error;
mod routes;
mod settings;
mod startup;
mod store;

pub use routes::CONTENT_TYPE;
pub use settings::Settings;
pub use startup::Application;
