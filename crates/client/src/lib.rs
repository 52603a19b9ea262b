//! Clients of every MangaAssist daemon. Channels are built once and cloned (a tonic `Channel`
//! multiplexes calls over one HTTP/2 connection); every call carries a deadline that becomes
//! `grpc-timeout`, the caller's trace context and, when the mesh has a service secret, a
//! service token minted for the daemon being called.
//!
//! A hostname endpoint (a headless Kubernetes Service) gets a channel balanced over every
//! address it resolves to, re-resolved every `mesh.resolve_interval_ms` ([`mesh_channel`]).
//!
//! A daemon running in the caller's process is called through the same client type without
//! a socket: [`IntentClient::in_process`] and its siblings hand the request straight to the
//! daemon's handler through its [`InProcess`] door, which applies the per-RPC layers the
//! daemon's gRPC server would (span, metrics, faults, deadline).

mod balance;

use std::sync::Arc;
use std::time::Duration;

pub use balance::{Dns, Listed, Resolve, balanced_channel, mesh_channel};

use futures::{StreamExt, stream::BoxStream};
use mangaassist_auth::ServiceTokens;
use mangaassist_config::MeshSettings;
use mangaassist_proto::v1 as pb;
use mangaassist_server::InProcess;
use mangaassist_telemetry::TraceInterceptor;
use pb::{
    cache_service_client::CacheServiceClient, generation_service_client::GenerationServiceClient,
    intent_service_client::IntentServiceClient, memory_service_client::MemoryServiceClient,
    precompute_service_client::PrecomputeServiceClient,
    retrieval_service_client::RetrievalServiceClient,
};
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad endpoint `{endpoint}` for {daemon}: {message}")]
    Endpoint {
        daemon: &'static str,
        endpoint: String,
        message: String,
    },
    #[error("mesh service secret: {0}")]
    ServiceSecret(#[from] mangaassist_auth::AuthError),
}

/// Adds the trace context and, when the mesh authenticates its calls, the service token for
/// the daemon this client talks to.
#[derive(Clone)]
pub struct MeshInterceptor {
    audience: &'static str,
    tokens: Option<Arc<ServiceTokens>>,
}

