//! The storage trait and its embedded redb implementation.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use mangaassist_proto::v1 as pb;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::MemoryError;

/// Where sessions, profiles and orders live. The embedded default is [`RedbStore`]; a
/// DynamoDB backend implements the same trait. Callers validate request shape (non-empty ids,
/// sizes); implementations enforce session ownership.
#[async_trait::async_trait]
pub trait MemoryStore: Send + Sync {
    /// Appends a turn (`ts_ms` 0 = now) to a session, claiming the session for `user_id` if
    /// it is new. Returns the number of live turns in the session afterwards.
    async fn append_turn(
        &self,
        session_id: &str,
        user_id: &str,
        turn: pb::Turn,
    ) -> Result<u32, MemoryError> {
        self.append_turns(session_id, user_id, vec![turn]).await
    }

    /// Appends `turns` to a session in one write: all of them or none (a question and its
    /// answer must not be split). Otherwise as [`MemoryStore::append_turn`].
    async fn append_turns(
        &self,
        session_id: &str,
        user_id: &str,
        turns: Vec<pb::Turn>,
    ) -> Result<u32, MemoryError>;

    /// Up to `limit` live turns, newest first. An unknown session has no turns.
    async fn history(
        &self,
        session_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<pb::Turn>, MemoryError>;

    async fn profile(&self, user_id: &str) -> Result<Option<pb::UserProfile>, MemoryError>;

    /// Newest first; `store_id` empty = every store, `limit` 0 = all.
    async fn orders(
        &self,
        user_id: &str,
        store_id: &str,
        limit: usize,
    ) -> Result<Vec<pb::Order>, MemoryError>;

    async fn upsert_profile(&self, profile: pb::UserProfile) -> Result<(), MemoryError>;

    async fn upsert_order(&self, order: pb::Order) -> Result<(), MemoryError>;

    /// Bulk upsert used to load demo data; backends may do it in one transaction.
    async fn seed(
        &self,
        profiles: Vec<pb::UserProfile>,
        orders: Vec<pb::Order>,
    ) -> Result<(), MemoryError> {
        for p in profiles {
            self.upsert_profile(p).await?;
        }
        for o in orders {
            self.upsert_order(o).await?;
        }
        Ok(())
    }
}

/// (session_id, ts_ms, seq) → encoded `pb::Turn`: one session's turns are contiguous and in
/// time order, so "newest N" is a reverse range scan and expiry a forward range delete.
const TURNS: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("turns");
/// session_id → owning user_id.
const SESSIONS: TableDefinition<&str, &str> = TableDefinition::new("sessions");
/// user_id → encoded `pb::UserProfile`.
const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles");
/// (user_id, placed_at, order_id) → encoded `pb::Order`; ISO dates sort chronologically.
const ORDERS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("orders");
/// order_id → (user_id, placed_at), so an upsert that changes either replaces the old row.
const ORDER_INDEX: TableDefinition<&str, (&str, &str)> = TableDefinition::new("order_index");
/// Counters; `turn_seq` orders turns written in the same millisecond.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const TURN_SEQ: &str = "turn_seq";

pub(crate) type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub(crate) fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// redb's page cache. Its default (1 GiB) let the daemon's memory follow the file up to
/// a gigabyte: a 30-minute soak saw the memory daemon's RSS climb ~12 MiB a minute. Hot
/// sessions are a small part of the file; older pages come from the OS page cache.
const REDB_CACHE_BYTES: usize = 32 * 1024 * 1024;

fn open_file(path: &Path) -> Result<Database, redb::DatabaseError> {
    redb::Builder::new()
        .set_cache_size(REDB_CACHE_BYTES)
        .create(path)
}

/// Memory in one redb file. Every commit is durable (fsync), so a stop loses nothing; turn
/// appends are group-committed on the blocking pool, reads run inline. Cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    /// `None` while the file is being reopened after an I/O error ([`RedbStore::reopen`]).
    db: Arc<parking_lot::RwLock<Option<Arc<Database>>>>,
    path: Arc<PathBuf>,
    commits: Arc<parking_lot::Mutex<GroupCommit>>,
    turn_ttl_ms: i64,
    clock: Clock,
}

