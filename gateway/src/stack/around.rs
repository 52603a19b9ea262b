//! The shape the trace and metrics layers share: something done around each stage call,
//! knowing which stage of which message it is. Each such layer implements [`Around`] and
//! gets its tower `Layer` and `Service` from here.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use super::Staged;
use crate::budget::{StageCtx, StageError};
use crate::degradation::Stage;

/// A stage call as the layers around it see it (the request itself stays opaque).
pub struct StageCall {
    pub ctx: StageCtx,
    pub stage: Stage,
    pub deadline: std::time::Duration,
}

/// Work wrapped around every call of a stage.
pub trait Around: Clone + Send + Sync + 'static {
    fn around<T: Send + 'static>(
        &self,
        call: StageCall,
        inner: BoxFuture<'static, Result<T, StageError>>,
    ) -> BoxFuture<'static, Result<T, StageError>>;
}

/// The tower layer of an [`Around`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AroundLayer<A>(pub A);

impl<S, A: Clone> Layer<S> for AroundLayer<A> {
    type Service = AroundService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            inner,
            around: self.0.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AroundService<S, A> {
    inner: S,
    around: A,
}

impl<S, A, R, T> Service<Staged<R>> for AroundService<S, A>
where
    S: Service<Staged<R>, Response = T, Error = StageError>,
    S::Future: Send + 'static,
    A: Around,
    T: Send + 'static,
{
    type Response = T;
    type Error = StageError;
    type Future = BoxFuture<'static, Result<T, StageError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Staged<R>) -> Self::Future {
        let call = StageCall {
            ctx: req.ctx.clone(),
            stage: req.stage,
            deadline: req.deadline,
        };
        let inner = Box::pin(self.inner.call(req));
        self.around.around(call, inner)
    }
}