impl Interceptor for MeshInterceptor {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let mut req = TraceInterceptor.call(req)?;
        if let Some(tokens) = &self.tokens {
            let value = tokens
                .bearer(self.audience)
                .map_err(|e| Status::internal(format!("cannot mint a service token: {e}")))?;
            let value = value
                .parse()
                .map_err(|_| Status::internal("service token is not a valid header value"))?;
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

/// The minter for `caller`'s calls into the mesh, or `None` when `mesh.service_secret` (and
/// `mesh.service_secret_file`) are unset and daemons accept unauthenticated calls.
pub fn service_tokens(
    mesh: &MeshSettings,
    caller: &str,
) -> Result<Option<Arc<ServiceTokens>>, ClientError> {
    let Some(secret) =
        mangaassist_auth::resolve_service_secret(&mesh.service_secret, &mesh.service_secret_file)?
    else {
        return Ok(None);
    };
    Ok(Some(Arc::new(ServiceTokens::new(&secret, caller)?)))
}

type Traced = InterceptedService<Channel, MeshInterceptor>;

/// A lazily connected channel to `endpoint`: connects on first use and reconnects after
/// failures, so a daemon that starts later than its callers is picked up without a restart.
pub fn channel(daemon: &'static str, endpoint: &str) -> Result<Channel, ClientError> {
    let ep = Endpoint::from_shared(endpoint.to_string()).map_err(|e| ClientError::Endpoint {
        daemon,
        endpoint: endpoint.to_string(),
        message: e.to_string(),
    })?;
    Ok(balance::tune(ep).connect_lazy())
}

fn with_deadline<T>(msg: T, deadline: Duration) -> Request<T> {
    let mut req = Request::new(msg);
    req.set_timeout(deadline);
    req
}

/// Stream of generation events.
pub type GenerateStream = BoxStream<'static, Result<pb::GenerateResponse, Status>>;
/// Stream of precompute job progress.
pub type ProgressStream = BoxStream<'static, Result<pb::JobProgress, Status>>;

/// Where a client's calls go: the daemon's gRPC port, or the daemon itself in this process
/// through its [`InProcess`] door (same metadata, deadline, span, metrics and faults; no
/// HTTP/2, no encoding, no socket).
enum Transport<R, L: ?Sized> {
    Remote(R),
    Local(Arc<L>, InProcess),
}

impl<R: Clone, L: ?Sized> Clone for Transport<R, L> {
    fn clone(&self) -> Self {
        match self {
            Transport::Remote(r) => Transport::Remote(r.clone()),
            Transport::Local(l, door) => Transport::Local(l.clone(), door.clone()),
        }
    }
}

/// The request an in-process call hands the daemon: what the remote path would put on the
/// wire — `grpc-timeout` and the caller's trace context — minus the service token, which
/// proves nothing to a daemon in the same process.
fn local_request<T>(msg: T, deadline: Duration) -> Result<Request<T>, Status> {
    let (metadata, extensions, msg) = with_deadline(msg, deadline).into_parts();
    let (metadata, extensions, ()) = TraceInterceptor
        .call(Request::from_parts(metadata, extensions, ()))?
        .into_parts();
    Ok(Request::from_parts(metadata, extensions, msg))
}

macro_rules! client {
    ($name:ident, $daemon:literal, $grpc:ident, $local:ty) => {
        #[derive(Clone)]
        pub struct $name {
            inner: Transport<$grpc<Traced>, $local>,
        }

        impl $name {
            /// A client that sends no service token (for a mesh without a service secret).
            pub fn new(channel: Channel) -> Self {
                Self::with_tokens(channel, None)
            }

            /// A client whose calls carry tokens from `tokens` (none when `None`).
            pub fn with_tokens(channel: Channel, tokens: Option<Arc<ServiceTokens>>) -> Self {
                Self {
                    inner: Transport::Remote($grpc::with_interceptor(
                        channel,
                        MeshInterceptor {
                            audience: $daemon,
                            tokens,
                        },
                    )),
                }
            }

            /// A client that calls `daemon`, running in this process, through `door`.
            pub fn in_process(daemon: Arc<$local>, door: InProcess) -> Self {
                Self {
                    inner: Transport::Local(daemon, door),
                }
            }

            /// Whether calls stay in this process.
            pub fn is_in_process(&self) -> bool {
                matches!(self.inner, Transport::Local(..))
            }

            pub fn connect(endpoint: &str) -> Result<Self, ClientError> {
                Ok(Self::new(channel($daemon, endpoint)?))
            }

            pub fn connect_with(
                endpoint: &str,
                tokens: Option<Arc<ServiceTokens>>,
            ) -> Result<Self, ClientError> {
                Ok(Self::with_tokens(channel($daemon, endpoint)?, tokens))
            }

            /// A client of this daemon at its `mesh` endpoint, balanced over every address
            /// the endpoint's hostname resolves to (re-resolved every
            /// `mesh.resolve_interval_ms`; an IP endpoint keeps one channel).
            pub fn connect_mesh(
                mesh: &MeshSettings,
                tokens: Option<Arc<ServiceTokens>>,
            ) -> Result<Self, ClientError> {
                let endpoint = mesh
                    .daemons()
                    .into_iter()
                    .find(|(name, _)| *name == $daemon)
                    .map(|(_, addr)| addr.endpoint.as_str())
                    .unwrap_or_default();
                let interval = Duration::from_millis(mesh.resolve_interval_ms);
                Ok(Self::with_tokens(
                    mesh_channel($daemon, endpoint, interval)?,
                    tokens,
                ))
            }
        }
    };
}

/// One method of a client: `$method` on the tonic client or, in process, on the daemon.
/// `$post` turns the response body into what the method returns (streams are boxed).
macro_rules! call {
    ($self:ident, $service:literal, $Method:literal, $method:ident, $req:expr, $deadline:expr) => {
        match &$self.inner {
            Transport::Remote(c) => c
                .clone()
                .$method(with_deadline($req, $deadline))
                .await
                .map(tonic::Response::into_inner),
            Transport::Local(daemon, door) => door
                .call(
                    concat!("/mangaassist.v1.", $service, "/", $Method),
                    $deadline,
                    local_request($req, $deadline)?,
                    |r| daemon.$method(r),
                )
                .await
                .map(tonic::Response::into_inner),
        }
    };
}

use pb::{
    cache_service_server::CacheService, intent_service_server::IntentService,
    memory_service_server::MemoryService, retrieval_service_server::RetrievalService,
};

client!(
    IntentClient,
    "intent",
    IntentServiceClient,
    dyn IntentService
);
client!(
    RetrievalClient,
    "retrieval",
    RetrievalServiceClient,
    dyn RetrievalService
);
client!(
    MemoryClient,
    "memory",
    MemoryServiceClient,
    dyn MemoryService
);
client!(CacheClient, "cache", CacheServiceClient, dyn CacheService);
client!(
    GenerationClient,
    "generation",
    GenerationServiceClient,
    dyn LocalGeneration
);
client!(
    PrecomputeClient,
    "precompute",
    PrecomputeServiceClient,
    dyn LocalPrecompute
);

/// The generation daemon as an in-process client holds it: the generated service trait with
/// its stream type boxed, so one client type fits any implementation.
#[tonic::async_trait]
pub trait LocalGeneration: Send + Sync + 'static {
    async fn generate(
        &self,
        request: Request<pb::GenerateRequest>,
    ) -> Result<tonic::Response<GenerateStream>, Status>;
    async fn list_prompts(
        &self,
        request: Request<pb::ListPromptsRequest>,
    ) -> Result<tonic::Response<pb::ListPromptsResponse>, Status>;
    async fn put_prompt(
        &self,
        request: Request<pb::PutPromptRequest>,
    ) -> Result<tonic::Response<pb::PromptInfo>, Status>;
    async fn activate_prompt(
        &self,
        request: Request<pb::ActivatePromptRequest>,
    ) -> Result<tonic::Response<pb::PromptInfo>, Status>;
    async fn rollback_prompt(
        &self,
        request: Request<pb::RollbackPromptRequest>,
    ) -> Result<tonic::Response<pb::PromptInfo>, Status>;
}

#[tonic::async_trait]
impl<T: pb::generation_service_server::GenerationService> LocalGeneration for T {
    async fn generate(
        &self,
        request: Request<pb::GenerateRequest>,
    ) -> Result<tonic::Response<GenerateStream>, Status> {
        let r = pb::generation_service_server::GenerationService::generate(self, request).await?;
        Ok(r.map(StreamExt::boxed))
    }
    async fn list_prompts(
        &self,
        request: Request<pb::ListPromptsRequest>,
    ) -> Result<tonic::Response<pb::ListPromptsResponse>, Status> {
        pb::generation_service_server::GenerationService::list_prompts(self, request).await
    }
    async fn put_prompt(
        &self,
        request: Request<pb::PutPromptRequest>,
    ) -> Result<tonic::Response<pb::PromptInfo>, Status> {
        pb::generation_service_server::GenerationService::put_prompt(self, request).await
    }
    async fn activate_prompt(
        &self,
        request: Request<pb::ActivatePromptRequest>,
    ) -> Result<tonic::Response<pb::PromptInfo>, Status> {
        pb::generation_service_server::GenerationService::activate_prompt(self, request).await
    }
    async fn rollback_prompt(
        &self,
        request: Request<pb::RollbackPromptRequest>,
    ) -> Result<tonic::Response<pb::PromptInfo>, Status> {
        pb::generation_service_server::GenerationService::rollback_prompt(self, request).await
    }
}

/// The precompute daemon as an in-process client holds it (its progress stream boxed).
#[tonic::async_trait]
pub trait LocalPrecompute: Send + Sync + 'static {
    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<tonic::Response<pb::ListJobsResponse>, Status>;
    async fn run_job(
        &self,
        request: Request<pb::RunJobRequest>,
    ) -> Result<tonic::Response<ProgressStream>, Status>;
    async fn predict_follow_ups(
        &self,
        request: Request<pb::PredictFollowUpsRequest>,
    ) -> Result<tonic::Response<pb::PredictFollowUpsResponse>, Status>;
    async fn record_demand(
        &self,
        request: Request<pb::RecordDemandRequest>,
    ) -> Result<tonic::Response<pb::RecordDemandResponse>, Status>;
    async fn trending(
        &self,
        request: Request<pb::TrendingRequest>,
    ) -> Result<tonic::Response<pb::TrendingResponse>, Status>;
    async fn schedule_release(
        &self,
        request: Request<pb::ScheduleReleaseRequest>,
    ) -> Result<tonic::Response<pb::ReleaseInfo>, Status>;
    async fn list_releases(
        &self,
        request: Request<pb::ListReleasesRequest>,
    ) -> Result<tonic::Response<pb::ListReleasesResponse>, Status>;
}

