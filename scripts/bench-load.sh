#!/usr/bin/env bash
# Open-loop load against `mangaassist up` in its own process, so the mesh's CPU time can be
# read apart from the load generator's: per mode, it starts the mesh (zero-latency simulated
# model, rate limits lifted, precompute jobs off), waits for /healthz, sends RATE unique
# messages per second for N messages, and reports answered messages, first-chunk p50/p99 and
# the mesh process's CPU time per answered message (utime+stime from /proc, load generator
# excluded), and how soon the first status frame followed each query (client clock). Modes: `off` (no follow-up prediction) and `on` (prediction, as shipped).
#   scripts/bench-load.sh [--rate 50] [--messages 1500] [--modes "off on"] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=50 MESSAGES=1500 MODES="off on" OUT=target/bench/load VUS=50
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rate) RATE="$2"; shift 2 ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    --modes) MODES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --vus) VUS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist/target}"
# BENCH_LOAD_BIN: a binary built already (skips the release build).
if [[ -z "${BENCH_LOAD_BIN:-}" ]]; then
  cargo build -q --release --bin mangaassist
fi
BIN="${BENCH_LOAD_BIN:-$CARGO_TARGET_DIR/release/mangaassist}"
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mkdir -p "$OUT"
printf '| mode | rate | answered | errors | first status p50 | p99 | first chunk p50 | p99 | mesh CPU per message |\n|---|---|---|---|---|---|---|---|---|\n' > "$OUT/summary.md"
for mode in $MODES; do
  predict=false; [[ "$mode" == on ]] && predict=true
  STATE="$(mktemp -d)"
  PORT=$((20000 + RANDOM % 20000))
  MANGAASSIST_DATA__STATE_DIR="$STATE" \
  MANGAASSIST_GENERATION__LATENCY_PROFILE=zero MANGAASSIST_PRECOMPUTE__RUN_AT_START=false \
  MANGAASSIST_PRECOMPUTE__SCHEDULER=false MANGAASSIST_GATEWAY__PREDICT_FOLLOW_UPS=$predict \
  MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE=0 \
  MANGAASSIST_GATEWAY__LIMITS__CONNECTION_MESSAGES_PER_SECOND=1000 \
  MANGAASSIST_GATEWAY__LISTEN="127.0.0.1:$PORT" MANGAASSIST_GATEWAY__INTERNAL_LISTEN="127.0.0.1:$((PORT + 1))" \
  MANGAASSIST_LOG=warn "$BIN" up > "$OUT/up-$mode.log" 2>&1 &
  UP=$!
  until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
    kill -0 "$UP" 2>/dev/null || { echo "mesh exited; see $OUT/up-$mode.log" >&2; exit 1; }
    sleep 0.2 # polling /healthz for readiness
  done
  before=$(cpu_ticks "$UP")
  MANGAASSIST_DATA__STATE_DIR="$STATE" "$BIN" bench run --url "ws://127.0.0.1:$PORT/ws" --rate "$RATE" \
    --vus "$VUS" --messages "$MESSAGES" --unique --quiet --label "load-$mode" --out "$OUT/$mode" >&2
  after=$(cpu_ticks "$UP")
  kill -INT "$UP"; wait "$UP" || true
  rm -rf "$STATE"
  python3 - "$OUT/$mode/results.json" "$mode" "$RATE" $(( after - before )) "$TICK" >> "$OUT/summary.md" <<'PY'
import json, sys
path, mode, rate, ticks, tick = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
d = json.load(open(path))
def sorted_of(key):
    return sorted(s[key] for s in d["samples"] if not s.get("warmup") and s.get(key) is not None)
ttft, status = sorted_of("ttft_ms"), sorted_of("status_ms")
pct = lambda p, xs: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
answered = d["counters"]["answered"]
cpu_us = ticks / tick * 1e6 / max(answered, 1)
print(f"| {mode} | {rate}/s | {answered} | {d['counters']['errors']} | {pct(0.5, status):.2f} ms | {pct(0.99, status):.2f} ms "
      f"| {pct(0.5, ttft):.1f} ms | {pct(0.99, ttft):.1f} ms | {cpu_us:.0f} µs |")
PY
done
cat "$OUT/summary.md"
