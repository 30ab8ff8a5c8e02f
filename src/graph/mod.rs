//! Microsoft Graph: app-only tokens and invitations, with errors classified by status and
//! `error.code` (never by message, which can echo the invitee's address).

mod client;
mod directory;
mod error;
mod settings;
mod token;
mod users;

pub use client::{DirectoryUser, GraphClient, GroupAdd, existing_user_filter, odata_quote};
pub use directory::GroupRef;
pub use error::GraphError;
pub(crate) use error::whole_seconds_up;
pub use settings::{GraphSettings, cloud_hosts};
pub use token::{CertificateCredential, ClientCredential, TokenProvider};
pub use users::Written;
