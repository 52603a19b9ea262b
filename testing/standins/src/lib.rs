//! Test doubles for the production backends the mesh talks to over HTTP, kept out of the
//! production crates: a **simulated** OpenSearch ([`opensearch::FakeOpenSearch`]), a
//! **simulated** Bedrock runtime endpoint ([`bedrock::SimulatedBedrock`], plus the AWS
//! event-stream frame helpers the Bedrock tests build answers from), and the small HTTP server
//! both run on. Tests use them in-process; the `mangaassist-standins` binary runs them as
//! processes for local runs and `scripts/bench-backends.sh`.
#![allow(
    clippy::disallowed_methods,
    reason = "test doubles: their server tasks live as long as the test or stand-in process that started them, and are aborted on drop"
)]

pub mod bedrock;
mod local_http;
pub mod opensearch;

pub use local_http::LocalHttpServer;
