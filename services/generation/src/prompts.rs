//! Versioned system prompts: `<dir>/<store>/<intent>/<version>.txt`, with `<dir>/default/` as
//! the fallback for any store. The active version of a folder is the one named in its `active`
//! file, else the highest `vN`. Loaded once at start so a broken prompt fails start-up, not a
//! customer's message.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use mangaassist_proto::v1 as pb;

use crate::{GenerationError, tokens::count_tokens};

/// Store folder used when a store has no prompt of its own for an intent.
pub const DEFAULT_STORE: &str = "default";

#[derive(Debug, Clone, PartialEq)]
pub struct PromptVersion {
    /// `v1`, `v2`, ...
    pub version: String,
    pub text: String,
    /// Tokens of the raw prompt text.
    pub tokens: u32,
}

#[derive(Debug, Clone)]
struct PromptSet {
    /// Sorted by version number.
    versions: Vec<PromptVersion>,
    active: usize,
}

/// Every prompt of every store and intent.
#[derive(Debug, Clone)]
pub struct PromptStore {
    sets: BTreeMap<(String, pb::Intent), PromptSet>,
}

fn err(path: &Path, message: impl Into<String>) -> GenerationError {
    GenerationError::Prompt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn version_number(name: &str) -> Option<u32> {
    name.strip_prefix('v')?.parse().ok()
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, GenerationError> {
    let rd = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(dir, e.to_string()))?;
        let path = entry.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn load_set(dir: &Path) -> Result<PromptSet, GenerationError> {
    let rd = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
    let mut versions = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(dir, e.to_string()))?;
        let path = entry.path();
        let name = file_name(&path);
        let Some(stem) = name.strip_suffix(".txt") else {
            continue;
        };
        let Some(n) = version_number(stem) else {
            return Err(err(&path, "prompt files must be named v<N>.txt"));
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(err(&path, "prompt is empty"));
        }
        let tokens = count_tokens(&text);
        versions.push((
            n,
            PromptVersion {
                version: stem.to_string(),
                text,
                tokens,
            },
        ));
    }
    if versions.is_empty() {
        return Err(err(dir, "no v<N>.txt prompt in this folder"));
    }
    versions.sort_by_key(|(n, _)| *n);
    let versions: Vec<PromptVersion> = versions.into_iter().map(|(_, v)| v).collect();
    let active_file = dir.join("active");
    let active = if active_file.exists() {
        let name =
            std::fs::read_to_string(&active_file).map_err(|e| err(&active_file, e.to_string()))?;
        let name = name.trim();
        versions
            .iter()
            .position(|v| v.version == name)
            .ok_or_else(|| err(&active_file, format!("names `{name}`, which has no file")))?
    } else {
        versions.len() - 1
    };
    Ok(PromptSet { versions, active })
}

impl PromptStore {
    /// Loads every prompt under `dir`; every intent must have a `default/<intent>/` prompt.
    pub fn load(dir: &Path) -> Result<Self, GenerationError> {
        let mut sets = BTreeMap::new();
        for store_dir in sorted_dirs(dir)? {
            let store = file_name(&store_dir);
            for intent_dir in sorted_dirs(&store_dir)? {
                let label = file_name(&intent_dir);
                let intent = pb::Intent::from_label(&label)
                    .ok_or_else(|| err(&intent_dir, format!("`{label}` is not an intent label")))?;
                sets.insert((store.clone(), intent), load_set(&intent_dir)?);
            }
        }
        for intent in pb::Intent::ALL {
            if !sets.contains_key(&(DEFAULT_STORE.to_string(), intent)) {
                return Err(err(
                    &dir.join(DEFAULT_STORE).join(intent.label()),
                    "missing: every intent needs a default prompt",
                ));
            }
        }
        Ok(Self { sets })
    }

    fn set_for(&self, store: &str, intent: pb::Intent) -> Option<(&str, &PromptSet)> {
        if let Some((k, s)) = self.sets.get_key_value(&(store.to_string(), intent)) {
            return Some((k.0.as_str(), s));
        }
        self.sets
            .get_key_value(&(DEFAULT_STORE.to_string(), intent))
            .map(|(k, s)| (k.0.as_str(), s))
    }

