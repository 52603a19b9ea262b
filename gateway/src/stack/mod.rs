//! One tower stack per dependency, built once when the gateway starts (seed 003: every call
//! runs under its breaker and its share of the budget). A call travels through
//!
//! trace (the stage's span) → metrics (latency, budget check, `done.stages`) → circuit
//! breaker → deadline → the mesh call
//!
//! Each layer lives in its own file; the breaker layer is `mangaassist_resilience`'s. The
//! message's clock and timings ride on the request ([`Staged`]), so the same stack serves
//! every message.

mod around;
mod deadline;
mod metrics;
mod trace;

use std::{future::Future, sync::Arc, time::Duration};

use mangaassist_config::BreakerSettings;
use mangaassist_proto::v1 as pb;
use mangaassist_resilience::{
    BreakerConfig, BreakerSnapshot, CircuitBreaker, CircuitBreakerLayer, CircuitError,
};
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneSyncService};

pub use deadline::DeadlineLayer;
pub use metrics::MetricsLayer;
pub use trace::TraceLayer;

use crate::{
    budget::{StageCtx, StageError},
    degradation::Stage,
    mesh::{GenerationStart, Mesh, MeshCall},
};

/// One call of one message's stage: what the layers need besides the request itself.
#[derive(Clone)]
pub struct Staged<R> {
    pub ctx: StageCtx,
    pub stage: Stage,
    /// The stage's deadline (enforced by [`DeadlineLayer`]; unary calls also send it as
    /// `grpc-timeout`).
    pub deadline: Duration,
    pub req: R,
}

/// A dependency's stack for one request type.
pub type StageService<R, T> = BoxCloneSyncService<Staged<R>, T, StageError>;

/// Runs `req` as `stage` of the message whose clock `ctx` carries.
pub async fn call<R, T>(
    svc: &StageService<R, T>,
    ctx: &StageCtx,
    stage: Stage,
    deadline: Duration,
    req: R,
) -> Result<T, StageError> {
    svc.clone()
        .oneshot(Staged {
            ctx: ctx.clone(),
            stage,
            deadline,
            req,
        })
        .await
}

/// One circuit breaker per dependency the critical path calls.
pub struct Breakers {
    pub intent: Arc<CircuitBreaker>,
    pub retrieval: Arc<CircuitBreaker>,
    pub memory: Arc<CircuitBreaker>,
    pub cache: Arc<CircuitBreaker>,
    pub generation: Arc<CircuitBreaker>,
    /// The shared resume buffer (Redis), when there is one ([`crate::resume_guard`]).
    pub resume_buffer: Arc<CircuitBreaker>,
}

impl Breakers {
    pub fn new(settings: &BreakerSettings) -> Self {
        let cfg = BreakerConfig {
            failure_threshold: settings.failure_threshold,
            open_for: Duration::from_millis(settings.open_ms),
            half_open_probes: settings.half_open_probes,
        };
        let b = |name: &str| Arc::new(CircuitBreaker::new(name, cfg.clone()));
        Self {
            intent: b("intent"),
            retrieval: b("retrieval"),
            memory: b("memory"),
            cache: b("cache"),
            generation: b("generation"),
            resume_buffer: b("resume_buffer"),
        }
    }

    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        [
            &self.intent,
            &self.retrieval,
            &self.memory,
            &self.cache,
            &self.generation,
            &self.resume_buffer,
        ]
        .iter()
        .map(|b| b.snapshot())
        .collect()
    }
}

/// The stacks of every critical-path call. History, profile and orders are three request
/// types of one dependency: three stacks around the one memory breaker.
#[derive(Clone)]
pub struct Stacks {
    pub intent: StageService<pb::ClassifyRequest, pb::ClassifyResponse>,
    pub retrieval: StageService<pb::RetrieveRequest, pb::RetrieveResponse>,
    pub history: StageService<pb::GetHistoryRequest, pb::GetHistoryResponse>,
    pub profile: StageService<pb::GetProfileRequest, pb::GetProfileResponse>,
    pub orders: StageService<pb::GetOrdersRequest, pb::GetOrdersResponse>,
    pub cache: StageService<pb::LookupRequest, pb::LookupResponse>,
    /// Judged at the model's first event (see [`GenerationStart`]): the breaker learns
    /// whether the model answers, not how long its answer is.
    pub generation: StageService<pb::GenerateRequest, GenerationStart>,
}

impl Stacks {
    pub fn new(mesh: &Arc<dyn Mesh>, breakers: &Breakers) -> Self {
        Self {
            intent: unary(&breakers.intent, mesh, |m, r, dl| m.classify(r, dl)),
            retrieval: unary(&breakers.retrieval, mesh, |m, r, dl| m.retrieve(r, dl)),
            history: unary(&breakers.memory, mesh, |m, r, dl| m.get_history(r, dl)),
            profile: unary(&breakers.memory, mesh, |m, r, dl| m.get_profile(r, dl)),
            orders: unary(&breakers.memory, mesh, |m, r, dl| m.get_orders(r, dl)),
            cache: unary(&breakers.cache, mesh, |m, r, dl| m.lookup(r, dl)),
            generation: stack(&breakers.generation, {
                let mesh = mesh.clone();
                move |s: Staged<pb::GenerateRequest>| {
                    let mesh = mesh.clone();
                    // The stream may run until the message's total deadline; the stack's
                    // deadline (the first-token one) bounds only the wait for the model.
                    let total = s.ctx.clock.total_left();
                    async move { GenerationStart::open(mesh.as_ref(), s.req, total).await }
                }
            }),
        }
    }
}

/// A unary mesh call under the stack; the stage deadline is also its `grpc-timeout`.
fn unary<R, T>(
    breaker: &Arc<CircuitBreaker>,
    mesh: &Arc<dyn Mesh>,
    call: fn(&dyn Mesh, R, Duration) -> MeshCall<T>,
) -> StageService<R, T>
where
    R: Send + Sync + Clone + 'static,
    T: Send + 'static,
{
    let mesh = mesh.clone();
    stack(breaker, move |s: Staged<R>| {
        call(mesh.as_ref(), s.req, s.deadline)
    })
}

/// The layers around `call`, in the order the module doc gives.
fn stack<R, T, C, F>(breaker: &Arc<CircuitBreaker>, call: C) -> StageService<R, T>
where
    R: Send + Sync + Clone + 'static,
    T: Send + 'static,
    C: Fn(Staged<R>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<T, tonic::Status>> + Send + 'static,
{
    let svc = ServiceBuilder::new()
        .layer(TraceLayer::default())
        .layer(MetricsLayer::default())
        .map_err(|e: CircuitError<StageError>| match e {
            CircuitError::Open(open) => StageError::Open(open),
            CircuitError::Inner(e) => e,
        })
        .layer(CircuitBreakerLayer::new(
            breaker.clone(),
            |e: &StageError| e.is_dependency_failure(),
        ))
        .layer(DeadlineLayer)
        .service_fn(call);
    BoxCloneSyncService::new(svc)
}
