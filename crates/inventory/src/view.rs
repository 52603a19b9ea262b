//! A consumer's picture of the live inventory, kept by [`crate::follow`].

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use mangaassist_proto::v1 as pb;
use parking_lot::RwLock;

use crate::Change;

/// What a consumer knows about one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Changed at runtime: the live quantity and price, and when.
    Changed {
        quantity: u32,
        price_yen: u32,
        changed_ms: i64,
    },
    /// Never changed at runtime: the catalog's values stand.
    Catalog,
    /// The view is not caught up with the inventory (feed down or starting): unknown.
    Unknown,
}

/// Products changed at runtime and the flash-sale mode of each store, as of the last event
/// received. Cheap to clone; readers never wait for the feed.
#[derive(Debug, Clone, Default)]
pub struct StockView {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    stock: RwLock<HashMap<(String, String), pb::StockState>>,
    flash: RwLock<HashMap<String, bool>>,
    seq: AtomicU64,
    ready: AtomicBool,
    /// Every stock change as it is applied, for consumers that show products live (the
    /// gateway's open connections). Slow receivers lag and skip; the view itself never waits.
    changes: tokio::sync::broadcast::Sender<pb::StockState>,
}

/// Stock changes a receiver may fall behind by before it skips the oldest.
const CHANGE_BACKLOG: usize = 1024;

impl Default for Inner {
    fn default() -> Self {
        Self {
            stock: RwLock::default(),
            flash: RwLock::default(),
            seq: AtomicU64::default(),
            ready: AtomicBool::default(),
            changes: tokio::sync::broadcast::Sender::new(CHANGE_BACKLOG),
        }
    }
}

impl StockView {
    /// Whether the view holds every change up to the inventory's latest (it has caught up
    /// and its feed is connected).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Number of the last change applied.
    pub fn seq(&self) -> u64 {
        self.inner.seq.load(Ordering::Acquire)
    }

    pub fn availability(&self, store: &str, product: &str) -> Availability {
        if !self.is_ready() {
            return Availability::Unknown;
        }
        match self
            .inner
            .stock
            .read()
            .get(&(store.to_string(), product.to_string()))
        {
            Some(s) => Availability::Changed {
                quantity: s.quantity,
                price_yen: s.price_yen,
                changed_ms: s.changed_ms,
            },
            None => Availability::Catalog,
        }
    }

    /// Stock changes applied from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<pb::StockState> {
        self.inner.changes.subscribe()
    }

    pub fn flash_sale(&self, store: &str) -> bool {
        self.inner.flash.read().get(store).copied().unwrap_or(false)
    }

    pub(crate) fn apply(&self, change: &Change) {
        match change {
            Change::Stock(s) => {
                self.inner
                    .stock
                    .write()
                    .insert((s.store_id.clone(), s.product_id.clone()), s.clone());
                // No receiver is fine: nobody is showing products right now.
                let _ = self.inner.changes.send(s.clone());
            }
            Change::FlashSale(f) => {
                self.inner.flash.write().insert(f.store_id.clone(), f.on);
            }
        }
        self.inner.seq.fetch_max(change.seq(), Ordering::AcqRel);
    }

    pub(crate) fn clear(&self) {
        self.inner.stock.write().clear();
        self.inner.flash.write().clear();
        self.inner.seq.store(0, Ordering::Release);
    }

    /// The display names of a product changed at runtime.
    pub fn names(&self, store: &str, product: &str) -> Option<(String, String)> {
        self.inner
            .stock
            .read()
            .get(&(store.to_string(), product.to_string()))
            .map(|s| (s.title.clone(), s.series.clone()))
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Release);
    }
}
