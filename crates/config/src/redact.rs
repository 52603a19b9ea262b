//! The configuration as `mangaassist config print` shows it: every credential replaced by
//! [`REDACTED`]. Printed configs end up in tickets, chat and CI logs, so the rules go by
//! shape, not by a list of today's fields: a key added tomorrow that names a secret, or a
//! URL with a password in it, is hidden without anyone remembering to add it here.
//!
//! - a string (or every string under a table or array) whose key names a credential:
//!   `secret`, `password`, `token`, `credential`, `api_key`, `access_key`, ... — unless the
//!   key names where the credential is read from (`*_env`, `*_file`, `*_path`), which is
//!   what an operator needs to see, or a quantity (`token_ttl_seconds`);
//! - in every string that is a URL: the userinfo (`user:password@`) and the values of
//!   query parameters whose names are credential names (`?password=`, `?token=`).

use crate::Config;

/// What a credential is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Key segments (split on `_`, `-`, `.`) that name a credential.
const SECRET_WORDS: [&str; 11] = [
    "secret",
    "secrets",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "token",
    "tokens",
    "credential",
    "credentials",
    "apikey",
];
/// Two-word names of a credential (`api_key`, `aws_access_key_id`, `private_key`, ...).
const SECRET_PAIRS: [(&str, &str); 5] = [
    ("api", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("private", "key"),
    ("signing", "key"),
];
/// A last segment that says the value only points at the credential (where it is read
/// from) or is a quantity about it (`token_ttl_seconds`).
const POINTER_WORDS: [&str; 13] = [
    "env", "file", "path", "dir", "name", "header", "var", "seconds", "secs", "ms", "days",
    "bytes", "len",
];

/// Whether a config key names a credential (see the module docs).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let words: Vec<&str> = key
        .split(['_', '-', '.'])
        .filter(|w| !w.is_empty())
        .collect();
    if words.last().is_some_and(|w| POINTER_WORDS.contains(w)) {
        return false;
    }
    words.iter().any(|w| SECRET_WORDS.contains(w))
        || words
            .windows(2)
            .any(|pair| SECRET_PAIRS.contains(&(pair[0], pair[1])))
}

/// `text` with a URL's userinfo and credential query values replaced; other text unchanged.
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &text[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut out = text[..authority_start].to_string();
    let authority = &rest[..authority_len];
    match authority.rfind('@') {
        Some(at) => {
            out.push_str(REDACTED);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_len..];
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(&tail[..=q]);
    let query = &tail[q + 1..];
    let (query, fragment) = match query.find('#') {
        Some(h) => (&query[..h], &query[h..]),
        None => (query, ""),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, value)) if is_secret_key(name) && !value.is_empty() => {
                format!("{name}={REDACTED}")
            }
            _ => param.to_string(),
        })
        .collect();
    out.push_str(&params.join("&"));
    out.push_str(fragment);
    out
}

/// Redacts `value` in place; `secret` = it sits under a key that names a credential.
pub fn redact_value(value: &mut toml::Value, secret: bool) {
    match value {
        // An unset secret stays "", so the printout still tells whether one is set.
        toml::Value::String(s) if secret && !s.is_empty() => *s = REDACTED.to_string(),
        toml::Value::String(s) => *s = redact_url(s),
        toml::Value::Array(items) => {
            for item in items {
                redact_value(item, secret);
            }
        }
        toml::Value::Table(table) => redact_table(table, secret),
        _ => {}
    }
}

fn redact_table(table: &mut toml::Table, secret: bool) {
    for (key, value) in table.iter_mut() {
        redact_value(value, secret || is_secret_key(key));
    }
}

impl Config {
    /// This configuration as a TOML table with every credential redacted.
    pub fn redacted(&self) -> Result<toml::Table, RedactError> {
        // Through text, not `Table::try_from`: that widens every f32 to an f64 and would
        // print 0.95 as 0.949999988079071.
        let text = toml::to_string(self)?;
        let mut table: toml::Table = toml::from_str(&text)?;
        redact_table(&mut table, false);
        Ok(table)
    }
}

/// The configuration could not be turned into TOML (a bug, never an operator's input).
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("cannot serialise the config: {0}")]
    Serialise(#[from] toml::ser::Error),
    #[error("cannot read back the serialised config: {0}")]
    Parse(#[from] toml::de::Error),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn keys_that_name_a_credential() {
        for key in [
            "secret",
            "jwt_secret",
            "service_secrets",
            "password",
            "redis-password",
            "api_key",
            "apiKey",
            "aws_access_key_id",
            "aws_secret_access_key",
            "session_token",
            "bearer_token",
            "private_key",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "secret_file",
            "api_key_env",
            "password_env",
            "username_env",
            "token_ttl_seconds",
            "key_prefix",
            "tokenizer",
            "url",
            "endpoint_url",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn urls_lose_userinfo_and_credential_parameters_only() {
        for (url, want) in [
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://<redacted>@127.0.0.1:6379/0",
            ),
            (
                "https://admin:pa@ss@search:9200/x?a=1",
                "https://<redacted>@search:9200/x?a=1",
            ),
            (
                "rediss://cache:6380?password=p&db=2#frag",
                "rediss://cache:6380?password=<redacted>&db=2#frag",
            ),
            ("http://intent:50051", "http://intent:50051"),
            ("not a url", "not a url"),
            ("user@example.com", "user@example.com"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn nested_and_future_credentials_are_redacted() {
        let mut value: toml::Value = toml::from_str(
            r#"
            plain = "visible"
            endpoint = "http://u:pw1@host"
            [mesh.auth]
            service_secrets = { intent = "pw2", memory = ["pw3"] }
            secret_file = "/run/secret"
            [aws]
            aws_secret_access_key = "pw4"
            session_token = "pw5"
            "#,
        )
        .unwrap();
        redact_value(&mut value, false);
        let text = toml::to_string(&value).unwrap();
        for secret in ["pw1", "pw2", "pw3", "pw4", "pw5"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for shown in ["visible", "/run/secret", "http://<redacted>@host"] {
            assert!(text.contains(shown), "{shown} missing from {text}");
        }
    }

    #[test]
    fn the_printed_config_holds_no_credential() {
        let mut config = Config::default();
        config.gateway.auth.secret = "jwt-pw".into();
        config.redis.url = "redis://:redis-pw@127.0.0.1:6379".into();
        config.retrieval.opensearch.url = "https://admin:search-pw@search:9200".into();
        config.memory.dynamodb.endpoint_url = "http://key:dynamo-pw@127.0.0.1:8000".into();
        let text = toml::to_string_pretty(&config.redacted().unwrap()).unwrap();
        for secret in ["jwt-pw", "redis-pw", "search-pw", "dynamo-pw"] {
            assert!(!text.contains(secret), "{secret} printed");
        }
        assert!(text.contains("secret = \"<redacted>\""), "{text}");
        assert!(text.contains("semantic_threshold = 0.95\n"), "{text}");
        // An unset secret prints as unset, so `config print` still tells whether one is set.
        let text = toml::to_string_pretty(&Config::default().redacted().unwrap()).unwrap();
        assert!(text.contains("secret = \"\""), "{text}");
    }
}
