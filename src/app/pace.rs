//! Invitation slots for the whole tenant. With the idempotency table, every container of both
//! functions shares one pace and one breaker (`store/pace.rs`): a container that has no slot
//! does not wait for one — the webhook answers `503` with `Retry-After`, and the worker takes
//! the cells of a whole batch in one write, runs the messages whose cell is due and sends the
//! others back to the queue, each holding its reserved cell, delayed until it is due. Without a
//! table (one container's memory), the container paces itself.

use std::time::Duration;

use super::App;
use crate::resilience::{Deadline, Paused};
use crate::store::{Cells, LATE_GRACE_MS, Slot, Store, epoch_millis};

/// How far ahead the worker reserves cells: SQS delays a message at most 15 minutes.
const HORIZON_MS: u64 = 880_000;

/// When one of a batch's messages runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Now, with the cell reserved for it (none: it takes a slot if it invites).
    Now(Option<u64>),
    /// Back to the queue for `delay`, holding its cell when it has one.
    Later { delay: Duration, cell: Option<u64> },
}

impl App {
    fn pace(&self) -> (u64, u64) {
        crate::store::interval_and_tolerance(u64::from(self.config.gate.per_minute.get()))
    }

    /// One invitation may start now, or why not and for how long. `cell`: the slot reserved
    /// for this message, used without another write while it is due.
    ///
    /// # Errors
    /// [`Paused`]: no slot is free (when the next one is), or Graph is paused for the tenant.
    pub(crate) async fn admit_invitation(
        &self,
        deadline: Deadline,
        cell: Option<u64>,
    ) -> Result<(), Paused> {
        self.gate.check_open()?;
        let Store::Dynamo(table) = &self.store else {
            return self.gate.admit(deadline).await;
        };
        let (interval, tolerance) = self.pace();
        if let Some(cell) = cell {
            let now = epoch_millis();
            if now + tolerance < cell {
                return Err(Paused {
                    retry_after: Duration::from_millis(cell - tolerance - now),
                    reason: "tenant-wide invitation rate",
                });
            }
            if now <= cell + LATE_GRACE_MS {
                return Ok(());
            }
            // Too late for its cell: the reservation is void, and a fresh slot is taken.
        }
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

    /// The turn of each of a batch's messages, given the cell each holds (`None`: none yet). The
    /// messages without a due cell get consecutive cells in one write; those not due now come
    /// back in groups of the tenant's burst, a group's cells all due when it arrives, so a
    /// later invocation invites the group at once.
    pub(crate) async fn pace_batch(&self, held: &[Option<u64>]) -> Vec<Turn> {
        let Store::Dynamo(table) = &self.store else {
            return vec![Turn::Now(None); held.len()];
        };
        let (interval, tolerance) = self.pace();
        let now = epoch_millis();
        let mut turns: Vec<Option<Turn>> = held
            .iter()
            .map(|cell| match cell {
                Some(c) if now + tolerance < *c => Some(Turn::Later {
                    delay: Duration::from_millis(c - tolerance - now),
                    cell: Some(*c),
                }),
                Some(c) if now <= c + LATE_GRACE_MS => Some(Turn::Now(Some(*c))),
                _ => None,
            })
            .collect();
        let needing: Vec<usize> = (0..held.len()).filter(|i| turns[*i].is_none()).collect();
        let cells = if needing.is_empty() {
            table.breaker_open_until().await.map(|open| match open {
                Some(until) => Cells::Breaker { until },
                None => Cells::Taken { first: 0, count: 0 },
            })
        } else {
            table
                .take_cells(needing.len() as u64, interval, tolerance, HORIZON_MS)
                .await
        };
        let cells = match cells {
            Ok(cells) => cells,
            Err(e) => {
                tracing::warn!(error = %e, "tenant-wide pacing unavailable; messages take slots one by one");
                Cells::Taken { first: 0, count: 0 }
            }
        };
        let (first, count) = match cells {
            Cells::Breaker { until } => {
                let delay = Duration::from_millis(until.saturating_sub(now));
                return vec![Turn::Later { delay, cell: None }; held.len()];
            }
            Cells::Taken { first, count } => (first, count),
        };
        let burst = 1 + tolerance / interval;
        // The write's own clock may be past `now` (a slow answer): a cell it made due is due.
        let now = now.max(epoch_millis());
        for (k, i) in needing.into_iter().enumerate() {
            let k = k as u64;
            turns[i] = Some(if k >= count {
                // Nothing within the horizon: back in 15 minutes, holding no cell.
                Turn::Later {
                    delay: Duration::from_secs(900),
                    cell: None,
                }
            } else {
                let cell = first + k * interval;
                // Every cell of the group is due by then (the tolerance spans a burst).
                let group_due = first + (k / burst) * burst * interval;
                if cell <= now + tolerance {
                    Turn::Now(Some(cell))
                } else {
                    Turn::Later {
                        delay: Duration::from_millis(group_due - now),
                        cell: Some(cell),
                    }
                }
            });
        }
        turns
            .into_iter()
            .map(|t| t.unwrap_or(Turn::Now(None)))
            .collect()
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
