//! Live inventory: the one path by which stock, prices and flash-sale mode change at runtime.
//!
//! - [`Inventory`] holds the current state over the catalog's values, persists every change
//!   (an embedded redb file) before it is visible, numbers changes from one counter and
//!   broadcasts them. The retrieval daemon owns it and serves it as `InventoryService`.
//! - [`watch`] turns it into the `Watch` stream: the state changed after a sequence number,
//!   then live changes; [`follow`] is the consumer side (in process or over gRPC), which
//!   reconnects and catches up from the last number it saw.
//! - [`StockView`] is a consumer's current picture, and [`validate`] checks a cached or
//!   pre-computed answer against it before it is replayed.

mod follow;
mod persist;
mod redis;
mod validate;
mod view;
mod watch;

use std::{
    collections::HashMap,
    path::Path,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use mangaassist_proto::v1 as pb;
use parking_lot::RwLock;
use tokio::sync::broadcast;

pub use follow::{FeedSource, Follower, follow};
pub use validate::{Rejected, Validated, validate};
pub use view::{Availability, StockView};
pub use watch::watch;

/// Largest number of changes in one `SetStock` call: a bulk feed is sent in batches of this.
pub const MAX_CHANGES_PER_CALL: usize = 1_000;
/// Highest quantity accepted (a typo guard: no shop holds four billion copies).
pub const MAX_QUANTITY: u32 = 1_000_000;
/// Highest price accepted, in yen.
pub const MAX_PRICE_YEN: u32 = 10_000_000;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("unknown store `{store}` (known: {known})")]
    UnknownStore { store: String, known: String },
    #[error("change {index}: product `{product}` is not in store `{store}`'s catalog")]
    UnknownProduct {
        index: usize,
        store: String,
        product: String,
    },
    #[error("inventory store: {0}")]
    Storage(String),
}

impl InventoryError {
    pub fn code(&self) -> tonic::Code {
        match self {
            InventoryError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            InventoryError::UnknownStore { .. } | InventoryError::UnknownProduct { .. } => {
                tonic::Code::NotFound
            }
            InventoryError::Storage(_) => tonic::Code::Unavailable,
        }
    }
}

impl From<InventoryError> for tonic::Status {
    fn from(e: InventoryError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}

/// One change, as the store broadcasts it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Stock(pb::StockState),
    FlashSale(pb::FlashSaleState),
}

impl Change {
    pub fn seq(&self) -> u64 {
        match self {
            Change::Stock(s) => s.seq,
            Change::FlashSale(f) => f.seq,
        }
    }

    /// Unix milliseconds of the change.
    pub fn changed_ms(&self) -> i64 {
        match self {
            Change::Stock(s) => s.changed_ms,
            Change::FlashSale(f) => f.changed_ms,
        }
    }

    pub fn into_event(self) -> pb::InventoryEvent {
        pb::InventoryEvent {
            event: Some(match self {
                Change::Stock(s) => pb::inventory_event::Event::Stock(s),
                Change::FlashSale(f) => pb::inventory_event::Event::FlashSale(f),
            }),
        }
    }
}

/// A catalog product's values before any runtime change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub quantity: u32,
    pub price_yen: u32,
    pub title: String,
    pub series: String,
}

type Key = (String, String);

#[derive(Debug, Default)]
pub(crate) struct State {
    pub seq: u64,
    pub stock: HashMap<Key, pb::StockState>,
    pub flash: HashMap<String, pb::FlashSaleState>,
}

impl State {
    /// Every change with a number above `after`, oldest first.
    pub fn changes_after(&self, after: u64) -> Vec<Change> {
        let mut v: Vec<Change> = self
            .stock
            .values()
            .filter(|s| s.seq > after)
            .cloned()
            .map(Change::Stock)
            .chain(
                self.flash
                    .values()
                    .filter(|f| f.seq > after)
                    .cloned()
                    .map(Change::FlashSale),
            )
            .collect();
        v.sort_by_key(Change::seq);
        v
    }
}

