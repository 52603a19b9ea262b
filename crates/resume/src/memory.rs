//! In-process [`ResumeStore`]: one map behind a mutex, a `watch` channel per stream to wake
//! long-polling readers, and two orderings (finished / still streaming) for cheap expiry and
//! eviction.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{sync::watch, time::Instant};

use crate::{BufferedFrame, Replay, ResumeError, ResumeLimits, ResumeStore, StreamKey};

/// Charged per frame on top of its JSON so a flood of empty frames still hits the size cap.
const FRAME_OVERHEAD_BYTES: usize = 32;

/// Position in an expiry/eviction ordering: time of the last write, then a tie-breaking sequence.
type Stamp = (Instant, u64);

/// The in-memory resume buffer. Cloning gives another handle to the same buffer.
#[derive(Clone)]
pub struct InMemoryResumeStore {
    inner: Arc<Inner>,
}

struct Inner {
    limits: ResumeLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    streams: HashMap<StreamKey, Entry>,
    /// Unfinished streams by last write: the front is the first to exceed the TTL.
    live: BTreeMap<Stamp, StreamKey>,
    /// Finished streams by finish time: the front is the first to expire.
    done: BTreeMap<Stamp, StreamKey>,
    seq: u64,
    /// Sum of every entry's `bytes`, held under `max_total_bytes`.
    bytes: usize,
}

struct Entry {
    owner: String,
    chunks: Vec<String>,
    terminal: Option<String>,
    bytes: usize,
    stamp: Stamp,
    /// Bumped on every append; dropping it (removal) wakes readers so they see NotFound.
    version: watch::Sender<u64>,
}

#[derive(Clone, Copy)]
enum Reason {
    Expired,
    Capacity,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Expired => "expired",
            Reason::Capacity => "capacity",
        }
    }
}

