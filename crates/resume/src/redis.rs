//! [`ResumeStore`] on a shared Redis: any gateway sharing the `redis` section can resume a
//! stream another gateway produced.
//!
//! # Layout
//!
//! With `P = {redis.key_prefix}resume:` and `h` = the first 128 bits of
//! `sha256(len(session_id):session_id|message_id)` in hex:
//!
//! | key | type | content |
//! |-----|------|---------|
//! | `P{h}` | hash | `owner`, `n` (chunks so far), `bytes`, `term` (the terminal frame, once finished) |
//! | `P{h}:c` | list | chunk frames; the list position is the chunk index |
//! | `P{h}:w` | string | present while some reader is long-polling the stream |
//! | `Pnotify` | channel | publishes `h` when a stream with waiting readers gets a frame |
//!
//! Every write sets the keys' TTL: `ttl` after each write while streaming, `keep_after_done`
//! once the terminal frame is in, so Redis drops finished and abandoned streams by itself.
//! `max_streams` is not enforced here: Redis memory is bounded by those TTLs and by the
//! server's `maxmemory` policy (`volatile-ttl` evicts the streams closest to expiry).
//!
//! # Why a list and pub/sub, not `XREAD BLOCK`
//!
//! A blocked `XREAD` holds its connection until it returns, so each long-polling reader would
//! need a connection of its own (or stall every command pipelined behind it on a pooled one).
//! Instead each store keeps one subscriber connection on `Pnotify` and wakes its local readers
//! through in-process channels. Publishing is conditional: a reader that found nothing sets
//! `P{h}:w` in the same script that read the stream, and `append` publishes only while that
//! flag exists, so ordinary streaming with nobody resuming costs no pub/sub traffic at all.
//! Because the read and the flag are one atomic script and the local waiter is registered before
//! it runs, a frame appended at any moment either shows up in the read or wakes the reader. A
//! notification lost while the subscriber reconnects only delays the reader until its `wait`
//! runs out (and every local reader is woken on reconnect to re-read).
//!
//! # Atomicity
//!
//! `open`, `append` and reads are Lua scripts: the index check and the write of `append` are one
//! server-side step, so of two producers racing with the same chunk index exactly one wins and
//! the other gets `OutOfOrder`.

use std::{collections::HashMap, fmt::Write as _, sync::Arc, time::Duration};

use fred::prelude::{
    Client, ClientLike, Error as RedisError, EventInterface, HashesInterface, Pool,
    PubsubInterface, Value,
};
use mangaassist_config::RedisSettings;
use mangaassist_redis::{ConnectError, Connector, Script};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

use crate::{BufferedFrame, Replay, ResumeError, ResumeLimits, ResumeStore, StreamKey};

/// Charged per frame on top of its JSON, as in the in-memory store.
const FRAME_OVERHEAD_BYTES: usize = 32;
/// How much longer than the reader's remaining wait the "someone is waiting" flag lives, so a
/// slow round trip cannot let it lapse while the reader still waits.
const WAITER_FLAG_SLACK: Duration = Duration::from_secs(2);

/// KEYS: meta, chunks. ARGV: owner, ttl ms. Returns 1 if opened, 0 if the stream exists.
const LUA_OPEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
-- A chunk list may outlive its metadata by a few ms of lazy expiry: never inherit it.
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'n', 0, 'bytes', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// KEYS: meta, chunks, waiter flag. ARGV: kind ('c' chunk, 't' terminal), index, json, max
/// bytes, ttl ms, keep ms, channel, stream hash, overhead. Returns {code, expected}:
/// 0 ok, 1 not found, 2 finished, 3 out of order, 4 too large.
const LUA_APPEND: &str = r"
local m = redis.call('HMGET', KEYS[1], 'owner', 'term', 'n', 'bytes')
if not m[1] then return {1, 0} end
if m[2] then return {2, 0} end
local n = tonumber(m[3])
local bytes = tonumber(m[4]) + #ARGV[3] + tonumber(ARGV[9])
local ms
if ARGV[1] == 'c' then
  if tonumber(ARGV[2]) ~= n then return {3, n} end
  if bytes > tonumber(ARGV[4]) then return {4, 0} end
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('HSET', KEYS[1], 'n', n + 1, 'bytes', bytes)
  ms = ARGV[5]
