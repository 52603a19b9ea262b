#!/usr/bin/env bash
# The gateway's OpenAI endpoint side by side with a LiteLLM proxy (issue 13, item 8).
#
# Starts, all on this machine:
#   - a mock OpenAI upstream (`mangaassist bench mock-openai`): every streamed answer is 50
#     content deltas with no delay, pre-rendered, so it costs only its HTTP server's work;
#   - the mesh (`mangaassist up`) with the generation daemon's OpenAI backend pointed at the
#     mock: intent, memory, retrieval and cache all run; rate limits lifted, follow-up
#     prediction and precompute jobs off, semantic-cache threshold 1.0 (every request misses),
#     no batching of deltas by count (`gateway.stream.batch_size = 1`; deltas that arrive
#     together still share an SSE event, so the client checks the text, not the event
#     count), auth on (a minted token);
#   - a LiteLLM proxy (installed into a venv from PyPI) with one model routed to the mock,
#     one worker, no database, a master key, logging at ERROR, the local model cost map.
# Then one client (`mangaassist bench openai-load`: closed loop, a keep-alive connection per
# stream, a distinct prompt per request, every stream read to [DONE] and checked for 50
# content deltas) measures time to first token direct to the mock, through the gateway and
# through LiteLLM at 1 and 20 concurrent streams, and each proxy at saturation with the CPU
# time (utime + stime of the process tree, from /proc) of the proxy, the mock and the client.
# Writes OUT/summary.md (and one JSON report per run).
#
#   scripts/bench-litellm.sh [--requests 500] [--requests-20 2000] [--sat-seconds 20]
#                            [--sat-streams 8] [--out DIR]
# Environment: BENCH_BIN = a mangaassist binary already built (skips the release build);
# BENCH_PERF=1 = also `perf record` the mesh during its saturation run (OUT/perf-mesh.data);
# LITELLM_SPEC = the pip requirement (default `litellm[proxy]`).
set -euo pipefail
cd "$(dirname "$0")/.."
REQ1=500 REQ20=2000 SAT_SECONDS=20 SAT_STREAMS=8 OUT=target/bench/litellm
while [[ $# -gt 0 ]]; do
  case "$1" in
    --requests) REQ1="$2"; shift 2 ;;
    --requests-20) REQ20="$2"; shift 2 ;;
    --sat-seconds) SAT_SECONDS="$2"; shift 2 ;;
    --sat-streams) SAT_STREAMS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist"
VENV="$CACHE/venv-litellm"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
if [[ -z "${BENCH_BIN:-}" ]]; then
  cargo build -q --release --bin mangaassist
fi
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/mangaassist}"
TICK=$(getconf CLK_TCK)
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# --- LiteLLM ------------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/litellm" ]]; then
  echo "installing ${LITELLM_SPEC:-litellm[proxy]} into $VENV ..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "${LITELLM_SPEC:-litellm[proxy]}"
fi
LITELLM_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')

STATE="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$STATE"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http NAME PID URL: polls URL until it answers 2xx (readiness), failing if PID exits.
wait_http() {
  local deadline=$((SECONDS + 180))
  until curl -fsS -o /dev/null "$3" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || { echo "$1 exited; see $OUT/$1.log" >&2; exit 1; }
    (( SECONDS < deadline )) || { echo "$1 not ready after 180 s; see $OUT/$1.log" >&2; exit 1; }
    sleep 0.2 # polling readiness
  done
}
# Every binary invocation shares one throw-away state dir (service secret, redb files).
mesh_env=(env -u OPENAI_API_KEY MANGAASSIST_DATA__STATE_DIR="$STATE" MANGAASSIST_LOG=warn)

# --- mock upstream --------------------------------------------------------------------------
MOCK_PORT=$(free_port)
"${mesh_env[@]}" "$BIN" bench mock-openai --listen "127.0.0.1:$MOCK_PORT" --tokens 50 > "$OUT/mock.log" 2>&1 &
MOCK=$!; PIDS+=("$MOCK")
wait_http mock "$MOCK" "http://127.0.0.1:$MOCK_PORT/health"

# --- the mesh ---------------------------------------------------------------------------------
GW_PORT=$(free_port)
SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
listen0=()
for d in INTENT RETRIEVAL MEMORY CACHE GENERATION PRECOMPUTE; do
  # Any free port (the binary points in-process peers at the ports it bound).
  listen0+=("MANGAASSIST_MESH__${d}__LISTEN=127.0.0.1:0" "MANGAASSIST_MESH__${d}__ENDPOINT=http://127.0.0.1:0")
done
mesh_env+=(
  MANGAASSIST_GATEWAY__AUTH__SECRET="$SECRET"
  MANGAASSIST_GENERATION__BACKEND=openai
  MANGAASSIST_GENERATION__OPENAI__BASE_URL="http://127.0.0.1:$MOCK_PORT/v1"
  MANGAASSIST_GENERATION__OPENAI__FAST_MODEL=mock
  MANGAASSIST_GENERATION__OPENAI__SMART_MODEL=mock
  MANGAASSIST_PRECOMPUTE__RUN_AT_START=false MANGAASSIST_PRECOMPUTE__SCHEDULER=false
  MANGAASSIST_GATEWAY__PREDICT_FOLLOW_UPS=false
  MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE=0
  MANGAASSIST_GATEWAY__LIMITS__CONNECTION_MESSAGES_PER_SECOND=0
  MANGAASSIST_CACHE__SEMANTIC_THRESHOLD=1.0
  MANGAASSIST_GATEWAY__STREAM__BATCH_SIZE=1
  MANGAASSIST_GATEWAY__LISTEN="127.0.0.1:$GW_PORT"
  MANGAASSIST_GATEWAY__INTERNAL_LISTEN=127.0.0.1:0
)
"${mesh_env[@]}" "${listen0[@]}" "$BIN" up > "$OUT/mesh.log" 2>&1 &
MESH=$!; PIDS+=("$MESH")
wait_http mesh "$MESH" "http://127.0.0.1:$GW_PORT/healthz"
GW_TOKEN=$("${mesh_env[@]}" "$BIN" token --user bench-openai)

