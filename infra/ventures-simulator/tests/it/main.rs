//! Integration tests: each test starts its own simulator on port 0 and talks HTTP to it.

mod auth;
mod conditions;
mod faults;
mod feed;
mod helpers;
mod loans;
