#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/security.md, "Fuzzing").
#   scripts/fuzz.sh --smoke [target...]   each target ~5 s (FUZZ_SMOKE_SECONDS)
#   scripts/fuzz.sh --long  [target...]   each target FUZZ_RUNS executions (10,000,000), or
#                                         FUZZ_SECONDS seconds if set and reached first
# Installs cargo-fuzz from crates.io when missing. Uses the nightly toolchain when rustup has
# one; otherwise stable with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags).
# New inputs the fuzzer finds go to a working corpus outside the clone
# ($CACHE/fuzz-corpus/<target>); fuzz/corpus/<target> (committed, minimised seeds) is only read.
# A crash stops the run, exits non-zero and leaves the input in fuzz/artifacts/<target>/: fix
# the bug and copy the input to fuzz/regressions/<target>/, which the stable test
# testing/fuzzing/tests/corpora.rs replays on every CI run.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="--smoke"
if [[ $# -gt 0 && "$1" == --* ]]; then mode="$1"; shift; fi
case "$mode" in
  --smoke|--long) ;;
  *) echo "usage: scripts/fuzz.sh [--smoke|--long] [target...]" >&2; exit 2 ;;
esac

CACHE="${MANGAASSIST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
ALL_TARGETS=(client_frame jwt openai_request sse bedrock_event_stream)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${ALL_TARGETS[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (crates.io)" >&2
  cargo install --locked cargo-fuzz
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  echo "== no nightly toolchain: stable with RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
fi

echo "== building ${targets[*]} (target dir $FUZZ_TARGET_DIR)" >&2
for t in "${targets[@]}"; do
  nice -n 19 cargo "${toolchain[@]}" fuzz build --fuzz-dir fuzz --target-dir "$FUZZ_TARGET_DIR" "$t"
done

status=0
for t in "${targets[@]}"; do
  work="$CACHE/fuzz-corpus/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  if [[ "$mode" == --smoke ]]; then
    limits=(-max_total_time="${FUZZ_SMOKE_SECONDS:-5}")
  else
    limits=(-runs="${FUZZ_RUNS:-10000000}")
    [[ -n "${FUZZ_SECONDS:-}" ]] && limits+=(-max_total_time="$FUZZ_SECONDS")
  fi
  echo "== fuzzing $t (${limits[*]})" >&2
  start=$(date +%s)
  # -print_final_stats: the executions and exec/s reported in docs/security.md come from here.
  if ! nice -n 19 cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --target-dir "$FUZZ_TARGET_DIR" \
      "$t" "$work" "fuzz/corpus/$t" -- \
      "${limits[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/"; then
    echo "!! $t failed: see fuzz/artifacts/$t/" >&2
    status=1
  fi
  echo "== $t: $(( $(date +%s) - start )) s" >&2
done
exit "$status"
