//! Request middleware that is independent of any route: who the client is, and how often it may
//! call. Each piece is a plain axum `from_fn` middleware plus the state it needs, so that the
//! router decides where it goes.

pub mod client_addr;
pub mod cors;
pub mod rate_limit;

pub use client_addr::{ClientAddr, UNKNOWN_CLIENT, client_addr_layer, client_ip};
pub use cors::cors_layer;
pub use rate_limit::{
    FailureLimiter, FailurePolicy, IpRateLimiter, RateLimits, Throttled, is_auth_path,
    rate_limit_layer,
};
