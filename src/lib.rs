//! Wiring of the `mangaassist` binary: which daemons run in this process, on which
//! listeners, sharing which embedder; plus the terminal chat client. The logic of each daemon
//! lives in its own crate under `services/` and `gateway/`.

pub mod chat;
pub mod mesh;
pub mod probe;
pub mod release;
pub mod stock;
