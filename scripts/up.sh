#!/usr/bin/env bash
# Starts the whole MangaAssist mesh on this machine with the embedded defaults (no cloud
# account): prepares the sentence models once (scripts/fetch-model.sh: the static multilingual
# model is distilled on this machine, ~5 min on 2 cores), builds, and runs `mangaassist up`.
# Extra arguments go to `up`, e.g. scripts/up.sh --fault retrieval=hang
set -euo pipefail
cd "$(dirname "$0")/.."
if ! scripts/fetch-model.sh; then
  echo "warning: could not prepare the sentence models; using whichever is there, else hashed n-gram embeddings (lower quality)" >&2
fi
echo "building (the first build takes several minutes on 2 cores; the first start embeds the catalog once)..." >&2
exec scripts/mangaassist up "$@"
