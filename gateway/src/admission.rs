//! What `/ws` and the OpenAI endpoint do alike before an answer runs: find out who is asking
//! (JWT from the Bearer header or `?token=`), take one message from that user's allowance,
//! and start the answer through its resume buffer on the gateway's answer tracker. Each
//! endpoint only words the refusals in its own protocol.

use std::{sync::Arc, time::Duration, time::SystemTime};

use axum::http::HeaderMap;
use mangaassist_auth::AuthError;
use mangaassist_redis::GcraLimiter;
use mangaassist_resilience::KeyedLimiter;
use mangaassist_resume::{BufferedFrame, ResumeError, ResumeStore, StreamKey};
use tokio_util::sync::CancellationToken;

use crate::{
    Gateway,
    pipeline::{Orchestrator, Query},
    protocol::{ErrorCode, ServerFrame},
    stream::{AnswerOutput, AnswerSink},
    ws::Shared,
};

/// Why a request that needs a token has no usable one.
#[derive(Debug)]
pub(crate) enum AuthRefusal {
    Missing,
    Invalid(AuthError),
    /// A token in the URL that lives longer than [`crate::URL_TOKEN_MAX_SECONDS`]: URLs end up
    /// in logs, proxies and browser history, so only a short-lived ticket may travel there.
    LongLivedInUrl,
}

impl Gateway {
    /// The verified token subject (the Bearer header wins over `?token=`), or `Ok(None)` when
    /// `gateway.auth.required` is off and the caller names the user itself. A token from the
    /// URL must expire within [`crate::URL_TOKEN_MAX_SECONDS`] (a `/ws-ticket`).
    pub(crate) fn verified_user(
        &self,
        headers: &HeaderMap,
        token_param: Option<&str>,
    ) -> Result<Option<String>, AuthRefusal> {
        let Some(key) = &self.auth else {
            return Ok(None);
        };
        let header = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(mangaassist_auth::bearer_token);
        let in_url = header.is_none();
        let token = header.or(token_param).ok_or(AuthRefusal::Missing)?;
        let now = SystemTime::now();
        let claims = key
            .verify(token, now, self.leeway)
            .map_err(AuthRefusal::Invalid)?;
        let now_secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if in_url && claims.exp.saturating_sub(now_secs) > crate::URL_TOKEN_MAX_SECONDS {
            return Err(AuthRefusal::LongLivedInUrl);
        }
        Ok(Some(claims.sub))
    }
}

/// Ends the resume buffer of an answer cut at the end of the shutdown grace period (its sink
/// is gone with it), so a client resuming it on another gateway hears so at once.
async fn interrupted(store: &dyn ResumeStore, key: &StreamKey) {
    metrics::counter!("streams_interrupted_total").increment(1);
    let frame = ServerFrame::error(
        Some(key.message_id.clone()),
        ErrorCode::StreamInterrupted,
        "the gateway shut down before the answer finished; ask again",
    );
    let terminal = BufferedFrame::Terminal {
        json: frame.to_json(),
    };
    if let Err(e) = store.append(key, terminal).await {
        tracing::debug!(error = %e, "could not mark the cut answer as interrupted");
    }
}

/// Each user's message allowance (`gateway.limits.user_messages_per_minute`).
pub enum UserLimits {
    /// Counted by this gateway alone.
    Local(KeyedLimiter),
    /// Counted in Redis for every gateway; `fallback` counts here while Redis cannot answer,
    /// so an outage neither refuses every message nor lifts the limit.
    Shared {
        redis: Arc<GcraLimiter>,
        fallback: KeyedLimiter,
    },
}

impl UserLimits {
    /// Spends one message of `user`'s allowance; `Err` says when to retry.
    pub(crate) async fn check(&self, user: &str) -> Result<(), Duration> {
        match self {
            UserLimits::Local(local) => local.check(user).map_err(|r| r.0),
            UserLimits::Shared { redis, fallback } => match redis.check(user).await {
                Ok(verdict) => verdict,
                Err(e) => {
                    metrics::counter!("rate_limit_backend_errors_total").increment(1);
                    tracing::warn!(error = %e, "shared rate limit unavailable; counting locally");
                    fallback.check(user).map_err(|r| r.0)
                }
            },
        }
    }
}

/// An answer whose resume buffer is open, ready to run.
pub(crate) struct OpenedAnswer {
    orchestrator: Arc<Orchestrator>,
    query: Query,
    sink: AnswerSink,
}

impl Shared {
    /// Takes one message from `user`'s per-minute allowance (shared by all of the user's
    /// connections and both endpoints); `Err` says when to retry.
    pub(crate) async fn admit(&self, user: &str) -> Result<(), Duration> {
        self.user_limits.check(user).await.inspect_err(|_| {
            metrics::counter!("rate_limited_total", "scope" => "user").increment(1);
        })
    }

    /// Opens the resume buffer of `query`'s answer, owned by its user. Fails only when the
    /// message id is already taken in the session ([`ResumeError::AlreadyExists`]).
    pub(crate) async fn open_answer(
        &self,
        query: Query,
        output: AnswerOutput,
    ) -> Result<OpenedAnswer, ResumeError> {
        let key = StreamKey {
            session_id: query.session_id.clone(),
            message_id: query.message_id.clone(),
        };
        let sink = AnswerSink::open(
            key,
            &query.user_id,
            self.resume.clone(),
            output,
            self.orchestrator.settings.stream.clone(),
        )
        .await?;
        Ok(OpenedAnswer {
            orchestrator: self.orchestrator.clone(),
            query,
            sink,
        })
    }
}

impl OpenedAnswer {
    /// Runs the answer on the answer tracker (shutdown waits for it); `then` runs once its
    /// terminal frame is written.
    pub(crate) fn spawn(
        self,
        shared: &Shared,
        cancel: CancellationToken,
        then: impl FnOnce() + Send + 'static,
    ) {
        let Self {
            orchestrator,
            query,
            sink,
        } = self;
        let key = sink.key().clone();
        let store = shared.resume.clone();
        let cut = shared.cut.clone();
        shared.answers.spawn(async move {
            tokio::select! {
                biased;
                () = orchestrator.handle(query, sink, cancel) => {}
                () = cut.cancelled() => interrupted(store.as_ref(), &key).await,
            }
            then();
        });
    }
}
