//! The shared inventory for several retrieval replicas: the latest state of every changed
//! product (and each store's flash-sale mode) in one Redis hash, numbered from one Redis
//! counter, and published on a channel by the same Lua script, so every replica sees the
//! changes in number order. Each replica applies what it receives in order; a number it
//! did not receive (a message lost while its subscriber reconnected) makes it reload the
//! hash and apply what it missed, so it never skips a change and never applies one twice.

use std::{sync::Arc, time::Duration};

use fred::prelude::{
    Client, EventInterface, HashesInterface, KeysInterface, Pool, PubsubInterface, Value,
};
use mangaassist_config::RedisSettings;
use mangaassist_proto::v1 as pb;
use mangaassist_redis::{Connector, Script};
use serde::Deserialize;

use crate::{Change, InventoryError, State};

/// Allocates numbers, writes state and publishes, atomically. KEYS: state hash, counter.
/// ARGV: channel, now_ms, kind, then per stock change 7 values (store, product, quantity,
/// price or 0 to keep, catalog price, title, series) or for a flash-sale change (store,
/// "1"/"0"). Returns the JSON array of the records written.
const LUA_WRITE: &str = r"
local now = tonumber(ARGV[2])
local msgs = {}
if ARGV[3] == 'stock' then
  for i = 4, #ARGV, 7 do
    local field = 's' .. ARGV[i] .. '\31' .. ARGV[i + 1]
    local price = tonumber(ARGV[i + 3])
    if price == 0 then
      local prev = redis.call('HGET', KEYS[1], field)
      if prev then price = cjson.decode(prev).price_yen else price = tonumber(ARGV[i + 4]) end
    end
    local seq = redis.call('INCR', KEYS[2])
    local rec = cjson.encode({kind = 'stock', store_id = ARGV[i], product_id = ARGV[i + 1],
      quantity = tonumber(ARGV[i + 2]), price_yen = price, seq = seq, changed_ms = now,
      title = ARGV[i + 5], series = ARGV[i + 6]})
    redis.call('HSET', KEYS[1], field, rec)
    msgs[#msgs + 1] = rec
  end
else
  local seq = redis.call('INCR', KEYS[2])
  local rec = cjson.encode({kind = 'flash', store_id = ARGV[4], on = (ARGV[5] == '1'),
    seq = seq, changed_ms = now})
  redis.call('HSET', KEYS[1], 'f' .. ARGV[4], rec)
  msgs[#msgs + 1] = rec
end
local out = '[' .. table.concat(msgs, ',') .. ']'
redis.call('PUBLISH', ARGV[1], out)
return out
";

/// One record as the script writes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Stock {
        store_id: String,
        product_id: String,
        quantity: u32,
        price_yen: u32,
        seq: u64,
        changed_ms: i64,
        #[serde(default)]
        title: String,
        #[serde(default)]
        series: String,
    },
    Flash {
        store_id: String,
        on: bool,
        seq: u64,
        changed_ms: i64,
    },
}

impl From<Record> for Change {
    fn from(r: Record) -> Self {
        match r {
            Record::Stock {
                store_id,
                product_id,
                quantity,
                price_yen,
                seq,
                changed_ms,
                title,
                series,
            } => Change::Stock(pb::StockState {
                store_id,
                product_id,
                quantity,
                price_yen,
                seq,
                changed_ms,
                title,
                series,
            }),
            Record::Flash {
                store_id,
                on,
                seq,
                changed_ms,
            } => Change::FlashSale(pb::FlashSaleState {
                store_id,
                on,
                seq,
                changed_ms,
            }),
        }
    }
}

fn backend(e: impl std::fmt::Display) -> InventoryError {
    InventoryError::Storage(format!("redis: {e}"))
}

/// Parses a JSON array of records (a script reply or a channel message).
pub(crate) fn parse_records(json: &str) -> Result<Vec<Change>, InventoryError> {
    // cjson writes an empty table as `{}`; nothing is published empty, but be lenient.
    if json.trim() == "{}" {
        return Ok(vec![]);
    }
    let records: Vec<Record> =
        serde_json::from_str(json).map_err(|e| backend(format!("bad inventory record: {e}")))?;
    Ok(records.into_iter().map(Change::from).collect())
}

/// How often a replica compares its last number with Redis's counter, in case the last
/// message before a quiet spell was lost (a gap is otherwise seen at the next message).
pub(crate) const RECONCILE_EVERY: Duration = Duration::from_secs(5);

pub(crate) struct RedisLog {
    pool: Pool,
    subscriber: Client,
    write: Script,
    state_key: String,
    seq_key: String,
    pub channel: String,
}

impl RedisLog {
    pub async fn connect(settings: &RedisSettings) -> Result<Arc<Self>, InventoryError> {
        let connector = Connector::new(settings).map_err(backend)?;
        let pool = connector.pool().await.map_err(backend)?;
        let subscriber = connector.client().await.map_err(backend)?;
        let write = Script::load(&pool, LUA_WRITE)
            .await
            .map_err(|e| backend(connector.load_failed(e)))?;
        let prefix = format!("{}inventory:", settings.key_prefix);
        Ok(Arc::new(Self {
            pool,
            subscriber,
            write,
            state_key: format!("{prefix}state"),
            seq_key: format!("{prefix}seq"),
            channel: format!("{prefix}changes"),
        }))
    }

    pub fn subscriber(&self) -> &Client {
        &self.subscriber
    }

    pub async fn subscribe(&self) -> Result<(), InventoryError> {
        self.subscriber
            .subscribe(self.channel.as_str())
            .await
            .map_err(backend)
    }