else
  redis.call('HSET', KEYS[1], 'term', ARGV[3], 'bytes', bytes)
  ms = ARGV[6]
end
redis.call('PEXPIRE', KEYS[1], ms)
redis.call('PEXPIRE', KEYS[2], ms)
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return {0, 0}
";

/// KEYS: meta, chunks, waiter flag. ARGV: owner, first list index, flag ms (0 = no flag).
/// Returns {1} not found, {2} forbidden, {0, chunks} streaming, {0, chunks, terminal} finished.
const LUA_READ: &str = r"
local m = redis.call('HMGET', KEYS[1], 'owner', 'term')
if not m[1] then return {1} end
if m[1] ~= ARGV[1] then return {2} end
local chunks = redis.call('LRANGE', KEYS[2], ARGV[2], -1)
if m[2] then return {0, chunks, m[2]} end
local flag = tonumber(ARGV[3])
if #chunks == 0 and flag > 0 and redis.call('PTTL', KEYS[3]) < flag then
  redis.call('SET', KEYS[3], '1', 'PX', flag)
end
return {0, chunks}
";

/// Local readers waiting for a stream, by stream hash. The sender is bumped on each
/// notification; entries go when their last reader leaves.
type Waiters = Arc<Mutex<HashMap<String, watch::Sender<u64>>>>;

/// A reader's registration; dropping it (also when the read is cancelled) unregisters.
struct Waiting {
    waiters: Waiters,
    id: String,
    rx: Option<watch::Receiver<u64>>,
}

impl Waiting {
    fn new(waiters: &Waiters, id: &str) -> Self {
        let rx = waiters
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe();
        Self {
            waiters: waiters.clone(),
            id: id.to_string(),
            rx: Some(rx),
        }
    }

    async fn changed(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            // Err only if the sender is gone, which cannot happen while we hold a receiver.
            let _ = rx.changed().await;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        drop(self.rx.take());
        if map.get(&self.id).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(&self.id);
        }
    }
}

/// The Redis resume buffer. Cloning gives another handle on the same connections.
#[derive(Clone)]
pub struct RedisResumeStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    subscriber: Client,
    listener: JoinHandle<()>,
    prefix: String,
    channel: String,
    limits: ResumeLimits,
    waiters: Waiters,
    open: Script,
    append: Script,
    read: Script,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
        let (pool, subscriber) = (self.pool.clone(), self.subscriber.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = subscriber.quit().await;
                let _ = pool.quit().await;
            });
        }
    }
}

impl std::fmt::Debug for RedisResumeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisResumeStore")
            .field("prefix", &self.inner.prefix)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

fn connect_error(e: ConnectError) -> ResumeError {
    ResumeError::Backend(e.to_string())
}

fn backend(e: RedisError) -> ResumeError {
    ResumeError::Backend(format!("redis: {e}"))
}

