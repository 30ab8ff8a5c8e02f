//! In-memory idempotency store: per warm container, for local runs and unit tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Claim, EventKey, GuestState, Invitee, Progress, Tracking};

#[derive(Debug)]
struct Record {
    progress: Progress,
    locked_until: Option<Instant>,
    completed_at: Option<Instant>,
    touched: Instant,
}

/// Records kept at most; the oldest are dropped beyond this.
const MAX_RECORDS: usize = 10_000;

#[derive(Debug)]
pub struct MemoryStore {
    retention: Duration,
    records: Mutex<HashMap<EventKey, Record>>,
    invitees: Mutex<HashMap<String, Invitee>>,
    pub(super) links: Box<super::links::MemoryLinks>,
}

impl MemoryStore {
    /// Completed records are answered as duplicates for `retention`.
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            records: Mutex::new(HashMap::new()),
            invitees: Mutex::new(HashMap::new()),
            links: Box::default(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<EventKey, Record>) -> R) -> R {
        let mut guard = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    pub fn claim(&self, key: &EventKey, lock_for: Duration) -> Claim {
        let now = Instant::now();
        let retention = self.retention;
        self.with(|records| {
            if records.len() >= MAX_RECORDS {
                records.retain(|_, r| now.duration_since(r.touched) < retention);
                if records.len() >= MAX_RECORDS
                    && let Some(oldest) = records
                        .iter()
                        .min_by_key(|(_, r)| r.touched)
                        .map(|(k, _)| k.clone())
                {
                    records.remove(&oldest);
                }
            }
            let r = records.entry(key.clone()).or_insert_with(|| Record {
                progress: Progress::default(),
                locked_until: None,
                completed_at: None,
                touched: now,
            });
            if let Some(done) = r.completed_at {
                if now.duration_since(done) < retention {
                    return Claim::Completed(r.progress.clone());
                }
                *r = Record {
                    progress: Progress::default(),
                    locked_until: None,
                    completed_at: None,
                    touched: now,
                };
            }
            if r.locked_until.is_some_and(|until| until > now) {
                return Claim::InProgress;
            }
            r.locked_until = Some(now + lock_for);
            r.touched = now;
            Claim::Acquired(r.progress.clone())
        })
    }

    pub fn record_delivered(&self, key: &EventKey, delivery: &super::Delivery<'_>) {
        self.with(|records| {
            if let Some(r) = records.get_mut(key) {
                if !r.progress.delivered.iter().any(|c| c == delivery.channel) {
                    r.progress.delivered.push(delivery.channel.to_owned());
                }
                if let Some((invitation_id, user_id)) = delivery.invitation {
                    r.progress.invitation_id = Some(invitation_id.to_owned());
                    r.progress.invited_user_id = Some(user_id.to_owned());
                }
                if delivery.completes {
                    r.completed_at = Some(Instant::now());
                    r.locked_until = None;
                }
            }
        });
    }

    pub fn record(&self, key: &EventKey) -> Option<super::EventRecord> {
        self.with(|records| {
            let r = records.get(key)?;
            let status = match (r.completed_at, r.locked_until) {
                (Some(_), _) => "completed",
                (None, Some(until)) if until > Instant::now() => "in-progress",
                _ => "unfinished",
            };
            Some(super::EventRecord {
                status,
                progress: r.progress.clone(),
            })
        })
    }

    pub fn completed(&self, key: &EventKey) -> Option<Progress> {
        let retention = self.retention;
        self.with(|records| {
            let r = records.get(key)?;
            (r.completed_at?.elapsed() < retention).then(|| r.progress.clone())
        })
    }

    pub fn complete(&self, key: &EventKey, invitation: Option<(&str, &str)>) {
        self.with(|records| {
            if let Some(r) = records.get_mut(key) {
                if let Some((invitation_id, user_id)) = invitation {
                    r.progress.invitation_id = Some(invitation_id.to_owned());
                    r.progress.invited_user_id = Some(user_id.to_owned());
                }
                r.completed_at = Some(Instant::now());
                r.locked_until = None;
            }
        });
    }

    pub fn remember_invitee(&self, user_id: &str, invitee: Invitee) {
        let mut m = self
            .invitees
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= MAX_RECORDS {
            m.clear();
        }
        m.insert(user_id.to_owned(), invitee);
    }

    pub fn invitee(&self, user_id: &str) -> Option<Invitee> {
        self.invitees
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(user_id)
            .cloned()
    }

    pub fn record_step(&self, key: &EventKey, step: &str) {
        self.with(|records| {
            if let Some(r) = records.get_mut(key)
                && !r.progress.steps.iter().any(|s| s == step)
            {
                r.progress.steps.push(step.to_owned());
            }
        });
    }

    fn with_invitees<R>(&self, f: impl FnOnce(&mut HashMap<String, Invitee>) -> R) -> R {
        let mut m = self
            .invitees
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut m)
    }

    pub fn transition(
        &self,
        user_id: &str,
        from: Option<GuestState>,
        to: GuestState,
        tracking: Option<(Tracking, u64)>,
    ) -> bool {
        self.with_invitees(|m| match m.get_mut(user_id) {
            Some(i) if from.is_none_or(|f| f == i.state) => {
                i.state = to;
                i.tracking = tracking;
                true
            }
            _ => false,
        })
    }

    pub fn add_invitee_groups(&self, user_id: &str, groups: &[String]) {
        self.with_invitees(|m| {
            if let Some(i) = m.get_mut(user_id) {
                for g in groups {
                    if !i.groups.contains(g) {
                        i.groups.push(g.clone());
                    }
                }
            }
        });
    }

    pub fn tracked(&self, tracking: Tracking, until: Option<u64>) -> Vec<(String, Invitee)> {
        self.with_invitees(|m| {
            let mut out: Vec<(String, Invitee)> = m
                .iter()
                .filter(|(_, i)| {
                    i.tracking
                        .is_some_and(|(t, at)| t == tracking && until.is_none_or(|u| at <= u))
                })
                .map(|(k, i)| (k.clone(), i.clone()))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        })
    }

    pub fn release(&self, key: &EventKey) {
        self.with(|records| {
            if let Some(r) = records.get_mut(key) {
                r.locked_until = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> EventKey {
        EventKey {
            source: "generic".into(),
            event_id: id.into(),
        }
    }

    #[test]
    fn lock_progress_resume_and_complete() {
        let s = MemoryStore::new(Duration::from_secs(3600));
        let k = key("e1");
        assert_eq!(
            s.claim(&k, Duration::from_secs(30)),
            Claim::Acquired(Progress::default())
        );
        assert_eq!(s.claim(&k, Duration::from_secs(30)), Claim::InProgress);
        s.record_delivered(
            &k,
            &crate::store::Delivery {
                channel: "slack",
                invitation: Some(("inv", "user")),
                completes: false,
            },
        );
        s.release(&k);
        let Claim::Acquired(p) = s.claim(&k, Duration::from_secs(30)) else {
            panic!("resume")
        };
        assert_eq!(p.delivered, vec!["slack".to_owned()]);
        assert_eq!(p.invitation_id.as_deref(), Some("inv"));
        s.complete(&k, None);
        assert!(matches!(
            s.claim(&k, Duration::from_secs(30)),
            Claim::Completed(_)
        ));
        assert!(matches!(
            s.claim(&key("e2"), Duration::from_secs(30)),
            Claim::Acquired(_)
        ));
    }

    #[test]
    fn expired_lock_can_be_taken_over() {
        let s = MemoryStore::new(Duration::from_secs(3600));
        let k = key("e1");
        assert!(matches!(s.claim(&k, Duration::ZERO), Claim::Acquired(_)));
        assert!(matches!(
            s.claim(&k, Duration::from_secs(30)),
            Claim::Acquired(_)
        ));
    }

    #[test]
    fn completed_records_expire_after_retention() {
        let s = MemoryStore::new(Duration::ZERO);
        let k = key("e1");
        s.claim(&k, Duration::from_secs(30));
        s.complete(&k, None);
        assert_eq!(
            s.claim(&k, Duration::from_secs(30)),
            Claim::Acquired(Progress::default())
        );
    }
}
