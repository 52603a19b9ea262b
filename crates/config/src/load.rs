use std::path::Path;

use crate::Config;

/// Environment variables starting with this override config fields:
/// `MANGAASSIST_RETRIEVAL__TOP_K=8` sets `retrieval.top_k`.
pub const ENV_PREFIX: &str = "MANGAASSIST_";

/// Variables with the prefix that are not config fields.
const RESERVED: [&str; 3] = [
    "MANGAASSIST_CONFIG",
    "MANGAASSIST_LOG",
    "MANGAASSIST_CACHE_DIR",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("config field `{field}`: {message}")]
    Field { field: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl ConfigError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Field {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Loads defaults ← file (if any) ← environment overrides, then validates.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let (text, name) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            p.display().to_string(),
        ),
        None => (String::new(), "<none>".to_string()),
    };
    load_str(&text, &name, env)
}

/// [`load`] from TOML text; `name` is used in error messages.
pub fn load_str(
    text: &str,
    name: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut root: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: name.to_string(),
        message: e.to_string(),
    })?;
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !RESERVED.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        apply_env(&mut root, &var, &raw)?;
    }
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
            let field = e.path().to_string();
            ConfigError::Field {
                field: if field == "." { "<root>".into() } else { field },
                message: e.into_inner().to_string(),
            }
        })?;
    config.validate()?;
    Ok(config)
}

fn apply_env(root: &mut toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::Env {
            var: var.to_string(),
            message: "empty path segment (use `__` between section and field)".into(),
        });
    }
    let value = parse_env_value(raw);
    let mut table = root;
    for (i, key) in path.iter().enumerate() {
        if i + 1 == path.len() {
            table.insert(key.clone(), value);
            return Ok(());
        }
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Env {
                    var: var.to_string(),
                    message: format!("`{}` is not a section", path[..=i].join(".")),
                });
            }
        };
    }
    Ok(())
}

/// `8` → integer, `true` → bool, `["a","b"]` → array, anything else → string.
fn parse_env_value(raw: &str) -> toml::Value {
    #[derive(serde::Deserialize)]
    struct Probe {
        v: toml::Value,
    }
    match toml::from_str::<Probe>(&format!("v = {raw}")) {
        Ok(p) => p.v,
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_round_trip_through_print() {
        let c = load_str("", "t", env(&[])).unwrap();
        let printed = toml::to_string_pretty(&c).unwrap();
        let again = load_str(&printed, "printed", env(&[])).unwrap();
        assert_eq!(toml::to_string_pretty(&again).unwrap(), printed);
    }

    #[test]
    fn env_overrides_file() {
        let c = load_str(
            "[retrieval]\ntop_k = 3\n",
            "t",
            env(&[
                ("MANGAASSIST_RETRIEVAL__TOP_K", "9"),
                ("MANGAASSIST_CONFIG", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.retrieval.top_k, 9);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_field() {
        let e = load_str("[retrieval]\ntop_kk = 3\n", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("retrieval"), "{e}");
        assert!(e.to_string().contains("top_kk"), "{e}");
        let e = load_str("[retrieval]\ntop_k = \"many\"\n", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("retrieval.top_k"), "{e}");
        let e = load_str("", "t", env(&[("MANGAASSIST_NOPE", "1")])).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = load_str("faults = [\"intent=explode\"]", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("faults"), "{e}");
        let e = load_str("[cache]\nsemantic_threshold = 1.5\n", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("cache.semantic_threshold"), "{e}");
    }

    #[test]
    fn backend_choices_and_addresses_are_checked() {
        let c = load_str(
            "",
            "t",
            env(&[
                ("MANGAASSIST_MEMORY__BACKEND", "dynamodb"),
                ("MANGAASSIST_CACHE__BACKEND", "redis"),
                ("MANGAASSIST_RETRIEVAL__BACKEND", "opensearch"),
                ("MANGAASSIST_GENERATION__BACKEND", "bedrock"),
                ("MANGAASSIST_GATEWAY__RESUME_BACKEND", "redis"),
                ("MANGAASSIST_REDIS__URL", "rediss://cache.example:6380/0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.memory.backend, "dynamodb");
        assert_eq!(c.redis.url, "rediss://cache.example:6380/0");
        for (var, value, field) in [
            ("MANGAASSIST_MEMORY__BACKEND", "dynamo", "memory.backend"),
            ("MANGAASSIST_CACHE__BACKEND", "memcached", "cache.backend"),
            (
                "MANGAASSIST_RETRIEVAL__BACKEND",
                "elastic",
                "retrieval.backend",
            ),
            (
                "MANGAASSIST_GENERATION__BACKEND",
                "claude",
                "generation.backend",
            ),
            (
                "MANGAASSIST_GATEWAY__RESUME_BACKEND",
                "disk",
                "gateway.resume_backend",
            ),
            ("MANGAASSIST_REDIS__URL", "localhost:6379", "redis.url"),
            ("MANGAASSIST_REDIS__POOL_SIZE", "0", "redis.pool_size"),
            (
                "MANGAASSIST_RETRIEVAL__OPENSEARCH__URL",
                "opensearch:9200",
                "retrieval.opensearch.url",
            ),
            (
                "MANGAASSIST_RETRIEVAL__OPENSEARCH__INDEX_PREFIX",
                "Manga",
                "retrieval.opensearch.index_prefix",
            ),
            (
                "MANGAASSIST_MEMORY__DYNAMODB__ENDPOINT_URL",
                "dynamodb:8000",
                "memory.dynamodb.endpoint_url",
            ),
            (
                "MANGAASSIST_GENERATION__BEDROCK__FAST_MODEL_ID",
                " ",
                "generation.bedrock.fast_model_id",
            ),
            (
                "MANGAASSIST_TELEMETRY__OTLP_ENDPOINT",
                "jaeger:4318",
                "telemetry.otlp_endpoint",
            ),
        ] {
            let e = load_str("", "t", env(&[(var, value)])).unwrap_err();
            assert!(e.to_string().contains(field), "{var}={value}: {e}");
        }
    }
}