fn millis(d: Duration) -> i64 {
    // PEXPIRE 0 would delete the key at once.
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn stream_hash(key: &StreamKey) -> String {
    let mut h = Sha256::new();
    h.update(key.session_id.len().to_string().as_bytes());
    h.update(b":");
    h.update(key.session_id.as_bytes());
    h.update(b"|");
    h.update(key.message_id.as_bytes());
    h.finalize()[..16]
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn text(v: Value, what: &str) -> Result<String, ResumeError> {
    v.into_string()
        .ok_or_else(|| ResumeError::Backend(format!("redis returned a non-text {what}")))
}

fn unexpected(script: &str, v: &Value) -> ResumeError {
    ResumeError::Backend(format!("redis {script} script returned {v:?}"))
}

impl RedisResumeStore {
    /// Connects a pool of `settings.pool_size` connections and one subscriber connection to
    /// `settings.url` (`timeout_ms` bounds connecting and every command; both reconnect in the
    /// background if Redis goes away) and loads the scripts.
    pub async fn connect(
        settings: &RedisSettings,
        limits: ResumeLimits,
    ) -> Result<Self, ResumeError> {
        let connector = Connector::new(settings).map_err(connect_error)?;
        let pool = connector.pool().await.map_err(connect_error)?;
        let subscriber = connector.client().await.map_err(connect_error)?;

        let prefix = format!("{}resume:", settings.key_prefix);
        let channel = format!("{prefix}notify");
        let waiters: Waiters = Arc::default();
        // Listen before subscribing so no message can slip between the two.
        #[allow(
            clippy::disallowed_methods,
            reason = "owned by the store's Inner, which aborts it when the store goes; it only wakes waiters and holds nothing to drain"
        )]
        let listener = tokio::spawn(listen(subscriber.clone(), channel.clone(), waiters.clone()));
        subscriber
            .subscribe(channel.as_str())
            .await
            .map_err(|e| connect_error(connector.unreachable(e)))?;
        let load = |e: RedisError| connect_error(connector.load_failed(e));
        Ok(Self {
            inner: Arc::new(Inner {
                open: Script::load(&pool, LUA_OPEN).await.map_err(load)?,
                append: Script::load(&pool, LUA_APPEND).await.map_err(load)?,
                read: Script::load(&pool, LUA_READ).await.map_err(load)?,
                pool,
                subscriber,
                listener,
                prefix,
                channel,
                limits,
                waiters,
            }),
        })
    }

    pub fn limits(&self) -> &ResumeLimits {
        &self.inner.limits
    }

    /// Readers of this store instance currently long-polling `key` (tests and diagnostics).
    pub fn waiting_readers(&self, key: &StreamKey) -> usize {
        self.inner
            .waiters
            .lock()
            .get(&stream_hash(key))
            .map_or(0, |tx| tx.receiver_count())
    }

    /// Meta, chunk list and waiter-flag keys of a stream (the scripts' KEYS), plus its hash.
    fn keys(&self, key: &StreamKey) -> (Vec<String>, String) {
        let h = stream_hash(key);
        let meta = format!("{}{h}", self.inner.prefix);
        let keys = vec![format!("{meta}:c"), format!("{meta}:w")];
        (std::iter::once(meta).chain(keys).collect(), h)
    }

    async fn read_once(
        &self,
        keys: Vec<String>,
        owner: &str,
        after: Option<u32>,
        flag: Duration,
    ) -> Result<Replay, ResumeError> {
        let start = after.map_or(0, |a| u64::from(a) + 1);
        let flag_ms = if flag.is_zero() { 0 } else { millis(flag) };
        let args = vec![
            Value::from(owner),
            Value::from(i64::try_from(start).unwrap_or(i64::MAX)),
            Value::from(flag_ms),
        ];
        let got = self
            .inner
            .read
            .call(&self.inner.pool, keys, args)
            .await
            .map_err(backend)?;
        let Value::Array(mut parts) = got else {
            return Err(unexpected("read", &got));
        };
        match parts.first().and_then(Value::as_i64) {
            Some(1) => return Err(ResumeError::NotFound),
            Some(2) => return Err(ResumeError::Forbidden),
            Some(0) if parts.len() >= 2 => {}
            _ => return Err(unexpected("read", &Value::Array(parts))),
        }
        let terminal = (parts.len() >= 3).then(|| parts.remove(2));
        let chunks = parts.remove(1).into_array();
        let mut frames = Vec::with_capacity(chunks.len() + 1);
        for (i, json) in chunks.into_iter().enumerate() {
            let index = u32::try_from(start + i as u64)
                .map_err(|_| ResumeError::Backend("chunk index beyond u32".into()))?;
            frames.push(BufferedFrame::Chunk {
                index,
                json: text(json, "chunk")?,
            });
        }
        let finished = terminal.is_some();
        if let Some(t) = terminal {
            frames.push(BufferedFrame::Terminal {
                json: text(t, "terminal frame")?,
            });
        }
        Ok(Replay { frames, finished })
    }
}

