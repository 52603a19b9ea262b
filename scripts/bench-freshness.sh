#!/usr/bin/env bash
# Freshness under load (issue 15): open-loop messages while stock flips, counting answers that
# present a sold-out product as available, per inventory backend:
#   embedded  `mangaassist up` (inventory in a redb file; cache and gateway follow it in process)
#   redis     a local redis-server; `up` with the inventory and the cache on it, plus a second
#             retrieval replica in its own process that receives every SetStock, so each
#             change travels replica → Redis → the mesh's replica → cache and gateway
# Release build, zero-latency model, rate limits lifted, follow-up prediction and precompute off.
#   scripts/bench-freshness.sh [--rate 100] [--duration 30s] [--flip-every 100ms] [--modes "embedded redis"] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=100 DURATION=30s FLIP=100ms MODES="embedded redis" OUT=target/bench/freshness
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rate) RATE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --flip-every) FLIP="$2"; shift 2 ;;
    --modes) MODES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist/target}"
if [[ -z "${BENCH_BIN:-}" ]]; then
  cargo build -q --release --bin mangaassist
fi
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/mangaassist}"
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_tcp() { # port pid what
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || { echo "$3 exited; see its log in $OUT" >&2; exit 1; }
    sleep 0.2 # polling the port for readiness
  done
}
status=0
for mode in $MODES; do
  STATE="$(mktemp -d)"
  BASE=$((20000 + RANDOM % 20000))
  GW=$BASE RET=$((BASE + 2)) RET2=$((BASE + 3)) REDIS=$((BASE + 4))
  export MANGAASSIST_DATA__STATE_DIR="$STATE" MANGAASSIST_GENERATION__LATENCY_PROFILE=zero \
    MANGAASSIST_PRECOMPUTE__RUN_AT_START=false MANGAASSIST_PRECOMPUTE__SCHEDULER=false \
    MANGAASSIST_GATEWAY__PREDICT_FOLLOW_UPS=false MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE=0 \
    MANGAASSIST_GATEWAY__LIMITS__CONNECTION_MESSAGES_PER_SECOND=0 \
    MANGAASSIST_GATEWAY__LISTEN="127.0.0.1:$GW" MANGAASSIST_GATEWAY__INTERNAL_LISTEN="127.0.0.1:$((GW + 1))" \
    MANGAASSIST_MESH__RETRIEVAL__LISTEN="127.0.0.1:$RET" MANGAASSIST_MESH__RETRIEVAL__ENDPOINT="http://127.0.0.1:$RET" \
    MANGAASSIST_LOG=warn
  SET_AT="http://127.0.0.1:$RET"
  if [[ "$mode" == redis ]]; then
    redis-server --port "$REDIS" --save '' --appendonly no > "$OUT/redis.log" 2>&1 &
    PIDS+=($!); wait_tcp "$REDIS" "$!" redis-server
    export MANGAASSIST_REDIS__URL="redis://127.0.0.1:$REDIS" MANGAASSIST_RETRIEVAL__INVENTORY_BACKEND=redis \
      MANGAASSIST_CACHE__BACKEND=redis
  else
    unset MANGAASSIST_REDIS__URL MANGAASSIST_RETRIEVAL__INVENTORY_BACKEND MANGAASSIST_CACHE__BACKEND
  fi
  "$BIN" up > "$OUT/up-$mode.log" 2>&1 &
  UP=$!; PIDS+=($UP)
  until curl -fsS "http://127.0.0.1:$GW/healthz" >/dev/null 2>&1; do
    kill -0 "$UP" 2>/dev/null || { echo "mesh exited; see $OUT/up-$mode.log" >&2; exit 1; }
    sleep 0.2 # polling /healthz for readiness
  done
  if [[ "$mode" == redis ]]; then
    MANGAASSIST_MESH__RETRIEVAL__LISTEN="127.0.0.1:$RET2" "$BIN" serve retrieval > "$OUT/retrieval2.log" 2>&1 &
    R2=$!; PIDS+=($R2); wait_tcp "$RET2" "$R2" "second retrieval replica"
    SET_AT="http://127.0.0.1:$RET2"
  fi
  "$BIN" bench freshness --url "ws://127.0.0.1:$GW/ws" --retrieval "$SET_AT" --watch "http://127.0.0.1:$RET" \
    --rate "$RATE" --duration "$DURATION" --flip-every "$FLIP" --out "$OUT/$mode" || status=1
  cleanup; PIDS=()
  rm -rf "$STATE"
done
exit $status
