//! [`CacheStore`] on a shared Redis, so every cache replica serves the same entries.
//!
//! # Layout
//!
//! Every key starts with `{redis.key_prefix}cache:` (`P` below):
//!
//! | key | type | content |
//! |-----|------|---------|
//! | `P:seq` | string | id counter; ids grow with every put, so a lower id is an older entry |
//! | `P:ids` | zset | every entry id, score = id (eviction order, entry count) |
//! | `P:exp` | zset | every entry id, score = `expires_ms` on the caller's clock (purge) |
//! | `P:k:{sha256(exact key)}` | string | id of the entry with that exact key |
//! | `P:a:{id}` | string | the answer, `pb::CachedAnswer` encoded with prost |
//! | `P:m:{id}` | hash | `k` key hash, `v` partition hash (empty = no vector), `s` store id, `ps` products (msgpack) |
//! | `P:v:{sha256(partition)}` | hash | id → question vector, little-endian `f32` bytes |
//! | `P:p:{product id}` | set | ids of the entries mentioning the product |
//! | `P:evictions` | string | entries evicted at `max_entries` so far |
//!
//! # Expiry
//!
//! The answer and exact-key pointer get a real Redis TTL (`SET … PX`), so they vanish even
//! if no replica ever purges. The TTL is `expires_ms - created_ms` (the daemon stamps both from
//! its clock just before the put), i.e. relative: a replica whose clock is off does not shift
//! when Redis drops the entry. Reads still compare `expires_ms` with the caller's `now_ms`, so
//! lookups agree with the caller's clock. Metadata, vectors and product sets live
//! [`METADATA_GRACE`] longer than the answer so [`CacheStore::purge_expired`] can still find what
//! to unlink; if even that lapses, the indexes keep dangling ids that every reader tolerates
//! (an id whose answer is gone is simply skipped) and their keys expire on their own.
//!
//! # Atomicity
//!
//! A put reads before it writes (the entry the key replaces, the oldest entries to evict, the
//! dimension already used in the partition), which `MULTI` cannot express: puts, removals and
//! purges are Lua scripts, atomic on the server, so two replicas writing the same key cannot
//! leave half an entry or a stale index behind. Scripts build key names from the prefix, so all
//! keys of one prefix must live on one node: on Redis Cluster, make the prefix a hash tag
//! (`key_prefix = "{ma}:"`).
//!
//! # Semantic search
//!
//! No RediSearch module is assumed (plain `redis-server` 7), so a partition's vectors are one
//! hash fetched with `HGETALL` and scanned here, brute force, like the in-memory store. That
//! costs `4 × dim` bytes of transfer per vector per lookup (1.5 KiB at 384 dimensions), so a
//! partition holds at most `cache.redis_max_partition_entries` vectors (default 1,000, about
//! 1.5 MiB per lookup): a put into a full partition evicts that partition's oldest entry, in
//! the same script. A store partition that needs more than that wants Redis Stack
//! (`FT.SEARCH … KNN`) or a replica-local mirror of the vectors; the trait does not change.

use std::{fmt::Write as _, time::Duration};

use fred::interfaces::HashesInterface;
use fred::prelude::{
    Error as RedisError, KeysInterface, LuaInterface, Pool, SortedSetsInterface, Value,
};
use mangaassist_config::RedisSettings;
use mangaassist_proto::v1 as pb;
use mangaassist_redis::{ConnectError, Connector};
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::{
    CacheError, SystemClock,
    clock::Clock,
    store::{CacheEntry, CacheStore, Partition, PutOutcome, StoreStats},
};

/// How much longer than its answer an entry's metadata and index memberships are kept.
pub const METADATA_GRACE: Duration = Duration::from_secs(3_600);

/// Entries with vectors kept per partition unless configured
/// (`cache.redis_max_partition_entries`): 1,000 vectors of 384 dimensions are 1.5 MiB per
/// lookup.
pub const DEFAULT_MAX_PARTITION_ENTRIES: usize = 1_000;

