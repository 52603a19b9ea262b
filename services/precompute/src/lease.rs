//! Which replica runs a scheduled job: with several precompute replicas on one Redis, a
//! lease per job (`SET NX PX` for the job's interval) lets exactly one of them run each
//! scheduled run; the embedded default has one scheduler and no lease.

use std::time::Duration;

use fred::{
    prelude::{KeysInterface, Pool},
    types::{Expiration, SetOptions},
};
use mangaassist_config::RedisSettings;
use mangaassist_redis::Connector;

pub enum JobLease {
    /// Every run goes ahead.
    None,
    Redis {
        pool: Pool,
        prefix: String,
        /// This replica, as written in the lease (for operators reading Redis).
        holder: String,
    },
}

impl JobLease {
    pub async fn redis(settings: &RedisSettings, holder: String) -> Result<Self, String> {
        let connector = Connector::new(settings).map_err(|e| e.to_string())?;
        let pool = connector.pool().await.map_err(|e| e.to_string())?;
        Ok(Self::Redis {
            pool,
            prefix: format!("{}precompute:lease:", settings.key_prefix),
            holder,
        })
    }

    /// Whether this replica runs `job` now; when it does, no other replica will until
    /// `hold` has passed. A lease that cannot be checked (Redis down) lets the run go
    /// ahead: a run twice is duplicate work, a run lost is stale answers.
    pub async fn acquire(&self, job: &str, hold: Duration) -> bool {
        let JobLease::Redis {
            pool,
            prefix,
            holder,
        } = self
        else {
            return true;
        };
        let ms = i64::try_from(hold.as_millis()).unwrap_or(i64::MAX).max(1);
        let got: Result<Option<String>, _> = pool
            .set(
                format!("{prefix}{job}"),
                holder.as_str(),
                Some(Expiration::PX(ms)),
                Some(SetOptions::NX),
                false,
            )
            .await;
        match got {
            Ok(v) => v.is_some(),
            Err(e) => {
                tracing::warn!(job, error = %e, "cannot check the job lease in Redis; running anyway");
                true
            }
        }
    }
}
