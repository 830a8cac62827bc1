//! Fairness between tenants on one partition: with `ConsumerConfig::fair_window` set, a worker
//! takes up to that many ready messages at once and handles them round-robin across tenants,
//! each tenant's messages in their own order (so every key keeps its order). A tenant that floods
//! a partition therefore gets at most an equal share of the worker while others have messages
//! waiting: half with two tenants, a third with three. Offsets are still stored only up to the
//! highest offset below which every message is finished.

use rdkafka::message::OwnedMessage;

/// `batch` (and its `held` marks) reordered round-robin across `tenants` (one per message; `None`
/// is a tenant of its own). Held messages come first: they are finished already.
pub(super) fn order(batch: Vec<OwnedMessage>, held: Vec<bool>, tenants: &[Option<String>]) -> (Vec<OwnedMessage>, Vec<bool>) {
    let permutation = round_robin(&held, tenants);
    let mut slots: Vec<Option<OwnedMessage>> = batch.into_iter().map(Some).collect();
    let messages = permutation.iter().map(|i| slots[*i].take().expect("a permutation takes each message once")).collect();
    let marks = permutation.iter().map(|i| held[*i]).collect();
    (messages, marks)
}

/// The order of indices: held ones first, then one message per tenant in turn (tenants in the
/// order they first appear).
fn round_robin(held: &[bool], tenants: &[Option<String>]) -> Vec<usize> {
    let mut lanes: Vec<(Option<&str>, std::collections::VecDeque<usize>)> = Vec::new();
    let mut out: Vec<usize> = (0..held.len()).filter(|i| held[*i]).collect();
    for i in (0..held.len()).filter(|i| !held[*i]) {
        let tenant = tenants.get(i).and_then(|t| t.as_deref());
        match lanes.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, lane)) => lane.push_back(i),
            None => lanes.push((tenant, std::collections::VecDeque::from([i]))),
        }
    }
    while out.len() < held.len() {
        for (_, lane) in lanes.iter_mut() {
            if let Some(i) = lane.pop_front() {
                out.push(i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::round_robin;

    fn t(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn a_flooding_tenant_gets_every_other_turn_and_each_tenant_keeps_its_order() {
        let tenants: Vec<_> = ["a", "a", "a", "a", "b", "a", "b", "c"].iter().map(|s| t(s)).collect();
        let order = round_robin(&[false; 8], &tenants);
        assert_eq!(order, vec![0, 4, 7, 1, 6, 2, 3, 5]);
        let a: Vec<_> = order.iter().filter(|i| tenants[**i] == t("a")).collect();
        assert!(a.windows(2).all(|w| w[0] < w[1]), "a's messages stay in offset order");
    }

    #[test]
    fn held_messages_lead_and_unknown_tenants_share_a_lane() {
        let tenants = vec![t("a"), None, t("a"), None];
        assert_eq!(round_robin(&[false, false, true, false], &tenants), vec![2, 0, 1, 3]);
    }
}
