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

/// The interval between invitations and the burst tolerance (milliseconds) for `per_minute`
/// invitations a minute: bursts of a tenth of the rate, and an interval long enough that a
/// burst plus the steady pace stay within the rate over any 60 seconds (GCRA admits at most
/// `1 + (window + tolerance) / interval` in a window).
pub fn interval_and_tolerance(per_minute: u64) -> (u64, u64) {
    let per_minute = per_minute.max(1);
    let burst = (per_minute / 10).max(1);
    if burst == 1 {
        return (60_000u64.div_ceil(per_minute), 0);
    }
    let interval = 60_000u64.div_ceil(per_minute - burst);
    (interval, (burst - 1) * interval)
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

    /// GCRA admits at most `1 + (window + tolerance) / interval` in a window: never more than
    /// the rate in 60 s, for every rate the setting allows.
    #[test]
    fn no_minute_admits_more_than_the_rate() {
        for rate in 1..=6000u64 {
            let (interval, tolerance) = interval_and_tolerance(rate);
            let most = if tolerance == 0 {
                // A half-open minute: the slot at exactly +60 s belongs to the next one.
                59_999 / interval + 1
            } else {
                1 + (59_999 + tolerance) / interval
            };
            assert!(most <= rate, "rate {rate}: {most} in a minute");
        }
        assert_eq!(interval_and_tolerance(30), (2223, 4446));
    }
}
