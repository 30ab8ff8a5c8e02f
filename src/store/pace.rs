//! Tenant-wide invitation pacing and the tenant-wide Graph breaker, on one item of the
//! idempotency table (`id = "pace#invitations"`), so the configured rate and a pause hold across
//! every container of both functions.
//!
//! Pacing is GCRA (the generic cell rate algorithm, as `governor` implements it in memory):
//! `tat` is the theoretical arrival time (epoch milliseconds) of the next invitation, and one
//! may start when `tat` is at most `tolerance` ahead of now; it then moves `tat` on by the
//! interval. Taking a slot is a conditional update — no read, no lock, no sleep: an idle pace
//! (`tat` ≤ now) is set to now plus the interval; a pace ahead of now is moved on by the
//! interval (`SET tat = tat + :span`, on condition that it is still within the tolerance), so
//! containers racing for slots each take their own in one write without knowing the exact value
//! (`ReturnValues` says which cells were theirs). A refused update returns the item as it was
//! (`ReturnValuesOnConditionCheckFailure`), which says how long to wait or what to try next.
//! [`interval_and_tolerance`] chooses the interval and tolerance so that no 60-second window
//! admits more than the configured rate, bursts included.
//!
//! The breaker is `open_until` (epoch milliseconds) on the same item, checked by the same
//! update: when any container opens it, every container's next slot is refused until then.

use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::StoreError;
use super::dynamo::{DynamoStore, n, now, s, store_err, unless_condition_failed};

const PACE_ID: &str = "pace#invitations";
/// The breaker is closed (a condition of every slot taken).
const CLOSED: &str = "(attribute_not_exists(open_until) OR open_until <= :now)";

type Item = std::collections::HashMap<String, AttributeValue>;
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

/// A write to the pace: done (the pace as it now is), or refused by its condition (the item as
/// it was, which says why).
enum Moved {
    To(u64),
    Refused(Item),
}

/// The item as it was when a condition refused the write; any other failure as an error.
fn refused(e: SdkError<UpdateItemError, HttpResponse>) -> Result<Item, StoreError> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
            Ok(c.item().cloned().unwrap_or_default())
        }
        _ => Err(store_err("UpdateItem", &e)),
    }
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
        let cells = self.take_cells(1, interval_ms, tolerance_ms, 0).await?;
        let now_ms = now().as_millis() as u64;
        Ok(match cells {
            Cells::Breaker { until } => Slot::Wait {
                ms: until.saturating_sub(now_ms),
                breaker: true,
            },
            Cells::Taken { count: 1.., .. } => Slot::Taken,
            // Not within the tolerance: until it is; contended: an interval.
            Cells::Taken { first, .. } => Slot::Wait {
                ms: match first.saturating_sub(now_ms + tolerance_ms) {
                    0 => interval_ms,
                    ms => ms,
                },
                breaker: false,
            },
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
            let ahead = guess > now_ms;
            let first = if ahead { guess } else { now_ms };
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
            let span = count * interval_ms;
            let moved = if ahead {
                // Whatever `tat` is now, as long as all `count` cells still fit.
                self.move_tat(now_ms, span, reach - (count - 1) * interval_ms)
                    .await?
            } else {
                self.set_tat(now_ms, now_ms + span).await?
            };
            let old = match moved {
                Moved::To(next) => {
                    self.last_tat.store(next, Ordering::Relaxed);
                    return Ok(Cells::Taken {
                        first: next.saturating_sub(span),
                        count,
                    });
                }
                Moved::Refused(old) => old,
            };
            let open_until = number(&old, "open_until");
            if open_until > now_ms {
                return Ok(Cells::Breaker { until: open_until });
            }
            guess = number(&old, "tat");
            self.last_tat.store(guess, Ordering::Relaxed);
        }
        // Contended: the pace moved between each read and write; nothing taken.
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

    /// An idle pace (`tat` absent or not after now) set to `next`, if the breaker is closed.
    async fn set_tat(&self, now_ms: u64, next: u64) -> Result<Moved, StoreError> {
        let update = self
            .pace_update(now_ms)
            .update_expression("SET tat = :next, expiration = :exp")
            .condition_expression(format!(
                "(attribute_not_exists(tat) OR tat <= :now) AND {CLOSED}"
            ))
            .expression_attribute_values(":next", n(next));
        Ok(match update.send().await {
            Ok(_) => Moved::To(next),
            Err(e) => Moved::Refused(refused(e)?),
        })
    }

    /// A pace ahead of now moved on by `span`, if it is at most `limit` and the breaker is
    /// closed: no exact value to match, so racing containers each take their own cells in one
    /// write.
    async fn move_tat(&self, now_ms: u64, span: u64, limit: u64) -> Result<Moved, StoreError> {
        let update = self
            .pace_update(now_ms)
            .update_expression("SET tat = tat + :span, expiration = :exp")
            .condition_expression(format!("tat > :now AND tat <= :limit AND {CLOSED}"))
            .expression_attribute_values(":span", n(span))
            .expression_attribute_values(":limit", n(limit))
            .return_values(ReturnValue::UpdatedNew);
        Ok(match update.send().await {
            Ok(out) => match out.attributes() {
                Some(a) if a.contains_key("tat") => Moved::To(number(a, "tat")),
                _ => {
                    let missing = "DynamoDB UpdateItem answered without the pace it wrote";
                    return Err(StoreError(missing.to_owned()));
                }
            },
            Err(e) => Moved::Refused(refused(e)?),
        })
    }

    fn pace_update(&self, now_ms: u64) -> UpdateItemFluentBuilder {
        self.client()
            .update_item()
            .table_name(self.table())
            .key("id", s(PACE_ID))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":exp", n(now_ms / 1000 + KEEP_SECS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
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