impl InMemoryResumeStore {
    pub fn new(limits: ResumeLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn limits(&self) -> &ResumeLimits {
        &self.inner.limits
    }

    /// Streams currently held (including expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.inner.state.lock().streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged to the streams currently held (what `max_total_bytes` bounds).
    pub fn bytes(&self) -> usize {
        self.inner.state.lock().bytes
    }

    /// Drops every expired stream; returns how many. Expiry also happens lazily on access, so
    /// calling this periodically only bounds the memory held by abandoned streams.
    pub fn sweep(&self) -> usize {
        let mut state = self.inner.state.lock();
        let removed = self.sweep_locked(&mut state, Instant::now());
        publish_len(&state);
        removed
    }

    /// Readers currently long-polling `key` (for tests and diagnostics).
    pub fn waiting_readers(&self, key: &StreamKey) -> usize {
        self.inner
            .state
            .lock()
            .streams
            .get(key)
            .map_or(0, |e| e.version.receiver_count())
    }

    fn is_expired(&self, entry: &Entry, now: Instant) -> bool {
        let idle = now.saturating_duration_since(entry.stamp.0);
        let limits = &self.inner.limits;
        if entry.terminal.is_some() {
            idle >= limits.keep_after_done.min(limits.ttl)
        } else {
            idle >= limits.ttl
        }
    }

    fn remove_locked(&self, state: &mut State, key: &StreamKey, reason: Reason) {
        if let Some(entry) = state.streams.remove(key) {
            state.bytes = state.bytes.saturating_sub(entry.bytes);
            state.live.remove(&entry.stamp);
            state.done.remove(&entry.stamp);
            metrics::counter!("resume_evictions_total", "reason" => reason.label()).increment(1);
        }
    }

    fn sweep_locked(&self, state: &mut State, now: Instant) -> usize {
        let mut removed = 0;
        // Both orderings are sorted by the instant expiry is measured from, so only their
        // expired fronts need looking at.
        loop {
            let front = [state.done.first_key_value(), state.live.first_key_value()]
                .into_iter()
                .flatten()
                .map(|(_, key)| key)
                .find(|key| {
                    state
                        .streams
                        .get(*key)
                        .is_some_and(|e| self.is_expired(e, now))
                })
                .cloned();
            match front {
                Some(key) => {
                    self.remove_locked(state, &key, Reason::Expired);
                    removed += 1;
                }
                None => return removed,
            }
        }
    }

    /// Evicts whole streams until the buffer holds at most `max_total_bytes`: finished ones
    /// first (most likely read to the end already), then the least recently written. `keep`,
    /// the stream being written, is never the victim, so an answer in flight is not cut off
    /// by its own frame.
    fn evict_to_fit(&self, state: &mut State, keep: &StreamKey) {
        let max = self.inner.limits.max_total_bytes;
        while state.bytes > max {
            let victim = state
                .done
                .values()
                .chain(state.live.values())
                .find(|k| *k != keep)
                .cloned();
            match victim {
                Some(victim) => self.remove_locked(state, &victim, Reason::Capacity),
                None => return,
            }
        }
    }

    /// The live entry for `key`, after dropping it if expired.
    fn get_live<'a>(
        &self,
        state: &'a mut State,
        key: &StreamKey,
        now: Instant,
    ) -> Result<&'a mut Entry, ResumeError> {
        let expired = match state.streams.get(key) {
            None => return Err(ResumeError::NotFound),
            Some(entry) => self.is_expired(entry, now),
        };
        if expired {
            self.remove_locked(state, key, Reason::Expired);
            publish_len(state);
            return Err(ResumeError::NotFound);
        }
        state.streams.get_mut(key).ok_or(ResumeError::NotFound)
    }

    fn snapshot(entry: &Entry, after: Option<u32>) -> Replay {
        let start = after.map_or(0, |a| (a as usize).saturating_add(1));
        let mut frames: Vec<BufferedFrame> = entry
            .chunks
            .iter()
            .enumerate()
            .skip(start)
            .map(|(i, json)| BufferedFrame::Chunk {
                // Indices are checked to fit u32 on append.
                index: i as u32,
                json: json.clone(),
            })
            .collect();
        if let Some(json) = &entry.terminal {
            frames.push(BufferedFrame::Terminal { json: json.clone() });
        }
        Replay {
            frames,
            finished: entry.terminal.is_some(),
        }
    }
}

fn publish_len(state: &State) {
    metrics::gauge!("resume_buffer_streams").set(state.streams.len() as f64);
    metrics::gauge!("resume_buffer_bytes").set(state.bytes as f64);
}

#[async_trait::async_trait]
impl ResumeStore for InMemoryResumeStore {
    async fn open(&self, key: &StreamKey, owner: &str) -> Result<(), ResumeError> {
        let now = Instant::now();
        let mut guard = self.inner.state.lock();
        let state = &mut *guard;
        if let Some(existing) = state.streams.get(key) {
            if !self.is_expired(existing, now) {
                return Err(ResumeError::AlreadyExists);
            }
            self.remove_locked(state, key, Reason::Expired);
        }
        // Expiring on every open (not only when full) keeps the buffer to what the TTLs
        // allow without a background task: it costs nothing when no front has expired.
        self.sweep_locked(state, now);
        let max_streams = self.inner.limits.max_streams.max(1);
        while state.streams.len() >= max_streams {
            // A finished answer was most likely already read to the end; a stream still being
            // written is probably someone's answer in flight.
            let victim = state
                .done
                .first_key_value()
                .or_else(|| state.live.first_key_value())
                .map(|(_, k)| k.clone());
            match victim {
                Some(victim) => self.remove_locked(state, &victim, Reason::Capacity),
                None => break,
            }
        }
        state.seq += 1;
        let stamp = (now, state.seq);
        state.live.insert(stamp, key.clone());
        state.streams.insert(
            key.clone(),
            Entry {
                owner: owner.to_string(),
                chunks: Vec::new(),
                terminal: None,
                bytes: 0,
                stamp,
                version: watch::Sender::new(0),
            },
        );
        publish_len(state);
        Ok(())
    }

