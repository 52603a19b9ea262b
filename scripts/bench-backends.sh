#!/usr/bin/env bash
# Added latency of each production backend versus the embedded default, on the same query set.
#
# Starts local servers — a real redis-server, moto_server (DynamoDB API emulator) and the
# simulated OpenSearch and Bedrock endpoints (mangaassist-standins) — then runs the overhead
# benchmark (zero-latency model, one stream, unique texts, a new conversation every 10 turns)
# once per backend choice and repetition, with fresh servers each time, and prints per-stage
# and client-side p50/p99 next to the embedded default (also in <out>/summary.md).
#
#   scripts/bench-backends.sh [--messages N] [--reps R] [--out DIR] [--only a,b,...]
#   scripts/bench-backends.sh --summarize [--out DIR] [--only ...]   # tables from earlier runs
#
# Backends: embedded (all defaults), redis (cache + resume buffer), dynamodb (memory),
# opensearch (retrieval), bedrock (generation), all (every one of them at once).
# Numbers against moto and the simulations measure the client path (network round trips on
# loopback, serialisation, the SDKs, event-stream decoding), not the managed services.
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=400
REPS=3
OUT=target/bench/backends
ONLY=embedded,redis,dynamodb,opensearch,bedrock,all
SUMMARIZE=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --messages) MESSAGES="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --summarize) SUMMARIZE=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$MESSAGES" =~ ^[0-9]+$ && "$MESSAGES" -gt 0 ]] || { echo "--messages must be a positive integer" >&2; exit 2; }
[[ "$REPS" =~ ^[0-9]+$ && "$REPS" -gt 0 ]] || { echo "--reps must be a positive integer" >&2; exit 2; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

if [[ -z "$SUMMARIZE" ]]; then

SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
if ! command -v redis-server >/dev/null 2>&1; then
  step "installing redis-server"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
command -v moto_server >/dev/null 2>&1 || { step "installing moto[server]"; python3 -m pip install --quiet 'moto[server]'; hash -r; }
scripts/fetch-model.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
step "release build"
# Two invocations: building both binaries at once would unify features and put the
# simulations into the product binary.
cargo build --release --bin mangaassist
cargo build --release -p mangaassist-standins
BIN="$CARGO_TARGET_DIR/release"
"$BIN/mangaassist" prepare >/dev/null

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port, name
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start listening on port $1" >&2; exit 1
}

# Fresh servers for every run: moto slows down as its tables grow, and a run must not inherit
# the previous run's cache entries.
start_servers() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  MOTO_PORT=$(free_port)
  moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  PIDS+=($!)
  OS_PORT=$(free_port)
  "$BIN/mangaassist-standins" opensearch --listen "127.0.0.1:$OS_PORT" >"$WORK/opensearch.log" 2>&1 &
  PIDS+=($!)
  BR_PORT=$(free_port)
  "$BIN/mangaassist-standins" bedrock --listen "127.0.0.1:$BR_PORT" --tokens 60 >"$WORK/bedrock.log" 2>&1 &
  PIDS+=($!)
  wait_port "$REDIS_PORT" redis-server
  wait_port "$MOTO_PORT" moto_server
  wait_port "$OS_PORT" "simulated OpenSearch"
  wait_port "$BR_PORT" "simulated Bedrock"
}
stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

env_for() { # backend -> KEY=VALUE lines
  case "$1" in
    embedded) ;;
    redis)
      echo MANGAASSIST_CACHE__BACKEND=redis
      echo MANGAASSIST_GATEWAY__RESUME_BACKEND=redis
      echo "MANGAASSIST_REDIS__URL=redis://127.0.0.1:$REDIS_PORT" ;;
    dynamodb)
      echo MANGAASSIST_MEMORY__BACKEND=dynamodb
      echo "MANGAASSIST_MEMORY__DYNAMODB__ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT"
      echo MANGAASSIST_MEMORY__DYNAMODB__REGION=us-east-1
      echo MANGAASSIST_MEMORY__DYNAMODB__CREATE_TABLES=true ;;
    opensearch)
      echo MANGAASSIST_RETRIEVAL__BACKEND=opensearch
      echo "MANGAASSIST_RETRIEVAL__OPENSEARCH__URL=http://127.0.0.1:$OS_PORT" ;;
    bedrock)
      echo MANGAASSIST_GENERATION__BACKEND=bedrock
      echo "MANGAASSIST_GENERATION__BEDROCK__ENDPOINT_URL=http://127.0.0.1:$BR_PORT"
      echo MANGAASSIST_GENERATION__BEDROCK__REGION=us-east-1 ;;
    all) for b in redis dynamodb opensearch bedrock; do env_for "$b"; done ;;
    *) echo "unknown backend '$1' (embedded, redis, dynamodb, opensearch, bedrock, all)" >&2; exit 2 ;;
  esac
}

