//! The Firestore document contract shared by the services that touch `applications/{id}`.

/// The fields of `applications/{id}` only projection-writer writes. Apps may read them; the
/// security rules (`infra/firestore/firestore.rules`) forbid clients to write them, and a write
/// that gets through anyway is detected by firestore-change-listener and undone by
/// projection-writer.
pub const BRAIN_OWNED_APPLICATION_FIELDS: [&str; 8] = [
    "venturesStatus",
    "venturesStatusChangedAt",
    "venturesLoanId",
    "venturesVersion",
    "lastVenturesSyncAt",
    "updatedBy",
    "correlationId",
    "statusCommand",
];

/// Whether `path` (a dotted field path of `applications/{id}`) is or lies inside a Brain-owned field.
pub fn is_brain_owned(path: &str) -> bool {
    let top = path.split('.').next().unwrap_or(path);
    BRAIN_OWNED_APPLICATION_FIELDS.contains(&top)
}