# --- LiteLLM proxy ------------------------------------------------------------------------------
LL_PORT=$(free_port)
LL_KEY="sk-bench-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
cat > "$OUT/litellm.yaml" <<YAML
model_list:
  - model_name: mock
    litellm_params:
      model: openai/mock
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-mock
litellm_settings:
  set_verbose: false
  json_logs: false
  turn_off_message_logging: true
  request_timeout: 30
general_settings:
  master_key: $LL_KEY
YAML
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR LITELLM_TELEMETRY=False \
  "$VENV/bin/litellm" --config "$OUT/litellm.yaml" --host 127.0.0.1 --port "$LL_PORT" \
  --num_workers 1 > "$OUT/litellm.log" 2>&1 &
LITELLM=$!; PIDS+=("$LITELLM")
wait_http litellm "$LITELLM" "http://127.0.0.1:$LL_PORT/health/liveliness"

# --- measurements ---------------------------------------------------------------------------
# load LABEL URL MODEL KEY STREAMS ARGS...: one client run, report in OUT/LABEL.json.
# For gateway runs, also counts the turns the mesh logged it could not save (memory writes
# that missed their deadline after the answer was sent, so the client cannot see them) into
# OUT/LABEL.unsaved, counted until the end of the next run (a write may fail up to its 2 s
# deadline after the gateway run ended).
unsaved() { grep -c "could not save turn" "$OUT/mesh.log" || true; }
PENDING="" PENDING_FROM=0
load() {
  local label=$1 url=$2 model=$3 key=$4 streams=$5; shift 5
  [[ "$url" == "$OURS" ]] && PENDING_FROM=$(unsaved)
  "${mesh_env[@]}" BENCH_OPENAI_API_KEY="$key" "$BIN" bench openai-load --url "$url" \
    --model "$model" --concurrency "$streams" --tokens 50 --clk-tck "$TICK" \
    --label "$label" --out "$OUT/$label.json" "$@" | tee -a "$OUT/runs.log"
  if [[ -n "$PENDING" ]]; then
    echo $(( $(unsaved) - PENDING_FROM )) > "$OUT/$PENDING.unsaved"
    PENDING=""
  fi
  [[ "$url" == "$OURS" ]] && PENDING=$label
  return 0
}
: > "$OUT/runs.log"
cp /proc/loadavg "$OUT/loadavg-start" # the machine may be shared: the summary shows its load
DIRECT="http://127.0.0.1:$MOCK_PORT/v1" OURS="http://127.0.0.1:$GW_PORT/v1" LL="http://127.0.0.1:$LL_PORT/v1"
for streams in 1 20; do
  n=$REQ1; [[ $streams == 20 ]] && n=$REQ20
  load "direct-$streams" "$DIRECT" mock "" "$streams" --requests "$n" --warmup 100
  load "ours-$streams" "$OURS" mangaassist "$GW_TOKEN" "$streams" --requests "$n" --warmup 100
  load "litellm-$streams" "$LL" mock "$LL_KEY" "$streams" --requests "$n" --warmup 100
done
# Saturation: closed loop with SAT_STREAMS streams for SAT_SECONDS; CPU of the proxy's
# process tree, the mock's and the client's own over the same window. 8 streams keep both
# proxies' CPU busy; many more only queue, and past ~30 the mesh's queueing exceeds the cache
# stage's 100 ms deadline, its breaker opens and answers skip the cache (counted as degraded).
sat=(--requests 0 --duration "${SAT_SECONDS}s" --warmup 200 --watch "mock=$MOCK")
load sat-direct "$DIRECT" mock "" "$SAT_STREAMS" "${sat[@]}"
if [[ -n "${BENCH_PERF:-}" ]]; then
  # Profile the mesh during its saturation run (perf report -i OUT/perf-mesh.data).
  perf record -F 499 -g -p "$MESH" -o "$OUT/perf-mesh.data" -- sleep "$SAT_SECONDS" 2> "$OUT/perf.log" &
  PERF=$!
fi
load sat-ours "$OURS" mangaassist "$GW_TOKEN" "$SAT_STREAMS" "${sat[@]}" --watch "proxy=$MESH"
if [[ -n "${BENCH_PERF:-}" ]]; then wait "$PERF" || true; fi
load sat-litellm "$LL" mock "$LL_KEY" "$SAT_STREAMS" "${sat[@]}" --watch "proxy=$LITELLM"

[[ -n "$PENDING" ]] && echo $(( $(unsaved) - PENDING_FROM )) > "$OUT/$PENDING.unsaved"
cp /proc/loadavg "$OUT/loadavg-end"
python3 scripts/litellm/summary.py "$OUT" "$LITELLM_VERSION" "$SAT_STREAMS" "$SAT_SECONDS" | tee "$OUT/summary.md"
