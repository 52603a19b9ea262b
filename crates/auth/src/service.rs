//! Service tokens: how the daemons know that a call comes from inside the mesh.
//!
//! When `mesh.service_secret` is set, every daemon RPC except health carries
//! `authorization: Bearer <token>`, an HS256 token signed with that secret whose `aud` names the
//! daemon it is meant for and whose `iss` is [`SERVICE_ISSUER`]. A token minted for the cache
//! daemon is refused by the memory daemon, so a leaked token opens one door, not six. Tokens
//! scoped `admin` may also change prompts; the gateway and precompute never hold one.
//!
//! The secret is distinct from the gateway's user-token secret, so no customer token can ever
//! pass a daemon's check, whatever claims it carries.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::{AuthError, JwtKey, bearer_token};

/// `iss` of every service token.
pub const SERVICE_ISSUER: &str = "mangaassist-mesh";
/// The scope that may change prompts (and any other RPC a daemon marks as admin).
pub const ADMIN_SCOPE: &str = "admin";

/// How long a minted token lives. Short enough that a token copied out of a debugging session
/// stops working soon; callers re-mint well before expiry ([`REFRESH_BEFORE`]).
const TOKEN_TTL: Duration = Duration::from_secs(3_600);
const REFRESH_BEFORE: Duration = Duration::from_secs(600);

