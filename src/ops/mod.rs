//! The operator's tools behind the `invite-relay` command: checking a deployment (`doctor`),
//! the dead-letter queue (`dlq`), one guest or event's state (`status`, `resend`) and bulk
//! invitations from a CSV file (`bulk`). None of this runs in the functions.

pub mod bulk;
pub mod dlq;
pub mod doctor;
pub mod status;
