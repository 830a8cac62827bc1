//! Integration tests: each test starts its own simulator on port 0 and talks HTTP to it.

mod auth;
mod events;
mod faults;
mod helpers;
mod limits;
mod receiver;
mod schedule;
mod subscriptions;
mod teams;
