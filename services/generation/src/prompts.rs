//! Versioned system prompts: `<dir>/<store>/<intent>/<version>.txt`, with `<dir>/default/` as
//! the fallback for any store. All of them are loaded at start so a broken prompt fails
//! start-up, not a customer's message; afterwards they change only through the prompt RPCs
//! (see [`crate::PromptRegistry`]), which write the same files.
//!
//! # Folder layout
//!
//! - `<version>.txt`: one prompt version. A version is `v<N>` or any name matching
//!   `[a-z0-9][a-z0-9._-]{0,31}` (`rec-detailed`, `v2.1`). `{store_id}` in the text is
//!   replaced by the request's store.
//! - `active`: the version new streams use. Without it the highest `v<N>` is active (else the
//!   last name in sort order). An empty `active` file means "none": the store uses the
//!   `default` store's prompt for that intent (not allowed in `default/`, which every intent
//!   needs).
//! - `active_history`: versions that were active before, oldest first, one a line (`-` for
//!   "none"); `RollbackPrompt` re-activates the last one.
//!
//! # Front matter
//!
//! A prompt file may start with lines of the form `#! key: value`. They tune the answer the
//! prompt asks for and are stripped before the prompt is sent to a model (and before its
//! tokens are counted):
//!
//! - `#! style: concise | standard | detailed`: how much the answer says. A real model gets
//!   this from the wording of the prompt itself; the simulated model honours the key (detailed
//!   adds more facts from the context, such as more of a synopsis, release dates, order lines
//!   and further policy sentences, never anything the context does not hold; concise drops
//!   closing pleasantries and recommendation synopses).
//! - `#! max_tokens: N`: the output cap when a request leaves `max_tokens` at 0, in place of
//!   the intent's `generation.max_tokens`.
//!
//! ```text
//! #! style: detailed
//! #! max_tokens: 450
//! You are MangaAssist ...
//! ```
//!
//! An unknown key, a repeated key or a bad value is an error naming the file (at load) or the
//! `text` field (in `PutPrompt`).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use mangaassist_proto::v1 as pb;

use crate::{GenerationError, tokens::count_tokens};

/// Store folder used when a store has no prompt of its own for an intent.
pub const DEFAULT_STORE: &str = "default";
/// Largest prompt file `PutPrompt` accepts.
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;
/// Activations remembered per folder for rollback.
const HISTORY_LIMIT: usize = 20;
const ACTIVE_FILE: &str = "active";
const HISTORY_FILE: &str = "active_history";
/// `active_history` line for "no active version of its own".
const NONE_MARK: &str = "-";

/// How much an answer says (front matter `#! style:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptStyle {
    /// The answer without closing pleasantries.
    Concise,
    #[default]
    Standard,
    /// More facts from the context (longer answers, as a more demanding prompt causes).
    Detailed,
}

impl PromptStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptStyle::Concise => "concise",
            PromptStyle::Standard => "standard",
            PromptStyle::Detailed => "detailed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Concise, Self::Standard, Self::Detailed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromptVersion {
    /// `v1`, `v2`, `rec-detailed`, ...
    pub version: String,
    /// The prompt as sent to a model (front matter stripped).
    pub text: String,
    /// Tokens of `text`.
    pub tokens: u32,
    pub style: PromptStyle,
    /// Output cap from `#! max_tokens`.
    pub max_tokens: Option<u32>,
    /// The file as written (trimmed), so a re-sent prompt can be told from a different one.
    pub source: String,
}

impl PromptVersion {
    /// Parses a prompt file's contents. The error says what is wrong, without a location.
    pub fn parse(version: &str, source: &str) -> Result<Self, String> {
        let source = source.trim();
        let mut style = None;
        let mut max_tokens = None;
        let mut body_start = 0;
        for line in source.split_inclusive('\n') {
            let Some(rest) = line.trim().strip_prefix("#!") else {
                break;
            };
            body_start += line.len();
            let (key, value) = rest.split_once(':').ok_or_else(|| {
                format!("front matter line `{}` is not `#! key: value`", line.trim())
            })?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "style" => {
                    let v = PromptStyle::parse(value).ok_or_else(|| {
                        format!(
                            "front matter style `{value}` is not one of concise, standard, detailed"
                        )
                    })?;
                    if style.replace(v).is_some() {
                        return Err("front matter repeats `style`".into());
                    }
                }
                "max_tokens" => {
                    let n: u32 = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "front matter max_tokens `{value}` is not a number in 1..=100000"
                            )
                        })?;
                    if max_tokens.replace(n).is_some() {
                        return Err("front matter repeats `max_tokens`".into());
                    }
                }
                other => {
                    return Err(format!(
                        "unknown front matter key `{other}` (known: style, max_tokens)"
                    ));
                }
            }
        }
        let text = source[body_start..].trim().to_string();
        if text.is_empty() {
            return Err("prompt is empty".into());
        }
        Ok(Self {
            version: version.to_string(),
            tokens: count_tokens(&text),
            text,
            style: style.unwrap_or_default(),
            max_tokens,
            source: source.to_string(),
        })
    }
}

