# Shared set-up, sourced by the other scripts: system packages, the release build, the models.
# Everything is idempotent: a second run only checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GREENPRUNE_HOME="${GREENPRUNE_HOME:-$HOME/.cache/greenprune}"
GP="$ROOT/.build/release/greenprune"

log() { printf '[greenprune] %s\n' "$*" >&2; }

# apt packages: OpenBLAS, HDF5, pkg-config (and unzip for the wheels).
ensure_system_packages() {
  local missing=()
  for p in libopenblas-dev libhdf5-dev pkg-config unzip; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# What the tests need beyond the build: headless Chromium (the report.html screenshot test) and a
# single-node Slurm (the job-array test, started by scripts/slurm-local.sh).
TEST_PACKAGES=(chromium slurm-wlm munge)
ensure_test_packages() {
  local missing=()
  for p in "${TEST_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The release build of the CLI and the library (tests are built by `swift test` with the same flags).
build_release() {
  log "building (release)"
  (cd "$ROOT" && swift build -c release 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2)
}

ensure_models() { bash "$ROOT/scripts/fetch-models.sh"; }
