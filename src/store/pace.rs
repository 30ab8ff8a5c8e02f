//! Tenant-wide invitation pacing and the tenant-wide Graph breaker, on one item of the
//! idempotency table (`id = "pace#invitations"`), so the configured rate and a pause hold across
//! every container of both functions.
//!
//! Pacing is GCRA (the generic cell rate algorithm, as `governor` implements it in memory):
//! `tat` is the theoretical arrival time (epoch milliseconds) of the next invitation, and one
//! may start when `tat` is at most `tolerance` ahead of now; it then moves `tat` on by the
//! interval. Taking a slot is a conditional update — no read, no lock, no sleep: `tat` ≤ now
//! sets it to now plus the interval; within the tolerance, `tat` plus the interval if `tat` is
//! still the one this container last saw. One write when the guess holds; a refused update
//! returns the item as it was (`ReturnValuesOnConditionCheckFailure`), which says how long to
//! wait or what to try next (a second write, when another container moved the pace). [`interval_and_tolerance`] chooses both so that no 60-second window admits more than
//! the configured rate, bursts included.
//!
//! The breaker is `open_until` (epoch milliseconds) on the same item, checked by the same
//! update: when any container opens it, every container's next slot is refused until then.

use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::StoreError;
use super::dynamo::{DynamoStore, n, now, s, store_err, unless_condition_failed};

const PACE_ID: &str = "pace#invitations";
/// The item lives as long as it's used (TTL on `expiration`), a week past its last write.
const KEEP_SECS: u64 = 7 * 24 * 3600;

/// The answer to "may one invitation start now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Taken,
    /// Not before this many milliseconds; `breaker` when the tenant-wide breaker is open.
    Wait {
        ms: u64,
        breaker: bool,
    },
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> u64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// How late a reserved slot may still be used (milliseconds) — SQS's whole-second delays and the
/// poller's pickup; later, the reservation is void and a fresh slot is taken.
pub const LATE_GRACE_MS: u64 = 2_000;

/// The interval between invitations and the burst tolerance (milliseconds) for `per_minute`
/// invitations a minute: bursts of a tenth of the rate, and an interval long enough that a
/// burst plus the steady pace stay within the rate over any 60 seconds. An invitation happens
/// between its cell's time less the tolerance and [`LATE_GRACE_MS`] after it, so a window of
/// 60 s holds the cells of a span of `60 s + tolerance + grace`, at most
/// `1 + (span - 1) / interval` of them.
pub fn interval_and_tolerance(per_minute: u64) -> (u64, u64) {
    let per_minute = per_minute.max(1);
    let burst = (per_minute / 10).max(1);
    // floor((59_999 + grace) / interval) + burst - 1 <= per_minute - 1
    let interval = (59_999 + LATE_GRACE_MS) / (per_minute - burst + 1) + 1;
    (interval, (burst - 1) * interval)
}

/// A run of consecutive cells taken in one write: `first`, `first + interval`, … (`count` of
/// them), or the tenant-wide breaker, open until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cells {
    Taken { first: u64, count: u64 },
    Breaker { until: u64 },
}

impl DynamoStore {
    /// Takes the next invitation slot for the tenant.
    ///
    /// # Errors
    /// [`StoreError`] when the table can't be written.
    pub async fn take_slot(&self, interval_ms: u64, tolerance_ms: u64) -> Result<Slot, StoreError> {
        // The pace as last seen here: within the tolerance, the likely `tat` to move on.
        let mut guess = Some(self.last_tat.load(Ordering::Relaxed));
        for _ in 0..3 {
            let now_ms = now().as_millis() as u64;
            let expected = guess
                .take()
                .filter(|t| *t > now_ms && *t - now_ms <= tolerance_ms);
            let next = expected.unwrap_or(now_ms) + interval_ms;
            let old = match self.set_tat(now_ms, expected, next).await? {
                None => {
                    self.last_tat.store(next, Ordering::Relaxed);
                    return Ok(Slot::Taken);
                }
                Some(old) => old,
            };
            let open_until = number(&old, "open_until");
            if open_until > now_ms {
                return Ok(Slot::Wait {
                    ms: open_until - now_ms,
                    breaker: true,
                });
            }
            let tat = number(&old, "tat");
            self.last_tat.store(tat, Ordering::Relaxed);
            if tat > now_ms && tat - now_ms > tolerance_ms {
                return Ok(Slot::Wait {
                    ms: tat - now_ms - tolerance_ms,
                    breaker: false,
                });
            }
            // Free now (`tat` within the tolerance, or past): try again with what was read.
            guess = Some(tat);
        }
        // Contended: another container took each slot first.
        Ok(Slot::Wait {
            ms: interval_ms,
            breaker: false,
        })
    }