#[tonic::async_trait]
impl<T: pb::precompute_service_server::PrecomputeService> LocalPrecompute for T {
    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<tonic::Response<pb::ListJobsResponse>, Status> {
        pb::precompute_service_server::PrecomputeService::list_jobs(self, request).await
    }
    async fn run_job(
        &self,
        request: Request<pb::RunJobRequest>,
    ) -> Result<tonic::Response<ProgressStream>, Status> {
        let r = pb::precompute_service_server::PrecomputeService::run_job(self, request).await?;
        Ok(r.map(StreamExt::boxed))
    }
    async fn predict_follow_ups(
        &self,
        request: Request<pb::PredictFollowUpsRequest>,
    ) -> Result<tonic::Response<pb::PredictFollowUpsResponse>, Status> {
        pb::precompute_service_server::PrecomputeService::predict_follow_ups(self, request).await
    }
    async fn record_demand(
        &self,
        request: Request<pb::RecordDemandRequest>,
    ) -> Result<tonic::Response<pb::RecordDemandResponse>, Status> {
        pb::precompute_service_server::PrecomputeService::record_demand(self, request).await
    }
    async fn trending(
        &self,
        request: Request<pb::TrendingRequest>,
    ) -> Result<tonic::Response<pb::TrendingResponse>, Status> {
        pb::precompute_service_server::PrecomputeService::trending(self, request).await
    }
    async fn schedule_release(
        &self,
        request: Request<pb::ScheduleReleaseRequest>,
    ) -> Result<tonic::Response<pb::ReleaseInfo>, Status> {
        pb::precompute_service_server::PrecomputeService::schedule_release(self, request).await
    }
    async fn list_releases(
        &self,
        request: Request<pb::ListReleasesRequest>,
    ) -> Result<tonic::Response<pb::ListReleasesResponse>, Status> {
        pb::precompute_service_server::PrecomputeService::list_releases(self, request).await
    }
}

