//! Access control decisions, as pure logic (DESIGN.md: no SQL, no HTTP): the effective
//! AccessPolicy of a request built from a membership's policies (spec §1.1), and whether an
//! entry of it allows an interaction on a type (§1.2). The repository applies them.
//!
//! - [`policy`]: the AccessPolicy resource as typed values.
//! - [`effective`]: building the effective policy of a membership.
//! - [`interaction`]: interactions and which entries allow them.
//! - [`control`]: the effective policy ready for requests: criteria parsed, the search
//!   restriction, the entry a resource satisfies, hidden and read-only fields, write constraints.
//! - [`explain`]: why an interaction is allowed or denied, entry by entry.
//! - [`fields`]: dotted field paths on a resource's JSON.
//! - [`partial`]: reading only the elements a decision needs.
//! - [`ip_rule`]: IP access rules (prefixes, CIDR, IPv6).
//! - [`smart_scope`]: SMART resource scopes and how they narrow a policy.
//! - [`error`]: why a policy cannot be built ([`AccessError`]).

pub mod control;
pub mod effective;
pub mod error;
pub mod explain;
pub mod fields;
pub mod interaction;
pub mod ip_rule;
pub mod partial;
pub mod policy;
pub mod smart_scope;

pub use control::AccessControl;
pub use effective::{EffectivePolicy, MembershipAccess, PolicyGrant, ProjectAccess};
pub use error::AccessError;
pub use interaction::Interaction;
pub use policy::{AccessPolicy, IpAccessRule, ResourceEntry};
