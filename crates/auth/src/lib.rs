//! HS256 JSON Web Tokens (RFC 7519 over RFC 7515 compact JWS) that authenticate chat
//! connections: the gateway verifies the token a client presents when it opens its WebSocket and
//! uses the `sub` claim as the user id (rate limits, history, profile).
//!
//! Deliberately small and strict instead of a general JWT library: one algorithm (HS256), the
//! algorithm in the header must say so (no `none`, no algorithm confusion), no `crit`
//! extensions, the signature is checked in constant time before any claim is parsed, and tokens
//! are bounded in size. Keys may require an issuer (`iss`) and an audience (`aud`). The shared
//! secret lives in a file created on first start, and a file that others can read or that git
//! tracks is refused ([`load_or_create_secret`]).
//!
//! Why not the `jsonwebtoken` crate (checked against 12.0.0, December 2026): the only piece it
//! would take over is the HMAC-SHA256 call, which is already the RustCrypto `hmac` crate here.
//! Everything else would stay hand-written, because 12.0.0 (1) validates `exp`/`nbf` against
//! the system clock only, while [`JwtKey::verify`] takes `now` (tests and callers inject it);
//! (2) reports an unknown `alg` spelling (`"hs256"`) as a JSON error indistinguishable from
//! malformed claims, so the `unsupported_algorithm`/`malformed` codes the gateway reports could
//! not be kept; (3) accepts a claims JSON array for a derived claims struct (fields by
//! position). Measured cost of its HMAC-capable builds: `rust_crypto` adds 30 crates to
//! Cargo.lock (RSA, ECDSA P-256/P-384, Ed25519 stacks we never use) and a second copy of
//! `hmac` (0.13), `sha2` (0.11), `digest` (0.11) and `crypto-common`; this crate's dependency
//! tree grows from 38 to 82 crates (`cargo tree -e normal`). `aws_lc_rs` pulls aws-lc, which
//! the workspace avoids (one ring-based TLS stack); the ring-based 9.x line is superseded.

mod service;

pub use service::{
    ADMIN_SCOPE, SERVICE_ISSUER, ServiceCaller, ServiceTokens, ServiceVerifier,
    resolve_service_secret,
};

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted secret: HS256 needs a key at least as long as its 256-bit output
/// (RFC 7518 §3.2).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest accepted token; real ones are ~200 bytes, and verification work is proportional.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest accepted `sub`, in characters.
pub const MAX_SUBJECT_CHARS: usize = 128;

/// Claims of a MangaAssist token. `sub` is the user id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience. Issued as a single string; a verified token whose `aud` is an array reports
    /// the member that matched the key's audience (none if the key expects no audience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Space-separated scopes (RFC 8693 §4.2); only service tokens carry one (`admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Why a token or secret was refused. Messages never echo token content.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unsupported token: {0} (only HS256 without critical extensions is accepted)")]
    UnsupportedAlgorithm(String),
    #[error("token signature does not match")]
    BadSignature,
    #[error("token expired at {expired_at} (unix seconds)")]
    Expired { expired_at: u64 },
    #[error("token not valid before {not_before} (unix seconds)")]
    NotYetValid { not_before: u64 },
    #[error("token has no subject (sub claim)")]
    MissingSubject,
    #[error("bad subject: {0}")]
    BadSubject(String),
    #[error("token issuer is missing or is not the expected issuer {expected:?}")]
    BadIssuer { expected: String },
    #[error("token audience is missing or does not include the expected audience {expected:?}")]
    BadAudience { expected: String },
    #[error("secret is {len} bytes; HS256 needs at least {MIN_SECRET_LEN}")]
    SecretTooShort { len: usize },
    #[error(
        "secret file {} holds {len} bytes after trimming; at least {MIN_SECRET_LEN} are needed",
        path.display()
    )]
    SecretFileTooShort { path: PathBuf, len: usize },
    #[error(
        "secret file {} is readable by group or others (mode {mode:o}); run chmod 600 on it, \
         or delete it to have a fresh one created",
        path.display()
    )]
    SecretFilePermissions { path: PathBuf, mode: u32 },
    #[error(
        "secret file {} is tracked by git, so every clone shares it: delete it (git rm --cached \
         it and remove the file) to have a fresh one created, and keep its folder in .gitignore",
        path.display()
    )]
    SecretFileTracked { path: PathBuf },
    #[error("secret file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("system clock is before the Unix epoch")]
    Clock,
    #[error("no `authorization: Bearer <token>` header")]
    MissingToken,
}

