//! A circuit breaker per integration (Ventures, ShareFile, Graph, QBO, ...), shared by every
//! caller of that integration in the process.
//!
//! - **Closed**: calls go through; `threshold` consecutive transient failures open it.
//! - **Open** for `open_for`: callers wait in [`Breaker::ready`] (a consumer awaits it in
//!   `Handler::admit`, so the integration's partitions stop taking messages and librdkafka stops
//!   fetching them) instead of burning retries; a handler whose call failed while the breaker is
//!   open reports `Unavailable`, so the message waits and is never dead-lettered for the outage.
//! - **Half-open** after that: one caller probes; success closes the breaker and releases
//!   everyone, failure opens it again. A probe that never reports back is taken over by another
//!   caller after `open_for`.
//!
//! - **Panic mode** (optional, [`Breaker::with_panic`]): the breaker reports every outcome to the
//!   integration's [`Panic`]; while panic mode is on, callers wait here and one probe goes through
//!   every `PANIC_PROBE_MS`, and [`Breaker::is_open`] is true.
//!
//! Other integrations and other services have breakers of their own and keep flowing.
//! Metrics: `<service>_breaker_state{integration}` (0 closed, 1 open, 2 half-open) and
//! `<service>_breaker_transitions_total{integration,to}`.

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use crate::{
    flags::panic::Panic,
    settings::{Env, SettingsError},
    telemetry::metric_name,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the breaker; 0 switches the breaker off (every
    /// failure counts against the message alone, as without a breaker).
    pub threshold: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { threshold: 5, open_for: Duration::from_secs(10) }
    }
}

impl BreakerConfig {
    /// `BREAKER_THRESHOLD` (0-1,000; 0 = off) and `BREAKER_OPEN_MS` (100-600,000) of `env`'s
    /// service.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let d = Self::default();
        Ok(Self {
            threshold: env.ranged("BREAKER_THRESHOLD", d.threshold, 0..=1_000)?,
            open_for: env.millis_in("BREAKER_OPEN", d.open_for.as_millis() as u64, 100..=600_000)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    /// `probe`: when the current probe started, if one is running.
    HalfOpen { probe: Option<Instant> },
}

#[derive(Clone)]
pub struct Breaker(Arc<Inner>);

struct Inner {
    service: &'static str,
    integration: &'static str,
    config: BreakerConfig,
    state: Mutex<State>,
    changed: Notify,
    panic: OnceLock<Panic>,
}

impl Breaker {
    pub fn new(service: &'static str, integration: &'static str, config: BreakerConfig) -> Self {
        let breaker = Self(Arc::new(Inner { service, integration, config, state: Mutex::new(State::Closed { failures: 0 }), changed: Notify::new(), panic: OnceLock::new() }));
        breaker.publish(State::Closed { failures: 0 });
        // Every transition's series exists from the start (at 0), so rate() and increase() see
        // the first one.
        for to in ["open", "half_open", "closed"] {
            metrics::counter!(metric_name(service, "breaker_transitions_total"), "integration" => integration, "to" => to).increment(0);
        }
        breaker
    }

    pub fn integration(&self) -> &'static str {
        self.0.integration
    }

    /// Reports to `panic` too, and probes while it is on.
    pub fn with_panic(self, panic: Panic) -> Self {
        let _ = self.0.panic.set(panic);
        self
    }

    pub fn panic(&self) -> Option<&Panic> {
        self.0.panic.get()
    }

    /// Waits while panic mode is on, until this caller may probe.
    async fn panic_ready(&self) {
        let Some(panic) = self.0.panic.get() else { return };
        let mut changes = panic.flags().subscribe();
        while panic.active() {
            match panic.try_probe() {
                Ok(()) => return,
                Err(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = changes.changed() => {}
                    }
                }
            }
        }
    }

    /// Returns once a call may be made: at once while closed; while open, when the open period
    /// ends and this caller is the probe, or when someone else's probe closed it.
    pub async fn ready(&self) {
        self.panic_ready().await;
        loop {
            let wait = {
                let mut state = self.0.state.lock().expect("breaker lock");
                let now = Instant::now();
                match *state {
                    State::Closed { .. } => return,
                    State::Open { until } if now >= until => {
                        self.transition(&mut state, State::HalfOpen { probe: Some(now) });
                        return;
                    }
                    State::Open { until } => until - now,
                    State::HalfOpen { probe: Some(started) } if now - started < self.0.config.open_for => self.0.config.open_for - (now - started),
                    State::HalfOpen { .. } => {
                        *state = State::HalfOpen { probe: Some(now) };
                        return;
                    }
                }
            };
            let notified = self.0.changed.notified();
            let _ = tokio::time::timeout(wait, notified).await;
        }
    }

    /// A call succeeded (or was refused for a reason of its own, e.g. a 4xx): the integration
    /// answers.
    pub fn success(&self) {
        if let Some(panic) = self.0.panic.get() {
            panic.success();
        }
        let mut state = self.0.state.lock().expect("breaker lock");
        if *state != (State::Closed { failures: 0 }) {
            self.transition(&mut state, State::Closed { failures: 0 });
        }
    }

