//! Real servers for tests, started on free loopback ports and stopped when dropped:
//! `redis-server` (Debian package) and `moto_server` (PyPI `moto[server]`, a DynamoDB API
//! emulator). Both are installed by `scripts/test.sh`; a missing binary fails the test with a
//! message saying so, it never skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(
    clippy::disallowed_methods,
    reason = "test kit: its helper tasks live as long as the test that started them"
)]

pub mod moto;
pub mod redis;

pub use moto::{Moto, closed_port, moto, serializing_proxy};
pub use redis::RedisServer;
