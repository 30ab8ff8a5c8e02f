//! Invitation slots for the whole tenant. With the idempotency table, every container of both
//! functions shares one pace and one breaker (`store/pace.rs`): a container that has no slot
//! does not wait for one — the webhook answers `503` with `Retry-After` and the worker returns
//! the message to the queue until the slot is due. Without a table (one container's memory),
//! the container paces itself as before.

use std::time::Duration;

use super::App;
use crate::resilience::{Deadline, Paused};
use crate::store::{Slot, Store};

impl App {
    /// One invitation may start now, or why not and for how long.
    ///
    /// # Errors
    /// [`Paused`]: no slot is free (when the next one is), or Graph is paused for the tenant.
    pub(crate) async fn admit_invitation(&self, deadline: Deadline) -> Result<(), Paused> {
        self.gate.check_open()?;
        let Store::Dynamo(table) = &self.store else {
            return self.gate.admit(deadline).await;
        };
        let (interval, tolerance) =
            crate::store::interval_and_tolerance(u64::from(self.config.gate.per_minute.get()));
        match table.take_slot(interval, tolerance).await {
            Ok(Slot::Taken) => Ok(()),
            Ok(Slot::Wait { ms, breaker }) => Err(Paused {
                retry_after: Duration::from_millis(ms),
                reason: if breaker {
                    "Graph is paused for the tenant"
                } else {
                    "tenant-wide invitation rate"
                },
            }),
            Err(e) => {
                tracing::warn!(error = %e, "tenant-wide pacing unavailable; this container paces itself");
                self.gate.admit(deadline).await
            }
        }
    }

    /// This container's breaker opened for `pause`: every other container pauses too.
    pub(crate) async fn pause_tenant(&self, pause: Duration) {
        if let Store::Dynamo(table) = &self.store {
            let until = crate::store::epoch_millis() + pause.as_millis() as u64;
            if let Err(e) = table.open_breaker(until).await {
                tracing::warn!(error = %e, "the tenant-wide breaker could not be opened; this container pauses alone");
            }
        }
    }
}
