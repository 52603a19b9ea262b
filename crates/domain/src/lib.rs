//! The mesh's business rules, each defined exactly once so the daemons, the gateway and the
//! benchmark cannot drift apart: the seed-001 routing matrix and the complexity prior of each
//! intent ([`routing`]), which intents need retrieval, the keyword fallback classifier
//! ([`keyword`]), context assembly — what a generation request carries and how many
//! candidates to ask retrieval for ([`context`]) — and text normalisation ([`text`]).
//!
//! Pure functions over proto messages and config settings: no I/O, no models, no daemon
//! crates, so every caller (intent daemon, precompute, gateway, bench) can depend on it.

pub mod context;
pub mod keyword;
pub mod language;
pub mod routing;
pub mod text;

pub use context::{
    Asked, Context, ContextSettings, Sources, assemble, assemble_products, wants_orders,
};
pub use language::{Lang, reply_language};
pub use routing::{Band, needs_retrieval, route};
pub use text::normalize_text;
