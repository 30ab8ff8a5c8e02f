//! Staying inside the invocation's time and Graph's patience: deadlines, retries with jittered
//! exponential backoff that honour `Retry-After` (backon), a per-container invitation rate
//! (governor), and a circuit breaker that pauses Graph calls after the tenant's invitations are
//! blocked or throttling bursts.

use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

/// The moment by which the current unit of work must be finished. Every wait and every call is
/// bounded by it, so a slow dependency can't make the function outlive its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    pub fn after(d: Duration) -> Self {
        Self(Instant::now() + d)
    }

    /// From Lambda's deadline (epoch milliseconds), keeping `margin` to answer in; `fallback`
    /// when the deadline is unknown.
    pub fn from_lambda(deadline_epoch_ms: u64, margin: Duration, fallback: Duration) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if deadline_epoch_ms > now_ms {
            let left = Duration::from_millis(deadline_epoch_ms - now_ms).saturating_sub(margin);
            Self::after(left)
        } else {
            Self::after(fallback)
        }
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether a call that may take up to `call` still fits: a call the deadline could cut off
    /// might land without the caller knowing, so it is not started.
    pub fn has_room_for(&self, call: Duration) -> bool {
        self.remaining() >= call
    }

    /// Runs `fut` until the deadline; `on_timeout` when it passes first.
    pub async fn bound<T, E>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
        on_timeout: E,
    ) -> Result<T, E> {
        tokio::time::timeout_at(self.0, fut)
            .await
            .unwrap_or(Err(on_timeout))
    }
}

/// An error that may be worth retrying.
pub trait Transient {
    fn is_transient(&self) -> bool;
    /// The server's requested wait (`Retry-After`), if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Backoff between attempts: 200 ms doubling to 5 s with full jitter, at most 5 retries.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(5)
        .with_jitter()
}

/// Retries `op` on transient errors with jittered exponential backoff, waiting `Retry-After`
/// when the server gave one, and never sleeping past `deadline` (it returns the last error
/// instead, leaving the rest to the sender's or the queue's redelivery).
pub async fn retry<T, E, F, Fut>(deadline: Deadline, op: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    op.retry(backoff())
        .sleep(tokio::time::sleep)
        .when(|e: &E| e.is_transient())
        .adjust(move |e: &E, backoff: Option<Duration>| {
            let wait = e.retry_after().or(backoff)?;
            // Leave room for one more attempt after the wait.
            (wait + Duration::from_millis(100) < deadline.remaining()).then_some(wait)
        })
        .await
}

/// Why Graph is not being called right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    pub retry_after: Duration,
    pub reason: &'static str,
}

/// Throttle answers within this window that open the circuit.
const THROTTLE_BURST: usize = 5;
const THROTTLE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Breaker {
    open_until: Option<Instant>,
    reason: &'static str,
    throttles: VecDeque<Instant>,
}

/// Pacing and circuit breaking in front of Graph's invitation endpoint, per container.
pub struct GraphGate {
    limiter: governor::DefaultDirectRateLimiter,
    /// Directory reads of the sweep (one `GET /users/{id}` per tracked guest).
    reads: governor::DefaultDirectRateLimiter,
    cooldown: Duration,
    breaker: Mutex<Breaker>,
}

/// Directory reads per second the sweep makes at most: a `GET user` costs 2 of the 3,500
/// resource units a small tenant has per 10 seconds (Graph's identity service limits), so 20
/// a second leaves most of the budget to everything else.
const READS_PER_SECOND: u32 = 20;

