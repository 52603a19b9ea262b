//! The calls the gateway makes to the daemons, as a trait: [`MeshClients`] (gRPC) in
//! production, fakes in the pipeline's unit tests, so the pipeline can be tested without
//! starting the mesh or loading a model.

use std::time::Duration;

use futures::{FutureExt, StreamExt, future::BoxFuture};
use mangaassist_client::{GenerateStream, MeshClients};
use mangaassist_proto::v1 as pb;
use tonic::Status;

/// One call in flight. Owned (`'static`): stage calls run as their own tasks.
pub type MeshCall<T> = BoxFuture<'static, Result<T, Status>>;

/// Every call the gateway makes; `deadline` travels as the call's `grpc-timeout`.
pub trait Mesh: Send + Sync + 'static {
    fn classify(
        &self,
        req: pb::ClassifyRequest,
        deadline: Duration,
    ) -> MeshCall<pb::ClassifyResponse>;
    fn retrieve(
        &self,
        req: pb::RetrieveRequest,
        deadline: Duration,
    ) -> MeshCall<pb::RetrieveResponse>;
    fn get_history(
        &self,
        req: pb::GetHistoryRequest,
        deadline: Duration,
    ) -> MeshCall<pb::GetHistoryResponse>;
    fn get_profile(
        &self,
        req: pb::GetProfileRequest,
        deadline: Duration,
    ) -> MeshCall<pb::GetProfileResponse>;
    fn get_orders(
        &self,
        req: pb::GetOrdersRequest,
        deadline: Duration,
    ) -> MeshCall<pb::GetOrdersResponse>;
    fn lookup(&self, req: pb::LookupRequest, deadline: Duration) -> MeshCall<pb::LookupResponse>;
    fn put(&self, req: pb::PutRequest, deadline: Duration) -> MeshCall<pb::PutResponse>;
    /// Catalog products by id (a follow-up's subject).
    fn get_products(
        &self,
        req: pb::GetProductsRequest,
        deadline: Duration,
    ) -> MeshCall<pb::GetProductsResponse>;
    /// Starts a generation; `deadline` bounds the whole stream and dropping the stream
    /// cancels it.
    fn generate(&self, req: pb::GenerateRequest, deadline: Duration) -> MeshCall<GenerateStream>;
    /// Saves a question and its answer in one write: both or neither.
    fn append_turns(
        &self,
        req: pb::AppendTurnsRequest,
        deadline: Duration,
    ) -> MeshCall<pb::AppendTurnResponse>;
    fn predict_follow_ups(
        &self,
        req: pb::PredictFollowUpsRequest,
        deadline: Duration,
    ) -> MeshCall<pb::PredictFollowUpsResponse>;
    /// Products answers named, for the trending job.
    fn record_demand(
        &self,
        req: pb::RecordDemandRequest,
        deadline: Duration,
    ) -> MeshCall<pb::RecordDemandResponse>;
}

/// Each method clones its client (a cheap handle on a shared channel) into the call.
macro_rules! forward {
    ($($method:ident: $client:ident, $req:ty => $resp:ty;)*) => {
        impl Mesh for MeshClients {
            $(
                fn $method(&self, req: $req, deadline: Duration) -> MeshCall<$resp> {
                    let c = self.$client.clone();
                    async move { c.$method(req, deadline).await }.boxed()
                }
            )*
        }
    };
}

forward! {
    classify: intent, pb::ClassifyRequest => pb::ClassifyResponse;
    retrieve: retrieval, pb::RetrieveRequest => pb::RetrieveResponse;
    get_history: memory, pb::GetHistoryRequest => pb::GetHistoryResponse;
    get_profile: memory, pb::GetProfileRequest => pb::GetProfileResponse;
    get_orders: memory, pb::GetOrdersRequest => pb::GetOrdersResponse;
    lookup: cache, pb::LookupRequest => pb::LookupResponse;
    put: cache, pb::PutRequest => pb::PutResponse;
    get_products: retrieval, pb::GetProductsRequest => pb::GetProductsResponse;
    generate: generation, pb::GenerateRequest => GenerateStream;
    append_turns: memory, pb::AppendTurnsRequest => pb::AppendTurnResponse;
    predict_follow_ups: precompute, pb::PredictFollowUpsRequest => pb::PredictFollowUpsResponse;
    record_demand: precompute, pb::RecordDemandRequest => pb::RecordDemandResponse;
}

/// A generation whose model has answered: its first event (`None` when the stream ended
/// without one) and the rest of the stream. Reaching this is what the generation breaker
/// counts as success; failing or timing out before it, as failure.
pub struct GenerationStart {
    pub first: Option<pb::GenerateResponse>,
    pub rest: GenerateStream,
}

impl GenerationStart {
    pub async fn open(
        mesh: &dyn Mesh,
        req: pb::GenerateRequest,
        deadline: Duration,
    ) -> Result<Self, Status> {
        let mut rest = mesh.generate(req, deadline).await?;
        let first = rest.next().await.transpose()?;
        Ok(Self { first, rest })
    }
}