    /// A call failed transiently. Returns whether the breaker is now open.
    pub fn failure(&self) -> bool {
        let panicking = self.0.panic.get().is_some_and(|p| {
            p.failure();
            p.active()
        });
        let mut state = self.0.state.lock().expect("breaker lock");
        if self.0.config.threshold == 0 {
            return panicking;
        }
        let open = State::Open { until: Instant::now() + self.0.config.open_for };
        match *state {
            State::Closed { failures } if failures + 1 >= self.0.config.threshold => self.transition(&mut state, open),
            State::Closed { failures } => *state = State::Closed { failures: failures + 1 },
            State::HalfOpen { .. } => self.transition(&mut state, open),
            State::Open { .. } => {}
        }
        panicking || !matches!(*state, State::Closed { .. })
    }

    /// `closed`, `open` or `half_open`.
    pub fn state_label(&self) -> &'static str {
        match *self.0.state.lock().expect("breaker lock") {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }

    /// Open, half-open, or in panic mode: a failed call is the integration's, not the message's.
    pub fn is_open(&self) -> bool {
        self.0.panic.get().is_some_and(Panic::active) || !matches!(*self.0.state.lock().expect("breaker lock"), State::Closed { .. })
    }

    fn transition(&self, state: &mut State, to: State) {
        *state = to;
        let label = self.publish(to);
        metrics::counter!(metric_name(self.0.service, "breaker_transitions_total"), "integration" => self.0.integration, "to" => label).increment(1);
        match to {
            State::Open { .. } => tracing::warn!(integration = self.0.integration, open_for = ?self.0.config.open_for, "circuit breaker open: calls wait"),
            State::Closed { .. } => tracing::info!(integration = self.0.integration, "circuit breaker closed"),
            State::HalfOpen { .. } => tracing::info!(integration = self.0.integration, "circuit breaker half-open: probing"),
        }
        self.0.changed.notify_waiters();
    }

    fn publish(&self, state: State) -> &'static str {
        let (value, label) = match state {
            State::Closed { .. } => (0.0, "closed"),
            State::Open { .. } => (1.0, "open"),
            State::HalfOpen { .. } => (2.0, "half_open"),
        };
        metrics::gauge!(metric_name(self.0.service, "breaker_state"), "integration" => self.0.integration).set(value);
        label
    }
}

/// Publishes `breaker`'s state to the service's own `integration_health` table (its migration
/// creates it, with a read-only view for the gateway's `GET /api/v1/health/sync`): at once on a
/// change, and every 5 s otherwise, so the gateway can tell a live instance from a gone one.
pub async fn publish_state(pool: sqlx::PgPool, breaker: Breaker, instance: String, stop: tokio_util::sync::CancellationToken) {
    const EVERY: Duration = Duration::from_secs(5);
    const CHECK: Duration = Duration::from_millis(250);
    let mut last: Option<&'static str> = None;
    let mut written = Instant::now();
    loop {
        let state = breaker.state_label();
        if last != Some(state) || written.elapsed() >= EVERY {
            let changed = last != Some(state);
            let result = sqlx::query(
                "INSERT INTO integration_health (integration, instance, breaker_state, changed_at) VALUES ($1, $2, $3, now())
                 ON CONFLICT (integration, instance) DO UPDATE SET breaker_state = EXCLUDED.breaker_state, updated_at = now(),
                     changed_at = CASE WHEN $4 THEN now() ELSE integration_health.changed_at END",
            )
            .bind(breaker.integration())
            .bind(&instance)
            .bind(state)
            .bind(changed)
            .execute(&pool)
            .await;
            match result {
                Ok(_) => {
                    last = Some(state);
                    written = Instant::now();
                }
                Err(e) => tracing::debug!(error = %e, "breaker state not published"),
            }
        }
        if !crate::retry::sleep_or_cancel(CHECK, &stop).await {
            return;
        }
    }
}

/// A name for this process among its service's instances: the host name (the pod's, in
/// Kubernetes) and a random suffix.
pub fn instance_name() -> String {
    format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, open_ms: u64) -> Breaker {
        Breaker::new("test", "thing", BreakerConfig { threshold, open_for: Duration::from_millis(open_ms) })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_probes_once_and_closes_on_success() {
        let b = breaker(3, 1000);
        assert!(!b.failure() && !b.failure());
        b.success();
        assert!(!b.failure() && !b.failure(), "success resets the count");
        assert!(b.failure(), "the third consecutive failure opens it");
        let started = Instant::now();
        b.ready().await;
        assert!(started.elapsed() >= Duration::from_millis(1000), "callers wait while it is open");
        // This caller probes; another waits for the probe's outcome.
        let other = b.clone();
        let waiter = tokio::spawn(async move {
            other.ready().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        b.success();
        assert!(waiter.await.unwrap() - started < Duration::from_millis(1100));
        assert!(!b.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_threshold_of_zero_switches_it_off() {
        let b = breaker(0, 1000);
        for _ in 0..100 {
            assert!(!b.failure());
        }
        let started = Instant::now();
        b.ready().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_and_a_lost_probe_is_taken_over() {
        let b = breaker(1, 500);
        assert!(b.failure());
        b.ready().await; // the probe
        assert!(b.failure(), "the probe failed");
        let started = Instant::now();
        b.ready().await; // the next probe, after another open period
        assert!(started.elapsed() >= Duration::from_millis(500));
        // This probe never reports back: another caller takes over after the open period.
        let started = Instant::now();
        b.ready().await;
        assert!(started.elapsed() >= Duration::from_millis(500));
    }
}
