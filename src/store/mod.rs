//! Idempotency: one record per (source, event id), recording how far processing got, so a
//! retried or duplicated delivery neither invites twice nor notifies a channel twice.
//!
//! The record never holds the redeem URL. A retry after an invitation whose delivery did not
//! finish invites again (Graph returns a fresh link for the same user).

mod dynamo;
mod dynamo_links;
mod links;
mod memory;
mod pace;

use std::time::Duration;

pub use dynamo::{DynamoStore, TRACKING_INDEX};
pub use links::{LinkRecord, LinkState};
pub use memory::MemoryStore;
pub use pace::{Cells, LATE_GRACE_MS, Slot, interval_and_tolerance};

/// Now, in epoch milliseconds.
pub fn epoch_millis() -> u64 {
    dynamo::now().as_millis() as u64
}

/// `source` + `event_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
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
    /// Other steps done (the guest's profile written, sponsors synced, offboarding actions).
    pub steps: Vec<String>,
}

/// An event's record as stored: whether it is done, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// `completed`, `in-progress` (locked by an attempt) or `unfinished` (an attempt failed
    /// and released it; a retry resumes).
    pub status: &'static str,
    pub progress: Progress,
}

/// Where a guest the relay invited stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GuestState {
    /// Invited, not redeemed yet: the sweep watches for redemption, reminds, notices deletion.
    #[default]
    Pending,
    Redeemed,
    /// Deleted while pending (e.g. by a lifecycle policy).
    Expired,
    Offboarded,
}

impl GuestState {
    pub fn name(self) -> &'static str {
        match self {
            GuestState::Pending => "pending",
            GuestState::Redeemed => "redeemed",
            GuestState::Expired => "expired",
            GuestState::Offboarded => "offboarded",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "redeemed" => GuestState::Redeemed,
            "expired" => GuestState::Expired,
            "offboarded" => GuestState::Offboarded,
            _ => GuestState::Pending,
        }
    }
}

/// What the sweep looks at: guests pending redemption, and offboarded guests due for deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    Pending,
    /// Offboarded; deleted when due.
    Deleting,
}

impl Tracking {
    pub fn name(self) -> &'static str {
        match self {
            Tracking::Pending => "pending",
            Tracking::Deleting => "deleting",
        }
    }
}

/// Who invited a user, where their link went and what the relay did to them since: what the
/// sweep, sponsor sync and offboarding need, without any of the invitee's personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invitee {
    pub event: EventKey,
    pub channels: Vec<String>,
    /// Groups the relay added the guest to.
    pub groups: Vec<String>,
    /// The owner who is the guest's sponsor through the relay.
    pub owner_id: Option<String>,
    pub state: GuestState,
    /// What the sweep watches the guest for, and from when (epoch seconds: the invitation for
    /// `Pending`, the deletion's due time for `Deleting`).
    pub tracking: Option<(Tracking, u64)>,
}

/// How long a guest's record is kept after the last event or change about them: the sweep,
/// offboarding and sponsor sync need it for as long as the partnership lasts.
pub const INVITEE_RETENTION: Duration = Duration::from_secs(3 * 365 * 24 * 3600);

/// A channel the link (or a notice) reached, as one progress write records it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The channel's name (or a notice's record).
    pub channel: &'a str,
    /// The invitation's ids (`invitationId`, the invited user's object id), recorded with the
    /// delivery rather than by a write of their own: before a channel has the link, a retry
    /// invites again anyway.
    pub invitation: Option<(&'a str, &'a str)>,
    /// Nothing follows this delivery: the same write completes the event.
    pub completes: bool,
}

impl<'a> Delivery<'a> {
    /// Only the channel.
    pub fn of(channel: &'a str) -> Self {
        Delivery {
            channel,
            invitation: None,
            completes: false,
        }
    }
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

    /// Records a channel delivered, with what the same write can carry (the invitation's ids,
    /// the event's completion): one write instead of several, exactly-once just the same.
    pub async fn record_delivered(
        &self,
        key: &EventKey,
        delivery: Delivery<'_>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.record_delivered(key, &delivery);
                Ok(())
            }
            Store::Dynamo(d) => d.record_delivered(key, &delivery).await,
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

    /// Records a step done (`stamped`, `sponsors`, an offboarding action).
    pub async fn record_step(&self, key: &EventKey, step: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.record_step(key, step);
                Ok(())
            }
            Store::Dynamo(d) => d.record_step(key, step).await,
        }
    }

    /// Moves a guest from `from` (any state when `None`) to `to`: `false` when they were not
    /// in `from` (someone else moved them first), so each transition happens once.
    pub async fn transition(
        &self,
        user_id: &str,
        from: Option<GuestState>,
        to: GuestState,
        tracking: Option<(Tracking, u64)>,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.transition(user_id, from, to, tracking)),
            Store::Dynamo(d) => d.transition(user_id, from, to, tracking).await,
        }
    }

    /// Adds groups to those the relay put the guest in.
    pub async fn add_invitee_groups(
        &self,
        user_id: &str,
        groups: &[String],
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.add_invitee_groups(user_id, groups);
                Ok(())
            }
            Store::Dynamo(d) => d.add_invitee_groups(user_id, groups).await,
        }
    }

    /// Guests the sweep watches for `tracking`, up to `until` (epoch seconds) when given.
    pub async fn tracked(
        &self,
        tracking: Tracking,
        until: Option<u64>,
    ) -> Result<Vec<(String, Invitee)>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.tracked(tracking, until)),
            Store::Dynamo(d) => d.tracked(tracking, until).await,
        }
    }

    /// The event that invited `user_id`, if remembered.
    pub async fn invitee(&self, user_id: &str) -> Result<Option<Invitee>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.invitee(user_id)),
            Store::Dynamo(d) => d.invitee(user_id).await,
        }
    }

    /// The event's record, whatever its state (the operator's `status`).
    pub async fn record(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.record(key)),
            Store::Dynamo(d) => d.record(key).await,
        }
    }

    /// The event's progress when it is completed.
    pub async fn completed(&self, key: &EventKey) -> Result<Option<Progress>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.completed(key)),
            Store::Dynamo(d) => d.completed(key, true).await,
        }
    }

    /// [`Store::completed`] by an eventually consistent read (half the read units), which may
    /// miss a completion of the last second: for a courtesy answer, not for a decision.
    pub async fn seen_completed(&self, key: &EventKey) -> Result<Option<Progress>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.completed(key)),
            Store::Dynamo(d) => d.completed(key, false).await,
        }
    }

    /// Marks the event done (with the invitation's ids, when no delivery recorded them);
    /// duplicates within the retention window are answered from here.
    pub async fn complete(
        &self,
        key: &EventKey,
        invitation: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.complete(key, invitation);
                Ok(())
            }
            Store::Dynamo(d) => d.complete(key, invitation).await,
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
