//! Clients of every MangaAssist daemon. Channels are built once and cloned (a tonic `Channel`
//! multiplexes calls over one HTTP/2 connection); every call carries a deadline that becomes
//! `grpc-timeout`, the caller's trace context and, when the mesh has a service secret, a
//! service token minted for the daemon being called.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use mangaassist_auth::ServiceTokens;
use mangaassist_config::MeshSettings;
use mangaassist_proto::v1 as pb;
use mangaassist_telemetry::TraceInterceptor;
use pb::{
    cache_service_client::CacheServiceClient, generation_service_client::GenerationServiceClient,
    intent_service_client::IntentServiceClient, memory_service_client::MemoryServiceClient,
    precompute_service_client::PrecomputeServiceClient,
    retrieval_service_client::RetrievalServiceClient,
};
use tonic::{
    Request, Status,
    service::interceptor::InterceptedService,
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

impl tonic::service::Interceptor for MeshInterceptor {
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
    Ok(ep
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(500))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .connect_lazy())
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

macro_rules! client {
    ($name:ident, $daemon:literal, $grpc:ident) => {
        #[derive(Clone)]
        pub struct $name {
            inner: $grpc<Traced>,
        }

        impl $name {
            /// A client that sends no service token (for a mesh without a service secret).
            pub fn new(channel: Channel) -> Self {
                Self::with_tokens(channel, None)
            }

            /// A client whose calls carry tokens from `tokens` (none when `None`).
            pub fn with_tokens(channel: Channel, tokens: Option<Arc<ServiceTokens>>) -> Self {
                Self {
                    inner: $grpc::with_interceptor(
                        channel,
                        MeshInterceptor {
                            audience: $daemon,
                            tokens,
                        },
                    ),
                }
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
        }
    };
}

client!(IntentClient, "intent", IntentServiceClient);
client!(RetrievalClient, "retrieval", RetrievalServiceClient);
client!(MemoryClient, "memory", MemoryServiceClient);
client!(CacheClient, "cache", CacheServiceClient);
client!(GenerationClient, "generation", GenerationServiceClient);
client!(PrecomputeClient, "precompute", PrecomputeServiceClient);

impl IntentClient {
    pub async fn classify(
        &self,
        req: pb::ClassifyRequest,
        deadline: Duration,
    ) -> Result<pb::ClassifyResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.classify(with_deadline(req, deadline)).await?.into_inner())
    }
}

impl RetrievalClient {
    pub async fn retrieve(
        &self,
        req: pb::RetrieveRequest,
        deadline: Duration,
    ) -> Result<pb::RetrieveResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.retrieve(with_deadline(req, deadline)).await?.into_inner())
    }

    pub async fn get_products(
        &self,
        req: pb::GetProductsRequest,
        deadline: Duration,
    ) -> Result<pb::GetProductsResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.get_products(with_deadline(req, deadline))
            .await?
            .into_inner())
    }
}

impl MemoryClient {
    /// Appends the turns of one exchange in one write: all or none.
    pub async fn append_turns(
        &self,
        req: pb::AppendTurnsRequest,
        deadline: Duration,
    ) -> Result<pb::AppendTurnResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.append_turns(with_deadline(req, deadline))
            .await?
            .into_inner())
    }

    pub async fn append_turn(
        &self,
        req: pb::AppendTurnRequest,
        deadline: Duration,
    ) -> Result<pb::AppendTurnResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.append_turn(with_deadline(req, deadline))
            .await?
            .into_inner())
    }

    pub async fn get_history(
        &self,
        req: pb::GetHistoryRequest,
        deadline: Duration,
    ) -> Result<pb::GetHistoryResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.get_history(with_deadline(req, deadline))
            .await?
            .into_inner())
    }

    pub async fn get_profile(
        &self,
        req: pb::GetProfileRequest,
        deadline: Duration,
    ) -> Result<pb::GetProfileResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.get_profile(with_deadline(req, deadline))
            .await?
            .into_inner())
    }

    pub async fn get_orders(
        &self,
        req: pb::GetOrdersRequest,
        deadline: Duration,
    ) -> Result<pb::GetOrdersResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.get_orders(with_deadline(req, deadline))
            .await?
            .into_inner())
    }
}