impl IntentClient {
    pub async fn classify(
        &self,
        req: pb::ClassifyRequest,
        deadline: Duration,
    ) -> Result<pb::ClassifyResponse, Status> {
        call!(self, "IntentService", "Classify", classify, req, deadline)
    }
}

impl RetrievalClient {
    pub async fn retrieve(
        &self,
        req: pb::RetrieveRequest,
        deadline: Duration,
    ) -> Result<pb::RetrieveResponse, Status> {
        call!(
            self,
            "RetrievalService",
            "Retrieve",
            retrieve,
            req,
            deadline
        )
    }

    pub async fn get_products(
        &self,
        req: pb::GetProductsRequest,
        deadline: Duration,
    ) -> Result<pb::GetProductsResponse, Status> {
        call!(
            self,
            "RetrievalService",
            "GetProducts",
            get_products,
            req,
            deadline
        )
    }
}

impl MemoryClient {
    /// Appends the turns of one exchange in one write: all or none.
    pub async fn append_turns(
        &self,
        req: pb::AppendTurnsRequest,
        deadline: Duration,
    ) -> Result<pb::AppendTurnResponse, Status> {
        call!(
            self,
            "MemoryService",
            "AppendTurns",
            append_turns,
            req,
            deadline
        )
    }

    pub async fn append_turn(
        &self,
        req: pb::AppendTurnRequest,
        deadline: Duration,
    ) -> Result<pb::AppendTurnResponse, Status> {
        call!(
            self,
            "MemoryService",
            "AppendTurn",
            append_turn,
            req,
            deadline
        )
    }

