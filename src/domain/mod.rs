//! Validated values that travel inward from the edge: parse, don't validate.

mod details;
mod display_name;
mod email;
mod invitation;
pub mod object_id;
mod profile;
mod redirect;
pub mod text;

pub use details::EventDetails;
pub use display_name::DisplayName;
pub use email::{DomainPolicy, EmailRule, InviteeEmail};
pub use invitation::{Invitation, InvitationRequest, MAX_SPONSORS, MessageInfo, UserType};
pub use profile::{
    PROFILE_PROPERTIES, Profile, ProfileError, Provenance, ProvenanceSlots, is_language_tag,
    is_profile_property, parse_date,
};
pub use redirect::{RedirectPolicy, RedirectRule, RedirectUrl};