/// Checks a store id for the prompt RPCs.
pub fn validate_store_id(store: &str) -> Result<(), GenerationError> {
    let ok = (1..=32).contains(&store.len())
        && store
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(GenerationError::InvalidArgument(format!(
            "store_id `{store}` must be `default` or 1-32 characters of [a-z0-9_]"
        )))
    }
}

/// True for `v<N>` or `[a-z0-9][a-z0-9._-]{0,31}`.
pub fn is_valid_version(version: &str) -> bool {
    let b = version.as_bytes();
    (1..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

fn validate_version(field: &str, version: &str) -> Result<(), GenerationError> {
    if is_valid_version(version) {
        Ok(())
    } else {
        Err(GenerationError::InvalidArgument(format!(
            "{field} `{version}` must be v<N> or match [a-z0-9][a-z0-9._-]{{0,31}}"
        )))
    }
}

/// `v<N>` sorts by number, before named versions (which sort by name).
fn version_key(name: &str) -> (u8, u64, &str) {
    match name.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()) {
        Some(n) => (0, n, ""),
        None => (1, 0, name),
    }
}

#[derive(Debug, Clone)]
struct PromptSet {
    /// Sorted by [`version_key`].
    versions: Vec<PromptVersion>,
    /// `None`: this store uses the default store's prompt for the intent.
    active: Option<usize>,
    /// Previously active versions, oldest first.
    history: Vec<Option<String>>,
}

impl PromptSet {
    fn find(&self, version: &str) -> Option<usize> {
        self.versions.iter().position(|v| v.version == version)
    }

    fn active_name(&self) -> Option<&str> {
        self.active.map(|i| self.versions[i].version.as_str())
    }

    fn rollback_target(&self) -> Option<&Option<String>> {
        self.history.last()
    }

    fn active_file(&self) -> String {
        self.active_name()
            .map(|v| format!("{v}\n"))
            .unwrap_or_default()
    }

    fn history_file(&self) -> String {
        self.history
            .iter()
            .map(|h| format!("{}\n", h.as_deref().unwrap_or(NONE_MARK)))
            .collect()
    }
}

/// Every prompt of every store and intent: an immutable snapshot. Changes go through
/// [`crate::PromptRegistry`], which swaps in a changed copy.
#[derive(Debug, Clone)]
pub struct PromptStore {
    sets: BTreeMap<(String, pb::Intent), PromptSet>,
}

/// Files a prompt change must write (paths relative to the prompts folder, in order) and
/// what it did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromptChange {
    pub writes: Vec<(PathBuf, String)>,
    /// The active version changed.
    pub switched: bool,
}

