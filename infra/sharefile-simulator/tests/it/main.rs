//! Integration tests: each test starts its own simulator on port 0 and talks HTTP to it.

mod faults;
mod folders;
mod helpers;
mod oauth;
mod uploads;
