//! Demand: how often each product has been named by an answer lately, per store, decayed with
//! a half-life, so the trending job follows what customers ask about now rather than release
//! dates.
//!
//! A product's count is kept as one number, z = log2(Σ cᵢ · 2^(tᵢ / h)) over its reports (cᵢ
//! answers reported at tᵢ seconds, h the half-life). The decayed count at `now` is then
//! 2^(z − now / h), ranking needs no decay pass (z orders products as their decayed counts
//! do), and z stays near now / h, so it never overflows however long the daemon runs. Adding
//! a report is a log-sum-exp. Embedded: a map in the daemon, written to
//! `<data.state_dir>/precompute-demand.json` at shutdown (z is absolute, so a reload needs no
//! adjustment). Redis: one sorted set per store with z as the score, updated by a script, so
//! every replica, and the one holding the scheduler lease, sees every gateway's reports.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use fred::prelude::{Pool, SortedSetsInterface, Value};
use mangaassist_config::RedisSettings;
use mangaassist_redis::{Connector, Script};

/// Adds `count` at `t` (seconds) to a product's z.
const LUA_ADD: &str = r"
local n = 0
for i = 1, #ARGV, 2 do
  local w = tonumber(ARGV[i])
  local m = ARGV[i + 1]
  local z = redis.call('ZSCORE', KEYS[1], m)
  if z then
    z = tonumber(z)
    local hi, lo = math.max(z, w), math.min(z, w)
    w = hi + math.log(1 + 2 ^ (lo - hi)) / math.log(2)
  end
  redis.call('ZADD', KEYS[1], string.format('%.17g', w), m)
  n = n + 1
end
return n
";

#[derive(Debug, thiserror::Error)]
pub enum DemandError {
    #[error("demand on Redis: {0}")]
    Redis(String),
    #[error("demand file {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// log2 of `count` answers at `t_s`, in units of the half-life.
fn weight(count: u32, t_s: f64, half_life_s: f64) -> f64 {
    f64::from(count.max(1)).log2() + t_s / half_life_s
}

/// log2(2^a + 2^b) without leaving the log domain.
fn log2_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    hi + (1.0 + (lo - hi).exp2()).log2()
}

enum Backend {
    Memory {
        /// store → product → z.
        map: Mutex<HashMap<String, HashMap<String, f64>>>,
        /// Where the map is saved at shutdown; `None` keeps it in memory only.
        path: Option<PathBuf>,
    },
    Redis {
        pool: Pool,
        prefix: String,
        add: Script,
    },
}

/// Decayed demand per product, per store.
pub struct Demand {
    half_life_s: f64,
    backend: Backend,
}

impl Demand {
    /// In this process; loaded from `path` when it exists and saved there by [`Demand::save`].
    pub fn memory(half_life_s: u64, path: Option<PathBuf>) -> Result<Self, DemandError> {
        let map = match &path {
            Some(p) => load(p)?,
            None => HashMap::new(),
        };
        Ok(Self {
            half_life_s: half_life_s.max(1) as f64,
            backend: Backend::Memory {
                map: Mutex::new(map),
                path,
            },
        })
    }

    /// In the shared Redis of the `redis` section.
    pub async fn redis(settings: &RedisSettings, half_life_s: u64) -> Result<Self, DemandError> {
        let err = |e: &dyn std::fmt::Display| DemandError::Redis(e.to_string());
        let connector = Connector::new(settings).map_err(|e| err(&e))?;
        let pool = connector.pool().await.map_err(|e| err(&e))?;
        let add = Script::load(&pool, LUA_ADD).await.map_err(|e| err(&e))?;
        Ok(Self {
            half_life_s: half_life_s.max(1) as f64,
            backend: Backend::Redis {
                pool,
                prefix: format!("{}precompute:demand:", settings.key_prefix),
                add,
            },
        })
    }

    pub fn half_life_s(&self) -> f64 {
        self.half_life_s
    }

    /// Adds `counts` (product, answers) of `store`, reported at `now_s`.
    pub async fn add(
        &self,
        store: &str,
        counts: &[(String, u32)],
        now_s: f64,
    ) -> Result<(), DemandError> {
        if counts.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Memory { map, .. } => {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                let products = map.entry(store.to_string()).or_default();
                for (product, count) in counts {
                    let w = weight(*count, now_s, self.half_life_s);
                    products
                        .entry(product.clone())
                        .and_modify(|z| *z = log2_add(*z, w))
                        .or_insert(w);
                }
                Ok(())
            }
            Backend::Redis { pool, prefix, add } => {
                let mut args = Vec::with_capacity(counts.len() * 2);
                for (product, count) in counts {
                    args.push(Value::from(format!(
                        "{:.17e}",
                        weight(*count, now_s, self.half_life_s)
                    )));
                    args.push(Value::from(product.as_str()));
                }
                add.call(pool, vec![format!("{prefix}{store}")], args)
                    .await
                    .map(|_| ())
                    .map_err(|e| DemandError::Redis(e.to_string()))
            }
        }
    }

    /// Every product of `store` with its decayed count at `now_s`.
    pub async fn counts(&self, store: &str, now_s: f64) -> Result<Vec<(String, f64)>, DemandError> {
        let scale = now_s / self.half_life_s;
        let zs: Vec<(String, f64)> = match &self.backend {
            Backend::Memory { map, .. } => map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(store)
                .map(|m| m.iter().map(|(p, z)| (p.clone(), *z)).collect())
                .unwrap_or_default(),
            Backend::Redis { pool, prefix, .. } => {
                let v: Value = pool
                    .zrange(format!("{prefix}{store}"), 0, -1, None, false, None, true)
                    .await
                    .map_err(|e| DemandError::Redis(e.to_string()))?;
                scored_members(v)?
            }
        };
        Ok(zs
            .into_iter()
            .map(|(p, z)| (p, (z - scale).exp2()))
            .collect())
    }

    /// Writes the embedded map to its file (nothing for Redis or a map without a file).
    pub fn save(&self) -> Result<(), DemandError> {
        let Backend::Memory {
            map,
            path: Some(path),
        } = &self.backend
        else {
            return Ok(());
        };
        let snapshot = map.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if snapshot.is_empty() && !path.exists() {
            return Ok(());
        }
        let file_err = |message: String| DemandError::File {
            path: path.clone(),
            message,
        };
        let text = serde_json::to_string(&snapshot).map_err(|e| file_err(e.to_string()))?;
        mangaassist_statefile::write_atomic(path, &text).map_err(|e| file_err(e.to_string()))
    }
}

