//! The embedded store: one redb file with the latest state of every changed product and the
//! flash-sale mode of every store. Only the latest state is kept (not a log), so the file
//! stays as large as the catalog however often stock changes.

use std::{path::Path, sync::Arc};

use mangaassist_proto::v1 as pb;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{Change, InventoryError, State};

const STOCK: TableDefinition<&str, &[u8]> = TableDefinition::new("stock");
const FLASH: TableDefinition<&str, &[u8]> = TableDefinition::new("flash_sale");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn storage(e: impl std::fmt::Display) -> InventoryError {
    InventoryError::Storage(e.to_string())
}

/// Store and product id never contain the unit separator (ids are validated elsewhere and
/// this is only a key, never parsed back: the value carries both).
fn stock_key(s: &pb::StockState) -> String {
    format!("{}\u{1f}{}", s.store_id, s.product_id)
}

#[derive(Clone)]
pub(crate) struct RedbLog {
    db: Arc<Database>,
}

impl RedbLog {
    pub fn open(path: &Path) -> Result<Self, InventoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| storage(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::create(path)
            .map_err(|e| storage(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(storage)?;
        {
            txn.open_table(STOCK).map_err(storage)?;
            txn.open_table(FLASH).map_err(storage)?;
            txn.open_table(META).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(Self { db: Arc::new(db) })
    }

    pub fn load(&self) -> Result<State, InventoryError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let mut state = State::default();
        let meta = txn.open_table(META).map_err(storage)?;
        state.seq = meta.get("seq").map_err(storage)?.map_or(0, |v| v.value());
        let stock = txn.open_table(STOCK).map_err(storage)?;
        for row in stock.iter().map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            let s = pb::StockState::decode(v.value())
                .map_err(|e| storage(format!("bad stock record `{}`: {e}", k.value())))?;
            state.seq = state.seq.max(s.seq);
            state
                .stock
                .insert((s.store_id.clone(), s.product_id.clone()), s);
        }
        let flash = txn.open_table(FLASH).map_err(storage)?;
        for row in flash.iter().map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            let f = pb::FlashSaleState::decode(v.value())
                .map_err(|e| storage(format!("bad flash-sale record `{}`: {e}", k.value())))?;
            state.seq = state.seq.max(f.seq);
            state.flash.insert(f.store_id.clone(), f);
        }
        Ok(state)
    }

    /// Writes a batch in one durable transaction.
    pub fn write(&self, batch: &[Change]) -> Result<(), InventoryError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut stock = txn.open_table(STOCK).map_err(storage)?;
            let mut flash = txn.open_table(FLASH).map_err(storage)?;
            let mut meta = txn.open_table(META).map_err(storage)?;
            let mut seq = 0;
            for c in batch {
                seq = seq.max(c.seq());
                match c {
                    Change::Stock(s) => {
                        stock
                            .insert(stock_key(s).as_str(), s.encode_to_vec().as_slice())
                            .map_err(storage)?;
                    }
                    Change::FlashSale(f) => {
                        flash
                            .insert(f.store_id.as_str(), f.encode_to_vec().as_slice())
                            .map_err(storage)?;
                    }
                }
            }
            meta.insert("seq", seq).map_err(storage)?;
        }
        txn.commit().map_err(storage)
    }
}
