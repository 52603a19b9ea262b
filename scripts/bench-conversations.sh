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
source scripts/lib/bench-mesh.sh
bench_mesh_up "$OUT" "$LATENCY"
"$BIN" bench conversations --url "ws://127.0.0.1:$GW/ws" --retrieval "http://127.0.0.1:$RET" \
  --think "$THINK" --concurrency "$CONC" --sell-out-every "$SELL" --out "$OUT"
