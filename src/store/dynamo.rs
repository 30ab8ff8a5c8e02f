//! The idempotency store on DynamoDB: the conditional-write lock design proven by Powertools
//! for AWS Lambda, extended with per-step progress so a retry resumes where the last attempt
//! stopped.
//!
//! One item per event, `id = "{source}#{event id}"`:
//! `status` (`INPROGRESS` | `COMPLETED`), `expiration` (epoch seconds; the table's TTL
//! attribute), `in_progress_expiration` (epoch milliseconds: the lock holder's deadline),
//! `invitation_id`, `invited_user_id`, `delivered` (string set of channels).
//! One item per delivery id, `id = "delivery#{source}#{delivery id}"`, pointing at its event.
//! One item per invited user, `id = "invitee#{user object id}"`: the event that invited them and
//! the channels that got the link, kept [`super::INVITEE_RETENTION`] for follow-ups.
//! Reads are strongly consistent, and expiry is checked on every read: TTL deletion can lag by
//! days and is never relied on. The redeem URL is never written.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{Claim, EventKey, Invitee, Progress, StoreError};

pub struct DynamoStore {
    client: Client,
    table: String,
    retention: Duration,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn item_id(key: &EventKey) -> String {
    format!("{}#{}", key.source, key.event_id)
}

fn store_err<E: ProvideErrorMetadata>(op: &'static str, e: &E) -> StoreError {
    StoreError(format!(
        "DynamoDB {op} failed: {}",
        e.code().unwrap_or("unreachable")
    ))
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
    }
}

fn is_completed(item: &HashMap<String, AttributeValue>) -> bool {
    item.get("status")
        .and_then(|v| v.as_s().ok())
        .is_some_and(|st| st == "COMPLETED")
}

fn number(item: &HashMap<String, AttributeValue>, k: &str) -> u64 {
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

    pub async fn record_invited(
        &self,
        key: &EventKey,
        invitation_id: &str,
        invited_user_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(item_id(key)))
            .update_expression("SET invitation_id = :i, invited_user_id = :u")
            .expression_attribute_values(":i", s(invitation_id))
            .expression_attribute_values(":u", s(invited_user_id))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("UpdateItem", &e))
    }

    pub async fn record_delivered(&self, key: &EventKey, channel: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(item_id(key)))
            .update_expression("ADD delivered :c")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![channel.to_owned()]))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("UpdateItem", &e))
    }

    pub async fn complete(&self, key: &EventKey) -> Result<(), StoreError> {
        let expiration = (now() + self.retention).as_secs();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(item_id(key)))
            .update_expression(
                "SET #status = :done, expiration = :exp REMOVE in_progress_expiration",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("COMPLETED"))
            .expression_attribute_values(":exp", n(expiration))
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

    pub async fn remember_sender_id(
        &self,
        source: &str,
        sender_id: &str,
        key: &EventKey,
    ) -> Result<(), StoreError> {
        let expiration = (now() + self.retention).as_secs();
        self.client
            .put_item()
            .table_name(&self.table)
            // The item key keeps its original prefix, so records written before stay valid.
            .item("id", s(format!("delivery#{source}#{sender_id}")))
            .item("event", s(item_id(key)))
            .item("event_id", s(&key.event_id))
            .item("expiration", n(expiration))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("PutItem", &e))
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
            .item("expiration", n(expiration));
        if !invitee.channels.is_empty() {
            put = put.item("channels", AttributeValue::Ss(invitee.channels.clone()));
        }
        put.send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("PutItem", &e))
    }

    pub async fn invitee(&self, user_id: &str) -> Result<Option<Invitee>, StoreError> {
        let Some(item) = self.get(&format!("invitee#{user_id}")).await? else {
            return Ok(None);
        };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        Ok(Some(Invitee {
            event: EventKey {
                source: text("source").unwrap_or_default(),
                event_id: text("event_id").unwrap_or_default(),
            },
            channels: item
                .get("channels")
                .and_then(|v| v.as_ss().ok())
                .cloned()
                .unwrap_or_default(),
        }))
    }

    pub async fn completed_sender_id(
        &self,
        source: &str,
        sender_id: &str,
    ) -> Result<Option<(EventKey, Progress)>, StoreError> {
        let Some(pointer) = self.get(&format!("delivery#{source}#{sender_id}")).await? else {
            return Ok(None);
        };
        let event_id = pointer
            .get("event_id")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let key = EventKey {
            source: source.to_owned(),
            event_id,
        };
        let Some(item) = self.get(&item_id(&key)).await? else {
            return Ok(None);
        };
        Ok(is_completed(&item).then(|| (key, progress_of(&item))))
    }

    /// The completed record of an event, if any (the webhook's duplicate check in queue mode).
    pub async fn completed(&self, key: &EventKey) -> Result<Option<Progress>, StoreError> {
        let Some(item) = self.get(&item_id(key)).await? else {
            return Ok(None);
        };
        Ok(is_completed(&item).then(|| progress_of(&item)))
    }

    /// A consistent read that treats expired items as absent.
    async fn get(&self, id: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err("GetItem", &e))?;
        Ok(out
            .item()
            .filter(|i| number(i, "expiration") >= now().as_secs())
            .cloned())
    }
}