/// Mints service tokens for one caller (`gateway`, `precompute`, `cli`), one per audience,
/// cached until they near expiry: signing costs a few microseconds, but a header value built
/// once is shared by every call.
pub struct ServiceTokens {
    key: JwtKey,
    caller: String,
    scope: Option<&'static str>,
    cache: Mutex<HashMap<String, (String, SystemTime)>>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens")
            .field("caller", &self.caller)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ServiceTokens {
    pub fn new(secret: &[u8], caller: &str) -> Result<Self, AuthError> {
        crate::check_subject(caller)?;
        Ok(Self {
            key: JwtKey::new(secret)?.with_issuer(SERVICE_ISSUER),
            caller: caller.to_owned(),
            scope: None,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Tokens from this minter carry the admin scope (the CLI's `prompt` commands).
    pub fn admin(mut self) -> Self {
        self.scope = Some(ADMIN_SCOPE);
        self
    }

    /// A token for calls to `audience` (a daemon name), valid for an hour from `now`.
    pub fn mint(&self, audience: &str, now: SystemTime) -> Result<String, AuthError> {
        self.key.clone().with_audience(audience).issue_scoped(
            &self.caller,
            self.scope,
            TOKEN_TTL,
            now,
        )
    }

    /// The `authorization` header value for a call to `audience`, re-minted when the cached
    /// one has less than ten minutes left.
    pub fn bearer(&self, audience: &str) -> Result<String, AuthError> {
        let now = SystemTime::now();
        let mut cache = self.cache.lock();
        if let Some((value, refresh_at)) = cache.get(audience)
            && now < *refresh_at
        {
            return Ok(value.clone());
        }
        let value = format!("Bearer {}", self.mint(audience, now)?);
        let refresh_at = now + (TOKEN_TTL - REFRESH_BEFORE);
        cache.insert(audience.to_owned(), (value.clone(), refresh_at));
        Ok(value)
    }
}

/// The service secret from config: `secret` when set, else the file at `file` (created with a
/// random secret on first use, refused when others can read it or git tracks it), else `None`:
/// service authentication is off.
pub fn resolve_service_secret(
    secret: &str,
    file: &std::path::Path,
) -> Result<Option<Vec<u8>>, AuthError> {
    if !secret.is_empty() {
        if secret.len() < crate::MIN_SECRET_LEN {
            return Err(AuthError::SecretTooShort { len: secret.len() });
        }
        return Ok(Some(secret.as_bytes().to_vec()));
    }
    if file.as_os_str().is_empty() {
        return Ok(None);
    }
    crate::load_or_create_secret(file).map(Some)
}

/// Who called a daemon, as its verified service token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCaller {
    pub caller: String,
    pub admin: bool,
}

/// Checks the service tokens presented to one daemon.
#[derive(Debug, Clone)]
pub struct ServiceVerifier {
    key: JwtKey,
}

/// Clock skew tolerated between mesh hosts.
const LEEWAY: Duration = Duration::from_secs(30);

impl ServiceVerifier {
    /// Accepts tokens signed with `secret` for `daemon`.
    pub fn new(secret: &[u8], daemon: &str) -> Result<Self, AuthError> {
        Ok(Self {
            key: JwtKey::new(secret)?
                .with_issuer(SERVICE_ISSUER)
                .with_audience(daemon),
        })
    }

    /// Verifies an `authorization` header value (absent = refused).
    pub fn verify(
        &self,
        authorization: Option<&str>,
        now: SystemTime,
    ) -> Result<ServiceCaller, AuthError> {
        let token = authorization
            .and_then(bearer_token)
            .ok_or(AuthError::MissingToken)?;
        let claims = self.key.verify(token, now, LEEWAY)?;
        let admin = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|s| s == ADMIN_SCOPE));
        Ok(ServiceCaller {
            caller: claims.sub,
            admin,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-mesh";

    #[test]
    fn a_token_opens_only_the_daemon_it_names() {
        let tokens = ServiceTokens::new(SECRET, "gateway").unwrap();
        let memory = ServiceVerifier::new(SECRET, "memory").unwrap();
        let cache = ServiceVerifier::new(SECRET, "cache").unwrap();
        let header = tokens.bearer("memory").unwrap();
        let caller = memory.verify(Some(&header), SystemTime::now()).unwrap();
        assert_eq!(
            caller,
            ServiceCaller {
                caller: "gateway".into(),
                admin: false
            }
        );
        let err = cache.verify(Some(&header), SystemTime::now()).unwrap_err();
        assert_eq!(err.code(), "bad_audience");
    }

    #[test]
    fn missing_foreign_and_user_tokens_are_refused() {
        let memory = ServiceVerifier::new(SECRET, "memory").unwrap();
        let now = SystemTime::now();
        assert_eq!(
            memory.verify(None, now).unwrap_err().code(),
            "missing_token"
        );
        assert_eq!(
            memory.verify(Some("Basic abc"), now).unwrap_err().code(),
            "missing_token"
        );
        let other = ServiceTokens::new(b"another-secret-of-32-bytes-or-more!!", "gateway")
            .unwrap()
            .bearer("memory")
            .unwrap();
        assert_eq!(
            memory.verify(Some(&other), now).unwrap_err().code(),
            "bad_signature"
        );
        // A user token signed with the same bytes but without the mesh issuer fails too.
        let user = JwtKey::new(SECRET)
            .unwrap()
            .with_audience("memory")
            .issue("u-aiko", Duration::from_secs(60), now)
            .unwrap();
        assert_eq!(
            memory
                .verify(Some(&format!("Bearer {user}")), now)
                .unwrap_err()
                .code(),
            "bad_issuer"
        );
    }

    #[test]
    fn only_admin_minters_carry_the_admin_scope() {
        let generation = ServiceVerifier::new(SECRET, "generation").unwrap();
        let now = SystemTime::now();
        let plain = ServiceTokens::new(SECRET, "gateway").unwrap();
        let admin = ServiceTokens::new(SECRET, "cli").unwrap().admin();
        let header = |t: &ServiceTokens| t.bearer("generation").unwrap();
        assert!(!generation.verify(Some(&header(&plain)), now).unwrap().admin);
        assert!(generation.verify(Some(&header(&admin)), now).unwrap().admin);
    }

    #[test]
    fn tokens_are_cached_per_audience() {
        let tokens = ServiceTokens::new(SECRET, "gateway").unwrap();
        let a = tokens.bearer("memory").unwrap();
        assert_eq!(a, tokens.bearer("memory").unwrap());
        assert_ne!(a, tokens.bearer("cache").unwrap());
    }
}