mkdir -p "$OUT"
IFS=, read -r -a BACKENDS <<<"$ONLY"
# Check the names before any run (the ports are set per run).
REDIS_PORT=0 MOTO_PORT=0 OS_PORT=0 BR_PORT=0
for b in "${BACKENDS[@]}"; do env_for "$b" >/dev/null; done
# Repetitions interleave the backends, so a slow minute of the machine spreads over all of them.
for rep in $(seq 1 "$REPS"); do
  for b in "${BACKENDS[@]}"; do
    step "$b, run $rep of $REPS"
    start_servers
    mapfile -t vars < <(env_for "$b")
    env "${vars[@]}" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true \
      "$BIN/mangaassist" bench --local-mesh run --overhead --vus 1 --messages "$MESSAGES" --unique --turns-per-session 10 \
      --label "$b-$rep" --out "$OUT/$b-$rep" --quiet >"$OUT/$b-$rep.log" 2>&1 \
      || { echo "run failed: $OUT/$b-$rep.log" >&2; tail -20 "$OUT/$b-$rep.log" >&2; exit 1; }
    stop_servers
  done
done
fi

step "summary"
python3 - "$OUT" "$ONLY" <<'EOF' | tee "$OUT/summary.md"
import json, os, sys, glob, platform
out, only = sys.argv[1], sys.argv[2].split(",")

def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)

data = {}
for b in only:
    samples = []
    for f in sorted(glob.glob(os.path.join(out, f"{b}-*", "results.json"))):
        r = json.load(open(f))
        samples += [s for s in r["samples"] if not s.get("warmup") and s.get("ttft_ms") is not None and s.get("e2e_ms") is not None]
        machine = r.get("machine")
    data[b] = samples

def stage_values(samples, stage):
    return [st["duration_ms"] for s in samples for st in s.get("stages", []) if st["stage"] == stage]

stages = ["embed", "intent", "cache", "history", "profile", "orders", "retrieval", "context_assembly", "first_token", "streaming"]
seen = sorted({st["stage"] for ss in data.values() for s in ss for st in s.get("stages", [])})
stages = [s for s in stages if s in seen] + [s for s in seen if s not in stages]
print(f"# Added latency per backend (overhead benchmark, 1 stream, unique texts, new session every 10 turns)\n")
print(f"Command: `scripts/bench-backends.sh` — runs per backend: {max(len(glob.glob(os.path.join(out, b + '-*', 'results.json'))) for b in only)}\n")
print(f"machine: {machine['cpus']} × {machine['cpu_model']}, {machine['os']}, commit {machine['git_commit'][:12]}{' (dirty)' if machine.get('git_dirty') else ''}\n")
base = data.get("embedded")
print("| backend | n | cache hits | TTFT p50 | TTFT p99 | e2e p50 | e2e p99 | Δ TTFT p50 vs embedded | Δ TTFT p99 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for b, ss in data.items():
    t = [s["ttft_ms"] for s in ss]; e = [s["e2e_ms"] for s in ss]
    d50 = d99 = ""
    if base and b != "embedded":
        bt = [s["ttft_ms"] for s in base]
        d50 = f"{pct(t,.5)-pct(bt,.5):+.2f}"; d99 = f"{pct(t,.99)-pct(bt,.99):+.2f}"
    hits = sum(1 for s in ss if s.get("cache_hit"))
    print(f"| {b} | {len(ss)} | {hits} | {pct(t,.5):.2f} | {pct(t,.99):.2f} | {pct(e,.5):.2f} | {pct(e,.99):.2f} | {d50} | {d99} |")
print("\nPer-stage durations reported by the gateway (`done.stages`), p50 / p99 in ms over every")
print("answered message; `[k not ok]` counts calls that hit their deadline, failed or were skipped")
print("by an open circuit breaker (the answer then went on without that context). `generation`")
print("appears only when the quality gate escalated a weak fast-tier answer (the simulated model):\n")
print("| stage | " + " | ".join(data) + " |")
print("|---|" + "---:|" * len(data))
for st in stages:
    cells = []
    for b, ss in data.items():
        v = stage_values(ss, st)
        bad = sum(1 for s in ss for x in s.get("stages", []) if x["stage"] == st and x["outcome"] not in ("ok", "cancelled", "escalated"))
        cell = f"{pct(v,.5):.2f} / {pct(v,.99):.2f}" if v else "–"
        cells.append(cell + (f" [{bad} not ok]" if bad else ""))
    print(f"| {st} | " + " | ".join(cells) + " |")
EOF
echo "runs and plots: $OUT/<backend>-<rep>/ (summary.md, results.json, SVGs)" >&2
