//! The application: its dependencies, built once per container, and the pipeline that turns
//! one event into one outcome.
//!
//! Where events come in:
//! - `webhook`: `on_lambda_event` → `on_http`: receive → authenticate → replayed? →
//!   interpret → accept; and the managed links' page (`link`: `GET`/`POST /i/{token}`);
//! - `intake`: `accept` (plan, then execute now or enqueue), `accept_from_operator` (the
//!   `bulk` command's rows, and their rehearsal), `on_queued`, `on_eventbridge`;
//! - `sweep`: the schedule's pass over the guests the relay tracks (redeemed, expired,
//!   reminders through `follow_up`, deletions due); `follow_up` also lists pending guests.
//!
//! What happens to an accepted event: `plan` checks every value without I/O, then
//! `execute` runs the steps in order — claim → decide → prepare → invite → deliver →
//! reinstate → stamp → sync sponsors → join groups → remember — or, for an offboarding,
//! `offboard`'s actions; it is the one place a claim ends (completed or released). The steps
//! themselves are in `invite` (decide, prepare, invite), `deliver` (deliver, join groups,
//! remember; managed links minted by `link`), `guest` (reinstate, stamp, sponsors) and
//! `offboard`; `notify` sends lifecycle events. `outcome` is what the steps answer; `errors`
//! maps every failure to a problem.

mod deliver;
mod errors;
mod execute;
mod follow_up;
mod guest;
mod intake;
mod invite;
mod keyring;
mod link;
mod notify;
mod offboard;
mod outcome;
mod pace;
mod plan;
mod startup;
mod status;
mod sweep;
mod webhook;

use std::time::Duration;

pub use follow_up::{FOLLOW_UP_SOURCE, FollowUp, FollowUpAction};
pub use intake::Deferral;
pub(crate) use intake::Rehearsal;
pub use keyring::{Keyring, SourceKeys, graph_credential, key_checks};
pub use link::LinkTarget;
pub use outcome::{
    ExistsBecause, GroupOutcome, GroupStatus, OffboardAction, Outcome, ProfileOutcome,
    ProfileStatus,
};
pub use pace::Turn;
pub use startup::InitError;
pub use status::{EventReport, GuestReport, RelayReport, StatusReport};
pub use sweep::SweepAction;

use crate::config::Config;
use crate::delivery::Deliverer;
use crate::graph::GraphClient;
use crate::metrics::Metrics;
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
    /// Where each event's metrics line goes.
    metrics: Metrics,
    /// How long start-up's secret read took (for the start-up timings line).
    secret_read_us: u64,
}

impl App {
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sends the metrics lines to `writer` instead of stdout (a capture in tests).
    pub fn emit_metrics_to<W>(&mut self, writer: W)
    where
        W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        self.metrics = Metrics::to_writer(self.config.metrics.namespace.clone(), writer);
    }
}
