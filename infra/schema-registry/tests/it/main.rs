//! Integration tests: the real app on port 0 against a fresh PostgreSQL database per test.

mod compatibility;
mod config;
mod deletes;
mod errors;
mod helpers;
mod register;
