#!/usr/bin/env bash
# Conversation replay (issue 15, item 6): `mangaassist up` as shipped (simulated model with its
# realistic latency, follow-up prediction on, rate limits lifted), then `bench conversations`
# over data/eval/conversations.jsonl: per turn position and question, how many answers came
# pre-computed or cached, their first-token latency against live answers, wrong served answers.
#   scripts/bench-conversations.sh [--think 3s] [--concurrency 16] [--sell-out-every 4] [--out DIR]
#   [--latency realistic|zero]
set -euo pipefail
cd "$(dirname "$0")/.."
THINK=3s CONC=16 SELL=4 OUT=target/bench/conversations LATENCY=realistic
while [[ $# -gt 0 ]]; do
  case "$1" in
    --think) THINK="$2"; shift 2 ;;
    --concurrency) CONC="$2"; shift 2 ;;
    --sell-out-every) SELL="$2"; shift 2 ;;
    --latency) LATENCY="$2"; shift 2 ;;
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
STATE="$(mktemp -d)"
UP=""
cleanup() { [[ -n "$UP" ]] && kill -INT "$UP" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$STATE"; }
trap cleanup EXIT
BASE=$((20000 + RANDOM % 20000))
GW=$BASE RET=$((BASE + 2))
export MANGAASSIST_DATA__STATE_DIR="$STATE" MANGAASSIST_GENERATION__LATENCY_PROFILE="$LATENCY" \
  MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE=0 \
  MANGAASSIST_GATEWAY__LIMITS__CONNECTION_MESSAGES_PER_SECOND=0 \
  MANGAASSIST_GATEWAY__LISTEN="127.0.0.1:$GW" MANGAASSIST_GATEWAY__INTERNAL_LISTEN="127.0.0.1:$((GW + 1))" \
  MANGAASSIST_MESH__RETRIEVAL__LISTEN="127.0.0.1:$RET" MANGAASSIST_MESH__RETRIEVAL__ENDPOINT="http://127.0.0.1:$RET" \
  MANGAASSIST_LOG=warn
"$BIN" up > "$OUT/up.log" 2>&1 &
UP=$!
until curl -fsS "http://127.0.0.1:$GW/healthz" >/dev/null 2>&1; do
  kill -0 "$UP" 2>/dev/null || { echo "mesh exited; see $OUT/up.log" >&2; exit 1; }
  sleep 0.2 # polling /healthz for readiness
done
"$BIN" bench conversations --url "ws://127.0.0.1:$GW/ws" --retrieval "http://127.0.0.1:$RET" \
  --think "$THINK" --concurrency "$CONC" --sell-out-every "$SELL" --out "$OUT"