impl GraphGate {
    /// `per_minute` invitations at most (bursts of up to a tenth of that), and `cooldown` after
    /// an invitation block.
    pub fn new(per_minute: NonZeroU32, cooldown: Duration) -> Self {
        let burst = NonZeroU32::new((per_minute.get() / 10).max(1)).expect("non-zero");
        let quota = governor::Quota::per_minute(per_minute).allow_burst(burst);
        let reads = NonZeroU32::new(READS_PER_SECOND).expect("non-zero");
        Self {
            limiter: governor::RateLimiter::direct(quota),
            reads: governor::RateLimiter::direct(governor::Quota::per_second(reads)),
            cooldown,
            breaker: Mutex::default(),
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a slot under the rate, or says why Graph is paused. Never waits past
    /// `deadline`.
    ///
    /// # Errors
    /// [`Paused`] while the circuit is open, or when the next slot is after the deadline.
    pub async fn admit(&self, deadline: Deadline) -> Result<(), Paused> {
        {
            let b = self.breaker();
            if let Some(until) = b.open_until.filter(|u| *u > Instant::now()) {
                return Err(Paused {
                    retry_after: until - Instant::now(),
                    reason: b.reason,
                });
            }
        }
        loop {
            match self.limiter.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(
                        &governor::clock::DefaultClock::default(),
                    ));
                    if wait >= deadline.remaining() {
                        return Err(Paused {
                            retry_after: wait.max(Duration::from_secs(1)),
                            reason: "invitation rate limit",
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Waits for a slot for a directory read (never past `deadline`).
    pub async fn pace_read(&self, deadline: Deadline) {
        while let Err(not_until) = self.reads.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            if wait >= deadline.remaining() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Invitations are blocked for the tenant (or the app lacks permission): stop calling Graph
    /// for the cool-down. Logged once per opening, as one alarmable line.
    pub fn blocked(&self) -> Option<Duration> {
        self.open(self.cooldown, "Graph refused invitations (403)")
    }

    /// Says whether this container's breaker is open, without taking a slot.
    ///
    /// # Errors
    /// [`Paused`] while it is open.
    pub fn check_open(&self) -> Result<(), Paused> {
        let b = self.breaker();
        match b.open_until.filter(|u| *u > Instant::now()) {
            Some(until) => Err(Paused {
                retry_after: until - Instant::now(),
                reason: b.reason,
            }),
            None => Ok(()),
        }
    }

    /// An invitation Graph refused (a 4xx other than 403 and 429): Microsoft counts repeated
    /// failed invitations towards its abuse block, so they count towards the breaker's burst
    /// like throttling does.
    pub fn failed(&self) -> Option<Duration> {
        self.strike(self.cooldown, "repeated failed invitations")
    }

    /// A 429 from Graph; a burst of them (with failed invitations) opens the circuit for at
    /// least `retry_after`. Answers how long the circuit opened for, when it opened now.
    pub fn throttled(&self, retry_after: Option<Duration>) -> Option<Duration> {
        // At least 30 s (or the whole cool-down, when that is shorter), and what Graph asked.
        let floor = Duration::from_secs(30).min(self.cooldown);
        let pause = retry_after.unwrap_or(THROTTLE_WINDOW).max(floor);
        self.strike(pause, "Graph throttling burst (429)")
    }

    /// Counts one strike in the window; a burst opens the circuit for `pause`.
    fn strike(&self, pause: Duration, reason: &'static str) -> Option<Duration> {
        let now = Instant::now();
        let burst = {
            let mut b = self.breaker();
            b.throttles.push_back(now);
            while b
                .throttles
                .front()
                .is_some_and(|t| now.duration_since(*t) > THROTTLE_WINDOW)
            {
                b.throttles.pop_front();
            }
            b.throttles.len() >= THROTTLE_BURST
        };
        if !burst {
            return None;
        }
        self.open(pause, reason)
    }

    /// Opens the circuit for `for_`; answers `for_` when it was closed until now.
    fn open(&self, for_: Duration, reason: &'static str) -> Option<Duration> {
        let mut b = self.breaker();
        let until = Instant::now() + for_;
        let already_open = b.open_until.is_some_and(|u| u > Instant::now());
        b.open_until = Some(b.open_until.map_or(until, |u| u.max(until)));
        b.reason = reason;
        b.throttles.clear();
        if already_open {
            return None;
        }
        crate::metrics::breaker_opened();
        tracing::error!(
            alarm = "graph_circuit_open",
            reason,
            cooldown_seconds = for_.as_secs(),
            "pausing Graph invitation calls"
        );
        Some(for_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct E(bool, Option<Duration>);
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.0
        }
        fn retry_after(&self) -> Option<Duration> {
            self.1
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_succeeds() {
        let mut calls = 0;
        let r: Result<u8, E> = retry(Deadline::after(Duration::from_secs(30)), || {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err(E(true, None)) } else { Ok(7) } }
        })
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let mut calls = 0;
        let r: Result<u8, E> = retry(Deadline::after(Duration::from_secs(30)), || {
            calls += 1;
            async { Err(E(false, None)) }
        })
        .await;
        assert_eq!(r, Err(E(false, None)));
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_but_never_past_the_deadline() {
        let start = Instant::now();
        let mut calls = 0;
        let r: Result<u8, E> = retry(Deadline::after(Duration::from_secs(10)), || {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    Err(E(true, Some(Duration::from_secs(4))))
                } else {
                    Ok(1)
                }
            }
        })
        .await;
        assert_eq!(r, Ok(1));
        assert!(start.elapsed() >= Duration::from_secs(4));

        let start = Instant::now();
        let r: Result<u8, E> = retry(Deadline::after(Duration::from_secs(3)), || async {
            Err(E(true, Some(Duration::from_secs(60))))
        })
        .await;
        assert!(r.is_err());
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "gave up instead of sleeping past the deadline"
        );
    }

    #[tokio::test]
    async fn circuit_opens_on_block_and_on_throttling_bursts() {
        let gate = GraphGate::new(NonZeroU32::new(6000).unwrap(), Duration::from_secs(900));
        let d = Deadline::after(Duration::from_secs(5));
        assert!(gate.admit(d).await.is_ok());
        gate.blocked();
        let p = gate.admit(d).await.unwrap_err();
        assert!(p.retry_after > Duration::from_secs(800));

        let gate = GraphGate::new(NonZeroU32::new(6000).unwrap(), Duration::from_secs(900));
        for _ in 0..THROTTLE_BURST - 1 {
            gate.throttled(Some(Duration::from_secs(2)));
        }
        assert!(
            gate.admit(d).await.is_ok(),
            "a few 429s don't open the circuit"
        );
        gate.throttled(Some(Duration::from_secs(2)));
        assert!(gate.admit(d).await.is_err(), "a burst does");
    }

    #[tokio::test]
    async fn rate_limit_waits_within_the_deadline_and_refuses_beyond_it() {
        let gate = GraphGate::new(NonZeroU32::new(60).unwrap(), Duration::from_secs(900));
        let start = Instant::now();
        let long = Deadline::after(Duration::from_secs(5));
        // A burst of 6 (a tenth of the minute's quota), then one a second.
        for _ in 0..7 {
            gate.admit(long).await.unwrap();
        }
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "paced to one a second after the burst"
        );
        let short = Deadline::after(Duration::from_millis(100));
        assert!(gate.admit(short).await.is_err());
    }
}
