#!/usr/bin/env bash
# Scale without the download (issue 24): synthesizes a random-weight checkpoint with a published
# model's geometry (`greenprune synth`, default llama-3.2-1b in bf16) and runs
#   - evaluate wikitext2_chunked --limit 2
#   - prune --importance taylor --num-examples 4 --calibration-len 64 (taylor-20's other settings)
# each under /usr/bin/time -v, printing wall time and peak RSS against the weights' bytes on disk
# and against the peak `prune --dry-run` planned.
# BENCH_LIKE picks the geometry, BENCH_DTYPE the weights' type (bf16, f16, f32), BENCH_KEEP=DIR
# keeps the synthesized model and outputs there; GREENPRUNE_BIN runs that greenprune instead of
# the self-contained release build.
# The 8B geometry: BENCH_LIKE=llama-3-8b scripts/bench-scale.sh (16 GB of bf16 on disk). evaluate
# and prune keep bf16 weights mapped (prune: one layer's float32 gradients besides them), so both
# fit a 24 GiB machine; where a plan does not fit, the command refuses and the script stops there.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
GP="${GREENPRUNE_BIN:-$GP}"
LIKE="${BENCH_LIKE:-llama-3.2-1b}"
DTYPE="${BENCH_DTYPE:-bf16}"
[ -x "$GP" ] || build_release greenprune
log "load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
if [ -n "${BENCH_KEEP:-}" ]; then WORK="$BENCH_KEEP"; mkdir -p "$WORK"; else WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT; fi
MODEL="$WORK/$LIKE-$DTYPE"
if [ ! -f "$MODEL/config.json" ]; then
  log "synth --like $LIKE --dtype $DTYPE"
  "$GP" synth --like "$LIKE" --dtype "$DTYPE" --out "$MODEL" --force --quiet
fi
weights=$(du -cb "$MODEL"/*.safetensors | tail -1 | cut -f1)

# Runs "$@" under /usr/bin/time -v into $WORK/$name.{out,time}; prints "wall_s rss_bytes".
timed() {
  local name="$1"; shift
  /usr/bin/time -v "$@" >"$WORK/$name.out" 2>"$WORK/$name.time" || { tail -5 "$WORK/$name.time" >&2; exit 1; }
  local rss wall
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2 * 1024}' "$WORK/$name.time")
  wall=$(awk '/Elapsed \(wall clock\)/ {n = split($NF, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$WORK/$name.time")
  echo "$wall $rss"
}

PRUNE_FLAGS=(--target-params 0.2 --importance taylor --taylor param_first --skip-first 1 --skip-last 1
             --num-examples 4 --calibration-len 64 --no-energy --quiet)
planned=$("$GP" prune "$MODEL" --dry-run "${PRUNE_FLAGS[@]}" | sed -n 's/^memory: //p')
log "prune plan: $planned"

log "evaluate wikitext2_chunked --limit 2"
read -r eval_s eval_rss < <(timed evaluate "$GP" evaluate "$MODEL" --tasks wikitext2_chunked --limit 2 \
  --output "$WORK/eval" --quiet)
log "prune (taylor, 4 x 64)"
read -r prune_s prune_rss < <(timed prune "$GP" prune "$MODEL" --out "$WORK/pruned" --force "${PRUNE_FLAGS[@]}")
planned_bytes=$(python3 -c "import json; print(json.load(open('$WORK/pruned/pruning.json'))['planned_peak_bytes'])")

python3 - "$LIKE" "$DTYPE" "$weights" "$eval_s" "$eval_rss" "$prune_s" "$prune_rss" "$planned_bytes" <<'PY'
import sys
like, dtype, w, es, er, ps, pr, plan = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
gib = lambda b: f"{b / 2**30:.2f} GiB"
print(f"{like} ({dtype}), weights on disk {gib(w)}")
print(f"| command | wall s | peak RSS | RSS / weights | planned peak |")
print(f"| --- | ---: | ---: | ---: | ---: |")
print(f"| evaluate wikitext2_chunked --limit 2 | {es:.1f} | {gib(er)} | {er / w:.2f}x | |")
print(f"| prune taylor 4 x 64 | {ps:.1f} | {gib(pr)} | {pr / w:.2f}x | {gib(plan)} (measured/planned {pr / plan:.2f}) |")
PY
