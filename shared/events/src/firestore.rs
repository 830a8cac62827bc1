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

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules file and this list must not drift apart: every Brain-owned field is in the
    /// rules' `brainOwned()` list, and nothing else is.
    #[test]
    fn the_security_rules_protect_exactly_the_brain_owned_fields() {
        let rules = include_str!("../../../infra/firestore/firestore.rules");
        let start = rules.find("function brainOwned()").expect("brainOwned() in the rules");
        let body = &rules[start..];
        let list = &body[body.find('[').expect("a list") + 1..body.find(']').expect("a list")];
        let mut listed: Vec<&str> = list.split(',').map(|f| f.trim().trim_matches('\'')).filter(|f| !f.is_empty()).collect();
        listed.sort_unstable();
        let mut ours = BRAIN_OWNED_APPLICATION_FIELDS.to_vec();
        ours.sort_unstable();
        assert_eq!(listed, ours);
        assert!(is_brain_owned("statusCommand.state") && !is_brain_owned("draft.businessName"));
    }
}
