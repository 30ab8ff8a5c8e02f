//! Idempotency: one record per (source, event id), recording how far processing got, so a
//! retried or duplicated delivery neither invites twice nor notifies a channel twice.
//!
//! The record never holds the redeem URL. A retry after an invitation whose delivery did not
//! finish invites again (Graph returns a fresh link for the same user).

mod dynamo;
mod memory;

use std::time::Duration;

pub use dynamo::DynamoStore;
pub use memory::MemoryStore;

/// `source` + `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub source: String,
    pub event_id: String,
}

/// What a previous attempt achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub invitation_id: Option<String>,
    pub invited_user_id: Option<String>,
    pub delivered: Vec<String>,
}

/// Who invited a user and where their link went: what a follow-up needs, without any of
/// the invitee's personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitee {
    pub event: EventKey,
    pub channels: Vec<String>,
}

/// How long the invitee pointers are kept (for follow-ups on pending invitations), at least.
pub const INVITEE_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The answer to "may I process this event now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Go ahead; `Progress` holds what earlier attempts finished.
    Acquired(Progress),
    /// Another invocation holds the lock.
    InProgress,
    /// Already done.
    Completed(Progress),
}

/// The store could not be read or written (the message names the operation and error code).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// The idempotency store (enum dispatch: one variant per real implementation).
pub enum Store {
    Memory(MemoryStore),
    Dynamo(DynamoStore),
}

impl Store {
    /// Takes the in-progress lock for `lock_for` unless the event is completed or locked.
    pub async fn claim(&self, key: &EventKey, lock_for: Duration) -> Result<Claim, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.claim(key, lock_for)),
            Store::Dynamo(d) => d.claim(key, lock_for).await,
        }
    }

    pub async fn record_invited(
        &self,
        key: &EventKey,
        invitation_id: &str,
        invited_user_id: &str,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.record_invited(key, invitation_id, invited_user_id);
                Ok(())
            }
            Store::Dynamo(d) => d.record_invited(key, invitation_id, invited_user_id).await,
        }
    }

    pub async fn record_delivered(&self, key: &EventKey, channel: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.record_delivered(key, channel);
                Ok(())
            }
            Store::Dynamo(d) => d.record_delivered(key, channel).await,
        }
    }

    /// Remembers which event a sender's delivery id carried (replay detection).
    pub async fn remember_sender_id(
        &self,
        source: &str,
        sender_id: &str,
        key: &EventKey,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.remember_sender_id(source, sender_id, key);
                Ok(())
            }
            Store::Dynamo(d) => d.remember_sender_id(source, sender_id, key).await,
        }
    }

    /// The completed event behind a delivery id seen before, if any.
    pub async fn completed_sender_id(
        &self,
        source: &str,
        sender_id: &str,
    ) -> Result<Option<(EventKey, Progress)>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.completed_sender_id(source, sender_id)),
            Store::Dynamo(d) => d.completed_sender_id(source, sender_id).await,
        }
    }

    /// Remembers which event invited `user_id` and which channels got the link.
    pub async fn remember_invitee(
        &self,
        user_id: &str,
        invitee: Invitee,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.remember_invitee(user_id, invitee);
                Ok(())
            }
            Store::Dynamo(d) => d.remember_invitee(user_id, &invitee).await,
        }
    }

    /// The event that invited `user_id`, if remembered.
    pub async fn invitee(&self, user_id: &str) -> Result<Option<Invitee>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.invitee(user_id)),
            Store::Dynamo(d) => d.invitee(user_id).await,
        }
    }

    /// The event's progress when it is completed.
    pub async fn completed(&self, key: &EventKey) -> Result<Option<Progress>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.completed(key)),
            Store::Dynamo(d) => d.completed(key).await,
        }
    }

    /// Marks the event done; duplicates within the retention window are answered from here.
    pub async fn complete(&self, key: &EventKey) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.complete(key);
                Ok(())
            }
            Store::Dynamo(d) => d.complete(key).await,
        }
    }

    /// Drops the lock after a failure, keeping the progress, so a retry can resume.
    pub async fn release(&self, key: &EventKey) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.release(key);
                Ok(())
            }
            Store::Dynamo(d) => d.release(key).await,
        }
    }
}
