//! The message contract of flow 6, shared by the listener (which fields are the apps'),
//! projection-writer (delivery status) and graph-calendar (Teams relay).
//!
//! `applications/{id}/messages/{messageId}`: the sender's app creates the message with `text`,
//! `senderRole` (`borrower`, `staff`; `system` is Brain's), `authorId` and, for staff,
//! `relayToTeams`; the recipient's app writes its receipt into `receipts.borrower` or
//! `receipts.staff` (`delivered`, then `read`). Brain writes the rest: `delivery` (status `sent`,
//! `delivered`, `read` or `rejected`, with times and the reason), the role flags `fromBorrower`,
//! `fromStaff`, `fromSystem`, and `teamsRelay`.

use crate::MessageState;

/// The fields of a message only Brain writes.
pub const BRAIN_OWNED_MESSAGE_FIELDS: [&str; 6] = ["delivery", "fromBorrower", "fromStaff", "fromSystem", "teamsRelay", "updatedBy"];

/// The longest text a message may carry, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Whether `path` (a dotted field path of a message) is or lies inside a Brain-owned field.
pub fn is_brain_owned(path: &str) -> bool {
    let top = path.split('.').next().unwrap_or(path);
    BRAIN_OWNED_MESSAGE_FIELDS.contains(&top)
}

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Borrower,
    Staff,
    System,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "borrower" => Some(Self::Borrower),
            "staff" => Some(Self::Staff),
            "system" => Some(Self::System),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Borrower => "borrower",
            Self::Staff => "staff",
            Self::System => "system",
        }
    }
}

/// A message's delivery, in the order it moves (never backwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    Sent,
    Delivered,
    Read,
}

impl Delivery {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
        }
    }
}

/// Why a message was not accepted: a stable code and a sentence for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub reason: String,
}

/// A message that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub role: Role,
    /// The recipient's receipt, if any (a receipt the recipient cannot give is ignored).
    pub receipt: Option<Delivery>,
    /// A staff member asked for the message in the Teams channel.
    pub relay: bool,
}

/// Checks the app-written fields of a message. A client can only write `borrower` or `staff`
/// (the security rules); `system` messages are accepted as Brain's own.
pub fn check(message: &MessageState) -> Result<Accepted, Rejection> {
    let reject = |code, reason: String| Err(Rejection { code, reason });
    let Some(role) = message.sender_role.as_deref().and_then(Role::parse) else {
        return reject("invalid_sender_role", format!("senderRole {:?} is not borrower, staff or system", message.sender_role));
    };
    if message.author_id.as_deref().is_none_or(|a| a.trim().is_empty()) {
        return reject("missing_author", "authorId is missing".into());
    }
    let text = message.text.as_deref().unwrap_or_default();
    if text.trim().is_empty() {
        return reject("empty_message", "the message has no text".into());
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return reject("message_too_long", format!("the text has {chars} characters; at most {MAX_TEXT_CHARS} are allowed"));
    }
    if message.relay_to_teams && role != Role::Staff {
        return reject("relay_not_allowed", format!("only staff messages go to Teams; this one is the {}'s", role.as_str()));
    }
    // The recipient of a borrower's message is the staff; of a staff or system message, the borrower.
    let receipt = match role {
        Role::Borrower => message.staff_receipt.as_deref(),
        Role::Staff | Role::System => message.borrower_receipt.as_deref(),
    }
    .and_then(Delivery::parse)
    .filter(|d| *d != Delivery::Sent);
    Ok(Accepted { role, receipt, relay: message.relay_to_teams })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, text: &str) -> MessageState {
        MessageState {
            text: Some(text.into()),
            sender_role: Some(role.into()),
            author_id: Some("u-1".into()),
            relay_to_teams: false,
            borrower_receipt: None,
            staff_receipt: None,
        }
    }

    #[test]
    fn receipts_count_only_from_the_recipient() {
        let mut m = message("borrower", "hello");
        m.borrower_receipt = Some("read".into());
        assert_eq!(check(&m).unwrap().receipt, None, "the sender's own receipt means nothing");
        m.staff_receipt = Some("delivered".into());
        assert_eq!(check(&m).unwrap().receipt, Some(Delivery::Delivered));
        let mut s = message("staff", "hi");
        s.borrower_receipt = Some("read".into());
        assert_eq!(check(&s).unwrap().receipt, Some(Delivery::Read));
        assert!(Delivery::Read > Delivery::Delivered && Delivery::Delivered > Delivery::Sent);
    }

    #[test]
    fn bad_messages_are_rejected_with_a_code() {
        assert_eq!(check(&message("robot", "x")).unwrap_err().code, "invalid_sender_role");
        assert_eq!(check(&message("staff", "  ")).unwrap_err().code, "empty_message");
        assert_eq!(check(&message("staff", &"x".repeat(MAX_TEXT_CHARS + 1))).unwrap_err().code, "message_too_long");
        let mut relay = message("borrower", "to teams");
        relay.relay_to_teams = true;
        assert_eq!(check(&relay).unwrap_err().code, "relay_not_allowed");
        let mut anonymous = message("staff", "x");
        anonymous.author_id = None;
        assert_eq!(check(&anonymous).unwrap_err().code, "missing_author");
        assert!(is_brain_owned("delivery.status") && !is_brain_owned("receipts.staff"));
    }
}
