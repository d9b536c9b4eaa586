#!/usr/bin/env bash
# Benchmark of `greenprune prune` on SmolLM2-135M with the issue's settings
# (--ratio 0.25 --attn-layers 3:27 --mlp-layers 3:27 --importance taylor --taylor param_first
#  --num-examples 10 --calibration-len 64): wall time and peak RSS of the whole command, the
# parameter count, and, in the same run, our forward+backward on 2 x 128 tokens set against
# PyTorch's figure for that work on this kind of machine (1.6-1.8 s, 2 threads; anchor 1.7 s).
# Targets: gradient work <= 1x PyTorch's time; peak RSS <= 3x the model's F32 bytes.
# With `greenprune evaluate` present, also wikitext2_chunked perplexity of base and pruned model
# (EVAL_LIMIT=N: only the first N windows of 128 tokens; the full set is 2382 windows).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL="${1:-$GREENPRUNE_HOME/models/smollm2-135m}"
PYTORCH_ANCHOR_S="${PYTORCH_ANCHOR_S:-1.7}"
[ -x "$GP" ] && [ -x "$GPB" ] || build_release
# OpenBLAS 0.3.21's DYNAMIC_ARCH picks the SSE3 "Prescott" kernels on CPUs it does not recognise
# (virtual Xeons report a bare "Intel Xeon Processor"): 5x slower sgemm here. Name the core
# from the CPU flags unless the caller did.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
log "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}; load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
[ -f "$MODEL/model.safetensors" ] || { log "$MODEL missing: run scripts/fetch-models.sh"; exit 1; }
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
OUT="$WORK/pruned"

log "prune (timed with /usr/bin/time -v)"
/usr/bin/time -v "$GP" prune "$MODEL" --out "$OUT" --ratio 0.25 --attn-layers 3:27 --mlp-layers 3:27 \
  --importance taylor --taylor param_first --num-examples 10 --calibration-len 64 --quiet \
  >"$WORK/prune.out" 2>"$WORK/time.txt" || { cat "$WORK/time.txt" >&2; exit 1; }
cat "$WORK/prune.out"
wall=$(python3 -c "import json;print(json.load(open('$OUT/pruning.json'))['wall_seconds'])")
grad=$(python3 -c "import json;print(json.load(open('$OUT/pruning.json'))['phase_seconds']['gradients'])")
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
elapsed=$(awk -F'): ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
f32=$(python3 - "$MODEL" <<'PY'
import json, struct, sys
f = open(sys.argv[1] + "/model.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]
h = json.loads(f.read(n)); total = 0
for k, v in h.items():
    if k == "__metadata__": continue
    c = 1
    for s in v["shape"]: c *= s
    total += c
print(total * 4)
PY
)
python3 - "$OUT/pruning.json" "$rss_kb" "$f32" "$elapsed" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); rss = int(sys.argv[2]) * 1024; f32 = int(sys.argv[3])
p = r["parameters"]
print(f"parameters: {p['before']:,} -> {p['after']:,} ({100*p['removed_fraction']:.2f}% removed)")
print(f"prune command: {sys.argv[4]} elapsed (process), {r['wall_seconds']:.2f} s inside "
      f"(gradients {r['phase_seconds']['gradients']:.2f} s for 10 x 64 tokens, surgery {r['phase_seconds']['surgery']:.2f} s, save {r['phase_seconds']['save']:.2f} s)")
print(f"peak RSS: {rss/2**20:.0f} MiB = {rss/f32:.2f} x the model's F32 bytes ({f32/2**20:.0f} MiB); target <= 3x")
PY

log "forward+backward 2 x 128 (the PyTorch anchor's work)"
"$GPB" prune "$MODEL" --batch 2 --seq-len 128 --repeats 3 --all-parameters | tee "$WORK/bench.txt"
best=$(sed -E 's/.*best ([0-9.]+) s.*/\1/' "$WORK/bench.txt")
cpu=$(sed -E 's/.*cpu ([0-9.]+) s per run.*/\1/' "$WORK/bench.txt")
python3 - "$best" "$cpu" "$PYTORCH_ANCHOR_S" "$(nproc)" <<'PY'
import sys
best, cpu, anchor, cores = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"gradient work: {best:.3f} s wall vs PyTorch ~{anchor} s -> ratio {best/anchor:.2f}x (target <= 1x)")
# On a machine shared with other jobs the wall time inflates; CPU seconds / 2 threads is what an
# idle 2-core machine would take (PyTorch's figure is for 2 threads).
print(f"  cpu {cpu:.3f} s = {cpu/2:.3f} s on 2 idle threads -> ratio {cpu/2/anchor:.2f}x; load {open('/proc/loadavg').read().split()[0]} on {cores} cores")
PY

if "$GP" evaluate --help >/dev/null 2>&1; then
  for m in "$MODEL" "$OUT"; do
    log "wikitext2_chunked perplexity of $m"
    "$GP" evaluate "$m" --tasks wikitext2_chunked ${EVAL_LIMIT:+--limit "$EVAL_LIMIT"} --output "$WORK/eval-$(basename "$m")" >/dev/null 2>"$WORK/eval.err" || { tail -3 "$WORK/eval.err" >&2; continue; }
    python3 - "$WORK/eval-$(basename "$m")/results.json" "$m" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]["wikitext2_chunked"]
ppl = r["perplexity,none"]
print(f"wikitext2_chunked perplexity of {sys.argv[2]}: {ppl:.3f}")
PY
  done
else
  log "greenprune evaluate not built: no perplexity"
fi