impl AuthError {
    /// Stable machine-readable code (for error frames and metrics labels).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "malformed",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired { .. } => "expired",
            AuthError::NotYetValid { .. } => "not_yet_valid",
            AuthError::MissingSubject => "missing_subject",
            AuthError::BadSubject(_) => "bad_subject",
            AuthError::BadIssuer { .. } => "bad_issuer",
            AuthError::BadAudience { .. } => "bad_audience",
            AuthError::SecretFilePermissions { .. } => "secret_file_permissions",
            AuthError::SecretFileTracked { .. } => "secret_file_tracked",
            AuthError::SecretTooShort { .. } | AuthError::SecretFileTooShort { .. } => {
                "secret_too_short"
            }
            AuthError::Io { .. } => "io",
            AuthError::Clock => "clock",
            AuthError::MissingToken => "missing_token",
        }
    }
}

fn malformed(what: impl Into<String>) -> AuthError {
    AuthError::Malformed(what.into())
}

/// An HS256 signing and verification key.
#[derive(Clone)]
pub struct JwtKey {
    /// Keyed once; cloning the initialised state per token skips re-hashing the key.
    mac: HmacSha256,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("alg", &"HS256")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Header of every token we issue: `{"alg":"HS256","typ":"JWT"}`.
const ISSUED_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<serde_json::Value>,
    crit: Option<serde_json::Value>,
}

/// Every field as a raw value, so a wrong type gets a precise message and a duplicate name is an
/// error (serde rejects duplicate struct fields) instead of last-one-wins.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iss: Option<serde_json::Value>,
    aud: Option<serde_json::Value>,
    scope: Option<serde_json::Value>,
}

