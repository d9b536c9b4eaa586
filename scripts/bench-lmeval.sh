#!/usr/bin/env bash
# GreenPrune's evaluation engine against lm-evaluation-harness (Hugging Face backend, PyTorch)
# on the same machine, the same model and the same documents, in float32 and in bfloat16.
#
#   1. greenprune evaluate SmolLM2 on hellaswag --limit N --log-samples (timed);
#   2. the logged requests become a local lm-eval task (same context and continuation strings,
#      so lm-eval scores exactly the same 4·N requests);
#   3. the timed runs alternate between the two tools, so both sides of every ratio see the
#      machine's load alike: lm_eval batch 1 (lm-eval's default), greenprune on the bf16 copy of
#      the model (`convert --dtype bf16`, weights kept in bf16), and with LMEVAL_BATCH=B lm_eval
#      batch B in float32, greenprune float32 again, lm_eval batch B in bfloat16, greenprune bf16
#      again;
#   4. prints the wall times, the ratios, acc/acc_norm on every side and the largest
#      per-request |Δ log-likelihood| (float32 against float32, bf16 against float32).
# lm-eval, transformers and torch come from PyPI into a virtual environment in
# $GREENPRUNE_HOME/lmeval-venv (a few GB, once; LMEVAL_VENV names another one that has
# lm_eval, torch, transformers and accelerate); nothing is read from a model or dataset hub.
# Not part of CI (the download is large); run it by hand.
# Usage: scripts/bench-lmeval.sh [N] (default 300)   LMEVAL_BATCH=16 adds the batched lm-eval runs.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
ensure_models
[ -x "$GP" ] || build_release
N="${1:-300}"
VENV="${LMEVAL_VENV:-$GREENPRUNE_HOME/lmeval-venv}"
S="$GREENPRUNE_HOME/models/smollm2-135m"
DATA="${GREENPRUNE_DATA:-$ROOT/../shared/data}"
if [ ! -x "$VENV/bin/lm_eval" ]; then
  log "installing lm-eval, transformers and torch into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "torch==2.15.0" "lm-eval==0.4.13" "transformers==5.25.0" "accelerate==1.16.0"
fi
OUT="$(mktemp -d "${TMPDIR:-/tmp}/gp-bench-lmeval.XXXX")"
trap 'rm -rf "$OUT"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$OUT/hf"
export OMP_NUM_THREADS="$(nproc)"

now() { date +%s.%N; }
# The bf16 copy comes from the same GGUF the float32 model was imported from.
SB="$OUT/smollm2-135m-bf16"
"$GP" convert "$GREENPRUNE_HOME/gguf/SmolLM2-135M-Instruct.Q4_1.gguf" --dtype bf16 --out "$SB" --quiet

gp_run() {  # $1: output folder, $2: model (default the float32 one); prints the wall seconds
  local t0 t1; t0=$(now)
  "$GP" evaluate "${2:-$S}" --tasks hellaswag --limit "$N" --data-dir "$DATA" --log-samples --output "$1" --quiet >"$1.log" 2>&1
  t1=$(now); python3 -c "print($t1 - $t0)"
}

log "greenprune evaluate, hellaswag --limit $N (run 1)"
GP1=$(gp_run "$OUT/gp1")

# The logged requests as a local lm-eval multiple-choice task: lm-eval joins context and choice
# with its target delimiter " ", so each choice is stored without its leading space.
python3 - "$OUT/gp1/samples_hellaswag.jsonl" "$OUT/docs.jsonl" <<'EOF'
import json, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        d = json.loads(line); a = d["arguments"]
        keys = sorted(a, key=lambda k: int(k.rsplit("_", 1)[1]))
        ctx = a[keys[0]]["arg_0"]
        assert all(a[k]["arg_0"] == ctx and a[k]["arg_1"].startswith(" ") for k in keys)
        out.write(json.dumps({"id": d["doc_id"], "query": ctx, "choices": [a[k]["arg_1"][1:] for k in keys],
                              "gold": int(d["target"])}) + "\n")
EOF
mkdir -p "$OUT/tasks"
cat >"$OUT/tasks/hellaswag_gp.yaml" <<EOF
task: hellaswag_gp
dataset_path: json
dataset_kwargs:
  data_files:
    validation: $OUT/docs.jsonl
validation_split: validation
output_type: multiple_choice
doc_to_text: "{{query}}"
doc_to_target: "{{gold}}"
doc_to_choice: "{{choices}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
EOF

