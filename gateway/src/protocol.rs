//! The WebSocket protocol (docs/protocol.md), defined once in `mangaassist-protocol` for the
//! gateway and every client; re-exported here so gateway code names it `crate::protocol`.

pub use mangaassist_protocol::*;