/// `ZRANGE … WITHSCORES` as (member, score): flat pairs (RESP2) or one array per member
/// (RESP3).
fn scored_members(v: Value) -> Result<Vec<(String, f64)>, DemandError> {
    let bad = |what: &str| DemandError::Redis(format!("ZRANGE returned {what}"));
    let Value::Array(items) = v else {
        return Err(bad("a non-array"));
    };
    let flat: Vec<Value> = items
        .into_iter()
        .flat_map(|i| match i {
            Value::Array(pair) => pair,
            other => vec![other],
        })
        .collect();
    flat.chunks(2)
        .map(|pair| match pair {
            [m, s] => {
                let member = m
                    .as_string()
                    .ok_or_else(|| bad("a member that is not text"))?;
                let score = s
                    .as_f64()
                    .ok_or_else(|| bad("a score that is not a number"))?;
                Ok((member, score))
            }
            _ => Err(bad("an odd number of values")),
        })
        .collect()
}

/// The saved map; a missing file is an empty map, a damaged one an error naming it (a
/// daemon that silently forgot its demand would pick stale trending series for hours).
fn load(path: &Path) -> Result<HashMap<String, HashMap<String, f64>>, DemandError> {
    let read = mangaassist_statefile::read(path).map_err(|e| DemandError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let Some(text) = read else {
        return Ok(HashMap::new());
    };
    let map: HashMap<String, HashMap<String, f64>> =
        serde_json::from_str(&text).map_err(|e| DemandError::File {
            path: path.to_path_buf(),
            message: format!("not a demand snapshot ({e}); move it away to start from zero"),
        })?;
    if map
        .values()
        .flat_map(|m| m.values())
        .any(|z| !z.is_finite())
    {
        return Err(DemandError::File {
            path: path.to_path_buf(),
            message: "holds a count that is not a finite number".into(),
        });
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600;

    fn count(v: &[(String, f64)], p: &str) -> f64 {
        v.iter().find(|(q, _)| q == p).map_or(0.0, |(_, c)| *c)
    }

    #[tokio::test]
    async fn counts_add_up_and_halve_every_half_life() {
        let d = Demand::memory(H, None).unwrap();
        let t0 = 1.8e9;
        d.add("s", &[("a".into(), 3), ("b".into(), 1)], t0)
            .await
            .unwrap();
        d.add("s", &[("a".into(), 1)], t0).await.unwrap();
        let now = d.counts("s", t0).await.unwrap();
        assert!((count(&now, "a") - 4.0).abs() < 1e-9, "{now:?}");
        assert!((count(&now, "b") - 1.0).abs() < 1e-9);
        let later = d.counts("s", t0 + H as f64).await.unwrap();
        assert!((count(&later, "a") - 2.0).abs() < 1e-9, "{later:?}");
        // Two reports an hour apart: the older counts half.
        d.add("s", &[("b".into(), 1)], t0 + H as f64).await.unwrap();
        let both = d.counts("s", t0 + H as f64).await.unwrap();
        assert!((count(&both, "b") - 1.5).abs() < 1e-9, "{both:?}");
        assert!(d.counts("other", t0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn recent_demand_outranks_a_larger_old_one() {
        let d = Demand::memory(H, None).unwrap();
        let t0 = 1.8e9;
        d.add("s", &[("old".into(), 100)], t0).await.unwrap();
        // Ten half-lives later 100 answers weigh less than 1.
        let t1 = t0 + 10.0 * H as f64;
        d.add("s", &[("new".into(), 1)], t1).await.unwrap();
        let c = d.counts("s", t1).await.unwrap();
        assert!(count(&c, "new") > count(&c, "old"), "{c:?}");
    }

    #[tokio::test]
    async fn saved_demand_survives_a_restart_and_a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demand.json");
        let d = Demand::memory(H, Some(path.clone())).unwrap();
        d.add("s", &[("a".into(), 2)], 1.8e9).await.unwrap();
        d.save().unwrap();
        let again = Demand::memory(H, Some(path.clone())).unwrap();
        let c = again.counts("s", 1.8e9).await.unwrap();
        assert!((count(&c, "a") - 2.0).abs() < 1e-9, "{c:?}");
        std::fs::write(&path, "{not json").unwrap();
        let e = Demand::memory(H, Some(path.clone())).err().unwrap();
        assert!(e.to_string().contains("demand.json"), "{e}");
    }

    #[test]
    fn log_sum_stays_exact_far_from_zero() {
        // z near now / h for a daemon running in 2026 with a one-minute half-life.
        let z = weight(1, 1.8e9, 60.0);
        let twice = log2_add(z, z);
        assert!((twice - z - 1.0).abs() < 1e-9);
    }
}
