//! Typed configuration of the whole MangaAssist mesh.
//!
//! One TOML document configures every daemon; each daemon reads its own section. Values come
//! from the built-in defaults, then the file, then `MANGAASSIST_<SECTION>__<FIELD>` environment
//! variables. Everything is parsed and validated before any port is bound, and errors name the
//! offending field (`retrieval.top_k: invalid type ...`).

mod fault;
mod load;
mod redact;
mod sections;

pub use fault::{FaultKind, FaultSpec};
pub use load::{ConfigError, ENV_PREFIX, load, load_str};
pub use redact::{REDACTED, RedactError, is_secret_key, redact_url};
pub use sections::*;