impl JwtKey {
    /// A key from a shared secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(AuthError::SecretTooShort { len: secret.len() });
        }
        let mac = HmacSha256::new_from_slice(secret)
            .map_err(|_| AuthError::SecretTooShort { len: secret.len() })?;
        Ok(Self {
            mac,
            issuer: None,
            audience: None,
        })
    }

    /// Tokens issued with this key carry `iss`, and verification requires it.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// Tokens issued with this key carry `aud` (a string), and verification requires `aud` to
    /// be that string or an array of strings containing it (RFC 7519 §4.1.3).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// A token for user `sub`, valid from `now` for `ttl` (rounded up to whole seconds).
    pub fn issue(&self, sub: &str, ttl: Duration, now: SystemTime) -> Result<String, AuthError> {
        self.issue_scoped(sub, None, ttl, now)
    }

    /// Like [`JwtKey::issue`], with a `scope` claim when `scope` is given.
    pub fn issue_scoped(
        &self,
        sub: &str,
        scope: Option<&str>,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String, AuthError> {
        check_subject(sub)?;
        let iat = unix_secs(now)?;
        let ttl_secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let claims = Claims {
            sub: sub.to_owned(),
            iat,
            exp: iat.saturating_add(ttl_secs),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            scope: scope.map(str::to_owned),
        };
        let payload = serde_json::to_vec(&claims)
            .map_err(|e| malformed(format!("claims cannot be serialised: {e}")))?;
        Ok(self.sign(ISSUED_HEADER.as_bytes(), &payload))
    }

    /// Verifies a compact HS256 token at time `now`, allowing `leeway` of clock skew on `exp`
    /// and `nbf`, and returns its claims.
    pub fn verify(
        &self,
        token: &str,
        now: SystemTime,
        leeway: Duration,
    ) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed(format!(
                "token is {} bytes, more than the {MAX_TOKEN_LEN} accepted",
                token.len()
            )));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(
                "expected three dot-separated parts (header.payload.signature)",
            ));
        };

        let header = decode_part(header_b64, "header")?;
        let header: RawHeader = parse_object(&header, "header")?;
        match header.alg {
            Some(serde_json::Value::String(alg)) if alg == "HS256" => {}
            Some(serde_json::Value::String(alg)) => {
                // Bounded: an attacker-chosen string must not flood logs.
                let alg: String = alg.chars().take(16).collect();
                return Err(AuthError::UnsupportedAlgorithm(format!(
                    "algorithm {alg:?}"
                )));
            }
            Some(_) => return Err(malformed("header: alg is not a string")),
            None => return Err(malformed("header: missing alg")),
        }
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: extensions listed in crit must be understood; we understand none.
            return Err(AuthError::UnsupportedAlgorithm(
                "header lists critical extensions (crit)".into(),
            ));
        }

        let signature = decode_part(signature_b64, "signature")?;
        let signing_input_len = header_b64.len() + 1 + payload_b64.len();
        let mut mac = self.mac.clone();
        mac.update(&token.as_bytes()[..signing_input_len]);
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;

        let payload = decode_part(payload_b64, "payload")?;
        let raw: RawClaims = parse_object(&payload, "claims")?;
        self.validate(raw, now, leeway)
    }

    fn validate(
        &self,
        raw: RawClaims,
        now: SystemTime,
        leeway: Duration,
    ) -> Result<Claims, AuthError> {
        let sub = match raw.sub {
            None | Some(serde_json::Value::Null) => return Err(AuthError::MissingSubject),
            Some(serde_json::Value::String(sub)) => sub,
            Some(_) => return Err(AuthError::BadSubject("sub is not a string".into())),
        };
        check_subject(&sub)?;
        let exp = numeric_date(raw.exp, "exp")?.ok_or_else(|| malformed("claims: missing exp"))?;
        let iat = numeric_date(raw.iat, "iat")?.ok_or_else(|| malformed("claims: missing iat"))?;
        let nbf = numeric_date(raw.nbf, "nbf")?;
        let iss = match raw.iss {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(iss)) => Some(iss),
            Some(_) => return Err(malformed("claims: iss is not a string")),
        };
        if let Some(expected) = &self.issuer
            && iss.as_ref() != Some(expected)
        {
            return Err(AuthError::BadIssuer {
                expected: expected.clone(),
            });
        }
        let aud = self.audience_of(raw.aud)?;
        let scope = match raw.scope {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(scope)) => Some(scope),
            Some(_) => return Err(malformed("claims: scope is not a string")),
        };

        let now = unix_secs(now)?;
        let leeway = leeway.as_secs();
        // RFC 7519 §4.1.4: the current time must be before exp.
        if now >= exp.saturating_add(leeway) {
            return Err(AuthError::Expired { expired_at: exp });
        }
        if let Some(nbf) = nbf
            && now.saturating_add(leeway) < nbf
        {
            return Err(AuthError::NotYetValid { not_before: nbf });
        }
        Ok(Claims {
            sub,
            iat,
            exp,
            iss,
            aud,
            scope,
        })
    }

    /// The token's audience as [`Claims::aud`] reports it, or `BadAudience` when this key
    /// expects one the token does not name.
    fn audience_of(&self, raw: Option<serde_json::Value>) -> Result<Option<String>, AuthError> {
        let named: Vec<String> = match raw {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(aud)) => vec![aud],
            Some(serde_json::Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(aud) => Ok(aud),
                    _ => Err(malformed("claims: aud array holds a non-string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(malformed("claims: aud is not a string or array")),
        };
        match &self.audience {
            Some(expected) => {
                if named.iter().any(|aud| aud == expected) {
                    Ok(Some(expected.clone()))
                } else {
                    Err(AuthError::BadAudience {
                        expected: expected.clone(),
                    })
                }
            }
            None if named.len() == 1 => Ok(named.into_iter().next()),
            None => Ok(None),
        }
    }

    fn sign(&self, header_json: &[u8], payload_json: &[u8]) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header_json);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload_json));
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let signature = mac.finalize().into_bytes();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }
}

