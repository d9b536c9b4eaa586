# Shared set-up, sourced by the other scripts: system packages, the release build, the models.
# Everything is idempotent: a second run only checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GREENPRUNE_HOME="${GREENPRUNE_HOME:-$HOME/.cache/greenprune}"
# The CLI the scripts run: a self-contained release build (Swift runtime and Foundation linked in;
# it needs only libopenblas, and libhdf5 when it writes .h5 files), built in its own folder so the
# tests' ordinary release build beside it is not rebuilt each time.
GP="$ROOT/.build/static/release/greenprune"
# The benchmarks (scripts/bench*.sh), a second executable of the same build.
GPB="$ROOT/.build/static/release/greenprune-bench"

log() { printf '[greenprune] %s\n' "$*" >&2; }

# Installs the Debian packages named that are missing (one apt-get for all of them).
ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The build and the models: OpenBLAS, HDF5, pkg-config (and unzip for the wheels).
ensure_system_packages() { ensure_apt libopenblas-dev libhdf5-dev pkg-config unzip; }

# What the tests need beyond the build: headless Chromium (the report.html screenshot test) and a
# single-node Slurm (the job-array test, started by scripts/slurm-local.sh).
ensure_test_packages() { ensure_apt chromium slurm-wlm munge; }

# Debian's OpenBLAS 0.3.21 does not recognise newer AVX-512 Xeons and falls back to its slow
# SSE3 kernels; name the kernel family the CPU can run unless the environment already does.
# (The greenprune binary does the same for itself; this covers the in-process test suite.)
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  has() { for f in "$@"; do [[ "$cpu_flags" == *" $f "* ]] || return 1; done; }
  if has avx512f avx512bw avx512vl avx512dq; then export OPENBLAS_CORETYPE=SkylakeX
  elif has avx2 fma; then export OPENBLAS_CORETYPE=Haswell; fi
fi

# The release build of the CLI and of the benchmarks: binaries that run without a Swift
# toolchain installed (copy .build/static/release/greenprune anywhere with libopenblas0; libhdf5
# is loaded when needed). One product at a time: the second reuses the library the first built.
# Arguments: the products to build (default both).
build_release() {
  log "building (release, Swift standard library and Foundation linked statically)"
  local products=("$@") product
  ((${#products[@]})) || products=(greenprune greenprune-bench)
  for product in "${products[@]}"; do
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$ROOT/.build/static" --product "$product" 2>&1 \
       | grep -vE '^\[[0-9]+/[0-9]+\]|the use of .mktemp. is dangerous' >&2)
  done
}

ensure_models() { bash "$ROOT/scripts/fetch-models.sh" "$@"; }
