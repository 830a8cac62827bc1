//! The fault schedule of a chaos run: what happens when, drawn from one seed.

use std::time::Duration;

use rand::{Rng, rngs::StdRng, seq::SliceRandom};

use crate::stack::{PROJECTION_WRITER, VENTURES_SYNC};

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// SIGKILL a worker, then start it again after a short pause.
    Kill(&'static str),
    /// A fast restart of PostgreSQL: every connection drops.
    PostgresRestart,
    /// Ventures answers 503 to everything for a while.
    VenturesOutage { secs: u64 },
    /// Ventures answers the next `count` requests with 429 and `Retry-After: 1`.
    RateLimitStorm { count: u64 },
    /// A record on the flow topic that no consumer can decode.
    Poison { unknown_schema: bool },
    /// A copy of a record already on the flow topic.
    Duplicate,
    /// SIGKILL one broker and start it again: a random node of the run's 3-node Kafka cluster
    /// (or tansu, with durable storage; see `docs/chaos.md`).
    BrokerRestart,
    /// Every node of the cluster in turn: clean shutdown, start, back in the cluster.
    RollingRestart,
    /// Partition leadership moved to the preferred replicas (after a node was down, many move).
    LeaderChange,
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub at: Duration,
    pub fault: Fault,
}

/// How much of each fault a run gets.
#[derive(Debug, Clone)]
pub struct Dose {
    pub kills: usize,
    pub postgres_restarts: usize,
    pub outage_secs: u64,
    pub storm: u64,
    pub poison: usize,
    pub duplicates: usize,
    /// Broker kill -9 and restarts; 0 leaves the scenario out.
    pub broker_restarts: usize,
    /// Rolling restarts of the whole cluster (3 nodes only).
    pub rolling_restarts: usize,
    /// Forced leader elections (3 nodes only).
    pub leader_changes: usize,
}

impl Dose {
    /// Whether the dose touches the broker at all.
    pub fn has_broker_faults(&self) -> bool {
        self.broker_restarts + self.rolling_restarts + self.leader_changes > 0
    }
}

/// Spreads the faults over `window` (the time the workload runs), at random moments.
pub fn plan(dose: &Dose, window: Duration, rng: &mut StdRng) -> Vec<Planned> {
    let mut moment = |from: f64, to: f64| window.mul_f64(rng.random_range(from..to));
    let mut faults = Vec::new();
    // Kills alternate between the workers, so each is killed about half the time.
    for i in 0..dose.kills {
        let victim = if i % 2 == 0 { VENTURES_SYNC } else { PROJECTION_WRITER };
        faults.push(Planned { at: moment(0.05, 0.9), fault: Fault::Kill(victim) });
    }
    for _ in 0..dose.postgres_restarts {
        faults.push(Planned { at: moment(0.2, 0.7), fault: Fault::PostgresRestart });
    }
    if dose.outage_secs > 0 {
        faults.push(Planned { at: moment(0.1, 0.5), fault: Fault::VenturesOutage { secs: dose.outage_secs } });
    }
    if dose.storm > 0 {
        faults.push(Planned { at: moment(0.5, 0.8), fault: Fault::RateLimitStorm { count: dose.storm } });
    }
    for i in 0..dose.poison {
        faults.push(Planned { at: moment(0.05, 0.95), fault: Fault::Poison { unknown_schema: i % 2 == 1 } });
    }
    for _ in 0..dose.duplicates {
        faults.push(Planned { at: moment(0.3, 0.95), fault: Fault::Duplicate });
    }
    // Drawn last, so a run without broker restarts keeps the schedule its seed always had.
    for _ in 0..dose.broker_restarts {
        faults.push(Planned { at: moment(0.1, 0.85), fault: Fault::BrokerRestart });
    }
    for _ in 0..dose.rolling_restarts {
        faults.push(Planned { at: moment(0.2, 0.6), fault: Fault::RollingRestart });
    }
    for _ in 0..dose.leader_changes {
        faults.push(Planned { at: moment(0.15, 0.9), fault: Fault::LeaderChange });
    }
    faults.shuffle(rng);
    faults.sort_by_key(|p| p.at);
    faults
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_seed_replays_the_same_schedule() {
        let dose = Dose { kills: 10, postgres_restarts: 1, outage_secs: 5, storm: 30, poison: 10, duplicates: 100, broker_restarts: 0, rolling_restarts: 0, leader_changes: 0 };
        let window = Duration::from_secs(80);
        let a = plan(&dose, window, &mut StdRng::seed_from_u64(42));
        let b = plan(&dose, window, &mut StdRng::seed_from_u64(42));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.len(), 10 + 1 + 1 + 1 + 10 + 100);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a.iter().all(|p| p.at < window));
        let kills = |who| a.iter().filter(|p| p.fault == Fault::Kill(who)).count();
        assert_eq!((kills(VENTURES_SYNC), kills(PROJECTION_WRITER)), (5, 5));
        assert!(a.iter().all(|p| p.fault != Fault::BrokerRestart));
    }

    #[test]
    fn broker_restarts_are_opt_in_and_leave_the_rest_of_the_schedule_alone() {
        let dose = Dose { kills: 4, postgres_restarts: 1, outage_secs: 2, storm: 10, poison: 4, duplicates: 20, broker_restarts: 0, rolling_restarts: 0, leader_changes: 0 };
        let window = Duration::from_secs(15);
        let without = plan(&dose, window, &mut StdRng::seed_from_u64(7));
        let with = plan(&Dose { broker_restarts: 2, ..dose }, window, &mut StdRng::seed_from_u64(7));
        let restarts: Vec<_> = with.iter().filter(|p| p.fault == Fault::BrokerRestart).collect();
        assert_eq!(restarts.len(), 2);
        assert!(restarts.iter().all(|p| p.at >= window.mul_f64(0.1) && p.at < window.mul_f64(0.85)));
        let rest: Vec<_> = with.iter().filter(|p| p.fault != Fault::BrokerRestart).map(|p| format!("{p:?}")).collect();
        assert_eq!(rest, without.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>());
    }
}
