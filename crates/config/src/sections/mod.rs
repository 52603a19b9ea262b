//! Every section of the config file, with its documented defaults: one module per section,
//! each with its own `validate` naming the full path of a bad field.

mod cache;
mod data;
mod embedding;
mod gateway;
mod generation;
mod intent;
mod memory;
mod mesh;
mod precompute;
mod redis;
mod retrieval;
mod telemetry;

use std::fmt::Display;

use serde::{Deserialize, Serialize};

pub use cache::{CacheBackend, CacheSettings};
pub use data::DataSettings;
pub use embedding::{EmbeddingBackend, EmbeddingSettings};
pub use gateway::{
    AuthSettings, BreakerSettings, GatewaySettings, LimitBackend, LimitSettings, ResumeBackend,
    RoutingSettings, SloSettings, StageBudgets, StageDeadlines, StreamSettings,
};
pub use generation::{
    BedrockSettings, GenerationBackend, GenerationSettings, LatencyProfile, OpenAiSettings,
    TierProfile,
};
pub use intent::IntentSettings;
pub use memory::{DynamoDbSettings, MemoryBackend, MemorySettings};
pub use mesh::{DAEMONS, DaemonAddr, MeshSettings};
pub use precompute::{DemandStore, PrecomputeSettings, SchedulerLease};
pub use redis::RedisSettings;
pub use retrieval::{InventoryBackend, OpenSearchSettings, RetrievalBackend, RetrievalSettings};
pub use telemetry::{LogFormat, TelemetrySettings};

use crate::{ConfigError, FaultSpec};

/// The whole mesh. Each daemon reads the sections it needs; `mangaassist config print` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Fault injection rules (`retrieval=hang`, `intent=error:1.0`,
    /// `generation.Generate=latency:300ms`). Off by default.
    pub faults: Vec<FaultSpec>,
    pub telemetry: TelemetrySettings,
    pub data: DataSettings,
    pub embedding: EmbeddingSettings,
    pub mesh: MeshSettings,
    pub gateway: GatewaySettings,
    pub intent: IntentSettings,
    pub retrieval: RetrievalSettings,
    pub memory: MemorySettings,
    pub cache: CacheSettings,
    pub generation: GenerationSettings,
    pub precompute: PrecomputeSettings,
    /// Shared Redis for `cache.backend = "redis"` and `gateway.resume_backend = "redis"`.
    pub redis: RedisSettings,
}

impl Config {
    /// Semantic checks serde cannot express. Called by the loader; call it again after
    /// changing a config in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.telemetry.validate()?;
        self.embedding.validate()?;
        self.mesh.validate()?;
        self.gateway.validate()?;
        self.intent.validate()?;
        self.retrieval.validate()?;
        self.memory.validate()?;
        self.cache.validate()?;
        self.generation.validate()?;
        self.precompute.validate()?;
        self.redis.validate()?;
        // One secret for both would let any customer token double as a service token.
        ensure(
            self.mesh.service_secret.is_empty()
                || self.mesh.service_secret != self.gateway.auth.secret,
            "mesh.service_secret",
            "must differ from gateway.auth.secret",
        )
    }
}

/// The intent labels accepted in config (same as the WebSocket protocol).
pub const INTENTS: [&str; 9] = [
    "greeting",
    "faq",
    "order_status",
    "product_search",
    "recommendation",
    "comparison",
    "complaint",
    "return_refund",
    "chitchat",
];

/// A value that is not one of a choice's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not one of {allowed}")]
pub struct UnknownChoice {
    pub value: String,
    pub allowed: String,
}

/// A closed set of names a config field accepts (`generation.backend = "bedrock"`): a serde enum
/// under its lowercase names, so an unknown one fails at load time naming the field and the
/// choices, plus `as_str`/`Display`/`FromStr` for logs and command-line flags.
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Default,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every choice, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in the config file.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::sections::UnknownChoice;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|c| c.as_str() == s)
                    .ok_or_else(|| $crate::sections::UnknownChoice {
                        value: s.to_owned(),
                        allowed: Self::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }
    };
}
pub(crate) use choice;

/// `Err` naming `field` unless `ok`.
fn ensure(
    ok: bool,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::field(field, message))
    }
}

/// A share or probability: inside 0..=1 (NaN is outside).
fn unit(field: &str, v: f32) -> Result<(), ConfigError> {
    ensure(
        (0.0..=1.0).contains(&v),
        field,
        format!("{v} is outside 0..=1"),
    )
}

/// A count, size or duration that means nothing at zero.
fn positive<T: Default + PartialEq + Display>(field: &str, v: T) -> Result<(), ConfigError> {
    ensure(v != T::default(), field, "must be greater than 0")
}

/// A rate, cost or spread: finite and not negative.
fn non_negative(field: &str, v: f32) -> Result<(), ConfigError> {
    ensure(
        v.is_finite() && v >= 0.0,
        field,
        format!("{v} must be a finite number >= 0"),
    )
}

/// An integer inside `range`.
fn within<T: PartialOrd + Display>(
    field: &str,
    v: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), ConfigError> {
    let message = format!("{v} is outside {}..={}", range.start(), range.end());
    ensure(range.contains(&v), field, message)
}

fn http_url(field: &str, url: &str) -> Result<(), ConfigError> {
    ensure(
        url.starts_with("http://") || url.starts_with("https://"),
        field,
        format!("`{url}` must start with http:// or https://"),
    )
}

/// Empty means "the default endpoint" (AWS, the OTLP environment variables).
fn optional_http_url(field: &str, url: &str) -> Result<(), ConfigError> {
    ensure(
        url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
        field,
        format!("`{url}` must be empty or start with http:// or https://"),
    )
}

fn known_intent(field: &str, intent: &str) -> Result<(), ConfigError> {
    ensure(
        INTENTS.contains(&intent),
        field,
        format!("unknown intent `{intent}` (one of {})", INTENTS.join(", ")),
    )
}

fn socket_addr(field: &str, addr: &str) -> Result<(), ConfigError> {
    addr.parse::<std::net::SocketAddr>()
        .map(drop)
        .map_err(|e| ConfigError::field(field, format!("`{addr}`: {e}")))
}
