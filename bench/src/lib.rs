//! Benchmark driver and gate for the MangaAssist gateway.
//!
//! - [`run`] drives the gateway over real WebSockets with virtual users (closed or open loop)
//!   using the labelled questions in `data/intents`, and records every message as a
//!   [`Sample`]: TTFT, inter-chunk gaps, time to `done`, the server's own timings and stages.
//! - [`write_outputs`] writes `results.json` (all raw samples, versioned), `summary.md`
//!   (per-intent percentiles against the seed 001 targets) and hand-written SVG plots.
//! - [`compare_results`] is the latency regression gate (`bench compare`, run by hand; CI
//!   does not run it): Mann-Whitney U, Cliff's delta and a bootstrap interval of the p95
//!   change per intent, from `mangaassist-stats`.
//! - `bench render` re-renders a run from its `results.json`.
//! - [`run_prompt_gate`] is the prompt-change gate (`bench prompt`, seed 000 scenario 5): a
//!   candidate system prompt is registered inactive on the generation daemon and benchmarked
//!   against the active version, both arms with identical context, interleaved per query.
//! - [`spike`] is the release spike on one machine (`bench spike`): the mesh as separate
//!   processes, many held sessions from several load-generator processes, stepped message
//!   rates until first-token p99 or errors give out.
//! - [`weekly`] builds the weekly trend and budget-compliance report; [`ceiling`] measures
//!   the client's own limits against an in-process [`fake`] gateway.
//!
//! The binary mounts [`BenchCommand`] (`mangaassist bench ...`) and [`WeeklyArgs`]
//! (`mangaassist report weekly`) and calls [`execute`] / [`weekly`]. See docs/benchmarks.md.
#![allow(
    clippy::disallowed_methods,
    reason = "bench is a load-generating client, not a daemon: no shutdown drains it, and its connection, collector and exchange tasks end with the run's connections before `run` returns"
)]

pub mod ceiling;
mod cli;
pub mod compare;
pub mod conn;
pub mod conversations;
pub mod driver;
mod error;
pub mod fake;
pub mod freshness;
pub mod machine;
pub mod openai;
pub mod prompt;
pub mod queries;
pub mod release;
pub mod sample;
pub mod spike;
pub mod summary;
pub mod svg;
pub mod weekly;

pub use cli::{
    BenchCommand, BenchContext, CeilingArgs, CompareArgs, MockOpenAiArgs, OpenAiLoadArgs,
    PromptArgs, RenderArgs, RunArgs, SpikeArgs, VerdictArgs, WeeklyArgs, execute, weekly,
};
pub use compare::{CompareReport, CompareSettings, compare_results};
pub use driver::{LoadMode, RunConfig, TokenSource, run};
pub use error::BenchError;
pub use prompt::{PromptGateConfig, PromptGateReport, run_prompt_gate, write_prompt_gate};
pub use queries::QueryMix;
pub use sample::{Results, SCHEMA_VERSION, Sample, Stage};
pub use summary::{render_summary, write_outputs};
