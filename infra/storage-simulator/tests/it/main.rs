//! Integration tests: each test starts its own simulator on port 0 and talks HTTP to it.

mod auth;
mod control;
mod faults;
mod helpers;
mod objects;
