//! Integration tests: each test starts its own simulator on port 0 and talks HTTP to it.

mod cdc;
mod faults;
mod helpers;
mod limits;
mod oauth;
mod query;
mod seed;
mod webhooks;
mod writes;
