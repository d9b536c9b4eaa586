#!/usr/bin/env bash
# Forward-pass benchmark in one run: OpenBLAS sgemm GFLOP/s on this machine, SmolLM2 scoring
# throughput on 8 × 512 tokens (float32, all cores), the fraction of the sgemm rate achieved on
# the model's matmul FLOPs (target ≥ 80%), peak RSS while scoring vs the weights' bytes
# (target ≤ 1.3×) and whether the float32 weights are mmapped. Extra arguments go to
# `greenprune-bench model` (e.g. --json, --threads 1, --model DIR).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
build_release
ensure_models
"$GPB" model "$@"
