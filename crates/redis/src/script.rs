//! Lua scripts called by hash.

use fred::prelude::{Error as RedisError, LuaInterface, Pool, Value};

/// A script loaded once with `SCRIPT LOAD` and called by hash; re-sent whole if Redis lost
/// its script cache (restart, `SCRIPT FLUSH`).
#[derive(Debug)]
pub struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    pub async fn load(pool: &Pool, source: &'static str) -> Result<Self, RedisError> {
        let sha: String = pool.script_load(source).await?;
        Ok(Self { source, sha })
    }

    pub async fn call(
        &self,
        pool: &Pool,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, RedisError> {
        match pool
            .evalsha::<Value, _, _, _>(self.sha.as_str(), keys.clone(), args.clone())
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                pool.eval(self.source, keys, args).await
            }
            other => other,
        }
    }
}
