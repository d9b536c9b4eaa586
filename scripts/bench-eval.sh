#!/usr/bin/env bash
# The evaluation engine's speed on SmolLM2: hellaswag --limit 300 through the engine and through
# the per-request (lm-eval-like, batch size 1, no KV reuse) path in the same run, then
# wikitext2_chunked; prints tokens/s, documents/s, the speed-up and the perplexity.
# Extra arguments go to `greenprune-bench eval` (e.g. --limit 100 --chunked-limit 200).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
build_release
ensure_models
export GREENPRUNE_DATA="${GREENPRUNE_DATA:-$ROOT/../shared/data}"
# Debian's OpenBLAS 0.3.21 does not recognise some AVX-512 CPUs and falls back to its SSE3
# (Prescott) kernels, about 3x slower: pick the kernels from the CPU flags unless set.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
cd "$ROOT"
"$GPB" eval "$GREENPRUNE_HOME/models/smollm2-135m" "$@"
