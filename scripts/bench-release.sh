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
source scripts/lib/bench-mesh.sh
bench_mesh_up "$OUT" "$LATENCY"
ARGS=(--url "ws://127.0.0.1:$GW/ws" --precompute "http://127.0.0.1:$PRE" --store "$STORE"
  --customers "$CUSTOMERS" --concurrency "$CONC" --out "$OUT")
[[ -n "$PRODUCT" ]] && ARGS+=(--product "$PRODUCT")
"$BIN" bench release "${ARGS[@]}"
