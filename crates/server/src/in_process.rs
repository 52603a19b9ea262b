//! The in-process door of a daemon: what a caller in the same process (the gateway of
//! `mangaassist up`) goes through instead of the daemon's gRPC port. It runs the same per-RPC
//! work as the gRPC stack in [`Daemon::serve`](crate::Daemon::serve) — the RPC span parented on
//! the caller's trace context, `rpc_server_*` metrics, injected faults and the deadline capped
//! by `mesh.max_rpc_seconds` — around a direct call of the daemon's handler, with no HTTP/2,
//! no protobuf encoding and no socket.
//!
//! Service authentication is the one gRPC layer left out: a caller in the same process holds
//! the daemon itself, so a token would prove nothing.

use std::{future::Future, panic::AssertUnwindSafe, time::Duration, time::Instant};

use futures::FutureExt;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::{
    FaultSwitch, ServeOptions,
    fault::{inject, mangaassist_method},
    rpc_span::{Transport, record, rpc_span},
};

/// One daemon's in-process door; cheap to clone.
#[derive(Clone, Debug)]
pub struct InProcess {
    daemon: &'static str,
    faults: FaultSwitch,
    max_rpc: Duration,
}

impl InProcess {
    /// The door of `daemon` (`retrieval`: the name fault rules and metric labels use), with the
    /// faults and deadline cap that daemon serves gRPC with.
    pub fn new(daemon: &'static str, opts: &ServeOptions) -> Self {
        Self {
            daemon,
            faults: opts.faults.clone(),
            max_rpc: opts.max_rpc,
        }
    }

    pub fn daemon(&self) -> &'static str {
        self.daemon
    }

    /// Calls `handler` with `req` as the daemon's gRPC server would for the RPC at `path`
    /// (`/mangaassist.v1.RetrievalService/Retrieve`).
    ///
    /// `deadline` is what the caller also put in `req` as `grpc-timeout`; like tonic's server,
    /// the handler gets at most `min(deadline, max_rpc)` (injected latency included) and is
    /// dropped when that passes. A server stream returned in time outlives that bound, as over
    /// gRPC: the daemon enforces the stream's deadline itself.
    pub async fn call<Req, Resp, F, Fut>(
        &self,
        path: &'static str,
        deadline: Duration,
        req: Request<Req>,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        F: FnOnce(Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let method = mangaassist_method(path).unwrap_or(path);
        let daemon = self.daemon;
        let span = rpc_span(daemon, path, method, req.metadata().as_ref());
        let fault = self.faults.for_rpc(daemon, method);
        let limit = deadline.min(self.max_rpc);
        let started = Instant::now();
        async move {
            let run = async move {
                if let Some(status) = inject(daemon, fault).await {
                    return Err(status);
                }
                handler(req).await
            };
            // Over gRPC a panicking handler takes down only its own stream task and the caller
            // gets an error; in process it would unwind through the caller's task instead.
            let run = AssertUnwindSafe(run).catch_unwind();
            let result = match tokio::time::timeout(limit, run).await {
                Ok(Ok(r)) => r,
                Ok(Err(_panic)) => {
                    tracing::error!(daemon, method, "rpc handler panicked");
                    Err(Status::internal(format!(
                        "{daemon} {method}: the handler panicked"
                    )))
                }
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "{daemon} {method}: deadline of {} ms exceeded",
                    limit.as_millis()
                ))),
            };
            let status = match &result {
                Ok(_) => "0".to_string(),
                Err(s) => (s.code() as i32).to_string(),
            };
            record(
                daemon,
                method.to_string(),
                status,
                started,
                Transport::InProcess,
            );
            result
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use mangaassist_config::FaultSpec;
    use tonic::{Code, Request, Response, Status};

    use super::InProcess;
    use crate::ServeOptions;

    const PATH: &str = "/mangaassist.v1.RetrievalService/Retrieve";

    fn door(faults: &[&str]) -> InProcess {
        let opts = ServeOptions::for_tests();
        opts.faults.set(
            faults
                .iter()
                .map(|f| f.parse::<FaultSpec>().unwrap())
                .collect(),
        );
        InProcess::new("retrieval", &opts)
    }

    async fn answer(req: Request<u32>) -> Result<Response<u32>, Status> {
        Ok(Response::new(req.into_inner() + 1))
    }

    #[tokio::test]
    async fn calls_the_handler() {
        let r = door(&[])
            .call(PATH, Duration::from_secs(1), Request::new(1), answer)
            .await
            .unwrap();
        assert_eq!(r.into_inner(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_fault_ends_at_the_deadline() {
        let e = door(&["retrieval=hang"])
            .call(PATH, Duration::from_millis(50), Request::new(1), answer)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::DeadlineExceeded);
    }

    #[tokio::test]
    async fn an_error_fault_answers_unavailable_without_calling_the_handler() {
        let e = door(&["retrieval.Retrieve=error:1.0"])
            .call(PATH, Duration::from_secs(1), Request::new(1), |_| async {
                Err::<Response<u32>, _>(Status::internal("the handler ran under an error fault"))
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
        // Other daemons' and methods' rules do not apply.
        door(&["intent=error:1.0", "retrieval.GetProducts=error:1.0"])
            .call(PATH, Duration::from_secs(1), Request::new(1), answer)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_panicking_handler_fails_its_call_not_the_caller() {
        let e = door(&[])
            .call(
                PATH,
                Duration::from_secs(1),
                Request::new(1),
                |r| async move {
                    if r.into_inner() == 1 {
                        panic!("handler bug");
                    }
                    Ok(Response::new(0u32))
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Internal);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_is_dropped_at_the_deadline() {
        let e = door(&[])
            .call(
                PATH,
                Duration::from_millis(20),
                Request::new(1),
                |_| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(Response::new(0u32))
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::DeadlineExceeded);
    }
}
