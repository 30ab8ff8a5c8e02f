//! The application: its dependencies, built once per container, and the pipeline that turns
//! one event into one outcome.
//!
//! Where events come in:
//! - `webhook`: `on_lambda_event` → `on_http`: receive → authenticate → replayed? →
//!   interpret → accept;
//! - `intake`: `accept` (plan, then execute now or enqueue), `on_queued`, `on_eventbridge`;
//! - `follow_up`: the schedule's reminders for pending invitations.
//!
//! What happens to an accepted event: `plan` checks every value without I/O, then
//! `execute` runs the steps in order — claim → decide → prepare → invite → deliver →
//! join groups → remember — and is the one place a claim ends (completed or released). The
//! steps themselves are in `invite` (decide, prepare, invite) and `deliver` (deliver, join
//! groups, remember). `outcome` is what the steps answer; `errors` maps every failure to a
//! problem.

mod deliver;
mod errors;
mod execute;
mod follow_up;
mod guest;
mod intake;
mod invite;
mod keyring;
mod notify;
mod offboard;
mod outcome;
mod plan;
mod startup;
mod sweep;
mod webhook;

use std::time::Duration;

pub use follow_up::{FOLLOW_UP_SOURCE, FollowUp, FollowUpAction};
pub use keyring::{Keyring, SourceKeys};
pub use outcome::{
    ExistsBecause, GroupOutcome, GroupStatus, OffboardAction, Outcome, ProfileOutcome,
    ProfileStatus,
};
pub use startup::InitError;
pub use sweep::SweepAction;

use crate::config::Config;
use crate::delivery::Deliverer;
use crate::graph::GraphClient;
use crate::queue::Queues;
use crate::resilience::GraphGate;
use crate::secrets::SecretCache;
use crate::store::Store;

/// Time kept in reserve to answer after the deadline's work is cut off.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// Deadline when the invocation's is unknown (local runs).
const DEFAULT_BUDGET: Duration = Duration::from_secs(25);

/// The function's dependencies, built once per container.
pub struct App {
    config: Config,
    secrets: SecretCache<Keyring>,
    graph: GraphClient,
    gate: GraphGate,
    deliverer: Deliverer,
    store: Store,
    queues: Queues,
    /// How long start-up's secret read took (for the start-up timings line).
    secret_read_us: u64,
}

impl App {
    pub fn config(&self) -> &Config {
        &self.config
    }
}
