//! The idempotency store on DynamoDB: the conditional-write lock design proven by Powertools
//! for AWS Lambda, extended with per-step progress so a retry resumes where the last attempt
//! stopped.
//!
//! One item per event, `id = "{source}#{event id}"`:
//! `status` (`INPROGRESS` | `COMPLETED`), `expiration` (epoch seconds; the table's TTL
//! attribute), `in_progress_expiration` (epoch milliseconds: the lock holder's deadline),
//! `invitation_id`, `invited_user_id`, `delivered` (string set of channels).
//! One item per invited user, `id = "invitee#{user object id}"`: the event that invited them and
//! the channels that got the link, kept [`super::INVITEE_RETENTION`] for follow-ups.
//! Reads are strongly consistent, and expiry is checked on every read: TTL deletion can lag by
//! days and is never relied on. The redeem URL is never written.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{Claim, EventKey, GuestState, Invitee, Progress, StoreError, Tracking};

pub struct DynamoStore {
    client: Client,
    table: String,
    retention: Duration,
    /// The tenant's pace as this container last saw it (`tat`, epoch milliseconds): the first
    /// guess of a slot's conditional write, so a burst costs one write per slot, not two.
    pub(super) last_tat: std::sync::atomic::AtomicU64,
}

impl DynamoStore {
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn table(&self) -> &str {
        &self.table
    }
}

pub(super) fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An update whose unmet condition means there is nothing to do (already so, or not ours).
pub(super) fn unless_condition_failed<O>(
    r: Result<
        O,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        >,
    >,
) -> Result<(), StoreError> {
    match r {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(store_err("UpdateItem", &e)),
    }
}

fn item_id(key: &EventKey) -> String {
    format!("{}#{}", key.source, key.event_id)
}

pub(super) fn store_err<E: ProvideErrorMetadata>(op: &'static str, e: &E) -> StoreError {
    StoreError(format!(
        "DynamoDB {op} failed: {}",
        e.code().unwrap_or("unreachable")
    ))
}

