#!/usr/bin/env bash
# Release spike on pre-warmed answers (issue 15, item 5, seed 004 Q19): `mangaassist up` as
# shipped (simulated model with its realistic latency, rate limits lifted), then
# `bench release`: a volume's release is scheduled (pre-warmed at once), and customers, each in
# their own session, ask about it in their own words. Reports the share served from the
# pre-warmed answers, first-token latency against live, wrong answers.
#   scripts/bench-release.sh [--customers 400] [--concurrency 50] [--store manga_jp]
#   [--product ID] [--latency realistic|zero] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS=400 CONC=50 STORE=manga_jp PRODUCT="" OUT=target/bench/release LATENCY=realistic
while [[ $# -gt 0 ]]; do
  case "$1" in
    --customers) CUSTOMERS="$2"; shift 2 ;;
    --concurrency) CONC="$2"; shift 2 ;;
    --store) STORE="$2"; shift 2 ;;
    --product) PRODUCT="$2"; shift 2 ;;
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
GW=$BASE PRE=$((BASE + 6))
export MANGAASSIST_DATA__STATE_DIR="$STATE" MANGAASSIST_GENERATION__LATENCY_PROFILE="$LATENCY" \
  MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE=0 \
  MANGAASSIST_GATEWAY__LIMITS__CONNECTION_MESSAGES_PER_SECOND=0 \
  MANGAASSIST_GATEWAY__LISTEN="127.0.0.1:$GW" MANGAASSIST_GATEWAY__INTERNAL_LISTEN="127.0.0.1:$((GW + 1))" \
  MANGAASSIST_MESH__PRECOMPUTE__LISTEN="127.0.0.1:$PRE" MANGAASSIST_MESH__PRECOMPUTE__ENDPOINT="http://127.0.0.1:$PRE" \
  MANGAASSIST_LOG=warn
"$BIN" up > "$OUT/up.log" 2>&1 &
UP=$!
until curl -fsS "http://127.0.0.1:$GW/healthz" >/dev/null 2>&1; do
  kill -0 "$UP" 2>/dev/null || { echo "mesh exited; see $OUT/up.log" >&2; exit 1; }
  sleep 0.2 # polling /healthz for readiness
done
ARGS=(--url "ws://127.0.0.1:$GW/ws" --precompute "http://127.0.0.1:$PRE" --store "$STORE"
  --customers "$CUSTOMERS" --concurrency "$CONC" --out "$OUT")
[[ -n "$PRODUCT" ]] && ARGS+=(--product "$PRODUCT")
"$BIN" bench release "${ARGS[@]}"