    pub async fn get_history(
        &self,
        req: pb::GetHistoryRequest,
        deadline: Duration,
    ) -> Result<pb::GetHistoryResponse, Status> {
        call!(
            self,
            "MemoryService",
            "GetHistory",
            get_history,
            req,
            deadline
        )
    }

    pub async fn get_profile(
        &self,
        req: pb::GetProfileRequest,
        deadline: Duration,
    ) -> Result<pb::GetProfileResponse, Status> {
        call!(
            self,
            "MemoryService",
            "GetProfile",
            get_profile,
            req,
            deadline
        )
    }

    pub async fn get_orders(
        &self,
        req: pb::GetOrdersRequest,
        deadline: Duration,
    ) -> Result<pb::GetOrdersResponse, Status> {
        call!(
            self,
            "MemoryService",
            "GetOrders",
            get_orders,
            req,
            deadline
        )
    }
}

impl CacheClient {
    pub async fn lookup(
        &self,
        req: pb::LookupRequest,
        deadline: Duration,
    ) -> Result<pb::LookupResponse, Status> {
        call!(self, "CacheService", "Lookup", lookup, req, deadline)
    }

    pub async fn put(
        &self,
        req: pb::PutRequest,
        deadline: Duration,
    ) -> Result<pb::PutResponse, Status> {
        call!(self, "CacheService", "Put", put, req, deadline)
    }

    pub async fn invalidate_products(
        &self,
        req: pb::InvalidateProductsRequest,
        deadline: Duration,
    ) -> Result<pb::InvalidateProductsResponse, Status> {
        call!(
            self,
            "CacheService",
            "InvalidateProducts",
            invalidate_products,
            req,
            deadline
        )
    }

    pub async fn stats(&self, deadline: Duration) -> Result<pb::StatsResponse, Status> {
        call!(
            self,
            "CacheService",
            "Stats",
            stats,
            pb::StatsRequest {},
            deadline
        )
    }
}

impl GenerationClient {
    /// Starts a generation. `deadline` bounds the whole stream; the caller enforces the
    /// first-token and idle budgets on the returned stream. Dropping the stream cancels the
    /// RPC, and the generation daemon stops producing.
    pub async fn generate(
        &self,
        req: pb::GenerateRequest,
        deadline: Duration,
    ) -> Result<GenerateStream, Status> {
        match &self.inner {
            Transport::Remote(c) => Ok(c
                .clone()
                .generate(with_deadline(req, deadline))
                .await?
                .into_inner()
                .boxed()),
            Transport::Local(daemon, door) => door
                .call(
                    "/mangaassist.v1.GenerationService/Generate",
                    deadline,
                    local_request(req, deadline)?,
                    |r| daemon.generate(r),
                )
                .await
                .map(tonic::Response::into_inner),
        }
    }

    pub async fn list_prompts(
        &self,
        deadline: Duration,
    ) -> Result<pb::ListPromptsResponse, Status> {
        call!(
            self,
            "GenerationService",
            "ListPrompts",
            list_prompts,
            pb::ListPromptsRequest {},
            deadline
        )
    }

