//! Development tools for invite-relay: a Microsoft Graph + token emulator, local channel
//! receivers and event signing. Used by the demo and the tests; never linked into the Lambda
//! functions.

pub mod events;
pub mod graph;
pub mod receiver;

pub use graph::{Fault, GraphEmulator, GraphSettings};
pub use receiver::{Receiver, ReceiverFault};