/// Partitions with more vectors than this are scanned on the blocking pool.
const INLINE_SCAN_MAX: usize = 2_048;
/// Candidates fetched per round trip while looking for the best live one.
const CANDIDATE_BATCH: usize = 8;
/// Expired entries unlinked per purge script call, so one call never blocks Redis for long.
const PURGE_BATCH: usize = 500;

/// `remove(id)`: unlinks one entry everywhere; returns 1 if it was still listed.
const LUA_REMOVE: &str = r"
local function remove(P, id)
  local m = redis.call('HMGET', P .. 'm:' .. id, 'k', 'v', 'ps')
  if m[1] then
    local kk = P .. 'k:' .. m[1]
    if redis.call('GET', kk) == id then redis.call('DEL', kk) end
  end
  if m[2] and m[2] ~= '' then redis.call('HDEL', P .. 'v:' .. m[2], id) end
  if m[3] then
    for _, prod in ipairs(cmsgpack.unpack(m[3])) do
      redis.call('SREM', P .. 'p:' .. prod, id)
    end
  end
  redis.call('DEL', P .. 'a:' .. id, P .. 'm:' .. id)
  redis.call('ZREM', P .. 'exp', id)
  return redis.call('ZREM', P .. 'ids', id)
end
";

/// ARGV: prefix, key hash. Returns the answer bytes or nil.
const LUA_GET: &str = r"
local P = ARGV[1]
local id = redis.call('GET', P .. 'k:' .. ARGV[2])
if not id then return false end
return redis.call('GET', P .. 'a:' .. id)
";

/// ARGV: prefix, key hash, partition hash, store id, answer, vector ('' = none), ttl ms,
/// expires_ms, max entries, grace ms, max vectors per partition, product ids... Returns how
/// many entries were evicted.
const LUA_PUT: &str = r"
local P = ARGV[1]
local function extend(key, ms)
  local t = redis.call('PTTL', key)
  if t < ms then redis.call('PEXPIRE', key, ms) end
end
local kk = P .. 'k:' .. ARGV[2]
local old = redis.call('GET', kk)
if old then remove(P, old) end
local max = tonumber(ARGV[9])
local evicted = 0
while redis.call('ZCARD', P .. 'ids') >= max do
  local oldest = redis.call('ZRANGE', P .. 'ids', 0, 0)
  if #oldest == 0 then break end
  remove(P, oldest[1])
  evicted = evicted + 1
end
local id = tostring(redis.call('INCR', P .. 'seq'))
local ttl = tonumber(ARGV[7])
local keep = ttl + tonumber(ARGV[10])
local vpart = ''
local vec = ARGV[6]
if #vec > 0 then
  local vk = P .. 'v:' .. ARGV[3]
  local sample = redis.call('HRANDFIELD', vk, 1, 'WITHVALUES')
  -- A vector of another size comes from another model: keep the entry exact-only.
  if #sample == 0 or #sample[2] == #vec then
    -- A full partition drops its oldest entry (lowest id) first: a lookup fetches the whole
    -- hash, so its size is what bounds a lookup's transfer.
    local cap = tonumber(ARGV[11])
    while redis.call('HLEN', vk) >= cap do
      local oldest = nil
      for _, f in ipairs(redis.call('HKEYS', vk)) do
        local n = tonumber(f)
        if n and (oldest == nil or n < oldest) then oldest = n end
      end
      if oldest == nil then break end
      evicted = evicted + remove(P, tostring(oldest))
      -- An entry whose metadata already lapsed left only this field.
      redis.call('HDEL', vk, tostring(oldest))
    end
    redis.call('HSET', vk, id, vec)
    extend(vk, keep)
    vpart = ARGV[3]
  end