/// Turn appends waiting for the next commit ([`RedbStore::commit_queued`]).
#[derive(Default)]
struct GroupCommit {
    queue: Vec<PendingAppend>,
    /// A committer is draining the queue.
    running: bool,
}

struct PendingAppend {
    session_id: String,
    user_id: String,
    turns: Vec<pb::Turn>,
    done: AppendDone,
}

type AppendDone = tokio::sync::oneshot::Sender<Result<u32, MemoryError>>;

fn deliver(answers: Vec<(AppendDone, Result<u32, MemoryError>)>) {
    for (done, r) in answers {
        // A caller that stopped waiting no longer needs the answer; its turns are stored.
        let _ = done.send(r);
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("turn_ttl_ms", &self.turn_ttl_ms)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the file and its tables. Blocking. `turn_ttl` zero keeps turns
    /// forever.
    pub fn open(path: &Path, turn_ttl: Duration) -> Result<Self, MemoryError> {
        let db = open_file(path).map_err(MemoryError::storage)?;
        let txn = db.begin_write().map_err(MemoryError::storage)?;
        {
            txn.open_table(TURNS).map_err(MemoryError::storage)?;
            txn.open_table(SESSIONS).map_err(MemoryError::storage)?;
            txn.open_table(PROFILES).map_err(MemoryError::storage)?;
            txn.open_table(ORDERS).map_err(MemoryError::storage)?;
            txn.open_table(ORDER_INDEX).map_err(MemoryError::storage)?;
            txn.open_table(META).map_err(MemoryError::storage)?;
        }
        txn.commit().map_err(MemoryError::storage)?;
        Ok(Self {
            db: Arc::new(parking_lot::RwLock::new(Some(Arc::new(db)))),
            path: Arc::new(path.to_path_buf()),
            commits: Arc::default(),
            turn_ttl_ms: i64::try_from(turn_ttl.as_millis()).unwrap_or(i64::MAX),
            clock: Arc::new(system_now_ms),
        })
    }

    /// Replaces the wall clock (milliseconds since the epoch), so tests can age turns.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The open database, reopening it first if an earlier reopen could not finish.
    fn db(&self) -> Result<Arc<Database>, MemoryError> {
        if let Some(db) = self.db.read().as_ref() {
            return Ok(db.clone());
        }
        self.reopen()?;
        self.db
            .read()
            .clone()
            .ok_or_else(|| MemoryError::Unavailable("the memory file is not open".into()))
    }

    /// After a failed write (a full disk, an I/O error) redb refuses every later transaction
    /// with `PreviousIo` until the file is closed and opened again; without this the daemon
    /// would stay broken after the disk has room again, until someone restarted it.
    fn reopen(&self) -> Result<(), MemoryError> {
        let mut slot = self.db.write();
        // The handle is dropped here; transactions still running on it keep the file (and
        // its lock) until they end, so opening retries briefly.
        drop(slot.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match open_file(&self.path) {
                Ok(db) => {
                    *slot = Some(Arc::new(db));
                    metrics::counter!("memory_store_reopened_total").increment(1);
                    tracing::warn!(path = %self.path.display(), "memory file reopened after an I/O error");
                    return Ok(());
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => {
                    return Err(MemoryError::Unavailable(format!(
                        "cannot reopen {}: {e}",
                        self.path.display()
                    )));
                }
            }
        }
    }

    /// Begins a transaction with `begin`, reopening the file once if redb answers
    /// `PreviousIo` (see [`Self::reopen`]).
    fn begin<T>(
        &self,
        begin: impl Fn(&Database) -> Result<T, redb::TransactionError>,
    ) -> Result<T, MemoryError> {
        let db = self.db()?;
        match begin(&db) {
            Err(redb::TransactionError::Storage(redb::StorageError::PreviousIo)) => {
                drop(db);
                self.reopen()?;
                begin(&*self.db()?).map_err(MemoryError::storage)
            }
            r => r.map_err(MemoryError::storage),
        }
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, MemoryError> {
        self.begin(Database::begin_write)
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, MemoryError> {
        self.begin(Database::begin_read)
    }

    fn cutoff(&self, now: i64) -> u64 {
        live_cutoff(now, self.turn_ttl_ms)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, MemoryError>
    where
        T: Send + 'static,
        F: FnOnce(&RedbStore) -> Result<T, MemoryError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| MemoryError::Task(e.to_string()))?
    }

    /// Deletes every expired turn in every session. Blocking; returns how many went.
    pub fn prune_expired(&self) -> Result<u64, MemoryError> {
        let cutoff = self.cutoff((self.clock)());
        if cutoff == 0 {
            return Ok(0);
        }
        let txn = self.begin_write()?;
        let mut removed = 0u64;
        {
            let mut turns = txn.open_table(TURNS).map_err(MemoryError::storage)?;
            turns
                .retain(|(_, ts, _), _| {
                    let keep = ts >= cutoff;
                    removed += u64::from(!keep);
                    keep
                })
                .map_err(MemoryError::storage)?;
            // A session's ownership goes with its last turn, so sessions nobody wrote to
            // within the TTL (every socket and OpenAI call without a session id makes one)
            // do not pile up for ever.
            let mut sessions = txn.open_table(SESSIONS).map_err(MemoryError::storage)?;
            let mut lapsed = Vec::new();
            for row in sessions.iter().map_err(MemoryError::storage)? {
                let (session, _) = row.map_err(MemoryError::storage)?;
                if !has_live_turn(&turns, session.value(), cutoff)? {
                    lapsed.push(session.value().to_string());
                }
            }
            for session in lapsed {
                sessions
                    .remove(session.as_str())
                    .map_err(MemoryError::storage)?;
            }
        }
        txn.commit().map_err(MemoryError::storage)?;
        Ok(removed)
    }

    /// Appends one session's `turns` inside `txn`: all or none. An ownership error returns
    /// before anything is written, so the rest of a group commit is unaffected by it.
    fn append_in(
        txn: &redb::WriteTransaction,
        session_id: &str,
        user_id: &str,
        turns: Vec<pb::Turn>,
        now: i64,
        cutoff: u64,
    ) -> Result<u32, MemoryError> {
        let rows: Vec<(u64, Vec<u8>)> = turns
            .into_iter()
            .map(|mut turn| {
                let ts = stamp(&mut turn, now);
                (ts, turn.encode_to_vec())
            })
            .collect();
        let mut turns = txn.open_table(TURNS).map_err(MemoryError::storage)?;
        let mut sessions = txn.open_table(SESSIONS).map_err(MemoryError::storage)?;
        let owner = sessions
            .get(session_id)
            .map_err(MemoryError::storage)?
            .map(|g| g.value().to_string());
        let claim = match owner {
            None => true,
            Some(o) if o == user_id => false,
            // A claim lasts while the session has a live turn; once they have all
            // expired (deleted below) nothing of the old owner is left to read.
            Some(_) if cutoff > 0 && !has_live_turn(&turns, session_id, cutoff)? => true,
            Some(_) => return Err(not_owner(session_id, user_id)),
        };
        if claim {
            sessions
                .insert(session_id, user_id)
                .map_err(MemoryError::storage)?;
        }
        let mut meta = txn.open_table(META).map_err(MemoryError::storage)?;
        let first = meta
            .get(TURN_SEQ)
            .map_err(MemoryError::storage)?
            .map(|g| g.value())
            .unwrap_or(0)
            + 1;
        let last = first + rows.len() as u64 - 1;
        meta.insert(TURN_SEQ, last).map_err(MemoryError::storage)?;
        if cutoff > 0 {
            turns
                .retain_in(
                    (session_id, 0u64, 0u64)..(session_id, cutoff, 0u64),
                    |_, _| false,
                )
                .map_err(MemoryError::storage)?;
        }
        for (seq, (ts, bytes)) in (first..).zip(&rows) {
            turns
                .insert((session_id, *ts, seq), bytes.as_slice())
                .map_err(MemoryError::storage)?;
        }
        let count = turns
            .range((session_id, cutoff, 0u64)..=(session_id, u64::MAX, u64::MAX))
            .map_err(MemoryError::storage)?
            .count();
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Commits every queued append in one transaction, and again while more arrived during
    /// the commit. One fsync then covers all turns that waited for it, so a busy store pays
    /// one commit per batch instead of one per message, and each caller still hears back
    /// only after its turns are durable. Blocking; one runs at a time (`GroupCommit::running`).
    fn commit_queued(self) {
        let mut batch = std::mem::take(&mut self.commits.lock().queue);
        loop {
            let answers = self.commit_batch(batch);
            let more = {
                let mut q = self.commits.lock();
                if q.queue.is_empty() {
                    q.running = false;
                }
                std::mem::take(&mut q.queue)
            };
            if more.is_empty() {
                // The store (and its database handle) goes before the last callers hear
                // back, so a caller that closes the store next can reopen the file at once.
                drop(self);
                deliver(answers);
                return;
            }
            deliver(answers);
            batch = more;
        }
    }

    /// One transaction for `batch`: each append's own result, or the commit's error for all.
    fn commit_batch(
        &self,
        batch: Vec<PendingAppend>,
    ) -> Vec<(AppendDone, Result<u32, MemoryError>)> {
        metrics::histogram!("memory_group_commit_size").record(batch.len() as f64);
        let now = (self.clock)();
        let cutoff = self.cutoff(now);
        let all_fail = |batch: Vec<AppendDone>, msg: String| {
            batch
                .into_iter()
                .map(|done| (done, Err(MemoryError::Storage(msg.clone()))))
                .collect()
        };
        let txn = match self.begin_write() {
            Ok(t) => t,
            Err(e) => return all_fail(batch.into_iter().map(|p| p.done).collect(), e.to_string()),
        };
        let mut answers = Vec::with_capacity(batch.len());
        let mut failed: Option<String> = None;
        for p in batch {
            let r = if failed.is_none() {
                match Self::append_in(&txn, &p.session_id, &p.user_id, p.turns, now, cutoff) {
                    Ok(n) => Ok(n),
                    Err(e @ MemoryError::PermissionDenied(_)) => Err(e),
                    // Anything else may have written part of this append: the whole
                    // transaction goes, and every caller in it hears the error.
                    Err(e) => {
                        failed = Some(e.to_string());
                        Ok(0)
                    }
                }
            } else {
                Ok(0)
            };
            answers.push((p.done, r));
        }
        let outcome = match failed {
            Some(msg) => Err(msg),
            None => txn.commit().map_err(|e| e.to_string()),
        };
        match outcome {
            Ok(()) => answers,
            Err(msg) => all_fail(answers.into_iter().map(|(d, _)| d).collect(), msg),
        }
    }

    fn history_sync(
        &self,
        session_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<pb::Turn>, MemoryError> {
        let cutoff = self.cutoff((self.clock)());
        let txn = self.begin_read()?;
        let sessions = txn.open_table(SESSIONS).map_err(MemoryError::storage)?;
        let turns = txn.open_table(TURNS).map_err(MemoryError::storage)?;
        match sessions.get(session_id).map_err(MemoryError::storage)? {
            None => return Ok(Vec::new()),
            Some(owner) if owner.value() != user_id => {
                // A lapsed claim (no live turn) is no one's: empty, as for a new session.
                if cutoff > 0 && !has_live_turn(&turns, session_id, cutoff)? {
                    return Ok(Vec::new());
                }
                return Err(not_owner(session_id, user_id));
            }
            Some(_) => {}
        }
        let mut out = Vec::with_capacity(limit.min(64));
        for row in turns
            .range((session_id, cutoff, 0u64)..=(session_id, u64::MAX, u64::MAX))
            .map_err(MemoryError::storage)?
            .rev()
            .take(limit)
        {
            let (_, v) = row.map_err(MemoryError::storage)?;
            out.push(decode::<pb::Turn>("turns", v.value())?);
        }
        Ok(out)
    }

    fn profile_sync(&self, user_id: &str) -> Result<Option<pb::UserProfile>, MemoryError> {
        let txn = self.begin_read()?;
        let profiles = txn.open_table(PROFILES).map_err(MemoryError::storage)?;
        profiles
            .get(user_id)
            .map_err(MemoryError::storage)?
            .map(|g| decode("profiles", g.value()))
            .transpose()
    }

    fn orders_sync(
        &self,
        user_id: &str,
        store_id: &str,
        limit: usize,
    ) -> Result<Vec<pb::Order>, MemoryError> {
        let limit = order_limit(limit);
        let txn = self.begin_read()?;
        let orders = txn.open_table(ORDERS).map_err(MemoryError::storage)?;
        // Every (user_id, ..) key sorts below (user_id + "\0", ..), whatever follows.
        let next_user = format!("{user_id}\0");
        let mut out = Vec::new();
        for row in orders
            .range((user_id, "", "")..(next_user.as_str(), "", ""))
            .map_err(MemoryError::storage)?
            .rev()
        {
            let (_, v) = row.map_err(MemoryError::storage)?;
            let order: pb::Order = decode("orders", v.value())?;
            if store_id.is_empty() || order.store_id == store_id {
                out.push(order);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn upsert_sync(
        &self,
        profiles: &[pb::UserProfile],
        orders: &[pb::Order],
    ) -> Result<(), MemoryError> {
        validate_seed(profiles, orders)?;
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(PROFILES).map_err(MemoryError::storage)?;
            for p in profiles {
                table
                    .insert(p.user_id.as_str(), p.encode_to_vec().as_slice())
                    .map_err(MemoryError::storage)?;
            }
            let mut table = txn.open_table(ORDERS).map_err(MemoryError::storage)?;
            let mut index = txn.open_table(ORDER_INDEX).map_err(MemoryError::storage)?;
            for o in orders {
                let old = index
                    .get(o.order_id.as_str())
                    .map_err(MemoryError::storage)?
                    .map(|g| {
                        let (u, p) = g.value();
                        (u.to_string(), p.to_string())
                    });
                if let Some((u, p)) = old
                    && (u != o.user_id || p != o.placed_at)
                {
                    table
                        .remove((u.as_str(), p.as_str(), o.order_id.as_str()))
                        .map_err(MemoryError::storage)?;
                }
                table
                    .insert(
                        (
                            o.user_id.as_str(),
                            o.placed_at.as_str(),
                            o.order_id.as_str(),
                        ),
                        o.encode_to_vec().as_slice(),
                    )
                    .map_err(MemoryError::storage)?;
                index
                    .insert(
                        o.order_id.as_str(),
                        (o.user_id.as_str(), o.placed_at.as_str()),
                    )
                    .map_err(MemoryError::storage)?;
            }
        }
        txn.commit().map_err(MemoryError::storage)?;
        Ok(())
    }
}

/// Oldest `ts_ms` still live at `now` (both backends hide older turns the same way); 0 when
/// turns never expire (`turn_ttl_ms` 0).
/// Whether `session_id` has a turn at or after `cutoff`.
fn has_live_turn(
    turns: &impl ReadableTable<(&'static str, u64, u64), &'static [u8]>,
    session_id: &str,
    cutoff: u64,
) -> Result<bool, MemoryError> {
    Ok(turns
        .range((session_id, cutoff, 0u64)..=(session_id, u64::MAX, u64::MAX))
        .map_err(MemoryError::storage)?
        .next()
        .is_some())
}

pub(crate) fn live_cutoff(now: i64, turn_ttl_ms: i64) -> u64 {
    if turn_ttl_ms == 0 {
        return 0;
    }
    u64::try_from(now.saturating_sub(turn_ttl_ms)).unwrap_or(0)
}

/// Gives a turn sent without a time (`ts_ms` 0, as the trait allows) the time `now`, and
/// returns its time as the unsigned key both backends sort turns by.
pub(crate) fn stamp(turn: &mut pb::Turn, now: i64) -> u64 {
    if turn.ts_ms <= 0 {
        turn.ts_ms = now;
    }
    u64::try_from(turn.ts_ms).unwrap_or(0)
}

/// The most orders to return for a request's `limit`, where 0 means all of them.
pub(crate) fn order_limit(limit: usize) -> usize {
    if limit == 0 { usize::MAX } else { limit }
}

/// Profiles and orders must carry the ids they are stored under.
pub(crate) fn validate_seed(
    profiles: &[pb::UserProfile],
    orders: &[pb::Order],
) -> Result<(), MemoryError> {
    if profiles.iter().any(|p| p.user_id.is_empty()) {
        return Err(MemoryError::InvalidArgument(
            "profile user_id is empty".into(),
        ));
    }
    if let Some(o) = orders
        .iter()
        .find(|o| o.order_id.is_empty() || o.user_id.is_empty())
    {
        return Err(MemoryError::InvalidArgument(format!(
            "order `{}` needs an order_id and a user_id",
            o.order_id
        )));
    }
    Ok(())
}

pub(crate) fn not_owner(session_id: &str, user_id: &str) -> MemoryError {
    MemoryError::PermissionDenied(format!(
        "session `{session_id}` belongs to another user than `{user_id}`"
    ))
}

pub(crate) fn decode<M: Message + Default>(
    table: &'static str,
    bytes: &[u8],
) -> Result<M, MemoryError> {
    M::decode(bytes).map_err(|e| MemoryError::Corrupt {
        table,
        message: e.to_string(),
    })
}

#[async_trait::async_trait]
impl MemoryStore for RedbStore {
    async fn append_turns(
        &self,
        session_id: &str,
        user_id: &str,
        turns: Vec<pb::Turn>,
    ) -> Result<u32, MemoryError> {
        if turns.is_empty() {
            return Err(MemoryError::InvalidArgument("no turns to append".into()));
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut q = self.commits.lock();
            q.queue.push(PendingAppend {
                session_id: session_id.to_string(),
                user_id: user_id.to_string(),
                turns,
                done,
            });
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            let this = self.clone();
            // The committer is detached: it drains the queue (this append included) even if
            // this caller goes away, so an accepted turn is never left behind.
            tokio::task::spawn_blocking(move || this.commit_queued());
        }
        answer
            .await
            .map_err(|_| MemoryError::Task("the commit task stopped".into()))?
    }

    async fn history(
        &self,
        session_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<pb::Turn>, MemoryError> {
        // Reads run inline: a redb read transaction never waits for a writer (MVCC) and
        // reads a few pages of a bounded range, cheaper than the two thread hand-offs of the
        // blocking pool that every message paid three times (history, profile, orders).
        self.history_sync(session_id, user_id, limit)
    }

    async fn profile(&self, user_id: &str) -> Result<Option<pb::UserProfile>, MemoryError> {
        self.profile_sync(user_id)
    }

    async fn orders(
        &self,
        user_id: &str,
        store_id: &str,
        limit: usize,
    ) -> Result<Vec<pb::Order>, MemoryError> {
        self.orders_sync(user_id, store_id, limit)
    }

    async fn upsert_profile(&self, profile: pb::UserProfile) -> Result<(), MemoryError> {
        self.blocking(move |db| db.upsert_sync(&[profile], &[]))
            .await
    }

    async fn upsert_order(&self, order: pb::Order) -> Result<(), MemoryError> {
        self.blocking(move |db| db.upsert_sync(&[], &[order])).await
    }

    async fn seed(
        &self,
        profiles: Vec<pb::UserProfile>,
        orders: Vec<pb::Order>,
    ) -> Result<(), MemoryError> {
        self.blocking(move |db| db.upsert_sync(&profiles, &orders))
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    fn turn(role: &str, text: &str, ts_ms: i64) -> pb::Turn {
        pb::Turn {
            role: role.into(),
            text: text.into(),
            ts_ms,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn expired_turns_are_hidden_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(10_000_000));
        let clock = now.clone();
        let store = RedbStore::open(&dir.path().join("m.redb"), Duration::from_secs(60))
            .unwrap()
            .with_clock(move || clock.load(Ordering::SeqCst));
        store
            .append_turn("s", "u", turn("user", "old", 0))
            .await
            .unwrap();
        store
            .append_turn("t", "u", turn("user", "old", 0))
            .await
            .unwrap();
        now.fetch_add(61_000, Ordering::SeqCst);
        assert!(store.history("s", "u", 10).await.unwrap().is_empty());
        let n = store
            .append_turn("s", "u", turn("user", "new", 0))
            .await
            .unwrap();
        assert_eq!(n, 1, "the expired turn was pruned on append");
        // Session `t` was never touched again; the sweep removes its turn and its owner row.
        assert_eq!(store.prune_expired().unwrap(), 1);
        let txn = store.begin_read().unwrap();
        let sessions = txn.open_table(SESSIONS).unwrap();
        assert!(sessions.get("t").unwrap().is_none(), "t's owner row stays");
        assert!(sessions.get("s").unwrap().is_some());
    }
}