fn unix_secs(t: SystemTime) -> Result<u64, AuthError> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| AuthError::Clock)
}

/// Strict base64url without padding; non-canonical trailing bits are rejected too, so a token
/// has exactly one valid spelling.
fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    if part.is_empty() {
        return Err(malformed(format!("{what} is empty")));
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(format!("{what} is not base64url without padding")))
}

fn parse_object<T: serde::de::DeserializeOwned>(json: &[u8], what: &str) -> Result<T, AuthError> {
    // A derived struct would also accept a JSON array (fields by position); require an object.
    let first = json
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    if first != Some(&b'{') {
        return Err(malformed(format!("{what} is not a JSON object")));
    }
    serde_json::from_slice(json).map_err(|_| {
        malformed(format!(
            "{what} is not a valid JSON object (syntax error or duplicate member)"
        ))
    })
}

/// RFC 7519 NumericDate: seconds since the epoch; fractions are truncated.
fn numeric_date(value: Option<serde_json::Value>, name: &str) -> Result<Option<u64>, AuthError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => {
            if let Some(secs) = n.as_u64() {
                return Ok(Some(secs));
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f as u64)),
                _ => Err(malformed(format!(
                    "claims: {name} is not a non-negative number of seconds"
                ))),
            }
        }
        Some(_) => Err(malformed(format!("claims: {name} is not a number"))),
    }
}

pub(crate) fn check_subject(sub: &str) -> Result<(), AuthError> {
    if sub.is_empty() {
        return Err(AuthError::BadSubject("sub is empty".into()));
    }
    if sub.chars().count() > MAX_SUBJECT_CHARS {
        return Err(AuthError::BadSubject(format!(
            "sub is longer than {MAX_SUBJECT_CHARS} characters"
        )));
    }
    if sub.chars().any(char::is_control) {
        return Err(AuthError::BadSubject(
            "sub contains control characters".into(),
        ));
    }
    Ok(())
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive,
/// RFC 6750 §2.1); `None` for any other scheme or an empty token.
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.contains(char::is_whitespace) {
        return None;
    }
    Some(token)
}

/// The shared secret stored at `path`, created on first use.
///
/// An existing file is refused when group or others may read it
/// ([`AuthError::SecretFilePermissions`]) or git tracks it ([`AuthError::SecretFileTracked`]):
/// either way the secret is not private to this installation.
///
/// The secret is the file's content with surrounding whitespace trimmed, used as-is (a created
/// file holds 32 random bytes hex-encoded, i.e. 64 ASCII characters; an operator may put any
/// string of at least [`MIN_SECRET_LEN`] bytes there instead). A new file is written with mode
/// 0600 under a temporary name and hard-linked into place, so a concurrent starter never sees
/// it half-written: whichever process links first wins and the other reads the winner's secret.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    match read_secret(path) {
        Err(AuthError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let io_err = |source| AuthError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_err)?;
    }
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let secret = hex(&random);

    let file_name = path.file_name().ok_or_else(|| {
        io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no file name",
        ))
    })?;
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        hex(&suffix)
    ));
    let linked = write_new_file(&tmp, secret.as_bytes()).and_then(|()| fs::hard_link(&tmp, path));
    // The temporary name is only a staging area, whatever happened.
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return read_secret(path),
        Err(_) => {
            // No hard links here (some network and FUSE file systems): create in place. Another
            // starter could read the file half-written, a narrow window accepted as a fallback.
            match write_new_file(path, secret.as_bytes()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return read_secret(path),
                Err(e) => return Err(io_err(e)),
            }
        }
    }
    if let Some(parent) = path.parent() {
        // Make the new directory entry durable; not fatal if the platform refuses.
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    tracing::info!(path = %path.display(), "created a new token signing secret");
    Ok(secret.into_bytes())
}

