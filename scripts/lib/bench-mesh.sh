# Sourced by the bench scripts that run one `mangaassist up` as shipped: builds the release
# binary (unless BENCH_BIN names one), starts the mesh on random ports with a throw-away state
# directory and the rate limits lifted, and waits for the gateway's /healthz. Afterwards:
#   BIN  the binary   GW  gateway port   RET  retrieval port   PRE  precompute port
# The mesh is stopped and its state removed when the script exits.
#   bench_mesh_up OUT_DIR LATENCY_PROFILE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist/target}"
bench_mesh_up() {
  local out="$1" latency="$2"
  if [[ -z "${BENCH_BIN:-}" ]]; then
    cargo build -q --release --bin mangaassist
  fi
  BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/mangaassist}"
  mkdir -p "$out"
  BENCH_STATE="$(mktemp -d)"
  BENCH_UP=""
  trap 'bench_mesh_down' EXIT
  local base=$((20000 + RANDOM % 20000))
  GW=$base RET=$((base + 2)) PRE=$((base + 6))
  export MANGAASSIST_DATA__STATE_DIR="$BENCH_STATE" MANGAASSIST_GENERATION__LATENCY_PROFILE="$latency" \
    MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE=0 \
    MANGAASSIST_GATEWAY__LIMITS__CONNECTION_MESSAGES_PER_SECOND=0 \
    MANGAASSIST_GATEWAY__LISTEN="127.0.0.1:$GW" MANGAASSIST_GATEWAY__INTERNAL_LISTEN="127.0.0.1:$((GW + 1))" \
    MANGAASSIST_MESH__RETRIEVAL__LISTEN="127.0.0.1:$RET" MANGAASSIST_MESH__RETRIEVAL__ENDPOINT="http://127.0.0.1:$RET" \
    MANGAASSIST_MESH__PRECOMPUTE__LISTEN="127.0.0.1:$PRE" MANGAASSIST_MESH__PRECOMPUTE__ENDPOINT="http://127.0.0.1:$PRE" \
    MANGAASSIST_LOG=warn
  "$BIN" up > "$out/up.log" 2>&1 &
  BENCH_UP=$!
  until curl -fsS "http://127.0.0.1:$GW/healthz" >/dev/null 2>&1; do
    kill -0 "$BENCH_UP" 2>/dev/null || { echo "mesh exited; see $out/up.log" >&2; exit 1; }
    sleep 0.2 # polling /healthz for readiness
  done
}
bench_mesh_down() {
  [[ -n "${BENCH_UP:-}" ]] && kill -INT "$BENCH_UP" 2>/dev/null
  wait 2>/dev/null || true
  [[ -n "${BENCH_STATE:-}" ]] && rm -rf "$BENCH_STATE"
}
