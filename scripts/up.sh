#!/usr/bin/env bash
# Starts the whole MangaAssist mesh on this machine with the embedded defaults (no cloud
# account): fetches the sentence model once, builds, and runs `mangaassist up`.
# Extra arguments go to `up`, e.g. scripts/up.sh --fault retrieval=hang
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist/target}"
if ! scripts/fetch-model.sh; then
  echo "warning: could not fetch the sentence model; using hashed n-gram embeddings (lower quality)" >&2
fi
cargo build --bin mangaassist >&2
exec "$CARGO_TARGET_DIR/debug/mangaassist" up "$@"
