//! Development tools for invite-relay: a Microsoft Graph + token emulator, local channel
//! receivers, a fault-injecting proxy for the AWS emulator, and event signing. Used by the demo
//! and the tests; never linked into the Lambda functions.

pub mod events;
pub mod function_url;
pub mod graph;
pub mod latency;
pub mod proxy;
pub mod receiver;
pub mod runtime_api;

pub use graph::{DEFAULT_ROLES, Fault, GraphEmulator, GraphLatency, GraphSettings};
pub use latency::{Jitter, Latency};
pub use proxy::{FaultProxy, ProxiedRequest};
pub use receiver::{Receiver, ReceiverFault};