    async fn append(&self, key: &StreamKey, frame: BufferedFrame) -> Result<(), ResumeError> {
        let now = Instant::now();
        let max_bytes = self.inner.limits.max_bytes_per_stream;
        let mut guard = self.inner.state.lock();
        let state = &mut *guard;
        let entry = self.get_live(state, key, now)?;
        if entry.terminal.is_some() {
            return Err(ResumeError::Finished);
        }
        let before = entry.bytes;
        let finished = match frame {
            BufferedFrame::Chunk { index, json } => {
                let expected =
                    u32::try_from(entry.chunks.len()).map_err(|_| ResumeError::TooLarge)?;
                if index != expected {
                    return Err(ResumeError::OutOfOrder {
                        expected,
                        got: index,
                    });
                }
                let bytes = entry.bytes + json.len() + FRAME_OVERHEAD_BYTES;
                if bytes > max_bytes {
                    return Err(ResumeError::TooLarge);
                }
                entry.bytes = bytes;
                entry.chunks.push(json);
                false
            }
            BufferedFrame::Terminal { json } => {
                entry.bytes += json.len() + FRAME_OVERHEAD_BYTES;
                entry.terminal = Some(json);
                true
            }
        };
        let added = entry.bytes - before;
        let old = entry.stamp;
        entry.version.send_modify(|v| *v = v.wrapping_add(1));
        state.seq += 1;
        let stamp = (now, state.seq);
        if let Some(entry) = state.streams.get_mut(key) {
            entry.stamp = stamp;
        }
        state.live.remove(&old);
        if finished {
            state.done.insert(stamp, key.clone());
        } else {
            state.live.insert(stamp, key.clone());
        }
        state.bytes += added;
        if state.bytes > self.inner.limits.max_total_bytes {
            self.evict_to_fit(state, key);
            publish_len(state);
        }
        Ok(())
    }

    async fn read_after(
        &self,
        key: &StreamKey,
        owner: &str,
        after: Option<u32>,
        wait: Duration,
    ) -> Result<Replay, ResumeError> {
        let deadline = Instant::now() + wait;
        loop {
            let mut changed = {
                let mut guard = self.inner.state.lock();
                let entry = self.get_live(&mut guard, key, Instant::now())?;
                if entry.owner != owner {
                    return Err(ResumeError::Forbidden);
                }
                let replay = Self::snapshot(entry, after);
                if !replay.frames.is_empty() || replay.finished || Instant::now() >= deadline {
                    return Ok(replay);
                }
                // Subscribing under the lock marks the current version as seen, so an append
                // that lands before we start waiting still wakes us.
                entry.version.subscribe()
            };
            // Ok(Err) means the stream was removed, Err means the wait ran out: either way the
            // next pass reports the outcome.
            let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
        }
    }

