//! Why an effective policy cannot be built. Every one of these denies: a policy that cannot be
//! read as written is never read more leniently.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    /// A policy the membership names could not be read (missing, deleted, another project's).
    /// Medplum's text, which login shows.
    #[error(
        "Cannot authenticate: Invalid access policy configuration. Please contact your administrator to update your project membership."
    )]
    InvalidConfiguration,
    /// A stored AccessPolicy is not a valid one (after its parameters were put in).
    #[error("invalid access policy {0}: {1}")]
    Malformed(String, String),
    /// A `%name` left in a criteria string after substitution: a parameter nobody supplied.
    #[error("access policy {0} uses a parameter that is not supplied: {1}")]
    UnresolvedParameter(String, String),
}
