//! Panic mode: an integration that keeps failing is switched off automatically, durably (a record
//! on the flags topic, so every instance and every restart sees it), and switched back on after
//! enough successful probes.
//!
//! It rides on the integration's [`Breaker`](crate::breaker::Breaker): the breaker reports every
//! call's success or transient failure here. `threshold` consecutive failures, the first of them
//! at most `window` ago, switch panic mode on. While it is on, the breaker lets one call through
//! every `probe_every` (a probe); `recover_after` successful probes in a row switch it off. A
//! call that fails while panic mode is on counts as the integration being unavailable, so the
//! message waits and is never dead-lettered for it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{Flags, FlagWriter};
use crate::settings::{Env, SettingsError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PanicConfig {
    /// Consecutive transient failures that switch panic mode on; 0: never automatically.
    pub threshold: u32,
    /// The failures must fall within this window.
    pub window: Duration,
    /// While on: one probe this often.
    pub probe_every: Duration,
    /// Successful probes in a row that switch it off.
    pub recover_after: u32,
}

impl Default for PanicConfig {
    fn default() -> Self {
        Self { threshold: 10, window: Duration::from_secs(120), probe_every: Duration::from_secs(15), recover_after: 3 }
    }
}

impl PanicConfig {
    /// `PANIC_THRESHOLD` (0-1,000; 0 = never automatically), `PANIC_WINDOW_MS`, `PANIC_PROBE_MS`,
    /// `PANIC_RECOVER_PROBES` (1-100).
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let d = Self::default();
        Ok(Self {
            threshold: env.ranged("PANIC_THRESHOLD", d.threshold, 0..=1_000)?,
            window: env.millis_in("PANIC_WINDOW", d.window.as_millis() as u64, 1_000..=86_400_000)?,
            probe_every: env.millis_in("PANIC_PROBE", d.probe_every.as_millis() as u64, 100..=3_600_000)?,
            recover_after: env.ranged("PANIC_RECOVER_PROBES", d.recover_after, 1..=100)?,
        })
    }
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    first_failure: Option<Instant>,
    successes: u32,
    next_probe: Option<Instant>,
    probing_since: Option<Instant>,
    /// The last change asked for and when, so it is not asked for again and again.
    requested: Option<(bool, Instant)>,
}

/// One integration's panic mode, shared by its breaker's callers.
#[derive(Clone)]
pub struct Panic(Arc<Inner>);

struct Inner {
    integration: &'static str,
    flags: Flags,
    config: PanicConfig,
    state: Mutex<State>,
    requests: mpsc::UnboundedSender<bool>,
}

impl Panic {
    /// Panic mode of `integration`, and the task that publishes its switches (spawn it where the
    /// service owns its background tasks).
    pub fn new(
        integration: &'static str,
        flags: Flags,
        config: PanicConfig,
        writer: FlagWriter,
        actor: String,
        stop: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::unbounded_channel();
        let panic = Self(Arc::new(Inner { integration, flags, config, state: Mutex::new(State::default()), requests: tx }));
        (panic, publish(integration, rx, writer, actor, stop))
    }

    pub fn active(&self) -> bool {
        self.0.flags.panic_on(self.0.integration)
    }

    pub fn flags(&self) -> &Flags {
        &self.0.flags
    }

    /// While active: `Ok` when the caller may probe now, else how long until it may.
    pub fn try_probe(&self) -> Result<(), Duration> {
        let mut s = self.0.state.lock().expect("panic lock");
        let now = Instant::now();
        if let Some(since) = s.probing_since
            && now - since < self.0.config.probe_every
        {
            return Err(self.0.config.probe_every - (now - since));
        }
        match s.next_probe {
            Some(at) if at > now => Err(at - now),
            _ => {
                s.probing_since = Some(now);
                Ok(())
            }
        }
    }

    pub fn success(&self) {
        let active = self.active();
        let mut s = self.0.state.lock().expect("panic lock");
        s.failures = 0;
        s.first_failure = None;
        if !active {
            s.successes = 0;
            return;
        }
        s.successes += 1;
        s.probing_since = None;
        s.next_probe = None;
        if s.successes >= self.0.config.recover_after {
            self.request(&mut s, false);
        }
    }

    pub fn failure(&self) {
        let active = self.active();
        let mut s = self.0.state.lock().expect("panic lock");
        let now = Instant::now();
        if active {
            s.successes = 0;
            s.probing_since = None;
            s.next_probe = Some(now + self.0.config.probe_every);
            return;
        }
        if self.0.config.threshold == 0 {
            return;
        }
        if s.first_failure.is_none_or(|first| now - first > self.0.config.window) {
            s.first_failure = Some(now);
            s.failures = 0;
        }
        s.failures += 1;
        if s.failures >= self.0.config.threshold {
            self.request(&mut s, true);
        }
    }

    fn request(&self, s: &mut State, on: bool) {
        let recent = s.requested.is_some_and(|(want, at)| want == on && at.elapsed() < Duration::from_secs(10));
        if !recent {
            s.requested = Some((on, Instant::now()));
            if on {
                // The first probe waits a full period.
                s.next_probe = Some(Instant::now() + self.0.config.probe_every);
                s.successes = 0;
            }
            let _ = self.0.requests.send(on);
        }
    }
}

async fn publish(integration: &'static str, mut requests: mpsc::UnboundedReceiver<bool>, writer: FlagWriter, actor: String, stop: CancellationToken) {
    loop {
        let on = tokio::select! {
            _ = stop.cancelled() => return,
            r = requests.recv() => match r { Some(on) => on, None => return },
        };
        let reason = if on { "automatic: consecutive failures crossed the panic threshold" } else { "automatic: probes succeeded" };
        if on {
            tracing::error!(integration, "panic mode on: the integration is switched off until probes succeed");
        } else {
            tracing::warn!(integration, "panic mode off: probes succeeded");
        }
        for attempt in 1..=5u32 {
            match writer.set_panic(integration, on, &actor, reason).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(integration, attempt, error = %e, "could not publish the panic-mode change");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}
