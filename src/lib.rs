//! # invite-relay
//!
//! Turns a signed CRM webhook into a Microsoft Entra B2B guest invitation (Graph
//! `POST /invitations` with `sendInvitationMessage: false`) and delivers the redeem link through
//! the organisation's own channels.
//!
//! # Layout
//! - [`app`]: the dependencies, built once, and the pipeline from request to answer.
//! - [`aws`]: the AWS SDK configuration, sending over the function's own HTTP client.
//! - [`config`]: typed configuration from the environment and the relay config file.
//! - [`inbound`]: routing, request limits, strict JSON, signature schemes, source mappings.
//! - [`expr`]: the expression language of mappings and filters (minijinja expressions).
//! - [`domain`]: validated values (invitee email, display name, redirect URL, invitation).
//! - [`graph`]: app-only tokens, invitations, the existing-user query, group membership, with
//!   classified errors.
//! - [`policy`]: the invitation policy: existing users, sponsors, groups.
//! - [`delivery`]: channels (SES email, Slack, Teams, signed webhook, Microsoft's own email),
//!   templates, routes, previews and the outbound URL guard.
//! - [`store`]: idempotency records (DynamoDB, or memory), so retries neither invite nor notify twice.
//! - [`queue`]: queue mode's messages, the SQS queue and the dead-letter queue.
//! - [`resilience`]: deadlines, retries with backoff, invitation pacing, the Graph circuit breaker.
//! - [`worker`]: the worker function's SQS batches and EventBridge events.
//! - [`standard_webhooks`]: Standard Webhooks keys, signing and the signature check (inbound
//!   and the outbound webhook channel).
//! - [`secrets`]: the Secrets Manager secret, cached with a TTL and re-read on rotation.
//! - [`telemetry`]: JSON logs honouring Lambda's log settings; the keyed email hash.
//! - [`problem`]: RFC 9457 problem+json answers.

pub mod app;
pub mod aws;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod expr;
pub mod graph;
pub mod inbound;
pub mod net;
pub mod policy;
pub mod problem;
pub mod queue;
pub mod resilience;
pub mod secrets;
pub mod standard_webhooks;
pub mod store;
pub mod telemetry;
pub mod worker;

pub use app::App;