/// How many changes a watcher may fall behind before it is sent state instead of changes.
const BROADCAST_CAPACITY: usize = 4_096;

/// The live inventory of every store. Cheap to clone.
#[derive(Clone)]
pub struct Inventory {
    inner: Arc<Inner>,
}

struct Inner {
    base: HashMap<Key, Base>,
    stores: Vec<String>,
    state: RwLock<State>,
    /// Serialises writers, so numbers, persistence and broadcast happen in one order.
    write: tokio::sync::Mutex<()>,
    backend: Backend,
    tx: broadcast::Sender<Change>,
    /// Number of the last change applied here (writers to Redis wait on it).
    applied: tokio::sync::watch::Sender<u64>,
    /// The Redis listener, stopped with the inventory.
    listener: parking_lot::Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.listener.lock().take() {
            h.abort();
        }
    }
}

/// Where changes are kept.
enum Backend {
    /// Nowhere: lost on restart (tests, benchmarks).
    Memory,
    /// A redb file: one replica, survives restarts.
    Redb(persist::RedbLog),
    /// Redis: numbered by Redis, seen by every replica.
    Redis(Arc<redis::RedisLog>),
}

/// Longest wait for a change written to Redis to come back on the channel before `SetStock`
/// answers anyway (the change is stored; this replica applies it when it arrives).
const VISIBLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A number was skipped: reload.
#[derive(Debug)]
pub(crate) struct Gap;

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("products", &self.inner.base.len())
            .field("seq", &self.inner.state.read().seq)
            .field(
                "backend",
                &match self.inner.backend {
                    Backend::Memory => "memory",
                    Backend::Redb(_) => "redb",
                    Backend::Redis(_) => "redis",
                },
            )
            .finish()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Inventory {
    /// An inventory over `catalog` (store, product id, base values) that keeps its changes in
    /// memory only (tests, benchmarks).
    pub fn in_memory(catalog: impl IntoIterator<Item = (String, String, Base)>) -> Self {
        Self::build(catalog, Backend::Memory, State::default())
    }

    /// An inventory shared through the Redis of `settings` with every other replica: loads
    /// the current state, then applies every change published (see the `redis` module).
    pub async fn connect_redis(
        catalog: impl IntoIterator<Item = (String, String, Base)>,
        settings: &mangaassist_config::RedisSettings,
    ) -> Result<Self, InventoryError> {
        let log = redis::RedisLog::connect(settings).await?;
        let inv = Self::build(catalog, Backend::Redis(log.clone()), State::default());
        let weak = Arc::downgrade(&inv.inner);
        // Listening before subscribing: no message slips between the two. The listener
        // holds no strong handle, so dropping the inventory stops it.
        #[allow(
            clippy::disallowed_methods,
            reason = "aborted when the inventory is dropped (Inner::drop)"
        )]
        let task = tokio::spawn(redis::listen(weak, log.clone()));
        *inv.inner.listener.lock() = Some(task.abort_handle());
        log.subscribe().await?;
        let state = log.load().await?;
        inv.apply_state(&state);
        Ok(inv)
    }

    /// An inventory whose changes are kept in the redb file at `path` (created when missing)
    /// and reloaded from it: a restart keeps every acknowledged change. Changes to products
    /// no longer in the catalog are dropped with a warning.
    pub fn open(
        catalog: impl IntoIterator<Item = (String, String, Base)>,
        path: &Path,
    ) -> Result<Self, InventoryError> {
        let log = persist::RedbLog::open(path)?;
        let state = log.load()?;
        Ok(Self::build(catalog, Backend::Redb(log), state))
    }

    fn build(
        catalog: impl IntoIterator<Item = (String, String, Base)>,
        backend: Backend,
        mut state: State,
    ) -> Self {
        let base: HashMap<Key, Base> = catalog.into_iter().map(|(s, p, b)| ((s, p), b)).collect();
        let mut stores: Vec<String> = base.keys().map(|(s, _)| s.clone()).collect();
        stores.sort_unstable();
        stores.dedup();
        let before = state.stock.len();
        state.stock.retain(|k, _| base.contains_key(k));
        if state.stock.len() < before {
            tracing::warn!(
                dropped = before - state.stock.len(),
                "stock changes for products no longer in the catalog ignored"
            );
        }
        state.flash.retain(|s, _| stores.contains(s));
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (applied, _) = tokio::sync::watch::channel(state.seq);
        Self {
            inner: Arc::new(Inner {
                base,
                stores,
                state: RwLock::new(state),
                write: tokio::sync::Mutex::new(()),
                backend,
                tx,
                applied,
                listener: parking_lot::Mutex::new(None),
            }),
        }
    }

    pub fn stores(&self) -> &[String] {
        &self.inner.stores
    }

    /// Number of the last change.
    pub fn seq(&self) -> u64 {
        self.inner.state.read().seq
    }

    fn check_store(&self, store: &str) -> Result<(), InventoryError> {
        if store.is_empty() {
            return Err(InventoryError::InvalidArgument(format!(
                "store_id is required (known: {})",
                self.inner.stores.join(", ")
            )));
        }
        if !self.inner.stores.iter().any(|s| s == store) {
            return Err(InventoryError::UnknownStore {
                store: store.to_string(),
                known: self.inner.stores.join(", "),
            });
        }
        Ok(())
    }

    /// The live quantity and price of one product (`None` when it is not in the catalog).
    pub fn current(&self, store: &str, product: &str) -> Option<(u32, u32)> {
        let key = (store.to_string(), product.to_string());
        if let Some(s) = self.inner.state.read().stock.get(&key) {
            return Some((s.quantity, s.price_yen));
        }
        self.inner.base.get(&key).map(|b| (b.quantity, b.price_yen))
    }

    /// The catalog's values of one product.
    pub fn base(&self, store: &str, product: &str) -> Option<&Base> {
        self.inner
            .base
            .get(&(store.to_string(), product.to_string()))
    }

    pub fn flash_sale(&self, store: &str) -> bool {
        self.inner
            .state
            .read()
            .flash
            .get(store)
            .is_some_and(|f| f.on)
    }

    /// Applies `changes` to `store`: validated first (all or nothing), persisted, then
    /// visible and broadcast. Returns the new state of each product.
    pub async fn set_stock(
        &self,
        store: &str,
        changes: &[pb::StockChange],
        source: &str,
    ) -> Result<Vec<pb::StockState>, InventoryError> {
        self.check_store(store)?;
        if changes.is_empty() {
            return Err(InventoryError::InvalidArgument("no changes given".into()));
        }
        if changes.len() > MAX_CHANGES_PER_CALL {
            return Err(InventoryError::InvalidArgument(format!(
                "{} changes in one call, more than the limit of {MAX_CHANGES_PER_CALL}: send them in batches",
                changes.len()
            )));
        }
        let mut bases = Vec::with_capacity(changes.len());
        for (index, c) in changes.iter().enumerate() {
            let Some(base) = self.base(store, &c.product_id) else {
                return Err(InventoryError::UnknownProduct {
                    index,
                    store: store.to_string(),
                    product: c.product_id.clone(),
                });
            };
            bases.push(base);
            if c.quantity > MAX_QUANTITY {
                return Err(InventoryError::InvalidArgument(format!(
                    "change {index}: quantity {} is above the limit of {MAX_QUANTITY}",
                    c.quantity
                )));
            }
            if let Some(p) = c.price_yen
                && (p == 0 || p > MAX_PRICE_YEN)
            {
                return Err(InventoryError::InvalidArgument(format!(
                    "change {index}: price {p} yen is outside 1..={MAX_PRICE_YEN}"
                )));
            }
        }
        if let Backend::Redis(log) = &self.inner.backend {
            let mut args = Vec::with_capacity(changes.len() * 7);
            for (c, b) in changes.iter().zip(&bases) {
                args.extend([
                    fred::prelude::Value::from(store),
                    fred::prelude::Value::from(c.product_id.as_str()),
                    fred::prelude::Value::from(i64::from(c.quantity)),
                    fred::prelude::Value::from(i64::from(c.price_yen.unwrap_or(0))),
                    fred::prelude::Value::from(i64::from(b.price_yen)),
                    fred::prelude::Value::from(b.title.as_str()),
                    fred::prelude::Value::from(b.series.as_str()),
                ]);
            }
            let written = log.write("stock", now_ms(), args).await?;
            self.wait_visible(&written).await;
            metrics::counter!("inventory_changes_total", "kind" => "stock")
                .increment(written.len() as u64);
            tracing::info!(
                store,
                changes = written.len(),
                source,
                "stock changed (redis)"
            );
            return Ok(written
                .into_iter()
                .filter_map(|c| match c {
                    Change::Stock(s) => Some(s),
                    Change::FlashSale(_) => None,
                })
                .collect());
        }
        let _writer = self.inner.write.lock().await;
        let now = now_ms();
        let mut seq = self.seq();
        let applied: Vec<pb::StockState> = changes
            .iter()
            .zip(&bases)
            .map(|(c, base)| {
                seq += 1;
                let (_, price) = self.current(store, &c.product_id).unwrap_or_default();
                pb::StockState {
                    store_id: store.to_string(),
                    product_id: c.product_id.clone(),
                    quantity: c.quantity,
                    price_yen: c.price_yen.unwrap_or(price),
                    seq,
                    changed_ms: now,
                    title: base.title.clone(),
                    series: base.series.clone(),
                }
            })
            .collect();
        let batch: Vec<Change> = applied.iter().cloned().map(Change::Stock).collect();
        self.commit(batch).await?;
        metrics::counter!("inventory_changes_total", "kind" => "stock")
            .increment(applied.len() as u64);
        tracing::info!(store, changes = applied.len(), seq, source, "stock changed");
        Ok(applied)
    }

    pub async fn set_flash_sale(
        &self,
        store: &str,
        on: bool,
    ) -> Result<pb::FlashSaleState, InventoryError> {
        self.check_store(store)?;
        if let Backend::Redis(log) = &self.inner.backend {
            let args = vec![
                fred::prelude::Value::from(store),
                fred::prelude::Value::from(if on { "1" } else { "0" }),
            ];
            let written = log.write("flash", now_ms(), args).await?;
            self.wait_visible(&written).await;
            tracing::info!(store, on, "flash-sale mode changed (redis)");
            return written
                .into_iter()
                .find_map(|c| match c {
                    Change::FlashSale(f) => Some(f),
                    Change::Stock(_) => None,
                })
                .ok_or_else(|| {
                    InventoryError::Storage("redis: no flash-sale record written".into())
                });
        }
        let _writer = self.inner.write.lock().await;
        let state = pb::FlashSaleState {
            store_id: store.to_string(),
            on,
            seq: self.seq() + 1,
            changed_ms: now_ms(),
        };
        self.commit(vec![Change::FlashSale(state.clone())]).await?;
        metrics::counter!("inventory_changes_total", "kind" => "flash_sale").increment(1);
        tracing::info!(store, on, seq = state.seq, "flash-sale mode changed");
        Ok(state)
    }

    /// Persist, apply, broadcast; the caller holds the writer lock.
    async fn commit(&self, batch: Vec<Change>) -> Result<(), InventoryError> {
        if let Backend::Redb(log) = &self.inner.backend {
            let log = log.clone();
            let to_write = batch.clone();
            tokio::task::spawn_blocking(move || log.write(&to_write))
                .await
                .map_err(|e| InventoryError::Storage(e.to_string()))??;
        }
        let mut state = self.inner.state.write();
        for c in batch {
            self.apply_one(&mut state, c);
        }
        Ok(())
    }

    /// Applies one change under the state lock and broadcasts it (in number order, since
    /// every caller holds the lock).
    fn apply_one(&self, state: &mut State, c: Change) {
        if !self.known(&c) {
            // Another replica's catalog may hold products this one does not; the number
            // still counts so the order stays whole.
            state.seq = state.seq.max(c.seq());
            self.inner.applied.send_replace(state.seq);
            return;
        }
        state.seq = state.seq.max(c.seq());
        match &c {
            Change::Stock(s) => {
                state
                    .stock
                    .insert((s.store_id.clone(), s.product_id.clone()), s.clone());
            }
            Change::FlashSale(f) => {
                state.flash.insert(f.store_id.clone(), f.clone());
            }
        }
        self.inner.applied.send_replace(state.seq);
        // No receivers is fine: nobody watches yet.
        let _ = self.inner.tx.send(c);
    }

    fn known(&self, c: &Change) -> bool {
        match c {
            Change::Stock(s) => self
                .inner
                .base
                .contains_key(&(s.store_id.clone(), s.product_id.clone())),
            Change::FlashSale(f) => self.inner.stores.contains(&f.store_id),
        }
    }

    /// Applies changes received in number order; `Err(Gap)` when one was skipped.
    pub(crate) fn apply_ordered(&self, changes: Vec<Change>) -> Result<(), Gap> {
        let mut state = self.inner.state.write();
        for c in changes {
            if c.seq() <= state.seq {
                continue;
            }
            if c.seq() != state.seq + 1 {
                return Err(Gap);
            }
            self.apply_one(&mut state, c);
        }
        Ok(())
    }

    /// Applies every change of `full` (the shared state) newer than what this replica has,
    /// in number order.
    pub(crate) fn apply_state(&self, full: &State) {
        let mut state = self.inner.state.write();
        for c in full.changes_after(state.seq) {
            self.apply_one(&mut state, c);
        }
        state.seq = state.seq.max(full.seq);
        self.inner.applied.send_replace(state.seq);
    }

    /// Waits (bounded) until the changes written to Redis are applied here, so a caller
    /// reads its own writes.
    async fn wait_visible(&self, written: &[Change]) {
        let Some(last) = written.iter().map(Change::seq).max() else {
            return;
        };
        let mut rx = self.inner.applied.subscribe();
        if tokio::time::timeout(VISIBLE_WAIT, rx.wait_for(|&s| s >= last))
            .await
            .is_err()
        {
            tracing::warn!(
                seq = last,
                "inventory change stored in Redis but not yet received here"
            );
        }
    }

    /// The live state of `ids` in `store` (catalog values with seq 0 where unchanged).
    pub fn get_stock(
        &self,
        store: &str,
        ids: &[String],
    ) -> Result<pb::GetStockResponse, InventoryError> {
        self.check_store(store)?;
        let state = self.inner.state.read();
        let mut stock = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            let key = (store.to_string(), id.clone());
            if let Some(s) = state.stock.get(&key) {
                stock.push(s.clone());
            } else if let Some(b) = self.inner.base.get(&key) {
                stock.push(pb::StockState {
                    store_id: store.to_string(),
                    product_id: id.clone(),
                    quantity: b.quantity,
                    price_yen: b.price_yen,
                    seq: 0,
                    changed_ms: 0,
                    title: b.title.clone(),
                    series: b.series.clone(),
                });
            } else {
                missing.push(id.clone());
            }
        }
        Ok(pb::GetStockResponse {
            stock,
            missing,
            flash_sale: state.flash.get(store).is_some_and(|f| f.on),
        })
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.tx.subscribe()
    }

    pub(crate) fn changes_after(&self, after: u64) -> (Vec<Change>, u64) {
        let state = self.inner.state.read();
        (state.changes_after(after), state.seq)
    }
}

#[cfg(test)]
mod tests;
