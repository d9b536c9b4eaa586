#!/usr/bin/env bash
# Sampler overhead: runs a CPU-bound workload of SECONDS (default 30) untracked and tracked
# (ABBA order, within one run) and prints tracked/untracked wall time; the target is < 1.01.
# Usage: scripts/bench-energy.sh [SECONDS] [extra `greenprune-bench energy` flags, e.g. --interval 0.1]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SECONDS_ARG="${1:-30}"
shift || true
[ -x "$GPB" ] || build_release
"$GPB" energy --seconds "$SECONDS_ARG" "$@"
