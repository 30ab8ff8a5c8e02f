//! # invite-relay
//!
//! Turns a signed CRM webhook into a Microsoft Entra B2B guest invitation (Graph
//! `POST /invitations` with `sendInvitationMessage: false`) and delivers the redeem link through
//! the organisation's own channels.
//!
//! # Layout
//! The pipeline, in the order an event meets it:
//! - [`inbound`]: the Lambda event as a request (`inbound::lambda`), routing and limits,
//!   strict JSON, signature schemes (one file each), sources and their mappings → `CrmEvent`.
//! - [`app`]: the dependencies, built once, and the pipeline. **`app/execute.rs` orders the
//!   steps** (claim → decide → prepare → invite → deliver → reinstate → stamp → sync sponsors
//!   → join groups → remember, or an offboarding's actions) and is the only place a claim ends;
//!   the steps are in `app/invite.rs`, `app/deliver.rs`, `app/guest.rs` and `app/offboard.rs`;
//!   the pure checks before any I/O in `app/plan.rs`; the HTTP edge in `app/webhook.rs` (and
//!   the managed links' page in `app/link.rs`); queue and EventBridge intake in
//!   `app/intake.rs`; the schedule's sweep in `app/sweep.rs`; lifecycle events in
//!   `app/notify.rs`; every failure's problem in `app/errors.rs`.
//! - [`graph`]: app-only tokens (secret or certificate), invitations, user queries, group
//!   membership, with classified errors; `policy`: what the invitation policy decides.
//! - [`delivery`]: channels (SES email, Slack, Teams, signed webhook, Microsoft's own email),
//!   templates, routes, previews and the outbound URL guard.
//! - [`store`]: idempotency records (DynamoDB, or memory), so retries neither invite nor
//!   notify twice, the guests the relay tracks, and managed links (`store/links.rs`);
//!   `queue`: queue mode's messages and the dead-letter queue;
//!   [`worker`]: the worker function's SQS batches, EventBridge events and schedule.
//!
//! Around it:
//! - [`config`]: one settings struct per component, read from the environment
//!   (`config/env.rs`) and `RELAY_CONFIG` with the presets (`config/relay.rs`).
//! - [`domain`]: validated values (invitee email, display name, redirect URL, object ids,
//!   event details, the invitation request).
//! - `expr`: the expression language of mappings, filters and routes (minijinja).
//! - [`standard_webhooks`]: Standard Webhooks keys, signing and the signature check.
//! - [`links`]: managed links' tokens, keyed hashes, nonces and sealing; [`landing`]: their
//!   page.
//! - [`net`]: the one TLS configuration and HTTP client builder; [`aws`]: the AWS SDK over it.
//! - [`resilience`]: deadlines, retries, invitation pacing, the Graph circuit breaker.
//! - `secrets`: the Secrets Manager secret, cached and re-read on rotation.
//! - [`telemetry`]: JSON logs honouring Lambda's log settings; the keyed email hash.
//! - [`ops`]: the operator's commands behind `invite-relay` (doctor, dead letters, status and
//!   resend, bulk CSV); never run by the functions.
//! - [`metrics`]: one CloudWatch Embedded Metric Format line per event (invitations,
//!   deliveries per channel, refusals, parked events, breaker openings, Graph latency).
//! - `problem`: RFC 9457 problem+json answers.
//!
//! # Where to change what
//! - A pipeline step: a function in `app/invite.rs` or `app/deliver.rs`, one line in
//!   `app/execute.rs`'s `steps`, and a progress record in `store` if it must not repeat.
//! - A new kind of work (a reminder, an offboarding): a `Purpose` variant in `app/plan.rs` and
//!   the steps that ask it.
//! - A lifecycle event: a `NoticeKind` variant (`delivery/notice.rs`) and the step that sends
//!   it through `app/notify.rs`.
//! - A CRM: `presets/NAME.toml`, a sample in `events/`, a case in `tests/api/presets.rs`.
//! - A signature scheme: `inbound/signature/NAME.rs`, a `Scheme` variant, known answers.
//! - A channel kind: a `ChannelKind` variant, `delivery/NAME.rs`, an arm in
//!   `delivery/render.rs`, `templates/NAME/`.
//! - A setting: the settings struct of the component that uses it (`config/mod.rs`), its
//!   reader in `config/env.rs`, the README's table.
//! - A refusal: a `ProblemKind` variant, its mapping in `app/errors.rs`, the README's Answers.
//!
//! # Words
//! A *delivery* is our send of the link to a channel; the *sender id* is the id a sender gives
//! its own delivery of an event (replay detection); a *claim* is the event's idempotency lock;
//! *progress* is what an earlier attempt recorded.

pub mod app;
pub mod aws;
pub mod config;
pub mod delivery;
pub mod domain;
pub(crate) mod expr;
pub mod graph;
pub mod inbound;
pub mod landing;
pub mod links;
pub mod metrics;
pub mod net;
pub mod ops;
pub(crate) mod policy;
pub(crate) mod problem;
pub(crate) mod queue;
pub mod resilience;
pub(crate) mod secrets;
pub mod standard_webhooks;
pub mod store;
pub mod telemetry;
pub mod worker;

pub use app::App;
