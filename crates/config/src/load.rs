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
        assert_eq!(c.memory.backend, crate::MemoryBackend::DynamoDb);
        assert_eq!(c.cache.backend, crate::CacheBackend::Redis);
        assert_eq!(c.retrieval.backend, crate::RetrievalBackend::OpenSearch);
        assert_eq!(c.generation.backend, crate::GenerationBackend::Bedrock);
        assert_eq!(c.gateway.resume_backend, crate::ResumeBackend::Redis);
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

    #[test]
    fn an_unknown_choice_names_the_field_and_every_allowed_value() {
        for (toml, field, allowed) in [
            (
                "[generation]\nbackend = \"claude\"\n",
                "generation.backend",
                &["simulated", "openai", "bedrock"][..],
            ),
            (
                "[generation]\nlatency_profile = \"fast\"\n",
                "generation.latency_profile",
                &["realistic", "zero"][..],
            ),
            (
                "[memory]\nbackend = \"dynamo\"\n",
                "memory.backend",
                &["redb", "dynamodb"][..],
            ),
            (
                "[cache]\nbackend = \"memcached\"\n",
                "cache.backend",
                &["memory", "redis"][..],
            ),
            (
                "[gateway]\nresume_backend = \"disk\"\n",
                "gateway.resume_backend",
                &["memory", "redis"][..],
            ),
            (
                "[retrieval]\nbackend = \"elastic\"\n",
                "retrieval.backend",
                &["embedded", "opensearch"][..],
            ),
            (
                "[embedding]\nbackend = \"bert\"\n",
                "embedding.backend",
                &["auto", "minilm", "hashed"][..],
            ),
            (
                "[telemetry]\nlog_format = \"xml\"\n",
                "telemetry.log_format",
                &["text", "json"][..],
            ),
        ] {
            let e = load_str(toml, "t", env(&[])).unwrap_err().to_string();
            assert!(e.contains(field), "{toml}: {e}");
            for choice in allowed {
                assert!(e.contains(&format!("`{choice}`")), "{toml}: {e}");
            }
        }
        // The same names parse from strings (command-line flags) and print back unchanged.
        for name in ["simulated", "openai", "bedrock"] {
            let b: crate::GenerationBackend = name.parse().unwrap();
            assert_eq!(b.to_string(), name);
        }
        let e = "xml".parse::<crate::LogFormat>().unwrap_err();
        assert_eq!(e.to_string(), "`xml` is not one of text, json");
    }

    #[test]
    fn out_of_range_numbers_name_the_field() {
        for (toml, field) in [
            (
                "[generation]\nprefill_ms_per_1k_tokens = -60.0\n",
                "generation.prefill_ms_per_1k_tokens",
            ),
            (
                "[generation]\nprefill_ms_per_1k_tokens = nan\n",
                "generation.prefill_ms_per_1k_tokens",
            ),
            (
                "[generation]\nprefill_ms_per_1k_tokens = inf\n",
                "generation.prefill_ms_per_1k_tokens",
            ),
            (
                "[generation.fast]\nmodel = \"m\"\nfirst_token_ms = 100\ntokens_per_second = 0.0\njitter = 0.1\n",
                "generation.fast.tokens_per_second",
            ),
            (
                "[generation.smart]\nmodel = \"m\"\nfirst_token_ms = 100\ntokens_per_second = 50.0\njitter = -0.1\n",
                "generation.smart.jitter",
            ),
            (
                "[generation]\nstream_buffer = 0\n",
                "generation.stream_buffer",
            ),
            (
                "[generation]\nlow_confidence_below = 1.5\n",
                "generation.low_confidence_below",
            ),
            (
                "[generation.max_tokens]\nfaq = 0\n",
                "generation.max_tokens.faq",
            ),
            (
                "[generation.bedrock]\nconnect_timeout_ms = 0\n",
                "generation.bedrock.connect_timeout_ms",
            ),
            (
                "[generation.openai]\nconnect_timeout_ms = 0\n",
                "generation.openai.connect_timeout_ms",
            ),
            ("[retrieval]\ntop_k = 0\n", "retrieval.top_k"),
            ("[retrieval]\ntop_k = 51\n", "retrieval.top_k"),
            ("[retrieval]\nrrf_k = -1.0\n", "retrieval.rrf_k"),
            ("[retrieval]\nef_search = 0\n", "retrieval.ef_search"),
            (
                "[retrieval.opensearch]\ntimeout_ms = 0\n",
                "retrieval.opensearch.timeout_ms",
            ),
            ("[memory]\nhistory_limit = 0\n", "memory.history_limit"),
            (
                "[memory.dynamodb]\nsessions_table = \"\"\n",
                "memory.dynamodb.sessions_table",
            ),
            ("[cache]\nmax_entries = 0\n", "cache.max_entries"),
            (
                "[cache]\ndefault_ttl_seconds = 0\n",
                "cache.default_ttl_seconds",
            ),
            ("[redis]\ntimeout_ms = 0\n", "redis.timeout_ms"),
            (
                "[embedding]\nquery_cache_entries = 0\n",
                "embedding.query_cache_entries",
            ),
            ("[mesh]\nmax_rpc_seconds = 0\n", "mesh.max_rpc_seconds"),
            ("[mesh]\nin_process = [\"gateway\"]\n", "mesh.in_process"),
            (
                "[intent]\nmedium_fast_budget_ms = 4000000\n",
                "intent.medium_fast_budget_ms",
            ),
            (
                "[precompute]\ntrending_interval_seconds = 0\n",
                "precompute.trending_interval_seconds",
            ),
            (
                "[gateway.deadlines]\ntotal_ms = 0\n",
                "gateway.deadlines.total_ms",
            ),
            (
                "[gateway.deadlines]\ncache_ms = 0\n",
                "gateway.deadlines.cache_ms",
            ),
            (
                "[gateway.budgets]\nretrieval_ms = 9000\n",
                "gateway.budgets.retrieval_ms",
            ),
            (
                "[gateway.breakers]\nopen_ms = 0\n",
                "gateway.breakers.open_ms",
            ),
            (
                "[gateway.breakers]\nhalf_open_probes = 0\n",
                "gateway.breakers.half_open_probes",
            ),
            (
                "[gateway.routing]\nwindow_seconds = 0\n",
                "gateway.routing.window_seconds",
            ),
            (
                "[gateway.stream]\nheartbeat_seconds = 0\n",
                "gateway.stream.heartbeat_seconds",
            ),
            (
                "[gateway.stream]\nresume_keep_seconds = 500\n",
                "gateway.stream.resume_keep_seconds",
            ),
            (
                "[gateway.auth]\ntoken_ttl_seconds = 0\n",
                "gateway.auth.token_ttl_seconds",
            ),
            (
                "[gateway.slo]\nerror_budget = 1.0\n",
                "gateway.slo.error_budget",
            ),
            ("[gateway.slo]\ntarget_ms = 0\n", "gateway.slo.target_ms"),
            (
                "[gateway]\nmax_frame_bytes = 0\n",
                "gateway.max_frame_bytes",
            ),
            (
                "[gateway]\ntop_k_products = 500\n",
                "gateway.top_k_products",
            ),
            (
                "[gateway]\ncacheable_intents = [\"weather\"]\n",
                "gateway.cacheable_intents",
            ),
            ("[gateway]\nlisten = \"localhost\"\n", "gateway.listen"),
            (
                "[gateway]\ninternal_listen = \"127.0.0.1:8080\"\n",
                "gateway.internal_listen",
            ),
            (
                "[gateway]\ninternal_listen = \"metrics\"\n",
                "gateway.internal_listen",
            ),
            (
                "[gateway.stream]\nwrite_timeout_ms = 0\n",
                "gateway.stream.write_timeout_ms",
            ),
            (
                "[gateway.stream]\nsend_buffer_bytes = 100\n",
                "gateway.stream.send_buffer_bytes",
            ),
            (
                "[gateway.limits]\nmax_connections = 0\n",
                "gateway.limits.max_connections",
            ),
            (
                "[gateway.limits]\nheader_read_timeout_ms = 0\n",
                "gateway.limits.header_read_timeout_ms",
            ),
        ] {
            let e = load_str(toml, "t", env(&[])).unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{toml}: {e}");
        }
        // Negative numbers for unsigned fields stop at parsing, still naming the field.
        let e = load_str("[gateway.deadlines]\nintent_ms = -5\n", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("gateway.deadlines.intent_ms"), "{e}");
    }

    #[test]
    fn token_checks_are_bounded_and_named() {
        // Clock skew past five minutes keeps stolen or expired tokens usable for no reason.
        for (toml, field) in [
            (
                "[gateway.auth]\nleeway_seconds = 301\n",
                "gateway.auth.leeway_seconds",
            ),
            (
                "[gateway.auth]\nleeway_seconds = 3600\n",
                "gateway.auth.leeway_seconds",
            ),
            ("[gateway.auth]\nissuer = \"\"\n", "gateway.auth.issuer"),
            ("[gateway.auth]\naudience = \"\"\n", "gateway.auth.audience"),
            (
                "[gateway.auth]\naudience = \"a\\u0007b\"\n",
                "gateway.auth.audience",
            ),
        ] {
            let e = load_str(toml, "t", env(&[])).unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{toml}: {e}");
        }
        let c = load_str(
            "[gateway.auth]\nleeway_seconds = 300\nissuer = \"shop\"\naudience = \"shop-gw\"\n",
            "t",
            env(&[]),
        )
        .unwrap();
        assert_eq!(c.gateway.auth.leeway_seconds, 300);
        assert_eq!(
            (
                c.gateway.auth.issuer.as_str(),
                c.gateway.auth.audience.as_str()
            ),
            ("shop", "shop-gw")
        );
        let d = load_str("", "t", env(&[])).unwrap();
        assert_eq!(
            (
                d.gateway.auth.issuer.as_str(),
                d.gateway.auth.audience.as_str()
            ),
            ("mangaassist", "mangaassist-gateway")
        );
    }

    #[test]
    fn removed_fields_are_rejected_by_name() {
        // `gateway.targets` and `gateway.budgets.degraded_ms` were never read; a file that
        // still sets them is told so instead of being silently ignored.
        let e = load_str("[gateway.budgets]\ndegraded_ms = 3000\n", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("degraded_ms"), "{e}");
        let e = load_str(
            "[gateway.targets.faq]\np50 = 1\np95 = 2\np99 = 3\n",
            "t",
            env(&[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("targets"), "{e}");
    }
}