fn err(path: &Path, message: impl Into<String>) -> GenerationError {
    GenerationError::Prompt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, GenerationError> {
    let rd = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(dir, e.to_string()))?;
        let path = entry.path();
        if path.is_dir() && !file_name(&path).starts_with('.') {
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

fn load_set(dir: &Path, is_default: bool) -> Result<PromptSet, GenerationError> {
    let rd = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
    let mut versions = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(dir, e.to_string()))?;
        let path = entry.path();
        let name = file_name(&path);
        // Hidden files are the registry's temporary files.
        if name.starts_with('.') {
            continue;
        }
        let Some(stem) = name.strip_suffix(".txt") else {
            continue;
        };
        if !is_valid_version(stem) {
            return Err(err(
                &path,
                "prompt files must be named v<N>.txt or <name>.txt with a name matching [a-z0-9][a-z0-9._-]{0,31}",
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        versions.push(PromptVersion::parse(stem, &text).map_err(|m| err(&path, m))?);
    }
    if versions.is_empty() {
        return Err(err(dir, "no <version>.txt prompt in this folder"));
    }
    versions.sort_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)));
    let active_file = dir.join(ACTIVE_FILE);
    let active = if active_file.exists() {
        let name =
            std::fs::read_to_string(&active_file).map_err(|e| err(&active_file, e.to_string()))?;
        let name = name.trim();
        if name.is_empty() {
            if is_default {
                return Err(err(
                    &active_file,
                    "is empty, but default prompts need an active version",
                ));
            }
            None
        } else {
            Some(
                versions
                    .iter()
                    .position(|v| v.version == name)
                    .ok_or_else(|| {
                        err(&active_file, format!("names `{name}`, which has no file"))
                    })?,
            )
        }
    } else {
        let last_numbered = versions
            .iter()
            .rposition(|v| version_key(&v.version).0 == 0);
        Some(last_numbered.unwrap_or(versions.len() - 1))
    };
    let history_file = dir.join(HISTORY_FILE);
    let mut history = Vec::new();
    if history_file.exists() {
        let text = std::fs::read_to_string(&history_file)
            .map_err(|e| err(&history_file, e.to_string()))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line == NONE_MARK {
                if !is_default {
                    history.push(None);
                }
            } else if versions.iter().any(|v| v.version == line) {
                history.push(Some(line.to_string()));
            } else {
                // A version file removed by hand cannot be rolled back to; the rest can.
                tracing::warn!(path = %history_file.display(), version = line, "rollback history names a missing version, skipped");
            }
        }
    }
    Ok(PromptSet {
        versions,
        active,
        history,
    })
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
                sets.insert(
                    (store.clone(), intent),
                    load_set(&intent_dir, store == DEFAULT_STORE)?,
                );
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

    /// The store's own set when it has an active version, else the default store's.
    fn set_for(&self, store: &str, intent: pb::Intent) -> Option<(&str, &PromptSet)> {
        if let Some((k, s)) = self.sets.get_key_value(&(store.to_string(), intent))
            && s.active.is_some()
        {
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
        let no_prompt =
            || GenerationError::InvalidArgument(format!("no prompt for intent {}", intent.label()));
        let (set_store, set) = self.set_for(store, intent).ok_or_else(no_prompt)?;
        if version.is_empty() {
            let active = set.active.ok_or_else(no_prompt)?;
            return Ok((set_store, &set.versions[active]));
        }
        for s in [store, DEFAULT_STORE] {
            if let Some((k, set)) = self.sets.get_key_value(&(s.to_string(), intent))
                && let Some(v) = set.versions.iter().find(|v| v.version == version)
            {
                return Ok((k.0.as_str(), v));
            }
        }
        let mut available: Vec<&str> = Vec::new();
        for s in [store, DEFAULT_STORE] {
            if let Some(set) = self.sets.get(&(s.to_string(), intent)) {
                available.extend(set.versions.iter().map(|v| v.version.as_str()));
            }
            if store == DEFAULT_STORE {
                break;
            }
        }
        Err(GenerationError::InvalidArgument(format!(
            "unknown prompt_version `{version}` for store `{store}` intent {} (available: {})",
            intent.label(),
            available.join(", ")
        )))
    }

    fn info(
        store: &str,
        intent: pb::Intent,
        set: &PromptSet,
        index: usize,
        max_tokens: &impl Fn(pb::Intent) -> u32,
    ) -> pb::PromptInfo {
        let v = &set.versions[index];
        pb::PromptInfo {
            store_id: store.to_string(),
            intent: intent as i32,
            version: v.version.clone(),
            active: set.active == Some(index),
            max_tokens: v.max_tokens.unwrap_or_else(|| max_tokens(intent)),
            tokens: v.tokens,
            style: v.style.as_str().to_string(),
            rollback_to: match set.rollback_target() {
                Some(Some(v)) => v.clone(),
                Some(None) => NONE_MARK.to_string(),
                None => String::new(),
            },
        }
    }

    /// Every prompt, for `ListPrompts`. `max_tokens` is the intent's configured cap.
    pub fn list(&self, max_tokens: impl Fn(pb::Intent) -> u32) -> Vec<pb::PromptInfo> {
        let mut out = Vec::new();
        for ((store, intent), set) in &self.sets {
            for i in 0..set.versions.len() {
                out.push(Self::info(store, *intent, set, i, &max_tokens));
            }
        }
        out
    }

    /// One version of one folder (not falling back to `default`).
    pub fn describe(
        &self,
        store: &str,
        intent: pb::Intent,
        version: &str,
        max_tokens: impl Fn(pb::Intent) -> u32,
    ) -> Option<pb::PromptInfo> {
        let set = self.sets.get(&(store.to_string(), intent))?;
        let i = set.find(version)?;
        Some(Self::info(store, intent, set, i, &max_tokens))
    }

    /// What new streams of `store` get for `intent` (possibly the default store's prompt).
    pub fn describe_active(
        &self,
        store: &str,
        intent: pb::Intent,
        max_tokens: impl Fn(pb::Intent) -> u32,
    ) -> Option<pb::PromptInfo> {
        let (s, set) = self.set_for(store, intent)?;
        Some(Self::info(s, intent, set, set.active?, &max_tokens))
    }

    fn folder(store: &str, intent: pb::Intent) -> PathBuf {
        PathBuf::from(store).join(intent.label())
    }

    fn switch(set: &mut PromptSet, to: Option<usize>, remember: bool) -> bool {
        if set.active == to {
            return false;
        }
        if remember {
            let prev = set.active_name().map(str::to_string);
            set.history.push(prev);
            if set.history.len() > HISTORY_LIMIT {
                set.history.remove(0);
            }
        }
        set.active = to;
        true
    }

    fn state_writes(store: &str, intent: pb::Intent, set: &PromptSet) -> Vec<(PathBuf, String)> {
        let folder = Self::folder(store, intent);
        vec![
            (folder.join(ACTIVE_FILE), set.active_file()),
            (folder.join(HISTORY_FILE), set.history_file()),
        ]
    }

    /// Registers `prompt` under `store`/`intent` (activating it when asked). The same text
    /// under an existing version is accepted as is; other text is `AlreadyExists`.
    pub(crate) fn put(
        &mut self,
        store: &str,
        intent: pb::Intent,
        prompt: PromptVersion,
        activate: bool,
    ) -> Result<PromptChange, GenerationError> {
        validate_store_id(store)?;
        validate_version("version", &prompt.version)?;
        let key = (store.to_string(), intent);
        let mut writes = Vec::new();
        let set = self.sets.entry(key).or_insert_with(|| PromptSet {
            versions: Vec::new(),
            active: None,
            history: Vec::new(),
        });
        let folder = Self::folder(store, intent);
        let index = match set.find(&prompt.version) {
            Some(i) if set.versions[i].source == prompt.source => i,
            Some(_) => {
                return Err(GenerationError::AlreadyExists(format!(
                    "prompt version `{}` of store `{store}` intent {} already exists with different text; register a new version",
                    prompt.version,
                    intent.label()
                )));
            }
            None => {
                writes.push((
                    folder.join(format!("{}.txt", prompt.version)),
                    format!("{}\n", prompt.source),
                ));
                let name = prompt.version.clone();
                let active = set.active_name().map(str::to_string);
                set.versions.push(prompt);
                set.versions
                    .sort_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)));
                set.active = active.and_then(|a| set.find(&a));
                set.find(&name).unwrap_or(set.versions.len() - 1)
            }
        };
        let switched = activate && Self::switch(set, Some(index), true);
        // Always pin the active version on disk: without an `active` file the loader would
        // pick the highest version, activating a prompt nobody asked for after a restart.
        writes.extend(Self::state_writes(store, intent, set));
        Ok(PromptChange { writes, switched })
    }

    /// Makes `version` the active prompt of `store`/`intent`.
    pub(crate) fn activate(
        &mut self,
        store: &str,
        intent: pb::Intent,
        version: &str,
    ) -> Result<PromptChange, GenerationError> {
        validate_store_id(store)?;
        validate_version("version", version)?;
        let set = self
            .sets
            .get_mut(&(store.to_string(), intent))
            .ok_or_else(|| {
                GenerationError::NotFound(format!(
                    "store `{store}` has no prompts for intent {}",
                    intent.label()
                ))
            })?;
        let index = set.find(version).ok_or_else(|| {
            GenerationError::NotFound(format!(
                "version `{version}` is not registered for store `{store}` intent {} (registered: {})",
                intent.label(),
                set.versions
                    .iter()
                    .map(|v| v.version.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let switched = Self::switch(set, Some(index), true);
        Ok(PromptChange {
            writes: Self::state_writes(store, intent, set),
            switched,
        })
    }

    /// Re-activates the version that was active before the last activation.
    pub(crate) fn rollback(
        &mut self,
        store: &str,
        intent: pb::Intent,
    ) -> Result<PromptChange, GenerationError> {
        validate_store_id(store)?;
        let none = || {
            GenerationError::FailedPrecondition(format!(
                "store `{store}` intent {} has no earlier active prompt to roll back to",
                intent.label()
            ))
        };
        let set = self
            .sets
            .get_mut(&(store.to_string(), intent))
            .ok_or_else(none)?;
        let target = set.history.pop().ok_or_else(none)?;
        let index = match target {
            Some(v) => Some(set.find(&v).ok_or_else(none)?),
            None => None,
        };
        let switched = Self::switch(set, index, false);
        Ok(PromptChange {
            writes: Self::state_writes(store, intent, set),
            switched,
        })
    }
}

/// What is sent to the model: system prompt, context block and the customer's message.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedPrompt {
    /// Store folder the prompt came from (`default` when the store has none of its own).
    pub prompt_store: String,
    pub intent: pb::Intent,
    pub version: String,
    /// Front matter `#! style` (a real model follows the prompt's wording instead).
    pub style: PromptStyle,
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
        let mut system = prompt.text.replace("{store_id}", store);
        // Last, so it wins over any rule of thumb about language a prompt version may carry.
        if let Some(line) = crate::language::instruction(req) {
            let kept = system.trim_end().len();
            system.truncate(kept);
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(line);
        }
        Self {
            prompt_store: prompt_store.to_string(),
            intent,
            version: prompt.version.clone(),
            style: prompt.style,
            system,
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

/// The context block in the form a real model would receive it. For an answer in Japanese
/// the products carry their Japanese titles and the documents their Japanese text (when they
/// have it), so the model quotes what a Japanese customer reads rather than translating.
pub fn render_context(req: &pb::GenerateRequest) -> String {
    let japanese = crate::language::answer_language(req).lang == mangaassist_domain::Lang::Ja;
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
            let title_ja = if japanese && !p.title_ja.is_empty() {
                format!(" ({})", p.title_ja)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "- [{}] {}{title_ja} by {}; {}; {}; {} yen; stock {}; released {}. {}",
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
            let (title, body) = if japanese && !d.body_ja.trim().is_empty() {
                let title = if d.title_ja.is_empty() {
                    &d.title
                } else {
                    &d.title_ja
                };
                (title, &d.body_ja)
            } else {
                (&d.title, &d.body)
            };
            let _ = writeln!(s, "- [{}] {title}: {body}", d.id);
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
        let short = PromptVersion::parse("v1", "Be brief.").unwrap();
        // Front matter is not sent, so it costs no tokens.
        let long = PromptVersion::parse(
            "v2",
            "#! style: detailed\nBe brief and kind and accurate and never invent anything.",
        )
        .unwrap();
        assert_eq!((short.tokens, long.tokens), (2, 10));
        assert_eq!(long.style, PromptStyle::Detailed);
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

    #[test]
    fn front_matter_is_parsed_and_stripped() {
        let v = PromptVersion::parse(
            "v3",
            "  #! style: detailed\n#! max_tokens: 450\nYou are MangaAssist.\n#! not front matter\n",
        )
        .unwrap();
        assert_eq!(v.style, PromptStyle::Detailed);
        assert_eq!(v.max_tokens, Some(450));
        assert_eq!(v.text, "You are MangaAssist.\n#! not front matter");
        assert!(v.source.starts_with("#! style: detailed"));
        let plain = PromptVersion::parse("v1", "Hello.").unwrap();
        assert_eq!(
            (plain.style, plain.max_tokens),
            (PromptStyle::Standard, None)
        );
        for (bad, what) in [
            ("#! colour: red\nx", "unknown front matter key `colour`"),
            ("#! style: loud\nx", "style `loud`"),
            ("#! max_tokens: 0\nx", "max_tokens `0`"),
            (
                "#! style: concise\n#! style: detailed\nx",
                "repeats `style`",
            ),
            ("#! style detailed\nx", "not `#! key: value`"),
            ("#! style: concise", "empty"),
        ] {
            let e = PromptVersion::parse("v1", bad).unwrap_err();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn named_versions_empty_active_and_history_load() {
        let dir = temp_dir("named");
        with_defaults(&dir);
        write(&dir, "shop/faq/v2.txt", "two");
        write(&dir, "shop/faq/rec-b.txt", "#! style: concise\nb");
        write(&dir, "shop/faq/v10.txt", "ten");
        let store = PromptStore::load(&dir).unwrap();
        // The highest v<N> is active by default, even with named versions around.
        assert_eq!(
            store
                .resolve("shop", pb::Intent::Faq, "")
                .unwrap()
                .1
                .version,
            "v10"
        );
        let listed: Vec<String> = store
            .list(|_| 1)
            .into_iter()
            .filter(|p| p.store_id == "shop")
            .map(|p| p.version)
            .collect();
        assert_eq!(listed, ["v2", "v10", "rec-b"]);
        // Empty `active`: the store uses the default prompt.
        write(&dir, "shop/faq/active", "\n");
        write(&dir, "shop/faq/active_history", "v2\n-\ngone\nrec-b\n");
        let store = PromptStore::load(&dir).unwrap();
        let (s, v) = store.resolve("shop", pb::Intent::Faq, "").unwrap();
        assert_eq!((s, v.version.as_str()), ("default", "v1"));
        let (s, v) = store.resolve("shop", pb::Intent::Faq, "rec-b").unwrap();
        assert_eq!((s, v.style), ("shop", PromptStyle::Concise));
        let info = store
            .describe("shop", pb::Intent::Faq, "v2", |_| 7)
            .unwrap();
        assert_eq!((info.rollback_to.as_str(), info.max_tokens), ("rec-b", 7));
        // ...but `default` itself must have one.
        write(&dir, "default/faq/active", "");
        let e = PromptStore::load(&dir).unwrap_err().to_string();
        assert!(e.contains("default prompts need an active version"), "{e}");
        write(&dir, "default/faq/active", "v1");
        write(&dir, "shop/faq/Bad Name.txt", "x");
        let e = PromptStore::load(&dir).unwrap_err().to_string();
        assert!(e.contains("Bad Name.txt"), "{e}");
    }

    #[test]
    fn put_activate_and_rollback_keep_the_files_in_step() {
        let dir = temp_dir("changes");
        with_defaults(&dir);
        let mut store = PromptStore::load(&dir).unwrap();
        let faq = pb::Intent::Faq;
        let p = |v: &str, t: &str| PromptVersion::parse(v, t).unwrap();
        // A new store's first version is not active until activated.
        let ch = store.put("shop", faq, p("v1", "Shop FAQ."), false).unwrap();
        assert!(!ch.switched);
        let files: Vec<(String, String)> = ch
            .writes
            .iter()
            .map(|(p, c)| (p.display().to_string(), c.clone()))
            .collect();
        assert_eq!(
            files,
            [
                ("shop/faq/v1.txt".to_string(), "Shop FAQ.\n".to_string()),
                ("shop/faq/active".to_string(), String::new()),
                ("shop/faq/active_history".to_string(), String::new()),
            ]
        );
        assert_eq!(store.resolve("shop", faq, "").unwrap().0, "default");
        assert!(store.activate("shop", faq, "v1").unwrap().switched);
        assert_eq!(store.resolve("shop", faq, "").unwrap().0, "shop");
        // Same text again is fine, other text is not.
        assert!(store.put("shop", faq, p("v1", "Shop FAQ."), false).is_ok());
        let e = store
            .put("shop", faq, p("v1", "Other."), false)
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}");
        let ch = store
            .put("shop", faq, p("v2", "Shop FAQ two."), true)
            .unwrap();
        assert!(ch.switched);
        assert!(
            ch.writes
                .contains(&("shop/faq/active".into(), "v2\n".into()))
        );
        assert!(
            ch.writes
                .contains(&("shop/faq/active_history".into(), "-\nv1\n".into()))
        );
        // Activating the active version changes nothing.
        assert!(!store.activate("shop", faq, "v2").unwrap().switched);
        let e = store.activate("shop", faq, "v9").unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
        // Rollback walks back: v2 -> v1 -> default, then nothing is left.
        assert!(store.rollback("shop", faq).unwrap().switched);
        assert_eq!(store.resolve("shop", faq, "").unwrap().1.version, "v1");
        store.rollback("shop", faq).unwrap();
        assert_eq!(store.resolve("shop", faq, "").unwrap().0, "default");
        let e = store.rollback("shop", faq).unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
        let e = store.rollback("nowhere", faq).unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    }
}