    /// Every record in the hash, as a state.
    /// The whole state, numbered. The counter is read before the hash: a write landing in
    /// between then shows in the hash with a number above the counter, which the records
    /// carry. Read the other way round, such a write was counted but missing, its message
    /// was dropped as already applied, and this replica stayed without it for good.
    pub async fn load(&self) -> Result<State, InventoryError> {
        let counter: Option<u64> = self
            .pool
            .get(self.seq_key.as_str())
            .await
            .map_err(backend)?;
        let all: std::collections::HashMap<String, String> = self
            .pool
            .hgetall(self.state_key.as_str())
            .await
            .map_err(backend)?;
        let mut state = State {
            seq: counter.unwrap_or(0),
            ..State::default()
        };
        for json in all.values() {
            for c in parse_records(&format!("[{json}]"))? {
                state.seq = state.seq.max(c.seq());
                match c {
                    Change::Stock(s) => {
                        state
                            .stock
                            .insert((s.store_id.clone(), s.product_id.clone()), s);
                    }
                    Change::FlashSale(f) => {
                        state.flash.insert(f.store_id.clone(), f);
                    }
                }
            }
        }
        Ok(state)
    }

    pub async fn counter(&self) -> Result<u64, InventoryError> {
        let v: Option<u64> = self
            .pool
            .get(self.seq_key.as_str())
            .await
            .map_err(backend)?;
        Ok(v.unwrap_or(0))
    }

    /// Runs the write script; returns the records written, numbered.
    pub async fn write(
        &self,
        kind: &str,
        now_ms: i64,
        args: Vec<Value>,
    ) -> Result<Vec<Change>, InventoryError> {
        let mut argv = vec![
            Value::from(self.channel.as_str()),
            Value::from(now_ms),
            Value::from(kind),
        ];
        argv.extend(args);
        let reply = self
            .write
            .call(
                &self.pool,
                vec![self.state_key.clone(), self.seq_key.clone()],
                argv,
            )
            .await
            .map_err(backend)?;
        let json = reply
            .as_str()
            .ok_or_else(|| backend(format!("unexpected script reply {reply:?}")))?;
        parse_records(&json)
    }
}

/// Receives the channel until the inventory is dropped: applies each message in order,
/// reloads on a gap, on a reconnection and when the counter runs ahead. Holds the
/// inventory weakly, so dropping it ends the listener.
pub(crate) async fn listen(weak: std::sync::Weak<crate::Inner>, log: Arc<RedisLog>) {
    let current = || weak.upgrade().map(|inner| crate::Inventory { inner });
    let mut messages = log.subscriber().message_rx();
    let mut reconnects = log.subscriber().reconnect_rx();
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = messages.recv() => match msg {
                Ok(msg) if &*msg.channel == log.channel.as_str() => {
                    let Some(inventory) = current() else { return };
                    let Some(json) = msg.value.as_str() else { continue };
                    match parse_records(&json) {
                        Ok(changes) => {
                            if inventory.apply_ordered(changes).is_err() {
                                reload(&inventory, &log).await;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "inventory: bad message on the channel"),
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let Some(inventory) = current() else { return };
                    reload(&inventory, &log).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            r = reconnects.recv() => match r {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let Some(inventory) = current() else { return };
                    if let Err(e) = log.subscribe().await {
                        tracing::warn!(error = %e, "inventory: resubscribing to Redis failed");
                    }
                    reload(&inventory, &log).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let Some(inventory) = current() else { return };
                match log.counter().await {
                    Ok(c) if c > inventory.seq() => reload(&inventory, &log).await,
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "inventory: cannot read the change counter"),
                }
            }
        }
    }
}

pub(crate) async fn reload(inventory: &crate::Inventory, log: &RedisLog) {
    match log.load().await {
        Ok(state) => {
            metrics::counter!("inventory_reloads_total").increment(1);
            inventory.apply_state(&state);
        }
        Err(e) => tracing::warn!(error = %e, "inventory: cannot reload the state from Redis"),
    }
}

#[cfg(test)]
mod load_tests {
    #![allow(clippy::unwrap_used)]
    #![allow(
        clippy::disallowed_methods,
        reason = "the test's writer task is awaited before the test ends"
    )]
    use super::*;

    /// Every load taken while writes land holds every change its number covers.
    #[tokio::test]
    async fn a_load_during_writes_never_counts_a_change_it_lacks() {
        let server = mangaassist_testkit::RedisServer::start();
        let log = RedisLog::connect(&server.settings()).await.unwrap();
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..300u32 {
                    let args = vec![
                        Value::from("s"),
                        Value::from(format!("p{}", i % 7)),
                        Value::from(i64::from(i)),
                        Value::from(0i64),
                        Value::from(500i64),
                        Value::from("T"),
                        Value::from("S"),
                    ];
                    log.write("stock", 0, args).await.unwrap();
                }
            })
        };
        let mut loads = 0;
        while !writer.is_finished() {
            let state = log.load().await.unwrap();
            // Change n set product p(n-1 mod 7) to n-1: the newest change of each product
            // at or below the loaded number must be in the state.
            for n in state.seq.saturating_sub(6).max(1)..=state.seq {
                let product = format!("p{}", (n - 1) % 7);
                let got = state
                    .stock
                    .get(&("s".to_string(), product.clone()))
                    .map(|s| s.seq);
                assert!(
                    got.is_some_and(|g| g >= n),
                    "load numbered {} lacks change {n} ({product}: {got:?})",
                    state.seq
                );
            }
            loads += 1;
        }
        writer.await.unwrap();
        assert!(loads > 1);
    }
}
