//! What every external-API simulator shares, written once:
//!
//! - [`server`]: serving a router until a shutdown token fires, with one drain deadline; a
//!   simulator running on a background task ([`Running`]); the binary's JSON logs and
//!   SIGINT/SIGTERM handling; [`settings`]: `{PREFIX}{FIELD}` variables parsed with the failing
//!   one named.
//! - [`control`]: the `/control` API's error, body and query parsing, and the `/control/faults`
//!   routes.
//! - [`faults`]: the `/control/faults` machinery: a fault's scope and lifetime (`probability`,
//!   `count`, `durationSecs`, `latencyMs`, `afterEffect`) around the simulator's own part (which
//!   requests it matches, what it answers), checked the same way everywhere; [`answers`]: the
//!   parts of that most simulators share (path and method scoping, an error or a held request);
//!   [`inject`]: running a request under the faults that fired on it (latency, answer, a lost
//!   response after the effect).

pub mod answers;
pub mod control;
pub mod faults;
pub mod inject;
pub mod server;
pub mod settings;

pub use answers::{PathScope, Reply, StatusAnswer, StatusFields};
pub use faults::{FaultKind, FaultSpec, Faults, Hit, InjectedFault};
pub use server::{Running, cancel_on_signal, init_json_logs, run_until_signal, serve, url_of};
pub use settings::{ConfigError, Env};