    /// Takes up to `n` consecutive cells in one conditional write — those due now and those
    /// due within `horizon_ms`, reserved for messages that come back when theirs is due — or
    /// reports the breaker. `count` may be below `n` (0: none within the horizon).
    ///
    /// # Errors
    /// [`StoreError`] when the table can't be written.
    pub async fn take_cells(
        &self,
        n: u64,
        interval_ms: u64,
        tolerance_ms: u64,
        horizon_ms: u64,
    ) -> Result<Cells, StoreError> {
        let mut guess = self.last_tat.load(Ordering::Relaxed);
        for _ in 0..4 {
            let now_ms = now().as_millis() as u64;
            let expected = (guess > now_ms).then_some(guess);
            let first = expected.unwrap_or(now_ms);
            let reach = now_ms + tolerance_ms + horizon_ms;
            let fit = if first > reach {
                0
            } else {
                (reach - first) / interval_ms + 1
            };
            let count = n.min(fit);
            if count == 0 {
                return Ok(Cells::Taken { first, count });
            }
            let next = first + count * interval_ms;
            let Some(old) = self.set_tat(now_ms, expected, next).await? else {
                self.last_tat.store(next, Ordering::Relaxed);
                return Ok(Cells::Taken { first, count });
            };
            let open_until = number(&old, "open_until");
            if open_until > now_ms {
                return Ok(Cells::Breaker { until: open_until });
            }
            guess = number(&old, "tat");
            self.last_tat.store(guess, Ordering::Relaxed);
        }
        // Contended: other containers moved the pace each time; nothing taken.
        let first = self.last_tat.load(Ordering::Relaxed);
        Ok(Cells::Taken { first, count: 0 })
    }

    /// When the tenant-wide breaker is open, until when (epoch milliseconds); one eventually
    /// consistent read.
    ///
    /// # Errors
    /// [`StoreError`] when the table can't be read.
    pub async fn breaker_open_until(&self) -> Result<Option<u64>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .key("id", s(PACE_ID))
            .send()
            .await
            .map_err(|e| store_err("GetItem", &e))?;
        let until = out.item().map_or(0, |i| number(i, "open_until"));
        Ok((until > now().as_millis() as u64).then_some(until))
    }

    /// Sets `tat` to `next` if it is `expected` (or, without one, absent or not after now) and
    /// the breaker is closed; answers the item as it was when refused.
    async fn set_tat(
        &self,
        now_ms: u64,
        expected: Option<u64>,
        next: u64,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let closed = "(attribute_not_exists(open_until) OR open_until <= :now)";
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("id", s(PACE_ID))
            .update_expression("SET tat = :next, expiration = :exp")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":exp", n(now_ms / 1000 + KEEP_SECS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match expected {
            None => update.condition_expression(format!(
                "(attribute_not_exists(tat) OR tat <= :now) AND {closed}"
            )),
            Some(tat) => update
                .condition_expression(format!("tat = :old AND {closed}"))
                .expression_attribute_values(":old", n(tat)),
        };
        match update.send().await {
            Ok(_) => Ok(None),
            Err(e) => {
                use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
                match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        Ok(Some(c.item().cloned().unwrap_or_default()))
                    }
                    _ => Err(store_err("UpdateItem", &e)),
                }
            }
        }
    }

    /// Opens the tenant-wide breaker until `until_ms` (epoch milliseconds), or keeps a later
    /// opening.
    ///
    /// # Errors
    /// [`StoreError`] when the table can't be written.
    pub async fn open_breaker(&self, until_ms: u64) -> Result<(), StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("id", s(PACE_ID))
            .update_expression("SET open_until = :until, expiration = :exp")
            .condition_expression("attribute_not_exists(open_until) OR open_until < :until")
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":exp", n(until_ms / 1000 + KEEP_SECS))
            .send()
            .await;
        unless_condition_failed(out)
    }
}

#[cfg(test)]
mod tests {
    use super::interval_and_tolerance;

    /// An invitation happens within `[cell - tolerance, cell + grace]`, and cells are at least
    /// an interval apart: never more than the rate in 60 s, for every rate the setting allows.
    #[test]
    fn no_minute_admits_more_than_the_rate() {
        for rate in 1..=6000u64 {
            let (interval, tolerance) = interval_and_tolerance(rate);
            let span = 60_000 + tolerance + super::LATE_GRACE_MS;
            let most = 1 + (span - 1) / interval;
            assert!(most <= rate, "rate {rate}: {most} in a minute");
            // And not far below it: the steady pace is at least 80 % of the rate from 30 on.
            if rate >= 30 {
                assert!(
                    60_000 / interval * 100 >= rate * 80,
                    "rate {rate}: {interval} ms"
                );
            }
        }
        assert_eq!(interval_and_tolerance(30), (2215, 4430));
    }
}
