#!/usr/bin/env bash
# GreenPrune's evaluation engine against lm-evaluation-harness (Hugging Face backend, PyTorch,
# float32) on the same machine, the same model and the same documents.
#
#   1. greenprune evaluate SmolLM2 on hellaswag --limit N --log-samples (timed);
#   2. the logged requests become a local lm-eval task (same context and continuation strings,
#      so lm-eval scores exactly the same 4·N requests);
#   3. lm_eval --model hf --batch_size 1 (lm-eval's default) on it (timed), then greenprune
#      again, so both sides of the ratio see the machine's load alike;
#   4. prints both wall times, the ratio, acc/acc_norm on both sides and the largest
#      per-request |Δ log-likelihood|.
# lm-eval, transformers and a CPU build of torch come from PyPI into a virtual environment in
# $GREENPRUNE_HOME/lmeval-venv (about 1 GB, once); nothing is read from a model or dataset hub.
# Not part of CI (the download is large); run it by hand.
# Usage: scripts/bench-lmeval.sh [N] (default 300)   LMEVAL_BATCH=16 adds a batched lm-eval run.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
ensure_models
[ -x "$GP" ] || build_release
N="${1:-300}"
VENV="$GREENPRUNE_HOME/lmeval-venv"
S="$GREENPRUNE_HOME/models/smollm2-135m"
DATA="${GREENPRUNE_DATA:-$ROOT/../shared/data}"
if [ ! -x "$VENV/bin/lm_eval" ]; then
  log "installing lm-eval, transformers and torch (CPU) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "torch==2.13.0+cpu" "lm-eval==0.4.13" "transformers==5.24.0" "accelerate==1.15.0"
fi
OUT="$(mktemp -d "${TMPDIR:-/tmp}/gp-bench-lmeval.XXXX")"
trap 'rm -rf "$OUT"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$OUT/hf"
export OMP_NUM_THREADS="$(nproc)"

now() { date +%s.%N; }
gp_run() {  # $1: output folder; prints the wall seconds
  local t0 t1; t0=$(now)
  "$GP" evaluate "$S" --tasks hellaswag --limit "$N" --data-dir "$DATA" --log-samples --output "$1" --quiet >"$1.log" 2>&1
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

lm_run() {  # $1: batch size, $2: output folder; prints the wall seconds
  local t0 t1; t0=$(now)
  "$VENV/bin/lm_eval" --model hf --model_args "pretrained=$S,dtype=float32" --tasks hellaswag_gp \
    --include_path "$OUT/tasks" --device cpu --batch_size "$1" --output_path "$2" --log_samples >"$2.log" 2>&1 \
    || { log "lm_eval failed, see its log:"; tail -20 "$2.log" >&2; exit 1; }
  t1=$(now); python3 -c "print($t1 - $t0)"
}
log "lm_eval --model hf --batch_size 1 (lm-eval's default), float32, $OMP_NUM_THREADS threads"
LM1=$(lm_run 1 "$OUT/lm1")
log "greenprune evaluate (run 2)"
GP2=$(gp_run "$OUT/gp2")
LMB=""
if [ -n "${LMEVAL_BATCH:-}" ]; then
  log "lm_eval --batch_size $LMEVAL_BATCH"
  LMB=$(lm_run "$LMEVAL_BATCH" "$OUT/lmb")
fi

python3 - "$OUT" "$N" "$GP1" "$GP2" "$LM1" "${LMB:-}" "${LMEVAL_BATCH:-}" <<'EOF'
import glob, json, sys
out, n, gp1, gp2, lm1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
lmb, bs = sys.argv[6], sys.argv[7]
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
g, gll = gp_side("gp1"); l, lll = lm_side("lm1")
diffs = [abs(a - b) for k in gll for a, b in zip(gll[k], lll[k])]
gp = (gp1 + gp2) / 2
print(f"hellaswag --limit {n}: {len(diffs)} requests, SmolLM2-135M float32")
print(f"  greenprune evaluate     {gp1:7.1f} s and {gp2:7.1f} s (mean {gp:.1f} s)")
print(f"  lm_eval hf, batch 1     {lm1:7.1f} s  -> greenprune is {lm1 / gp:.2f}x faster (target >= 5x)")
if lmb:
    print(f"  lm_eval hf, batch {bs:<4}  {float(lmb):7.1f} s  -> greenprune is {float(lmb) / gp:.2f}x faster")
print(f"  acc       greenprune {g['acc,none']:.4f}  lm-eval {l['acc,none']:.4f}")
print(f"  acc_norm  greenprune {g['acc_norm,none']:.4f}  lm-eval {l['acc_norm,none']:.4f}")
print(f"  per-request |delta log-likelihood|: max {max(diffs):.2e}, mean {sum(diffs) / len(diffs):.2e}")
EOF
