//! The topic catalogue (see `docs/events.md`). Names follow `<owner>.<entity>.<fact>.v<N>`.

/// Full state of a Ventures loan after a change. Key: application id. Owner: ventures-sync.
pub const LOAN_STATUS_CHANGED: &str = "ventures.loan.status-changed.v1";

/// The dead-letter topic of one consumer group. Key: the original key.
pub fn dead_letter(consumer_group: &str) -> String {
    format!("deadletter.{consumer_group}.v1")
}