end
if evicted > 0 then redis.call('INCRBY', P .. 'evictions', evicted) end
local products = {}
for i = 12, #ARGV do
  products[#products + 1] = ARGV[i]
  local pk = P .. 'p:' .. ARGV[i]
  redis.call('SADD', pk, id)
  extend(pk, keep)
end
redis.call('SET', P .. 'a:' .. id, ARGV[5], 'PX', ttl)
redis.call('SET', kk, id, 'PX', ttl)
local mk = P .. 'm:' .. id
redis.call('HSET', mk, 'k', ARGV[2], 'v', vpart, 's', ARGV[4], 'ps', cmsgpack.pack(products))
redis.call('PEXPIRE', mk, keep)
redis.call('ZADD', P .. 'ids', id, id)
redis.call('ZADD', P .. 'exp', ARGV[8], id)
return evicted
";

/// ARGV: prefix, store id ('' = every store), product ids... Returns entries removed.
const LUA_INVALIDATE: &str = r"
local P = ARGV[1]
local store = ARGV[2]
local removed = 0
for i = 3, #ARGV do
  local pk = P .. 'p:' .. ARGV[i]
  for _, id in ipairs(redis.call('SMEMBERS', pk)) do
    local s = redis.call('HGET', P .. 'm:' .. id, 's')
    if not s then
      -- Metadata outlives the answer, so this entry is long dead: only drop its traces.
      remove(P, id)
      redis.call('SREM', pk, id)
    elseif store == '' or s == store then
      removed = removed + remove(P, id)
    end
  end
end
return removed
";

/// ARGV: prefix, now_ms, batch. Returns {removed, seen}.
const LUA_PURGE: &str = r"
local P = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local removed = 0
for _, id in ipairs(ids) do removed = removed + remove(P, id) end
return {removed, #ids}
";

/// A script loaded once with `SCRIPT LOAD` and called by hash; re-sent whole if Redis lost
/// its script cache (restart, `SCRIPT FLUSH`).
#[derive(Debug)]
struct Script {
    source: String,
    sha: String,
}

impl Script {
    async fn load(pool: &Pool, source: String) -> Result<Self, RedisError> {
        let sha: String = pool.script_load(source.as_str()).await?;
        Ok(Self { source, sha })
    }

    async fn call(&self, pool: &Pool, args: Vec<Value>) -> Result<Value, RedisError> {
        let no_keys: Vec<String> = Vec::new();
        match pool
            .evalsha::<Value, _, _, _>(self.sha.as_str(), no_keys.clone(), args.clone())
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                pool.eval(self.source.as_str(), no_keys, args).await
            }
            other => other,
        }
    }
}

/// The Redis cache backend. Cloning is not needed: share it behind an `Arc`.
#[derive(Debug)]
pub struct RedisCacheStore {
    pool: Pool,
    prefix: String,
    max_entries: usize,
    max_partition_entries: usize,
    get: Script,
    put: Script,
    invalidate: Script,
    purge: Script,
}

fn connect_error(e: ConnectError) -> CacheError {
    CacheError::Backend(e.to_string())
}

fn backend(e: RedisError) -> CacheError {
    CacheError::Backend(format!("redis: {e}"))
}

fn hex_sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    // 128 bits are plenty against accidental collisions and keep key names short.
    digest[..16]
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn partition_hash(p: &Partition) -> String {
    // The exact key of the empty text is length prefixed per field, so it names the partition
    // unambiguously.
    hex_sha256(p.exact_key("").as_bytes())
}

fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_answer(bytes: &[u8]) -> Result<pb::CachedAnswer, CacheError> {
    pb::CachedAnswer::decode(bytes)
        .map_err(|e| CacheError::Backend(format!("redis holds an undecodable answer: {e}")))
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

impl RedisCacheStore {
    /// Connects to `settings.url` and loads the scripts; at most `max_entries` (at least 1)
    /// entries are kept, the oldest going first.
    pub async fn connect(settings: &RedisSettings, max_entries: usize) -> Result<Self, CacheError> {
        let connector = Connector::new(settings).map_err(connect_error)?;
        let pool = connector.pool().await.map_err(connect_error)?;
        let with_remove = |body: &str| format!("{LUA_REMOVE}{body}");
        let load = |e: RedisError| connect_error(connector.load_failed(e));
        Ok(Self {
            get: Script::load(&pool, LUA_GET.to_string())
                .await
                .map_err(load)?,
            put: Script::load(&pool, with_remove(LUA_PUT))
                .await
                .map_err(load)?,
            invalidate: Script::load(&pool, with_remove(LUA_INVALIDATE))
                .await
                .map_err(load)?,
            purge: Script::load(&pool, with_remove(LUA_PURGE))
                .await
                .map_err(load)?,
            prefix: format!("{}cache:", settings.key_prefix),
            max_entries: max_entries.max(1),
            max_partition_entries: DEFAULT_MAX_PARTITION_ENTRIES,
            pool,
        })
    }

    /// Keeps at most `n` (at least 1) entries with vectors per partition, the oldest going
    /// first, so one semantic lookup fetches at most `n` vectors
    /// (`cache.redis_max_partition_entries`).
    pub fn with_max_partition_entries(mut self, n: usize) -> Self {
        self.max_partition_entries = n.max(1);
        self
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push_str(p);
        }
        k
    }

    /// Scores every vector of the partition and returns candidates at or above `threshold`,
    /// best first.
    fn rank(rows: Vec<(String, Vec<u8>)>, vector: &[f32], threshold: f32) -> Vec<(String, f32)> {
        let width = vector.len() * 4;
        let mut row = Vec::with_capacity(vector.len());
        let mut found: Vec<(String, f32)> = rows
            .into_iter()
            .filter(|(_, bytes)| bytes.len() == width)
            .filter_map(|(id, bytes)| {
                row.clear();
                row.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                let sim = mangaassist_embedding::cosine(&row, vector);
                (sim >= threshold).then_some((id, sim))
            })
            .collect();
        // Ties go to the older entry (lower id), like the in-memory scan order.
        found.sort_by(|a, b| {
            b.1.total_cmp(&a.1).then_with(|| {
                let (x, y) = (a.0.parse::<u64>(), b.0.parse::<u64>());
                match (x, y) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => a.0.cmp(&b.0),
                }
            })
        });
        found
    }
}

