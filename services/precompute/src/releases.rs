//! Scheduled releases (seed 004 Q19): the volumes announced with `ScheduleRelease`, when they
//! go on sale and whether their answers have been pre-warmed. Kept where the demand is kept:
//! embedded, a map saved to `<data.state_dir>/precompute-releases.json` on every change (an
//! announcement must not be lost to a restart); with Redis, one hash every replica reads, so
//! the replica holding the scheduler lease pre-warms a release another replica was told of.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use fred::prelude::{HashesInterface, Pool};
use mangaassist_config::RedisSettings;
use mangaassist_redis::Connector;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("releases on Redis: {0}")]
    Redis(String),
    #[error("releases file {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// One announced release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub store_id: String,
    pub product_id: String,
    pub release_at_ms: i64,
    /// When its answers were written; 0 = not yet.
    pub warmed_ms: i64,
    pub written: u32,
}

impl Release {
    fn key(&self) -> String {
        key(&self.store_id, &self.product_id)
    }
}

/// Store and product ids hold no `|`? They may: the length prefix keeps keys apart anyway.
fn key(store: &str, product: &str) -> String {
    format!("{}:{store}|{product}", store.len())
}

enum Backend {
    Memory {
        map: Mutex<HashMap<String, Release>>,
        path: Option<PathBuf>,
    },
    Redis {
        pool: Pool,
        key: String,
    },
}

pub struct ReleaseBook {
    backend: Backend,
}

impl ReleaseBook {
    pub fn memory(path: Option<PathBuf>) -> Result<Self, ReleaseError> {
        let map = match &path {
            Some(p) => load(p)?,
            None => HashMap::new(),
        };
        Ok(Self {
            backend: Backend::Memory {
                map: Mutex::new(map),
                path,
            },
        })
    }

    pub async fn redis(settings: &RedisSettings) -> Result<Self, ReleaseError> {
        let err = |e: &dyn std::fmt::Display| ReleaseError::Redis(e.to_string());
        let connector = Connector::new(settings).map_err(|e| err(&e))?;
        let pool = connector.pool().await.map_err(|e| err(&e))?;
        Ok(Self {
            backend: Backend::Redis {
                pool,
                key: format!("{}precompute:releases", settings.key_prefix),
            },
        })
    }

    /// Adds or replaces `r`.
    pub async fn put(&self, r: Release) -> Result<(), ReleaseError> {
        match &self.backend {
            Backend::Memory { map, path } => {
                // Saved under the lock: two changes at once must not land on disk in the
                // other order (the file would hold the older map).
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                map.insert(r.key(), r);
                match path {
                    Some(p) => save(p, &map),
                    None => Ok(()),
                }
            }
            Backend::Redis { pool, key } => {
                let json =
                    serde_json::to_string(&r).map_err(|e| ReleaseError::Redis(e.to_string()))?;
                pool.hset::<(), _, _>(key.as_str(), (r.key(), json))
                    .await
                    .map_err(|e| ReleaseError::Redis(e.to_string()))
            }
        }
    }

    /// Every release, soonest first.
    pub async fn all(&self) -> Result<Vec<Release>, ReleaseError> {
        let mut v: Vec<Release> = match &self.backend {
            Backend::Memory { map, .. } => map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect(),
            Backend::Redis { pool, key } => {
                let raw: HashMap<String, String> = pool
                    .hgetall(key.as_str())
                    .await
                    .map_err(|e| ReleaseError::Redis(e.to_string()))?;
                raw.into_values()
                    .filter_map(|j| match serde_json::from_str(&j) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            tracing::warn!(error = %e, "an unreadable release in Redis, skipped");
                            None
                        }
                    })
                    .collect()
            }
        };
        v.sort_by(|a, b| {
            (a.release_at_ms, &a.store_id, &a.product_id).cmp(&(
                b.release_at_ms,
                &b.store_id,
                &b.product_id,
            ))
        });
        Ok(v)
    }

    /// Forgets `r`.
    pub async fn remove(&self, r: &Release) -> Result<(), ReleaseError> {
        match &self.backend {
            Backend::Memory { map, path } => {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                map.remove(&r.key());
                match path {
                    Some(p) => save(p, &map),
                    None => Ok(()),
                }
            }
            Backend::Redis { pool, key } => pool
                .hdel::<(), _, _>(key.as_str(), r.key())
                .await
                .map_err(|e| ReleaseError::Redis(e.to_string())),
        }
    }
}

fn file_err(path: &Path, message: String) -> ReleaseError {
    ReleaseError::File {
        path: path.to_path_buf(),
        message,
    }
}

fn save(path: &Path, map: &HashMap<String, Release>) -> Result<(), ReleaseError> {
    let mut list: Vec<&Release> = map.values().collect();
    list.sort_by_key(|r| r.key());
    let text = serde_json::to_string_pretty(&list).map_err(|e| file_err(path, e.to_string()))?;
    mangaassist_statefile::write_atomic(path, &text).map_err(|e| file_err(path, e.to_string()))
}

fn load(path: &Path) -> Result<HashMap<String, Release>, ReleaseError> {
    let Some(text) =
        mangaassist_statefile::read(path).map_err(|e| file_err(path, e.to_string()))?
    else {
        return Ok(HashMap::new());
    };
    let list: Vec<Release> = serde_json::from_str(&text).map_err(|e| {
        file_err(
            path,
            format!("not a list of releases ({e}); fix it or move it away"),
        )
    })?;
    Ok(list.into_iter().map(|r| (r.key(), r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(product: &str, at: i64) -> Release {
        Release {
            store_id: "manga_jp".into(),
            product_id: product.into(),
            release_at_ms: at,
            warmed_ms: 0,
            written: 0,
        }
    }

    #[tokio::test]
    async fn releases_survive_a_restart_sorted_soonest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("releases.json");
        let book = ReleaseBook::memory(Some(path.clone())).unwrap();
        book.put(r("b", 20)).await.unwrap();
        book.put(r("a", 10)).await.unwrap();
        // Scheduling again moves the release.
        book.put(r("b", 5)).await.unwrap();
        let again = ReleaseBook::memory(Some(path.clone())).unwrap();
        let all = again.all().await.unwrap();
        assert_eq!(all, vec![r("b", 5), r("a", 10)]);
        again.remove(&all[0]).await.unwrap();
        let third = ReleaseBook::memory(Some(path.clone())).unwrap();
        assert_eq!(third.all().await.unwrap(), vec![r("a", 10)]);
        std::fs::write(&path, "[{\"store_id\": 3}]").unwrap();
        let e = ReleaseBook::memory(Some(path)).err().unwrap();
        assert!(e.to_string().contains("releases.json"), "{e}");
    }
}
