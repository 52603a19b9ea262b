//! Connecting to the Redis of `[redis]`, shared by the answer cache and the resume buffer so
//! both talk to it with one policy: `timeout_ms` bounds connecting and every command, and
//! connections reconnect in the background after Redis goes away (commands issued meanwhile
//! fail after `timeout_ms` instead of hanging).

mod gcra;
mod script;

pub use gcra::GcraLimiter;
pub use script::Script;

use std::time::Duration;

use fred::prelude::{
    Builder, Client, ClientLike, Config, Error as RedisError, Pool, ReconnectPolicy,
};
use mangaassist_config::RedisSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("redis.url {url} is not a valid Redis URL: {source}")]
    InvalidUrl { url: String, source: RedisError },
    #[error("cannot connect to Redis at redis.url {url}: {source}")]
    Unreachable { url: String, source: RedisError },
    #[error("loading scripts into Redis at redis.url {url}: {source}")]
    LoadScripts { url: String, source: RedisError },
}

/// Builds connections to `settings.url`; errors name the URL without its password.
#[derive(Debug)]
pub struct Connector {
    builder: Builder,
    url: String,
    pool_size: usize,
}

impl Connector {
    pub fn new(settings: &RedisSettings) -> Result<Self, ConnectError> {
        let url = redact(&settings.url);
        let config =
            Config::from_url(&settings.url).map_err(|source| ConnectError::InvalidUrl {
                url: url.clone(),
                source,
            })?;
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        Ok(Self {
            builder,
            url,
            pool_size: settings.pool_size.max(1),
        })
    }

    /// A connected pool of `pool_size` connections (commands are pipelined on each).
    pub async fn pool(&self) -> Result<Pool, ConnectError> {
        let pool = self
            .builder
            .build_pool(self.pool_size)
            .map_err(|e| self.unreachable(e))?;
        pool.init().await.map_err(|e| self.unreachable(e))?;
        Ok(pool)
    }

    /// One connected client, for what a pool cannot do (a pub/sub subscription).
    pub async fn client(&self) -> Result<Client, ConnectError> {
        let client = self.builder.build().map_err(|e| self.unreachable(e))?;
        client.init().await.map_err(|e| self.unreachable(e))?;
        Ok(client)
    }

    /// A script of the store failing to load once connected.
    pub fn load_failed(&self, source: RedisError) -> ConnectError {
        ConnectError::LoadScripts {
            url: self.url.clone(),
            source,
        }
    }

    /// A connection of this connector failing after it was built (a subscription, say).
    pub fn unreachable(&self, source: RedisError) -> ConnectError {
        ConnectError::Unreachable {
            url: self.url.clone(),
            source,
        }
    }
}

/// The URL without its password, for error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_the_password_only() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("rediss://:pw@h:6380"), "rediss://***@h:6380");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