/// The partition hash as returned by `HGETALL` (RESP2 arrays or RESP3 maps).
fn hash_rows(v: Value) -> Vec<(String, Vec<u8>)> {
    match v {
        Value::Map(map) => map
            .inner()
            .into_iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.into_owned_bytes()?)))
            .collect(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let (Some(k), Some(v)) = (k.as_string(), v.into_owned_bytes()) {
                    out.push((k, v));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

#[async_trait::async_trait]
impl CacheStore for RedisCacheStore {
    async fn get_exact(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<pb::CachedAnswer>, CacheError> {
        let args = vec![
            Value::from(self.prefix.as_str()),
            Value::from(hex_sha256(key.as_bytes())),
        ];
        let got = self.get.call(&self.pool, args).await.map_err(backend)?;
        let Some(bytes) = got.as_bytes() else {
            return Ok(None);
        };
        let answer = decode_answer(bytes)?;
        // Redis dropped it at its TTL on the server's clock; this is the caller's clock.
        Ok((answer.expires_ms > now_ms).then_some(answer))
    }

    async fn put(&self, entry: CacheEntry) -> Result<PutOutcome, CacheError> {
        let answer = &entry.answer;
        let start = if answer.created_ms > 0 {
            answer.created_ms
        } else {
            SystemClock.now_ms()
        };
        let ttl_ms = answer.expires_ms.saturating_sub(start).max(1);
        let grace_ms = i64::try_from(METADATA_GRACE.as_millis()).unwrap_or(i64::MAX);
        let vector = entry
            .vector
            .as_deref()
            .map(vector_bytes)
            .unwrap_or_default();
        let mut args = vec![
            Value::from(self.prefix.as_str()),
            Value::from(hex_sha256(entry.key.as_bytes())),
            Value::from(partition_hash(&entry.partition)),
            Value::from(entry.partition.store_id.as_str()),
            Value::from(answer.encode_to_vec().as_slice()),
            Value::from(vector.as_slice()),
            Value::from(ttl_ms),
            Value::from(answer.expires_ms),
            Value::from(i64::try_from(self.max_entries).unwrap_or(i64::MAX)),
            Value::from(grace_ms),
            Value::from(i64::try_from(self.max_partition_entries).unwrap_or(i64::MAX)),
        ];
        args.extend(answer.product_ids.iter().map(|p| Value::from(p.as_str())));
        let evicted = self.put.call(&self.pool, args).await.map_err(backend)?;
        Ok(PutOutcome {
            evicted: as_u64(&evicted),
        })
    }

    async fn semantic_len(&self, partition: &Partition) -> Result<usize, CacheError> {
        let key = self.key(&["v:", &partition_hash(partition)]);
        self.pool.hlen(key).await.map_err(backend)
    }

    async fn semantic_search(
        &self,
        partition: &Partition,
        vector: &[f32],
        threshold: f32,
        now_ms: i64,
    ) -> Result<Option<(pb::CachedAnswer, f32)>, CacheError> {
        if vector.is_empty() {
            return Ok(None);
        }
        let key = self.key(&["v:", &partition_hash(partition)]);
        let rows = hash_rows(self.pool.hgetall(key).await.map_err(backend)?);
        let ranked = if rows.len() <= INLINE_SCAN_MAX {
            Self::rank(rows, vector, threshold)
        } else {
            let vector = vector.to_vec();
            tokio::task::spawn_blocking(move || Self::rank(rows, &vector, threshold))
                .await
                .map_err(|e| CacheError::Task(e.to_string()))?
        };
        // The best vector may belong to an entry that expired or was just replaced: take the
        // best one whose answer is still there.
        for batch in ranked.chunks(CANDIDATE_BATCH) {
            let keys: Vec<String> = batch.iter().map(|(id, _)| self.key(&["a:", id])).collect();
            let answers: Vec<Value> = self.pool.mget(keys).await.map_err(backend)?;
            for ((_, sim), answer) in batch.iter().zip(answers) {
                if let Some(bytes) = answer.as_bytes() {
                    let answer = decode_answer(bytes)?;
                    if answer.expires_ms > now_ms {
                        return Ok(Some((answer, *sim)));
                    }
                }
            }
        }
        Ok(None)
    }

    async fn invalidate_products(
        &self,
        store_id: &str,
        product_ids: &[String],
    ) -> Result<u64, CacheError> {
        if product_ids.is_empty() {
            return Ok(0);
        }
        let mut args = vec![Value::from(self.prefix.as_str()), Value::from(store_id)];
        args.extend(product_ids.iter().map(|p| Value::from(p.as_str())));
        let removed = self
            .invalidate
            .call(&self.pool, args)
            .await
            .map_err(backend)?;
        Ok(as_u64(&removed))
    }

    async fn stats(&self) -> Result<StoreStats, CacheError> {
        let pipe = self.pool.next().pipeline();
        let _: () = pipe.zcard(self.key(&["ids"])).await.map_err(backend)?;
        let _: () = pipe.get(self.key(&["evictions"])).await.map_err(backend)?;
        let (entries, evictions): (Option<u64>, Option<u64>) = pipe.all().await.map_err(backend)?;
        Ok(StoreStats {
            entries: entries.unwrap_or(0),
            evictions: evictions.unwrap_or(0),
        })
    }

    async fn purge_expired(&self, now_ms: i64) -> Result<u64, CacheError> {
        let mut removed = 0;
        loop {
            let args = vec![
                Value::from(self.prefix.as_str()),
                Value::from(now_ms),
                Value::from(PURGE_BATCH as i64),
            ];
            let got = self.purge.call(&self.pool, args).await.map_err(backend)?;
            let (batch_removed, seen) = match got {
                Value::Array(v) if v.len() == 2 => (as_u64(&v[0]), as_u64(&v[1])),
                other => {
                    return Err(CacheError::Backend(format!(
                        "redis purge script returned {other:?}"
                    )));
                }
            };
            removed += batch_removed;
            if seen < PURGE_BATCH as u64 {
                return Ok(removed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_skips_other_dimensions_and_orders_best_first() {
        let rows = vec![
            ("3".to_string(), vector_bytes(&[1.0, 0.0])),
            ("1".to_string(), vector_bytes(&[0.6, 0.8])),
            ("2".to_string(), vector_bytes(&[1.0, 0.0, 0.0])),
            ("4".to_string(), vector_bytes(&[1.0, 0.0])),
        ];
        let ranked = RedisCacheStore::rank(rows, &[1.0, 0.0], 0.5);
        let ids: Vec<&str> = ranked.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["3", "4", "1"]);
        assert!(RedisCacheStore::rank(Vec::new(), &[1.0], 0.0).is_empty());
    }
}
