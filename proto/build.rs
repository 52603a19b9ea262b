//! Compiles `mangaassist/v1/*.proto` with protox (pure Rust) and writes the descriptor set
//! that the daemons serve through gRPC reflection.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "mangaassist/v1/common.proto",
    "mangaassist/v1/intent.proto",
    "mangaassist/v1/retrieval.proto",
    "mangaassist/v1/memory.proto",
    "mangaassist/v1/cache.proto",
    "mangaassist/v1/generation.proto",
    "mangaassist/v1/precompute.proto",
    "mangaassist/v1/inventory.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for f in FILES {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(FILES, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("mangaassist_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