/// Forwards notifications to local readers; after a reconnect it subscribes again and wakes
/// every reader, since messages published meanwhile are lost.
async fn listen(subscriber: Client, channel: String, waiters: Waiters) {
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    let wake_all = |waiters: &Waiters| {
        for tx in waiters.lock().values() {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    };
    loop {
        tokio::select! {
            msg = messages.recv() => match msg {
                Ok(msg) => {
                    if &*msg.channel != channel.as_str() {
                        continue;
                    }
                    if let Some(id) = msg.value.as_str()
                        && let Some(tx) = waiters.lock().get(id.as_ref())
                    {
                        tx.send_modify(|v| *v = v.wrapping_add(1));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => wake_all(&waiters),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            r = reconnects.recv() => match r {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = subscriber.subscribe(channel.as_str()).await {
                        tracing::warn!(error = %e, "resume buffer: resubscribing to Redis failed");
                    }
                    wake_all(&waiters);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[async_trait::async_trait]
impl ResumeStore for RedisResumeStore {
    async fn open(&self, key: &StreamKey, owner: &str) -> Result<(), ResumeError> {
        let (mut keys, _) = self.keys(key);
        keys.truncate(2);
        let args = vec![
            Value::from(owner),
            Value::from(millis(self.inner.limits.ttl)),
        ];
        let got = self
            .inner
            .open
            .call(&self.inner.pool, keys, args)
            .await
            .map_err(backend)?;
        match got.as_i64() {
            Some(1) => Ok(()),
            Some(0) => Err(ResumeError::AlreadyExists),
            _ => Err(unexpected("open", &got)),
        }
    }

    async fn append(&self, key: &StreamKey, frame: BufferedFrame) -> Result<(), ResumeError> {
        let (keys, id) = self.keys(key);
        let limits = &self.inner.limits;
        let (kind, index, json) = match frame {
            BufferedFrame::Chunk { index, json } => ("c", i64::from(index), json),
            BufferedFrame::Terminal { json } => ("t", 0, json),
        };
        let args = vec![
            Value::from(kind),
            Value::from(index),
            Value::from(json),
            Value::from(i64::try_from(limits.max_bytes_per_stream).unwrap_or(i64::MAX)),
            Value::from(millis(limits.ttl)),
            Value::from(millis(limits.keep_after_done)),
            Value::from(self.inner.channel.as_str()),
            Value::from(id),
            Value::from(FRAME_OVERHEAD_BYTES as i64),
        ];
        let got = self
            .inner
            .append
            .call(&self.inner.pool, keys, args)
            .await
            .map_err(backend)?;
        let (code, expected) = match &got {
            Value::Array(v) if v.len() == 2 => (v[0].as_i64(), v[1].as_i64()),
            _ => (None, None),
        };
        match (code, expected) {
            (Some(0), _) => Ok(()),
            (Some(1), _) => Err(ResumeError::NotFound),
            (Some(2), _) => Err(ResumeError::Finished),
            (Some(3), Some(expected)) => Err(ResumeError::OutOfOrder {
                expected: u32::try_from(expected).map_err(|_| ResumeError::TooLarge)?,
                got: u32::try_from(index).unwrap_or(u32::MAX),
            }),
            (Some(4), _) => Err(ResumeError::TooLarge),
            _ => Err(unexpected("append", &got)),
        }
    }

    async fn read_after(
        &self,
        key: &StreamKey,
        owner: &str,
        after: Option<u32>,
        wait: Duration,
    ) -> Result<Replay, ResumeError> {
        let deadline = Instant::now() + wait;
        let (keys, id) = self.keys(key);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return self.read_once(keys, owner, after, Duration::ZERO).await;
            }
            // Registered before the read, so a notification for a frame appended right after
            // the read still finds us.
            let mut waiting = Waiting::new(&self.inner.waiters, &id);
            let replay = self
                .read_once(keys.clone(), owner, after, remaining + WAITER_FLAG_SLACK)
                .await?;
            if !replay.frames.is_empty() || replay.finished {
                return Ok(replay);
            }
            if tokio::time::timeout_at(deadline, waiting.changed())
                .await
                .is_err()
            {
                // One last look: the stream may have ended or expired meanwhile.
                return self.read_once(keys, owner, after, Duration::ZERO).await;
            }
        }
    }

    async fn owner(&self, key: &StreamKey) -> Result<Option<String>, ResumeError> {
        let (keys, _) = self.keys(key);
        let owner: Option<String> = self
            .inner
            .pool
            .hget(keys[0].as_str(), "owner")
            .await
            .map_err(backend)?;
        Ok(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_hashes_cannot_collide_across_fields() {
        assert_ne!(
            stream_hash(&StreamKey::new("a|b", "c")),
            stream_hash(&StreamKey::new("a", "b|c"))
        );
        assert_eq!(stream_hash(&StreamKey::new("s", "m")).len(), 32);
    }
}
