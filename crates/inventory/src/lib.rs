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
    persist: Option<persist::RedbLog>,
    tx: broadcast::Sender<Change>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("products", &self.inner.base.len())
            .field("seq", &self.inner.state.read().seq)
            .field("persisted", &self.inner.persist.is_some())
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
        Self::build(catalog, None, State::default())
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
        Ok(Self::build(catalog, Some(log), state))
    }

    fn build(
        catalog: impl IntoIterator<Item = (String, String, Base)>,
        persist: Option<persist::RedbLog>,
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
        Self {
            inner: Arc::new(Inner {
                base,
                stores,
                state: RwLock::new(state),
                write: tokio::sync::Mutex::new(()),
                persist,
                tx,
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

    /// Calls `f` with a reader of the changed products, for a search that looks up many.
    /// Products absent from the map have their catalog values.
    pub fn with_changes<R>(
        &self,
        f: impl FnOnce(&dyn Fn(&str, &str) -> Option<(u32, u32)>) -> R,
    ) -> R {
        let state = self.inner.state.read();
        let lookup = |store: &str, product: &str| {
            if state.stock.is_empty() {
                return None;
            }
            state
                .stock
                .get(&(store.to_string(), product.to_string()))
                .map(|s| (s.quantity, s.price_yen))
        };
        f(&lookup)
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
        for (index, c) in changes.iter().enumerate() {
            let key = (store.to_string(), c.product_id.clone());
            if !self.inner.base.contains_key(&key) {
                return Err(InventoryError::UnknownProduct {
                    index,
                    store: store.to_string(),
                    product: c.product_id.clone(),
                });
            }
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
        let _writer = self.inner.write.lock().await;
        let now = now_ms();
        let mut seq = self.seq();
        let applied: Vec<pb::StockState> = changes
            .iter()
            .map(|c| {
                seq += 1;
                let (_, price) = self.current(store, &c.product_id).unwrap_or_default();
                let base = self
                    .inner
                    .base
                    .get(&(store.to_string(), c.product_id.clone()));
                pb::StockState {
                    store_id: store.to_string(),
                    product_id: c.product_id.clone(),
                    quantity: c.quantity,
                    price_yen: c.price_yen.unwrap_or(price),
                    seq,
                    changed_ms: now,
                    title: base.map(|b| b.title.clone()).unwrap_or_default(),
                    series: base.map(|b| b.series.clone()).unwrap_or_default(),
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
        if let Some(log) = &self.inner.persist {
            let log = log.clone();
            let to_write = batch.clone();
            tokio::task::spawn_blocking(move || log.write(&to_write))
                .await
                .map_err(|e| InventoryError::Storage(e.to_string()))??;
        }
        {
            let mut state = self.inner.state.write();
            for c in &batch {
                state.seq = state.seq.max(c.seq());
                match c {
                    Change::Stock(s) => {
                        state
                            .stock
                            .insert((s.store_id.clone(), s.product_id.clone()), s.clone());
                    }
                    Change::FlashSale(f) => {
                        state.flash.insert(f.store_id.clone(), f.clone());
                    }
                }
            }
        }
        for c in batch {
            // No receivers is fine: nobody watches yet.
            let _ = self.inner.tx.send(c);
        }
        Ok(())
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