/// A string attribute.
pub(super) fn text(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn progress_of(item: &HashMap<String, AttributeValue>) -> Progress {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let delivered = item
        .get("delivered")
        .and_then(|v| v.as_ss().ok())
        .map(|set| {
            let mut names: Vec<String> = set.clone();
            names.sort();
            names
        })
        .unwrap_or_default();
    Progress {
        invitation_id: text("invitation_id"),
        invited_user_id: text("invited_user_id"),
        delivered,
        steps: set(item, "steps"),
    }
}

fn set(item: &HashMap<String, AttributeValue>, k: &str) -> Vec<String> {
    let mut v = item
        .get(k)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    v.sort();
    v
}

/// The GSI over `tracking` (`pending` | `deleting`) and `tracking_at`: the guests the sweep
/// watches, without scanning the table. Sparse: only pointers being tracked carry `tracking`.
pub const TRACKING_INDEX: &str = "tracking-index";

fn invitee_of(item: &HashMap<String, AttributeValue>) -> Invitee {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let tracking = match text("tracking").as_deref() {
        Some("pending") => Some((Tracking::Pending, number(item, "tracking_at"))),
        Some("deleting") => Some((Tracking::Deleting, number(item, "tracking_at"))),
        _ => None,
    };
    Invitee {
        event: EventKey {
            source: text("source").unwrap_or_default(),
            event_id: text("event_id").unwrap_or_default(),
        },
        channels: set(item, "channels"),
        groups: set(item, "groups"),
        owner_id: text("owner_id"),
        state: GuestState::parse(text("state").as_deref().unwrap_or("pending")),
        tracking,
    }
}

fn is_completed(item: &HashMap<String, AttributeValue>) -> bool {
    item.get("status")
        .and_then(|v| v.as_s().ok())
        .is_some_and(|st| st == "COMPLETED")
}

pub(super) fn number(item: &HashMap<String, AttributeValue>, k: &str) -> u64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl DynamoStore {
    /// Completed records answer duplicates for `retention` (and carry a TTL for cleanup).
    pub fn new(client: Client, table: String, retention: Duration) -> Self {
        Self {
            client,
            table,
            retention,
            last_tat: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub async fn claim(&self, key: &EventKey, lock_for: Duration) -> Result<Claim, StoreError> {
        let now = now();
        let lock_until_ms = (now + lock_for).as_millis();
        let expiration = (now + self.retention).as_secs();
        // 1. A new event, or a record whose retention ran out: start afresh.
        let fresh = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", s(item_id(key)))
            .item("status", s("INPROGRESS"))
            .item("expiration", n(expiration))
            .item("in_progress_expiration", n(lock_until_ms))
            .condition_expression("attribute_not_exists(id) OR expiration < :now")
            .expression_attribute_values(":now", n(now.as_secs()))
            .send()
            .await;
        match fresh {
            Ok(_) => return Ok(Claim::Acquired(Progress::default())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(store_err("PutItem", &e)),
        }
        // 2. An existing, unexpired record: take over an abandoned lock, keeping the progress.
        let takeover = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(item_id(key)))
            .update_expression("SET in_progress_expiration = :until")
            .condition_expression("#status = :inprogress AND in_progress_expiration < :now_ms")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":until", n(lock_until_ms))
            .expression_attribute_values(":inprogress", s("INPROGRESS"))
            .expression_attribute_values(":now_ms", n(now.as_millis()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match takeover {
            Ok(out) => Ok(Claim::Acquired(
                out.attributes().map(progress_of).unwrap_or_default(),
            )),
            Err(e) => {
                let Some(se) = e.as_service_error() else {
                    return Err(store_err("UpdateItem", &e));
                };
                if !se.is_conditional_check_failed_exception() {
                    return Err(store_err("UpdateItem", &e));
                }
                let old = match se {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                    _ => None,
                }
                .unwrap_or_default();
                Ok(if is_completed(&old) {
                    Claim::Completed(progress_of(&old))
                } else {
                    Claim::InProgress
                })
            }
        }
    }

    pub async fn record_delivered(
        &self,
        key: &EventKey,
        delivery: &super::Delivery<'_>,
    ) -> Result<(), StoreError> {
        let mut set = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(item_id(key)))
            .expression_attribute_values(
                ":c",
                AttributeValue::Ss(vec![delivery.channel.to_owned()]),
            );
        if let Some((invitation_id, user_id)) = delivery.invitation {
            set.push("invitation_id = :i, invited_user_id = :u");
            update = update
                .expression_attribute_values(":i", s(invitation_id))
                .expression_attribute_values(":u", s(user_id));
        }
        let mut remove = "";
        if delivery.completes {
            set.push("#status = :done, expiration = :exp");
            remove = " REMOVE in_progress_expiration";
            update = self.completing(update);
        }
        let set = if set.is_empty() {
            String::new()
        } else {
            format!(" SET {}", set.join(", "))
        };
        update
            .update_expression(format!("ADD delivered :c{set}{remove}"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("UpdateItem", &e))
    }

    /// The values an update that completes the event sets.
    fn completing(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        update
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("COMPLETED"))
            .expression_attribute_values(":exp", n((now() + self.retention).as_secs()))
    }

    pub async fn complete(
        &self,
        key: &EventKey,
        invitation: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .completing(
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("id", s(item_id(key))),
            )
            .update_expression(
                "SET #status = :done, expiration = :exp REMOVE in_progress_expiration",
            );
        if let Some((invitation_id, user_id)) = invitation {
            update = update
                .update_expression(
                    "SET #status = :done, expiration = :exp, invitation_id = :i, \
                     invited_user_id = :u REMOVE in_progress_expiration",
                )
                .expression_attribute_values(":i", s(invitation_id))
                .expression_attribute_values(":u", s(user_id));
        }
        update
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("UpdateItem", &e))
    }

    pub async fn release(&self, key: &EventKey) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(item_id(key)))
            .update_expression("SET in_progress_expiration = :zero")
            .condition_expression("#status = :inprogress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":inprogress", s("INPROGRESS"))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception())
                {
                    Ok(())
                } else {
                    Err(store_err("UpdateItem", &e))
                }
            })
    }

    pub async fn remember_invitee(
        &self,
        user_id: &str,
        invitee: &Invitee,
    ) -> Result<(), StoreError> {
        let expiration = (now() + super::INVITEE_RETENTION.max(self.retention)).as_secs();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", s(format!("invitee#{user_id}")))
            .item("source", s(&invitee.event.source))
            .item("event_id", s(&invitee.event.event_id))
            .item("state", s(invitee.state.name()))
            .item("expiration", n(expiration));
        for (k, v) in [("channels", &invitee.channels), ("groups", &invitee.groups)] {
            if !v.is_empty() {
                put = put.item(k, AttributeValue::Ss(v.clone()));
            }
        }
        if let Some(owner) = &invitee.owner_id {
            put = put.item("owner_id", s(owner));
        }
        if let Some((t, at)) = invitee.tracking {
            put = put.item("tracking", s(t.name())).item("tracking_at", n(at));
        }
        put.send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("PutItem", &e))
    }

    pub async fn invitee(&self, user_id: &str) -> Result<Option<Invitee>, StoreError> {
        Ok(self
            .get(&format!("invitee#{user_id}"))
            .await?
            .as_ref()
            .map(invitee_of))
    }

    pub async fn record_step(&self, key: &EventKey, step: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(item_id(key)))
            .update_expression("ADD steps :s")
            .expression_attribute_values(":s", AttributeValue::Ss(vec![step.to_owned()]))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("UpdateItem", &e))
    }

    pub async fn transition(
        &self,
        user_id: &str,
        from: Option<GuestState>,
        to: GuestState,
        tracking: Option<(Tracking, u64)>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(format!("invitee#{user_id}")))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(to.name()))
            .expression_attribute_values(
                ":exp",
                n((now() + super::INVITEE_RETENTION.max(self.retention)).as_secs()),
            );
        update = match tracking {
            Some((t, at)) => update
                .update_expression(
                    "SET #state = :to, expiration = :exp, tracking = :t, tracking_at = :at",
                )
                .expression_attribute_values(":t", s(t.name()))
                .expression_attribute_values(":at", n(at)),
            None => update.update_expression(
                "SET #state = :to, expiration = :exp REMOVE tracking, tracking_at",
            ),
        };
        update = match from {
            Some(f) => update
                .condition_expression("attribute_exists(id) AND #state = :from")
                .expression_attribute_values(":from", s(f.name())),
            None => update.condition_expression("attribute_exists(id)"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_err("UpdateItem", &e)),
        }
    }

    pub async fn add_invitee_groups(
        &self,
        user_id: &str,
        groups: &[String],
    ) -> Result<(), StoreError> {
        if groups.is_empty() {
            return Ok(());
        }
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(format!("invitee#{user_id}")))
            .update_expression("ADD groups :g")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":g", AttributeValue::Ss(groups.to_vec()))
            .send()
            .await;
        unless_condition_failed(r)
    }

    /// The guests tracked for `tracking` (up to `until`), through the sparse index, page by
    /// page.
    pub async fn tracked(
        &self,
        tracking: Tracking,
        until: Option<u64>,
    ) -> Result<Vec<(String, Invitee)>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(TRACKING_INDEX)
                .expression_attribute_values(":t", s(tracking.name()))
                .set_exclusive_start_key(start.take());
            q = match until {
                Some(u) => q
                    .key_condition_expression("tracking = :t AND tracking_at <= :u")
                    .expression_attribute_values(":u", n(u)),
                None => q.key_condition_expression("tracking = :t"),
            };
            let page = q.send().await.map_err(|e| store_err("Query", &e))?;
            for item in page.items() {
                let live = number(item, "expiration") >= now().as_secs();
                let id = item.get("id").and_then(|v| v.as_s().ok());
                if let (true, Some(user)) = (live, id.and_then(|i| i.strip_prefix("invitee#"))) {
                    out.push((user.to_owned(), invitee_of(item)));
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// An event's record, whatever its state.
    pub async fn record(&self, key: &EventKey) -> Result<Option<super::EventRecord>, StoreError> {
        let Some(item) = self.get(&item_id(key)).await? else {
            return Ok(None);
        };
        let status = match item
            .get("status")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
        {
            Some("COMPLETED") => "completed",
            Some("INPROGRESS")
                if u128::from(number(&item, "in_progress_expiration")) >= now().as_millis() =>
            {
                "in-progress"
            }
            _ => "unfinished",
        };
        Ok(Some(super::EventRecord {
            status,
            progress: progress_of(&item),
        }))
    }

    /// The completed record of an event, if any: a consistent read, or an eventually
    /// consistent one at half the read units where a completion of the last second may be
    /// missed (the webhook's duplicate check in queue mode: the worker's claim decides).
    pub async fn completed(
        &self,
        key: &EventKey,
        consistent: bool,
    ) -> Result<Option<Progress>, StoreError> {
        let Some(item) = self.read(&item_id(key), consistent).await? else {
            return Ok(None);
        };
        Ok(is_completed(&item).then(|| progress_of(&item)))
    }

    /// A consistent read that treats expired items as absent.
    pub(super) async fn get(
        &self,
        id: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        self.read(id, true).await
    }

    async fn read(
        &self,
        id: &str,
        consistent: bool,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| store_err("GetItem", &e))?;
        Ok(out
            .item()
            .filter(|i| number(i, "expiration") >= now().as_secs())
            .cloned())
    }
}
