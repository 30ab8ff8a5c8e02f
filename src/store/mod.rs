//! Idempotency: one record per (source, event id), recording how far processing got, so a
//! retried or duplicated delivery neither invites twice nor notifies a channel twice.
//!
//! The record never holds the redeem URL. A retry after an invitation whose delivery did not
//! finish invites again (Graph returns a fresh link for the same user).

mod memory;

use std::time::Duration;

pub use memory::MemoryStore;

use crate::delivery::ChannelKind;

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
    pub delivered: Vec<ChannelKind>,
}

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

/// The idempotency store (enum dispatch: one variant per real implementation).
pub enum Store {
    Memory(MemoryStore),
}

impl Store {
    /// Takes the in-progress lock for `lock_for` unless the event is completed or locked.
    pub async fn claim(&self, key: &EventKey, lock_for: Duration) -> Claim {
        match self {
            Store::Memory(m) => m.claim(key, lock_for),
        }
    }

    pub async fn record_invited(&self, key: &EventKey, invitation_id: &str, invited_user_id: &str) {
        match self {
            Store::Memory(m) => m.record_invited(key, invitation_id, invited_user_id),
        }
    }

    pub async fn record_delivered(&self, key: &EventKey, channel: ChannelKind) {
        match self {
            Store::Memory(m) => m.record_delivered(key, channel),
        }
    }

    /// Remembers which event a sender's delivery id carried (replay detection).
    pub async fn remember_delivery(&self, source: &str, delivery_id: &str, key: &EventKey) {
        match self {
            Store::Memory(m) => m.remember_delivery(source, delivery_id, key),
        }
    }

    /// The completed event behind a delivery id seen before, if any.
    pub async fn completed_delivery(
        &self,
        source: &str,
        delivery_id: &str,
    ) -> Option<(EventKey, Progress)> {
        match self {
            Store::Memory(m) => m.completed_delivery(source, delivery_id),
        }
    }

    /// Marks the event done; duplicates within the retention window are answered from here.
    pub async fn complete(&self, key: &EventKey) {
        match self {
            Store::Memory(m) => m.complete(key),
        }
    }

    /// Drops the lock after a failure, keeping the progress, so a retry can resume.
    pub async fn release(&self, key: &EventKey) {
        match self {
            Store::Memory(m) => m.release(key),
        }
    }
}