lm_run() {  # $1: batch size, $2: output folder, $3: dtype (default float32); prints the wall seconds
  local t0 t1; t0=$(now)
  "$VENV/bin/lm_eval" --model hf --model_args "pretrained=$S,dtype=${3:-float32}" --tasks hellaswag_gp \
    --include_path "$OUT/tasks" --device cpu --batch_size "$1" --output_path "$2" --log_samples >"$2.log" 2>&1 \
    || { log "lm_eval failed, see its log:"; tail -20 "$2.log" >&2; exit 1; }
  t1=$(now); python3 -c "print($t1 - $t0)"
}
log "lm_eval --model hf --batch_size 1 (lm-eval's default), float32, $OMP_NUM_THREADS threads"
LM1=$(lm_run 1 "$OUT/lm1")
log "greenprune evaluate, bf16 weights (run 1)"
GB1=$(gp_run "$OUT/gb1" "$SB")
LMB="" LMBB=""
if [ -n "${LMEVAL_BATCH:-}" ]; then
  log "lm_eval --batch_size $LMEVAL_BATCH, float32"
  LMB=$(lm_run "$LMEVAL_BATCH" "$OUT/lmb")
fi
log "greenprune evaluate (run 2)"
GP2=$(gp_run "$OUT/gp2")
if [ -n "${LMEVAL_BATCH:-}" ]; then
  log "lm_eval --batch_size $LMEVAL_BATCH, bfloat16"
  LMBB=$(lm_run "$LMEVAL_BATCH" "$OUT/lmbb" bfloat16)
fi
log "greenprune evaluate, bf16 weights (run 2)"
GB2=$(gp_run "$OUT/gb2" "$SB")

python3 - "$OUT" "$N" "$GP1" "$GP2" "$LM1" "$GB1" "$GB2" "${LMB:-}" "${LMBB:-}" "${LMEVAL_BATCH:-}" <<'EOF'
import glob, json, sys
out, n = sys.argv[1], int(sys.argv[2])
gp1, gp2, lm1, gb1, gb2 = (float(x) for x in sys.argv[3:8])
lmb, lmbb, bs = sys.argv[8], sys.argv[9], sys.argv[10]
def gp_side(d):
    r = json.load(open(f"{out}/{d}/results.json"))["results"]["hellaswag"]
    ll = {}
    for line in open(f"{out}/{d}/samples_hellaswag.jsonl"):
        s = json.loads(line); ll[s["doc_id"]] = s["loglikelihoods"]
    return r, ll
def lm_side(d):
    r = json.load(open(glob.glob(f"{out}/{d}/*/results_*.json")[0]))["results"]["hellaswag_gp"]
    ll = {}
    for line in open(glob.glob(f"{out}/{d}/*/samples_hellaswag_gp_*.jsonl")[0]):
        s = json.loads(line); ll[s["doc"]["id"]] = [float(x[0][0]) for x in s["resps"]]
    return r, ll
def deltas(a, b):
    d = [abs(x - y) for k in a for x, y in zip(a[k], b[k])]
    return f"max {max(d):.2e}, mean {sum(d) / len(d):.2e} over {len(d)} requests"
g, gll = gp_side("gp1"); gb, gbll = gp_side("gb1"); l, lll = lm_side("lm1")
gp, gbm = (gp1 + gp2) / 2, (gb1 + gb2) / 2
print(f"hellaswag --limit {n}: SmolLM2-135M, {len(gll)} documents")
print(f"  greenprune float32      {gp1:7.1f} s and {gp2:7.1f} s (mean {gp:.1f} s)")
print(f"  greenprune bf16         {gb1:7.1f} s and {gb2:7.1f} s (mean {gbm:.1f} s)")
print(f"  lm_eval hf, batch 1     {lm1:7.1f} s  -> greenprune float32 is {lm1 / gp:.2f}x faster (target >= 5x)")
sides = [("greenprune float32", g), ("greenprune bf16", gb), ("lm-eval float32 b1", l)]
if lmb:
    lb, _ = lm_side("lmb")
    print(f"  lm_eval hf, batch {bs:<4}  {float(lmb):7.1f} s  float32  -> greenprune float32 {float(lmb) / gp:.2f}x, bf16 {float(lmb) / gbm:.2f}x faster (bf16 goal >= 5x)")
    sides.append((f"lm-eval float32 b{bs}", lb))
if lmbb:
    lbb, lbbll = lm_side("lmbb")
    print(f"  lm_eval hf, batch {bs:<4}  {float(lmbb):7.1f} s  bfloat16 -> greenprune bf16 {float(lmbb) / gbm:.2f}x faster (goal >= 3x)")
    sides.append((f"lm-eval bfloat16 b{bs}", lbb))
for name, r in sides:
    print(f"  {name:<24} acc {r['acc,none']:.4f}  acc_norm {r['acc_norm,none']:.4f}")
docs = lambda a, b, k: round(abs(a[k] - b[k]) * len(gll))
print(f"  greenprune bf16 vs float32: {docs(gb, g, 'acc,none')} documents apart on acc, "
      f"{docs(gb, g, 'acc_norm,none')} on acc_norm (goal: at most 1)")
print(f"  per-request |delta log-likelihood|, greenprune float32 vs lm-eval float32: {deltas(gll, lll)}")
print(f"  per-request |delta log-likelihood|, greenprune bf16 vs greenprune float32: {deltas(gbll, gll)}")
if lmbb:
    print(f"  per-request |delta log-likelihood|, greenprune bf16 vs lm-eval bfloat16: {deltas(gbll, lbbll)}")
EOF
