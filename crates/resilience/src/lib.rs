//! How the gateway protects itself and its users from slow or failing dependencies.
//!
//! * [`breaker`]: a per-dependency circuit breaker (closed → open → half-open) whose state drives
//!   the degradation ladder of seed 003 (FULL → NO_RAG → NO_INTENT → MINIMAL → CANNED): a stage
//!   whose circuit is open is skipped instead of waited for.
//! * [`layer`]: the same breaker as a tower [`Layer`](tower::Layer) over any service.
//! * [`limit`]: token buckets for the WebSocket limits of seeds 000/004 (100 messages/s per
//!   connection, 30 messages/min per user shared by all of that user's connections), with a
//!   memory-bounded per-key limiter.
//! * [`adaptive`]: sliding-window latency percentiles and the adaptive routing switch of seed 000
//!   scenario 1 (medium-complexity traffic goes to the fast model while the smart model's
//!   first-token p95 is above 1,500 ms).
//!
//! Every clock here is [`tokio::time::Instant`], so tests can drive time with
//! `#[tokio::test(start_paused = true)]`. The state machines take `now` explicitly; the methods
//! without a `now` parameter read the clock themselves.

pub mod adaptive;
pub mod breaker;
pub mod layer;
pub mod limit;

pub use adaptive::{AdaptiveConfig, AdaptiveRouter, LatencyWindow, RoutingSnapshot};
pub use breaker::{
    BreakerConfig, BreakerOpen, BreakerSnapshot, CircuitBreaker, CircuitState, Permit,
};
pub use layer::{CircuitBreakerLayer, CircuitBreakerService, CircuitError, ResponseFuture};
pub use limit::{KeyedLimiter, RetryAfter, TokenBucket};