    /// Registers a prompt version (persisted by the daemon), activating it when
    /// `req.activate` is set. Re-sending identical text is a no-op; other text under an
    /// existing version fails with `ALREADY_EXISTS`.
    pub async fn put_prompt(
        &self,
        req: pb::PutPromptRequest,
        deadline: Duration,
    ) -> Result<pb::PromptInfo, Status> {
        call!(
            self,
            "GenerationService",
            "PutPrompt",
            put_prompt,
            req,
            deadline
        )
    }

    /// Makes a registered version the active one for new streams.
    pub async fn activate_prompt(
        &self,
        req: pb::ActivatePromptRequest,
        deadline: Duration,
    ) -> Result<pb::PromptInfo, Status> {
        call!(
            self,
            "GenerationService",
            "ActivatePrompt",
            activate_prompt,
            req,
            deadline
        )
    }

    /// Re-activates the version active before the last activation; returns what new
    /// streams of that store now get (`FAILED_PRECONDITION` when there is nothing to roll
    /// back to).
    pub async fn rollback_prompt(
        &self,
        req: pb::RollbackPromptRequest,
        deadline: Duration,
    ) -> Result<pb::PromptInfo, Status> {
        call!(
            self,
            "GenerationService",
            "RollbackPrompt",
            rollback_prompt,
            req,
            deadline
        )
    }
}

impl PrecomputeClient {
    pub async fn list_jobs(&self, deadline: Duration) -> Result<pb::ListJobsResponse, Status> {
        call!(
            self,
            "PrecomputeService",
            "ListJobs",
            list_jobs,
            pb::ListJobsRequest {},
            deadline
        )
    }

    pub async fn run_job(
        &self,
        req: pb::RunJobRequest,
        deadline: Duration,
    ) -> Result<ProgressStream, Status> {
        match &self.inner {
            Transport::Remote(c) => Ok(c
                .clone()
                .run_job(with_deadline(req, deadline))
                .await?
                .into_inner()
                .boxed()),
            Transport::Local(daemon, door) => door
                .call(
                    "/mangaassist.v1.PrecomputeService/RunJob",
                    deadline,
                    local_request(req, deadline)?,
                    |r| daemon.run_job(r),
                )
                .await
                .map(tonic::Response::into_inner),
        }
    }

    pub async fn predict_follow_ups(
        &self,
        req: pb::PredictFollowUpsRequest,
        deadline: Duration,
    ) -> Result<pb::PredictFollowUpsResponse, Status> {
        call!(
            self,
            "PrecomputeService",
            "PredictFollowUps",
            predict_follow_ups,
            req,
            deadline
        )
    }

    pub async fn record_demand(
        &self,
        req: pb::RecordDemandRequest,
        deadline: Duration,
    ) -> Result<pb::RecordDemandResponse, Status> {
        call!(
            self,
            "PrecomputeService",
            "RecordDemand",
            record_demand,
            req,
            deadline
        )
    }

    pub async fn trending(
        &self,
        req: pb::TrendingRequest,
        deadline: Duration,
    ) -> Result<pb::TrendingResponse, Status> {
        call!(
            self,
            "PrecomputeService",
            "Trending",
            trending,
            req,
            deadline
        )
    }

    pub async fn schedule_release(
        &self,
        req: pb::ScheduleReleaseRequest,
        deadline: Duration,
    ) -> Result<pb::ReleaseInfo, Status> {
        call!(
            self,
            "PrecomputeService",
            "ScheduleRelease",
            schedule_release,
            req,
            deadline
        )
    }

    pub async fn list_releases(
        &self,
        req: pb::ListReleasesRequest,
        deadline: Duration,
    ) -> Result<pb::ListReleasesResponse, Status> {
        call!(
            self,
            "PrecomputeService",
            "ListReleases",
            list_releases,
            req,
            deadline
        )
    }
}

/// One client per daemon, built from the mesh addresses.
#[derive(Clone)]
pub struct MeshClients {
    pub intent: IntentClient,
    pub retrieval: RetrievalClient,
    pub memory: MemoryClient,
    pub cache: CacheClient,
    pub generation: GenerationClient,
    pub precompute: PrecomputeClient,
}

