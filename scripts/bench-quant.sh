#!/usr/bin/env bash
# Quantization benchmark: what INT8 / INT4 cost and save on the two default models, measured
# within one run (each decoder scored in its own child process, so peak RSS is its own).
#   all-MiniLM-L6-v2: STS-B Spearman, embedding_drift (MSE, cosine) vs F32, size on disk
#   SmolLM2-135M:     wikitext2_chunked perplexity, tokens/s, peak RSS vs F32 (quantized models on
#                     this CPU's default path — AMX bf16 tiles, or the int16 kernel (AVX-512 VNNI or AVX2)
#                     without AMX — and again on sgemm; on the AVX-512 BF16 dot-product kernel too
#                     where the CPU has it without taking it by default), at the default 512-token
#                     batches and again at 4096
# Usage: scripts/bench-quant.sh [WINDOWS [REPEAT]]   (wikitext2_chunked windows of 128 tokens, default 40;
#        interleaved rounds per decoder comparison, default 3)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
ensure_models
[ -x "$GP" ] && [ -x "$GPB" ] || build_release
# OpenBLAS 0.3.21 does not recognise some virtualised Xeons and falls back to its slow SSE3
# ("Prescott") kernels; name the core when the CPU has AVX-512 (or AVX2).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
WINDOWS="${1:-40}"
REPEAT="${2:-3}"  # interleaved rounds per decoder comparison (speed ratios are medians)
OUT="$(mktemp -d "${TMPDIR:-/tmp}/gp-bench-quant.XXXX")"
trap 'rm -rf "$OUT"' EXIT
M="$GREENPRUNE_HOME/models/all-minilm-l6-v2"; S="$GREENPRUNE_HOME/models/smollm2-135m"

log "quantizing all-MiniLM-L6-v2 (INT8 per channel, INT4 group 128; embeddings included)"
"$GP" quantize "$M" --out "$OUT/minilm-int8" --bits 8 --granularity channel --include-embeddings --quiet
"$GP" quantize "$M" --out "$OUT/minilm-int4" --bits 4 --granularity group --group-size 128 --include-embeddings --quiet
"$GPB" quant encoder "$M" "$OUT/minilm-int8" "$OUT/minilm-int4"

# SmolLM2's 576-wide projections are not a multiple of 128: INT4 uses groups of 64.
log "quantizing SmolLM2-135M (INT8 per channel, INT4 asymmetric group 64; the tied embedding table quantized once, as lookup and head)"
"$GP" quantize "$S" --out "$OUT/smol-int8" --bits 8 --granularity channel --include-embeddings --quiet
"$GP" quantize "$S" --out "$OUT/smol-int4" --bits 4 --granularity group --group-size 64 --scheme asymmetric --include-embeddings --quiet
log "INT4 again after AWQ scaling and clipping (64 calibration documents of the C4 sample)"
"$GP" quantize "$S" --out "$OUT/smol-int4-awq" --bits 4 --granularity group --group-size 64 --scheme asymmetric --include-embeddings \
  --awq --num-examples 64 --quiet
"$GPB" quant decoder "$S" "$OUT/smol-int8" "$OUT/smol-int4" "$OUT/smol-int4-awq" --windows "$WINDOWS" --repeat "$REPEAT" --sgemm-too --bf16-dot-too
log "the same with 4096-token batches (the weights expanded once per 4096 tokens, 8x the activation memory of the default 512)"
"$GPB" quant decoder "$S" "$OUT/smol-int8" "$OUT/smol-int4" --windows "$WINDOWS" --batch-tokens 4096 --repeat "$REPEAT"
log "int8 activations (dynamic per token, int8 x int8 kernels); the last model is INT8 after SmoothQuant (alpha 0.85)"
"$GP" quantize "$S" --out "$OUT/smol-int8-smooth" --bits 8 --granularity channel --include-embeddings --smooth 0.85 --num-examples 64 --quiet
"$GPB" quant decoder "$S" "$OUT/smol-int8" "$OUT/smol-int4" "$OUT/smol-int8-smooth" --windows "$WINDOWS" --activations int8 --repeat "$REPEAT"