fn write_new_file(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn read_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    let io_err = |source| AuthError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = fs::read(path).map_err(io_err)?;
    let secret = bytes.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_LEN {
        return Err(AuthError::SecretFileTooShort {
            path: path.to_owned(),
            len: secret.len(),
        });
    }
    let mode = fs::metadata(path).map_err(io_err)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(AuthError::SecretFilePermissions {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    if tracked_by_git(path) {
        return Err(AuthError::SecretFileTracked {
            path: path.to_owned(),
        });
    }
    Ok(secret)
}

/// Whether git tracks `path`: a tracked secret is in every clone and in the history. Asked in
/// the file's own directory so the repository that holds it answers; no git, no repository or
/// a git that refuses to answer (e.g. `safe.directory`) all count as untracked.
fn tracked_by_git(path: &Path) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::process::Command::new("git")
        .current_dir(dir)
        .args(["ls-files", "--error-unmatch", "--"])
        .arg(name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn key() -> JwtKey {
        JwtKey::new(&[7u8; 32]).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const NOW: u64 = 1_750_000_000;

    #[test]
    fn nbf_in_the_future_is_not_yet_valid_within_leeway_it_is() {
        let k = key();
        let token = k.sign(
            ISSUED_HEADER.as_bytes(),
            br#"{"sub":"u1","iat":1750000000,"exp":1750003600,"nbf":1750000100}"#,
        );
        let err = k.verify(&token, at(NOW), Duration::ZERO).unwrap_err();
        assert!(matches!(
            err,
            AuthError::NotYetValid {
                not_before: 1_750_000_100
            }
        ));
        assert_eq!(err.code(), "not_yet_valid");
        k.verify(&token, at(NOW), Duration::from_secs(100)).unwrap();
        k.verify(&token, at(NOW + 100), Duration::ZERO).unwrap();
    }

    #[test]
    fn claim_types_are_checked_after_the_signature() {
        let k = key();
        let cases: [(&[u8], &str); 7] = [
            (br#"{"sub":42,"iat":1,"exp":1750003600}"#, "bad_subject"),
            (br#"{"sub":"","iat":1,"exp":1750003600}"#, "bad_subject"),
            (
                br#"{"sub":"a\u0007b","iat":1,"exp":1750003600}"#,
                "bad_subject",
            ),
            (br#"{"sub":"u","iat":1,"exp":"soon"}"#, "malformed"),
            (br#"{"sub":"u","iat":1,"exp":-5}"#, "malformed"),
            (br#"{"sub":"u","exp":1750003600}"#, "malformed"),
            (br#"["u",1,1750003600]"#, "malformed"),
        ];
        for (payload, code) in cases {
            let token = k.sign(ISSUED_HEADER.as_bytes(), payload);
            let err = k.verify(&token, at(NOW), Duration::ZERO).unwrap_err();
            assert_eq!(
                err.code(),
                code,
                "{}: {err}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn duplicate_claims_are_rejected_not_last_one_wins() {
        let k = key();
        let token = k.sign(
            ISSUED_HEADER.as_bytes(),
            br#"{"sub":"alice","sub":"admin","iat":1,"exp":1750003600}"#,
        );
        let err = k.verify(&token, at(NOW), Duration::ZERO).unwrap_err();
        assert_eq!(err.code(), "malformed", "{err}");
    }

    #[test]
    fn fractional_numeric_dates_are_truncated() {
        let k = key();
        let token = k.sign(
            ISSUED_HEADER.as_bytes(),
            br#"{"sub":"u","iat":1750000000.5,"exp":1750000010.9}"#,
        );
        let claims = k.verify(&token, at(NOW), Duration::ZERO).unwrap();
        assert_eq!((claims.iat, claims.exp), (1_750_000_000, 1_750_000_010));
    }

    #[test]
    fn crit_header_and_other_algorithms_are_refused() {
        let k = key();
        for header in [
            r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"RS256"}"#,
        ] {
            let token = k.sign(
                header.as_bytes(),
                br#"{"sub":"u","iat":1,"exp":1750003600}"#,
            );
            let err = k.verify(&token, at(NOW), Duration::ZERO).unwrap_err();
            assert_eq!(err.code(), "unsupported_algorithm", "{header}: {err}");
        }
        let token = k.sign(
            br#"{"typ":"JWT"}"#,
            br#"{"sub":"u","iat":1,"exp":1750003600}"#,
        );
        assert_eq!(
            k.verify(&token, at(NOW), Duration::ZERO)
                .unwrap_err()
                .code(),
            "malformed"
        );
    }

    #[test]
    fn issuer_is_set_and_enforced() {
        let k = key().with_issuer("mangaassist");
        let token = k.issue("u1", Duration::from_secs(60), at(NOW)).unwrap();
        let claims = k.verify(&token, at(NOW), Duration::ZERO).unwrap();
        assert_eq!(claims.iss.as_deref(), Some("mangaassist"));
        let other = key().issue("u1", Duration::from_secs(60), at(NOW)).unwrap();
        let err = k.verify(&other, at(NOW), Duration::ZERO).unwrap_err();
        assert!(matches!(err, AuthError::BadIssuer { .. }), "{err}");
        // A key without an issuer accepts tokens with or without one.
        key().verify(&token, at(NOW), Duration::ZERO).unwrap();
    }

    fn gateway_key() -> JwtKey {
        key()
            .with_issuer("mangaassist")
            .with_audience("mangaassist-gateway")
    }

    #[test]
    fn audience_is_set_and_enforced() {
        let k = gateway_key();
        let token = k.issue("u1", Duration::from_secs(60), at(NOW)).unwrap();
        let claims = k.verify(&token, at(NOW), Duration::ZERO).unwrap();
        assert_eq!(claims.iss.as_deref(), Some("mangaassist"));
        assert_eq!(claims.aud.as_deref(), Some("mangaassist-gateway"));
        // Signed with the right secret and issuer but for no audience, or for another one.
        for other in [
            key().with_issuer("mangaassist"),
            key()
                .with_issuer("mangaassist")
                .with_audience("mangaassist-admin"),
        ] {
            let token = other.issue("u1", Duration::from_secs(60), at(NOW)).unwrap();
            let err = k.verify(&token, at(NOW), Duration::ZERO).unwrap_err();
            assert_eq!(err.code(), "bad_audience", "{err}");
            assert!(err.to_string().contains("mangaassist-gateway"), "{err}");
        }
        // Right audience, no issuer.
        let token = key()
            .with_audience("mangaassist-gateway")
            .issue("u1", Duration::from_secs(60), at(NOW))
            .unwrap();
        let err = k.verify(&token, at(NOW), Duration::ZERO).unwrap_err();
        assert_eq!(err.code(), "bad_issuer", "{err}");
    }

    #[test]
    fn an_audience_array_passes_only_when_it_names_the_expected_audience() {
        let k = gateway_key();
        let claims = |aud: &str| {
            format!(r#"{{"sub":"u","iat":1,"exp":1750003600,"iss":"mangaassist","aud":{aud}}}"#)
        };
        let accepted = [
            r#""mangaassist-gateway""#,
            r#"["mangaassist-gateway"]"#,
            r#"["other","mangaassist-gateway"]"#,
        ];
        for aud in accepted {
            let token = k.sign(ISSUED_HEADER.as_bytes(), claims(aud).as_bytes());
            let verified = k.verify(&token, at(NOW), Duration::ZERO).unwrap();
            assert_eq!(
                verified.aud.as_deref(),
                Some("mangaassist-gateway"),
                "{aud}"
            );
        }
        let refused = [
            (r#"[]"#, "bad_audience"),
            (r#"["other"]"#, "bad_audience"),
            (r#""MANGAASSIST-GATEWAY""#, "bad_audience"),
            (r#"null"#, "bad_audience"),
            (r#"["mangaassist-gateway",7]"#, "malformed"),
            (r#"7"#, "malformed"),
            (r#"{"aud":"mangaassist-gateway"}"#, "malformed"),
        ];
        for (aud, code) in refused {
            let token = k.sign(ISSUED_HEADER.as_bytes(), claims(aud).as_bytes());
            let err = k.verify(&token, at(NOW), Duration::ZERO).unwrap_err();
            assert_eq!(err.code(), code, "{aud}: {err}");
        }
    }

    #[test]
    fn hex_encodes_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