impl MeshClients {
    /// The gateway's clients: their calls carry service tokens naming `gateway` when the mesh
    /// has a service secret.
    pub fn connect(mesh: &MeshSettings) -> Result<Self, ClientError> {
        Self::connect_as(mesh, "gateway")
    }

    /// Clients whose calls carry service tokens naming `caller`.
    pub fn connect_as(mesh: &MeshSettings, caller: &str) -> Result<Self, ClientError> {
        let t = service_tokens(mesh, caller)?;
        Ok(Self {
            intent: IntentClient::connect_mesh(mesh, t.clone())?,
            retrieval: RetrievalClient::connect_mesh(mesh, t.clone())?,
            memory: MemoryClient::connect_mesh(mesh, t.clone())?,
            cache: CacheClient::connect_mesh(mesh, t.clone())?,
            generation: GenerationClient::connect_mesh(mesh, t.clone())?,
            precompute: PrecomputeClient::connect_mesh(mesh, t)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::StreamExt;
    use mangaassist_proto::v1 as pb;
    use mangaassist_server::{InProcess, ServeOptions};
    use tonic::{Code, Request, Response, Status};

    use super::{GenerationClient, IntentClient, with_deadline};

    /// Remembers the `grpc-timeout` each call carried.
    #[derive(Default)]
    struct Intent(Mutex<Vec<Option<String>>>);

    #[tonic::async_trait]
    impl pb::intent_service_server::IntentService for Intent {
        async fn classify(
            &self,
            request: Request<pb::ClassifyRequest>,
        ) -> Result<Response<pb::ClassifyResponse>, Status> {
            let t = request
                .metadata()
                .get("grpc-timeout")
                .map(|v| v.to_str().unwrap().to_string());
            self.0.lock().unwrap().push(t);
            Ok(Response::new(pb::ClassifyResponse {
                confidence: 0.5,
                ..Default::default()
            }))
        }
    }

    fn door(daemon: &'static str, faults: &[&str]) -> InProcess {
        let opts = ServeOptions::for_tests();
        opts.faults
            .set(faults.iter().map(|f| f.parse().unwrap()).collect());
        InProcess::new(daemon, &opts)
    }

    #[tokio::test]
    async fn the_daemon_sees_the_deadline_as_over_grpc() {
        let daemon = Arc::new(Intent::default());
        let client = IntentClient::in_process(daemon.clone(), door("intent", &[]));
        assert!(client.is_in_process());
        let deadline = Duration::from_millis(250);
        let r = client
            .classify(pb::ClassifyRequest::default(), deadline)
            .await
            .unwrap();
        assert_eq!(r.confidence, 0.5);
        let wire = with_deadline((), deadline)
            .metadata()
            .get("grpc-timeout")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(wire.is_some());
        assert_eq!(*daemon.0.lock().unwrap(), vec![wire]);
    }

    #[tokio::test]
    async fn a_hang_fault_in_process_ends_at_the_callers_deadline() {
        let client = IntentClient::in_process(
            Arc::new(Intent::default()),
            door("intent", &["intent.Classify=hang"]),
        );
        let started = std::time::Instant::now();
        let e = client
            .classify(pb::ClassifyRequest::default(), Duration::from_millis(30))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::DeadlineExceeded);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// Streams `n` events, then ends.
    struct Generation(usize);

    #[tonic::async_trait]
    impl pb::generation_service_server::GenerationService for Generation {
        type GenerateStream =
            futures::stream::Iter<std::vec::IntoIter<Result<pb::GenerateResponse, Status>>>;

        async fn generate(
            &self,
            _request: Request<pb::GenerateRequest>,
        ) -> Result<Response<Self::GenerateStream>, Status> {
            let events = (0..self.0)
                .map(|_| Ok(pb::GenerateResponse::default()))
                .collect::<Vec<_>>();
            Ok(Response::new(futures::stream::iter(events)))
        }
        async fn list_prompts(
            &self,
            _request: Request<pb::ListPromptsRequest>,
        ) -> Result<Response<pb::ListPromptsResponse>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn put_prompt(
            &self,
            _request: Request<pb::PutPromptRequest>,
        ) -> Result<Response<pb::PromptInfo>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn activate_prompt(
            &self,
            _request: Request<pb::ActivatePromptRequest>,
        ) -> Result<Response<pb::PromptInfo>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn rollback_prompt(
            &self,
            _request: Request<pb::RollbackPromptRequest>,
        ) -> Result<Response<pb::PromptInfo>, Status> {
            Err(Status::unimplemented("test"))
        }
    }

    #[tokio::test]
    async fn a_server_stream_arrives_as_the_same_boxed_stream() {
        let client = GenerationClient::in_process(Arc::new(Generation(3)), door("generation", &[]));
        let events: Vec<_> = client
            .generate(pb::GenerateRequest::default(), Duration::from_secs(1))
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(events.len(), 3);
        let e = GenerationClient::in_process(
            Arc::new(Generation(3)),
            door("generation", &["generation=error:1.0"]),
        )
        .generate(pb::GenerateRequest::default(), Duration::from_secs(1))
        .await
        .err()
        .unwrap();
        assert_eq!(e.code(), Code::Unavailable);
    }
}

/// `InventoryService` on the retrieval daemon: operators' changes (admin-scoped tokens when
/// the mesh has a service secret) and the change feed the other daemons follow. Always
/// remote: a consumer in the retrieval daemon's process follows its inventory directly.
#[derive(Clone)]
pub struct InventoryClient {
    inner: pb::inventory_service_client::InventoryServiceClient<Traced>,
}

impl InventoryClient {
    pub fn with_tokens(channel: Channel, tokens: Option<Arc<ServiceTokens>>) -> Self {
        Self {
            inner: pb::inventory_service_client::InventoryServiceClient::with_interceptor(
                channel,
                MeshInterceptor {
                    audience: "retrieval",
                    tokens,
                },
            ),
        }
    }

    pub fn connect_with(
        endpoint: &str,
        tokens: Option<Arc<ServiceTokens>>,
    ) -> Result<Self, ClientError> {
        Ok(Self::with_tokens(channel("retrieval", endpoint)?, tokens))
    }

    /// A client of the retrieval daemon at its `mesh` endpoint (balanced like the others).
    pub fn connect_mesh(
        mesh: &MeshSettings,
        tokens: Option<Arc<ServiceTokens>>,
    ) -> Result<Self, ClientError> {
        let interval = Duration::from_millis(mesh.resolve_interval_ms);
        Ok(Self::with_tokens(
            mesh_channel("retrieval", &mesh.retrieval.endpoint, interval)?,
            tokens,
        ))
    }

    pub async fn set_stock(
        &self,
        req: pb::SetStockRequest,
        deadline: Duration,
    ) -> Result<pb::SetStockResponse, Status> {
        self.inner
            .clone()
            .set_stock(with_deadline(req, deadline))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn get_stock(
        &self,
        req: pb::GetStockRequest,
        deadline: Duration,
    ) -> Result<pb::GetStockResponse, Status> {
        self.inner
            .clone()
            .get_stock(with_deadline(req, deadline))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn set_flash_sale(
        &self,
        req: pb::SetFlashSaleRequest,
        deadline: Duration,
    ) -> Result<pb::SetFlashSaleResponse, Status> {
        self.inner
            .clone()
            .set_flash_sale(with_deadline(req, deadline))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The feed source for [`mangaassist_inventory::follow`]: each (re)connection calls
    /// `Watch` with the last change seen. No deadline: the stream lives as long as the
    /// daemon, and the follower reconnects when it ends.
    pub fn feed(&self) -> mangaassist_inventory::FeedSource {
        let client = self.inner.clone();
        mangaassist_inventory::FeedSource::Remote(Arc::new(move |after_seq| {
            let mut c = client.clone();
            Box::pin(async move {
                let stream = c.watch(pb::WatchRequest { after_seq }).await?.into_inner();
                Ok(stream.boxed())
            })
        }))
    }
}