impl CacheClient {
    pub async fn lookup(
        &self,
        req: pb::LookupRequest,
        deadline: Duration,
    ) -> Result<pb::LookupResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.lookup(with_deadline(req, deadline)).await?.into_inner())
    }

    pub async fn put(
        &self,
        req: pb::PutRequest,
        deadline: Duration,
    ) -> Result<pb::PutResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.put(with_deadline(req, deadline)).await?.into_inner())
    }

    pub async fn invalidate_products(
        &self,
        req: pb::InvalidateProductsRequest,
        deadline: Duration,
    ) -> Result<pb::InvalidateProductsResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.invalidate_products(with_deadline(req, deadline))
            .await?
            .into_inner())
    }

    pub async fn stats(&self, deadline: Duration) -> Result<pb::StatsResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.stats(with_deadline(pb::StatsRequest {}, deadline))
            .await?
            .into_inner())
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
        let mut c = self.inner.clone();
        Ok(c.generate(with_deadline(req, deadline))
            .await?
            .into_inner()
            .boxed())
    }

    pub async fn list_prompts(
        &self,
        deadline: Duration,
    ) -> Result<pb::ListPromptsResponse, Status> {
        let mut c = self.inner.clone();
        Ok(
            c.list_prompts(with_deadline(pb::ListPromptsRequest {}, deadline))
                .await?
                .into_inner(),
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
        let mut c = self.inner.clone();
        Ok(c.put_prompt(with_deadline(req, deadline))
            .await?
            .into_inner())
    }

    /// Makes a registered version the active one for new streams.
    pub async fn activate_prompt(
        &self,
        req: pb::ActivatePromptRequest,
        deadline: Duration,
    ) -> Result<pb::PromptInfo, Status> {
        let mut c = self.inner.clone();
        Ok(c.activate_prompt(with_deadline(req, deadline))
            .await?
            .into_inner())
    }

    /// Re-activates the version active before the last activation; returns what new
    /// streams of that store now get (`FAILED_PRECONDITION` when there is nothing to roll
    /// back to).
    pub async fn rollback_prompt(
        &self,
        req: pb::RollbackPromptRequest,
        deadline: Duration,
    ) -> Result<pb::PromptInfo, Status> {
        let mut c = self.inner.clone();
        Ok(c.rollback_prompt(with_deadline(req, deadline))
            .await?
            .into_inner())
    }
}

impl PrecomputeClient {
    pub async fn list_jobs(&self, deadline: Duration) -> Result<pb::ListJobsResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.list_jobs(with_deadline(pb::ListJobsRequest {}, deadline))
            .await?
            .into_inner())
    }

    pub async fn run_job(
        &self,
        req: pb::RunJobRequest,
        deadline: Duration,
    ) -> Result<ProgressStream, Status> {
        let mut c = self.inner.clone();
        Ok(c.run_job(with_deadline(req, deadline))
            .await?
            .into_inner()
            .boxed())
    }

    pub async fn predict_follow_ups(
        &self,
        req: pb::PredictFollowUpsRequest,
        deadline: Duration,
    ) -> Result<pb::PredictFollowUpsResponse, Status> {
        let mut c = self.inner.clone();
        Ok(c.predict_follow_ups(with_deadline(req, deadline))
            .await?
            .into_inner())
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
            intent: IntentClient::connect_with(&mesh.intent.endpoint, t.clone())?,
            retrieval: RetrievalClient::connect_with(&mesh.retrieval.endpoint, t.clone())?,
            memory: MemoryClient::connect_with(&mesh.memory.endpoint, t.clone())?,
            cache: CacheClient::connect_with(&mesh.cache.endpoint, t.clone())?,
            generation: GenerationClient::connect_with(&mesh.generation.endpoint, t.clone())?,
            precompute: PrecomputeClient::connect_with(&mesh.precompute.endpoint, t)?,
        })
    }
}
