//! From a Lambda HTTP request to a [`CrmEvent`]: routing, limits, signatures, mapping.

pub mod body;
pub mod http;
pub mod json;
pub mod lambda;
pub mod signature;
mod source;
pub mod xml;

pub use source::{
    Action, BodyFormat, CrmEvent, Interpretation, MapError, Reply, Source, SourceSpec,
};