    async fn owner(&self, key: &StreamKey) -> Result<Option<String>, ResumeError> {
        let mut guard = self.inner.state.lock();
        match self.get_live(&mut guard, key, Instant::now()) {
            Ok(entry) => Ok(Some(entry.owner.clone())),
            Err(ResumeError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    #![allow(
        clippy::disallowed_methods,
        reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
    )]

    use super::*;
    use crate::replay_stream;
    use futures::StreamExt;

    fn key(m: &str) -> StreamKey {
        StreamKey::new("s1", m)
    }

    fn limits() -> ResumeLimits {
        ResumeLimits::default()
    }

    async fn chunk(store: &InMemoryResumeStore, k: &StreamKey, i: u32) {
        store
            .append(k, BufferedFrame::chunk(i, format!("c{i}")))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_wakes_as_soon_as_a_frame_is_appended() {
        let store = InMemoryResumeStore::new(limits());
        let k = key("m1");
        store.open(&k, "alice").await.unwrap();
        chunk(&store, &k, 0).await;
        let start = Instant::now();
        let reader = {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                store
                    .read_after(&k, "alice", Some(0), Duration::from_secs(60))
                    .await
            })
        };
        while store.waiting_readers(&k) == 0 {
            tokio::task::yield_now().await;
        }
        chunk(&store, &k, 1).await;
        let replay = reader.await.unwrap().unwrap();
        assert_eq!(replay.frames, vec![BufferedFrame::chunk(1, "c1")]);
        assert!(!replay.finished);
        // With paused time the clock only moves when every task is idle, so any wait until the
        // 60 s deadline would show here.
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_returns_empty_after_wait() {
        let store = InMemoryResumeStore::new(limits());
        let k = key("m1");
        store.open(&k, "alice").await.unwrap();
        let start = Instant::now();
        let replay = store
            .read_after(&k, "alice", None, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(replay, Replay::default());
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn finished_stream_expires_after_keep_after_done() {
        let store = InMemoryResumeStore::new(limits());
        let k = key("m1");
        store.open(&k, "alice").await.unwrap();
        chunk(&store, &k, 0).await;
        store
            .append(&k, BufferedFrame::terminal("d"))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        let replay = store
            .read_after(&k, "alice", None, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(replay.frames.len(), 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            store.read_after(&k, "alice", None, Duration::ZERO).await,
            Err(ResumeError::NotFound)
        );
        assert_eq!(store.owner(&k).await.unwrap(), None);
        // The key is free again.
        store.open(&k, "bob").await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn unfinished_stream_expires_ttl_after_last_write() {
        let store = InMemoryResumeStore::new(limits());
        let k = key("m1");
        store.open(&k, "alice").await.unwrap();
        tokio::time::advance(Duration::from_secs(119)).await;
        chunk(&store, &k, 0).await;
        tokio::time::advance(Duration::from_secs(119)).await;
        assert_eq!(store.owner(&k).await.unwrap().as_deref(), Some("alice"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.owner(&k).await.unwrap(), None);
        assert_eq!(
            store.append(&k, BufferedFrame::chunk(1, "late")).await,
            Err(ResumeError::NotFound)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sweep_drops_expired_streams() {
        let store = InMemoryResumeStore::new(limits());
        for m in ["a", "b", "c"] {
            store.open(&key(m), "alice").await.unwrap();
        }
        store
            .append(&key("b"), BufferedFrame::terminal("d"))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        chunk(&store, &key("c"), 0).await;
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(store.sweep(), 1, "only the finished stream is 60 s old");
        assert_eq!(store.len(), 2);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(store.sweep(), 1, "a was last written 120 s ago");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(store.sweep(), 1, "c was last written 120 s ago");
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_prefers_finished_then_least_recently_written() {
        let store = InMemoryResumeStore::new(ResumeLimits {
            max_streams: 3,
            ..limits()
        });
        for m in ["a", "b", "c"] {
            store.open(&key(m), "alice").await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        store
            .append(&key("b"), BufferedFrame::terminal("d"))
            .await
            .unwrap();
        store.open(&key("d"), "alice").await.unwrap();
        assert_eq!(store.owner(&key("b")).await.unwrap(), None);
        assert_eq!(store.len(), 3);
        tokio::time::advance(Duration::from_secs(1)).await;
        store.open(&key("e"), "alice").await.unwrap();
        assert_eq!(store.owner(&key("a")).await.unwrap(), None);
        // c is now older than d and e, but writing to it makes d the least recently written.
        tokio::time::advance(Duration::from_secs(1)).await;
        chunk(&store, &key("c"), 0).await;
        store.open(&key("f"), "alice").await.unwrap();
        assert_eq!(store.owner(&key("d")).await.unwrap(), None);
        for m in ["c", "e", "f"] {
            assert!(store.owner(&key(m)).await.unwrap().is_some(), "{m}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_wakes_a_waiting_reader_with_not_found() {
        let store = InMemoryResumeStore::new(ResumeLimits {
            max_streams: 1,
            ..limits()
        });
        let k = key("a");
        store.open(&k, "alice").await.unwrap();
        let start = Instant::now();
        let reader = {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                store
                    .read_after(&k, "alice", None, Duration::from_secs(60))
                    .await
            })
        };
        while store.waiting_readers(&k) == 0 {
            tokio::task::yield_now().await;
        }
        store.open(&key("b"), "alice").await.unwrap();
        assert_eq!(reader.await.unwrap(), Err(ResumeError::NotFound));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn replay_stream_ends_with_not_found_when_the_producer_vanishes() {
        let store = InMemoryResumeStore::new(limits());
        let k = key("m1");
        store.open(&k, "alice").await.unwrap();
        chunk(&store, &k, 0).await;
        chunk(&store, &k, 1).await;
        let start = Instant::now();
        let got: Vec<_> = replay_stream(
            Arc::new(store.clone()),
            k,
            "alice".into(),
            None,
            Duration::from_secs(10),
        )
        .collect()
        .await;
        assert_eq!(
            got,
            vec![
                Ok(BufferedFrame::chunk(0, "c0")),
                Ok(BufferedFrame::chunk(1, "c1")),
                Err(ResumeError::NotFound)
            ]
        );
        assert!(start.elapsed() >= Duration::from_secs(120));
    }

    /// Issue 14: nothing called `sweep`, so a busy gateway held every answer of the last
    /// minutes (14,271 streams after 4 minutes) although none was resumable after 120 s.
    #[tokio::test(start_paused = true)]
    async fn expired_answers_go_as_new_ones_open_without_a_sweep_call() {
        let store = InMemoryResumeStore::new(limits());
        for i in 0..1_000 {
            let k = key(&format!("m{i}"));
            store.open(&k, "alice").await.unwrap();
            chunk(&store, &k, 0).await;
            if i % 2 == 0 {
                store
                    .append(&k, BufferedFrame::terminal("d"))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(store.len(), 1_000);
        tokio::time::advance(Duration::from_secs(60)).await;
        store.open(&key("new"), "alice").await.unwrap();
        assert_eq!(
            store.len(),
            501,
            "the finished half is past keep_after_done"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        store.open(&key("newer"), "alice").await.unwrap();
        assert_eq!(store.len(), 2, "the unfinished half is past the TTL");
        assert_eq!(store.bytes(), 0, "the two new streams hold no frame yet");
    }

    #[tokio::test(start_paused = true)]
    async fn total_bytes_cap_evicts_finished_then_least_recently_written_never_the_writer() {
        let per_frame = 400 + FRAME_OVERHEAD_BYTES;
        let store = InMemoryResumeStore::new(ResumeLimits {
            max_total_bytes: 1_000,
            ..limits()
        });
        let big = |i: u32| BufferedFrame::chunk(i, "x".repeat(400));
        store.open(&key("a"), "alice").await.unwrap();
        store.append(&key("a"), big(0)).await.unwrap();
        store
            .append(&key("a"), BufferedFrame::terminal("d"))
            .await
            .unwrap();
        store.open(&key("b"), "alice").await.unwrap();
        store.append(&key("b"), big(0)).await.unwrap();
        store.open(&key("c"), "alice").await.unwrap();
        store.append(&key("c"), big(0)).await.unwrap();
        assert_eq!(
            store.owner(&key("a")).await.unwrap(),
            None,
            "finished goes first"
        );
        assert_eq!(store.bytes(), 2 * per_frame);
        store.append(&key("c"), big(1)).await.unwrap();
        assert_eq!(store.owner(&key("b")).await.unwrap(), None);
        assert_eq!(store.bytes(), 2 * per_frame);
        // Alone over the cap: the stream being written stays (its own cap governs it).
        store.append(&key("c"), big(2)).await.unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes(), 3 * per_frame);
        let replay = store
            .read_after(&key("c"), "alice", None, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(replay.frames.len(), 3);
    }
}
