//! A per-key rate limit every gateway process shares: GCRA (the generic cell rate algorithm)
//! in one Lua script, so checking and spending an allowance is one atomic round trip and two
//! gateways can never both spend the last message of a user.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT) of the next message: a
//! message is allowed when it is no earlier than `TAT - burst_tolerance`, and then pushes TAT
//! one emission interval later. With `n` messages per period the interval is `period / n` and
//! the tolerance `(n - 1)` intervals, which admits a burst of `n` and then one message per
//! interval: the token bucket the in-process limiter implements, in a single key that expires
//! by itself once the user is idle. Time is Redis's own (`TIME`), so gateways with skewed
//! clocks still agree.

use std::time::Duration;

use fred::prelude::{Error as RedisError, Pool, Value};
use mangaassist_config::RedisSettings;

use crate::{ConnectError, Connector, Script};

/// KEYS[1] = the key; ARGV[1] = emission interval (µs); ARGV[2] = burst tolerance (µs).
/// Returns 0 when allowed (and spent), else the microseconds to wait.
const LUA_GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return allow_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

/// `per_period` messages per `period` per key, shared through Redis.
#[derive(Debug)]
pub struct GcraLimiter {
    pool: Pool,
    script: Script,
    prefix: String,
    interval_us: i64,
    tolerance_us: i64,
}

impl GcraLimiter {
    /// Connects (a wrong URL or an unreachable Redis fails now, not at the first message).
    /// `per_period` must be > 0; keys are stored under `prefix`.
    pub async fn connect(
        settings: &RedisSettings,
        prefix: &str,
        per_period: u32,
        period: Duration,
    ) -> Result<Self, ConnectError> {
        let connector = Connector::new(settings)?;
        let pool = connector.pool().await?;
        let script = Script::load(&pool, LUA_GCRA)
            .await
            .map_err(|e| connector.load_failed(e))?;
        let per_period = i64::from(per_period.max(1));
        let period_us = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
        let interval_us = (period_us / per_period).max(1);
        Ok(Self {
            pool,
            script,
            prefix: prefix.to_string(),
            interval_us,
            tolerance_us: interval_us.saturating_mul(per_period - 1),
        })
    }

    /// Spends one message of `key`'s allowance: `Ok(Ok(()))` when allowed, `Ok(Err(wait))`
    /// when the allowance is spent, `Err` when Redis could not be asked.
    pub async fn check(&self, key: &str) -> Result<Result<(), Duration>, RedisError> {
        let wait = self
            .script
            .call(
                &self.pool,
                vec![format!("{}{key}", self.prefix)],
                vec![
                    Value::Integer(self.interval_us),
                    Value::Integer(self.tolerance_us),
                ],
            )
            .await?;
        match wait {
            Value::Integer(0) => Ok(Ok(())),
            Value::Integer(us) if us > 0 => Ok(Err(Duration::from_micros(us.unsigned_abs()))),
            other => Err(RedisError::new(
                fred::error::ErrorKind::Unknown,
                format!("rate limit script returned {other:?}"),
            )),
        }
    }
}
