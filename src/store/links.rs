//! Managed links' records: one per token (under its keyed hash), the tokens of each event (so
//! an operator can revoke or re-issue them), and counters for rate limits.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{EventKey, Store, StoreError};

/// A link's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Delivered, not opened yet.
    Active,
    /// The partner pressed Accept at least once (it still works until it expires).
    Used,
    /// An operator revoked it.
    Revoked,
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Active => "active",
            LinkState::Used => "used",
            LinkState::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "active" => LinkState::Active,
            "used" => LinkState::Used,
            _ => LinkState::Revoked,
        }
    }
}

/// One managed link, as stored: no token, no address in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// The token's keyed hash.
    pub hash: String,
    /// The event that issued it.
    pub event: EventKey,
    pub user_id: String,
    /// The partner's address, name and language, sealed.
    pub sealed: String,
    /// Where the partner lands after redeeming.
    pub redirect: String,
    /// Epoch seconds.
    pub expires_at: u64,
    pub state: LinkState,
    /// When Accept was first pressed (epoch seconds).
    pub opened_at: Option<u64>,
}

/// The memory store's share: links, each event's tokens, counters.
#[derive(Debug, Default)]
pub(super) struct MemoryLinks {
    links: Mutex<HashMap<String, LinkRecord>>,
    by_event: Mutex<HashMap<EventKey, Vec<String>>>,
    by_user: Mutex<HashMap<String, Vec<String>>>,
    counters: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryLinks {
    fn put(&self, record: LinkRecord) {
        lock(&self.by_event)
            .entry(record.event.clone())
            .or_default()
            .push(record.hash.clone());
        lock(&self.by_user)
            .entry(record.user_id.clone())
            .or_default()
            .push(record.hash.clone());
        lock(&self.links).insert(record.hash.clone(), record);
    }

    fn get(&self, hash: &str) -> Option<LinkRecord> {
        lock(&self.links).get(hash).cloned()
    }

    fn for_event(&self, key: &EventKey) -> Vec<String> {
        lock(&self.by_event).get(key).cloned().unwrap_or_default()
    }

    fn for_user(&self, user_id: &str) -> Vec<String> {
        lock(&self.by_user)
            .get(user_id)
            .cloned()
            .unwrap_or_default()
    }

    fn update(&self, hash: &str, f: impl FnOnce(&mut LinkRecord) -> bool) -> bool {
        lock(&self.links).get_mut(hash).is_some_and(f)
    }

    fn count(&self, key: &str) -> u64 {
        let mut c = lock(&self.counters);
        if c.len() > 100_000 {
            c.clear();
        }
        let v = c.entry(key.to_owned()).or_default();
        *v += 1;
        *v
    }
}

impl Store {
    /// Stores a new link.
    pub async fn put_link(&self, record: LinkRecord) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.links.put(record);
                Ok(())
            }
            Store::Dynamo(d) => d.put_link(&record).await,
        }
    }

    /// The link stored under `hash` (revoked and expired ones too, until the table's TTL).
    pub async fn link(&self, hash: &str) -> Result<Option<LinkRecord>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.links.get(hash)),
            Store::Dynamo(d) => d.link(hash).await,
        }
    }

    /// The hashes of the links `key` issued.
    pub async fn links_for_event(&self, key: &EventKey) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.links.for_event(key)),
            Store::Dynamo(d) => d.links_for_event(key).await,
        }
    }

    /// The hashes of the links issued for the guest `user_id`.
    pub async fn links_for_user(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.links.for_user(user_id)),
            Store::Dynamo(d) => d.links_for_user(user_id).await,
        }
    }

    /// Accept was pressed: the link is `used`, and `true` only the first time (the owner is
    /// told once). A revoked link stays revoked.
    pub async fn open_link(&self, hash: &str, now: u64) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.links.update(hash, |r| {
                let first = r.state == LinkState::Active;
                if r.state != LinkState::Revoked {
                    r.state = LinkState::Used;
                    r.opened_at.get_or_insert(now);
                }
                first
            })),
            Store::Dynamo(d) => d.open_link(hash, now).await,
        }
    }

    /// Revokes a link; `false` when it was revoked already (or unknown).
    pub async fn revoke_link(&self, hash: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.links.update(hash, |r| {
                let changed = r.state != LinkState::Revoked;
                r.state = LinkState::Revoked;
                changed
            })),
            Store::Dynamo(d) => d.revoke_link(hash).await,
        }
    }

    /// The guest behind a link changed (deleted and invited again).
    pub async fn relink(&self, hash: &str, user_id: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.links.update(hash, |r| {
                    r.user_id = user_id.to_owned();
                    true
                });
                Ok(())
            }
            Store::Dynamo(d) => d.relink(hash, user_id).await,
        }
    }

    /// Counts one hit on `key` within the current window of `window_secs`; the count so far.
    pub async fn count_hit(
        &self,
        key: &str,
        window_secs: u64,
        now: u64,
    ) -> Result<u64, StoreError> {
        let window = now / window_secs.max(1);
        let key = format!("{key}#{window}");
        match self {
            Store::Memory(m) => Ok(m.links.count(&key)),
            Store::Dynamo(d) => d.count_hit(&key, (window + 1) * window_secs.max(1)).await,
        }
    }
}