    /// The prompt for `store` and `intent`: `version` if given (the store's own first, then
    /// the default's), else the active one. Returns the folder's store name with it.
    pub fn resolve(
        &self,
        store: &str,
        intent: pb::Intent,
        version: &str,
    ) -> Result<(&str, &PromptVersion), GenerationError> {
        let (set_store, set) = self.set_for(store, intent).ok_or_else(|| {
            GenerationError::InvalidArgument(format!("no prompt for intent {}", intent.label()))
        })?;
        if version.is_empty() {
            return Ok((set_store, &set.versions[set.active]));
        }
        for s in [store, DEFAULT_STORE] {
            if let Some(set) = self.sets.get(&(s.to_string(), intent))
                && let Some(v) = set.versions.iter().find(|v| v.version == version)
            {
                return Ok((if s == store { set_store } else { DEFAULT_STORE }, v));
            }
        }
        Err(GenerationError::InvalidArgument(format!(
            "unknown prompt_version `{version}` for store `{store}` intent {} (available: {})",
            intent.label(),
            set.versions
                .iter()
                .map(|v| v.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Every prompt, for `ListPrompts`.
    pub fn list(&self, max_tokens: impl Fn(pb::Intent) -> u32) -> Vec<pb::PromptInfo> {
        let mut out = Vec::new();
        for ((store, intent), set) in &self.sets {
            for (i, v) in set.versions.iter().enumerate() {
                out.push(pb::PromptInfo {
                    store_id: store.clone(),
                    intent: *intent as i32,
                    version: v.version.clone(),
                    active: i == set.active,
                    max_tokens: max_tokens(*intent),
                    tokens: v.tokens,
                });
            }
        }
        out
    }
}

/// What is sent to the model: system prompt, context block and the customer's message.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedPrompt {
    /// Store folder the prompt came from (`default` when the store has none of its own).
    pub prompt_store: String,
    pub intent: pb::Intent,
    pub version: String,
    pub system: String,
    pub context: String,
    pub query: String,
}

impl RenderedPrompt {
    pub fn new(
        prompt_store: &str,
        prompt: &PromptVersion,
        req: &pb::GenerateRequest,
        intent: pb::Intent,
    ) -> Self {
        let store = if req.store_id.is_empty() {
            "the"
        } else {
            req.store_id.as_str()
        };
        Self {
            prompt_store: prompt_store.to_string(),
            intent,
            version: prompt.version.clone(),
            system: prompt.text.replace("{store_id}", store),
            context: render_context(req),
            query: req.query.clone(),
        }
    }

    /// Input tokens a model is billed for.
    pub fn input_tokens(&self) -> u32 {
        count_tokens(&self.system)
            .saturating_add(count_tokens(&self.context))
            .saturating_add(count_tokens(&self.query))
    }
}

/// The context block in the form a real model would receive it.
pub fn render_context(req: &pb::GenerateRequest) -> String {
    let mut s = String::new();
    if let Some(p) = &req.profile
        && !p.user_id.is_empty()
    {
        let _ = writeln!(
            s,
            "Customer: {} (favourite genres: {}; language: {})",
            p.name,
            p.favourite_genres.join(", "),
            p.language
        );
    }
    if !req.degradation.is_empty() && req.degradation != "full" {
        let _ = writeln!(s, "Service level: {}", req.degradation);
    }
    if !req.products.is_empty() {
        s.push_str("Products:\n");
        for p in req.products.iter().filter_map(|h| h.product.as_ref()) {
            let _ = writeln!(
                s,
                "- [{}] {} by {}; {}; {}; {} yen; stock {}; released {}. {}",
                p.id,
                p.title,
                p.author,
                p.demographic,
                p.genres.join(", "),
                p.price_yen,
                p.stock,
                p.release_date,
                p.synopsis
            );
        }
    }
    if !req.documents.is_empty() {
        s.push_str("Documents:\n");
        for d in req.documents.iter().filter_map(|h| h.document.as_ref()) {
            let _ = writeln!(s, "- [{}] {}: {}", d.id, d.title, d.body);
        }
    }
    if !req.orders.is_empty() {
        s.push_str("Orders:\n");
        for o in &req.orders {
            let items: Vec<String> = o
                .items
                .iter()
                .map(|i| format!("{} x{} ({} yen)", i.title, i.quantity, i.price_yen))
                .collect();
            let _ = writeln!(
                s,
                "- {} placed {}: {}; status {}; eta {}; carrier {}; tracking {}",
                o.order_id,
                o.placed_at,
                items.join(", "),
                o.status,
                o.eta,
                o.carrier,
                o.tracking
            );
        }
    }
    if !req.history.is_empty() {
        s.push_str("Conversation so far (oldest first):\n");
        for t in req.history.iter().rev() {
            let _ = writeln!(s, "{}: {}", t.role, t.text);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ma-gen-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn with_defaults(dir: &Path) {
        for i in pb::Intent::ALL {
            write(
                dir,
                &format!("default/{}/v1.txt", i.label()),
                &format!("You answer {} questions for {{store_id}}.", i.label()),
            );
        }
    }

    #[test]
    fn repository_prompts_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/prompts");
        let store = PromptStore::load(&dir).unwrap();
        let (s, v) = store
            .resolve("manga_jp", pb::Intent::Recommendation, "")
            .unwrap();
        assert_eq!((s, v.version.as_str()), ("manga_jp", "v2"));
        let (s, v) = store
            .resolve("comics_us", pb::Intent::Recommendation, "")
            .unwrap();
        assert_eq!((s, v.version.as_str()), ("default", "v1"));
        let listed = store.list(|_| 100);
        assert!(listed.len() >= 11);
        assert_eq!(listed.iter().filter(|p| p.active).count(), 10);
    }

    #[test]
    fn active_file_versions_and_fallback() {
        let dir = temp_dir("versions");
        with_defaults(&dir);
        write(&dir, "shop/faq/v1.txt", "Shop FAQ one.");
        write(&dir, "shop/faq/v2.txt", "Shop FAQ two, longer.");
        write(&dir, "shop/faq/v10.txt", "Shop FAQ ten.");
        let store = PromptStore::load(&dir).unwrap();
        // Highest by number, not by string order.
        let (_, v) = store.resolve("shop", pb::Intent::Faq, "").unwrap();
        assert_eq!(v.version, "v10");
        write(&dir, "shop/faq/active", "v2\n");
        let store = PromptStore::load(&dir).unwrap();
        let (_, v) = store.resolve("shop", pb::Intent::Faq, "").unwrap();
        assert_eq!(v.version, "v2");
        let (s, v) = store.resolve("shop", pb::Intent::Faq, "v1").unwrap();
        assert_eq!((s, v.text.as_str()), ("shop", "Shop FAQ one."));
        // Other store and intent fall back to default.
        let (s, v) = store.resolve("other", pb::Intent::Faq, "").unwrap();
        assert_eq!((s, v.version.as_str()), ("default", "v1"));
        let e = store.resolve("shop", pb::Intent::Faq, "v7").unwrap_err();
        assert!(matches!(e, GenerationError::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains("v10"), "{e}");
    }

    #[test]
    fn broken_prompt_dirs_fail_with_the_path() {
        let dir = temp_dir("broken");
        with_defaults(&dir);
        std::fs::remove_file(dir.join("default/chitchat/v1.txt")).unwrap();
        let e = PromptStore::load(&dir).unwrap_err().to_string();
        assert!(e.contains("chitchat"), "{e}");
        write(&dir, "default/chitchat/v1.txt", "ok");
        write(&dir, "default/faq/active", "v9");
        let e = PromptStore::load(&dir).unwrap_err().to_string();
        assert!(e.contains("active"), "{e}");
        std::fs::remove_file(dir.join("default/faq/active")).unwrap();
        write(&dir, "default/smalltalk/v1.txt", "x");
        let e = PromptStore::load(&dir).unwrap_err().to_string();
        assert!(e.contains("smalltalk"), "{e}");
    }

    #[test]
    fn rendered_prompt_counts_prompt_context_and_query() {
        let short = PromptVersion {
            version: "v1".into(),
            text: "Be brief.".into(),
            tokens: 2,
        };
        let long = PromptVersion {
            version: "v2".into(),
            text: "Be brief and kind and accurate and never invent anything.".into(),
            tokens: 10,
        };
        let req = pb::GenerateRequest {
            query: "hello there".into(),
            store_id: "manga_jp".into(),
            ..Default::default()
        };
        let a = RenderedPrompt::new("default", &short, &req, pb::Intent::Greeting);
        let b = RenderedPrompt::new("default", &long, &req, pb::Intent::Greeting);
        assert_eq!(a.input_tokens(), 4);
        assert_eq!(b.input_tokens(), 12);
    }
}
