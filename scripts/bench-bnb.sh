#!/usr/bin/env bash
# The seed study's quantization table measured side by side: bitsandbytes through transformers
# (the study's `AutoModelForMaskedLM.from_pretrained(..., load_in_8bit=True / load_in_4bit=True)`,
# 4-bit as fp4 and as nf4), PyTorch's `quantize_dynamic` int8 as a second anchor, and GreenPrune's
# INT8 and INT4, on all-MiniLM-L6-v2 and all-mpnet-base-v2, on the same STS-B test sentences and
# the same machine.
#
#   1. the first N STS-B test pairs (default 500 = 1000 sentences; 0 = all 1,379) -> sentences.txt;
#   2. greenprune quantize each model once per GreenPrune method (not timed: a build step);
#   3. ROUNDS interleaved rounds (default 3; the order rotates each round): every method is one
#      process under `greenprune energy --tracking-mode process`, embedding every sentence once
#      (PyTorch: load + quantize + embed in batches of 32; GreenPrune: `embed --text-file`);
#   4. scripts/bench_bnb.py table computes every row from the files (MSE and cosine against
#      PyTorch float32, Spearman, size, peak RSS, embed seconds and energy: median [min-max])
#      and writes study.json, which `greenprune report DIR --layout study-fe|study-st` reads.
# Where bitsandbytes cannot run a path on this CPU, the row carries exactly what it raised.
# transformers 4.57.6 and bitsandbytes 0.50.2 (the issue's versions) and torch (CPU) come from
# PyPI into $GREENPRUNE_HOME/bnb-venv once; BNB_TORCH_SITE=<site-packages of a venv that already
# has torch and accelerate> reuses that instead of downloading torch. Not part of CI.
# Usage: scripts/bench-bnb.sh [PAIRS]   ROUNDS=3 OUT=dir GP_INT8="..." GP_INT4="..." MODELS="a b"
# A run already finished in OUT is not repeated, so the same OUT resumes or grows by rounds.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
# GREENPRUNE_BIN: a greenprune binary to measure instead of the static release build.
GP="${GREENPRUNE_BIN:-$GP}"
[ -x "$GP" ] || build_release greenprune
PAIRS="${1:-500}"
ROUNDS="${ROUNDS:-3}"
MODELS="${MODELS:-all-minilm-l6-v2 all-mpnet-base-v2}"
# GreenPrune's settings: per-channel INT8 RTN, and an INT4 below nf4's error on both models
# (group 64, a zero point per group, the MSE observer's shrunk ranges, GPTQ's error compensation
# calibrated on 32-token windows: about the length of the sentences an encoder embeds, where the
# default 256-token windows calibrate for long documents); both quantize the token embeddings
# too (bitsandbytes keeps them, in float16).
GP_INT8="${GP_INT8:---bits 8 --include-embeddings}"
GP_INT4="${GP_INT4:---bits 4 --granularity group --group-size 64 --scheme asymmetric --observer mse --method gptq --calibration-len 32 --include-embeddings}"
if [[ " $MODELS " == *" all-mpnet-base-v2 "* ]]; then ensure_models mpnet; else ensure_models; fi
VENV="$GREENPRUNE_HOME/bnb-venv"
DATA="${GREENPRUNE_DATA:-$ROOT/../shared/data}"
PY="$ROOT/scripts/bench_bnb.py"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import bitsandbytes, transformers, torch, accelerate, scipy" 2>/dev/null; then
  log "installing transformers 4.57.6, bitsandbytes 0.50.2 and torch (CPU) into $VENV"
  python3 -m venv "$VENV"
  if [ -n "${BNB_TORCH_SITE:-}" ]; then
    echo "$BNB_TORCH_SITE" >"$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/bnb-torch.pth"
  else
    "$VENV/bin/pip" install -q "torch==2.15.0" "accelerate==1.16.0"
  fi
  "$VENV/bin/pip" install -q "transformers==4.57.6" "bitsandbytes==0.50.2" scipy
fi
WORK="${OUT:-$GREENPRUNE_HOME/bench-bnb-$(date +%Y-%m-%d-%H%M)}"
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$WORK/hf" OMP_NUM_THREADS="$(nproc)"
log "results in $WORK"
python3 "$PY" prepare --data "$DATA" --pairs "$PAIRS" --out "$WORK"

# GreenPrune's models: float is the directory itself; INT8/INT4 built once, with a summary of
# what was quantized and the bytes on disk (every *.safetensors, embeddings included).
summarize() {  # $1: model directory, $2: settings -> $1/summary.json (or beside it for float)
  python3 - "$1" "$2" "$3" <<'EOF'
import glob, json, os, struct, sys
d, settings, out = sys.argv[1], sys.argv[2], sys.argv[3]
names, size = [], 0
for f in glob.glob(os.path.join(d, "*.safetensors")):
    size += os.path.getsize(f)
    with open(f, "rb") as h:
        n = struct.unpack("<Q", h.read(8))[0]
        names += [k for k in json.loads(h.read(n)) if k != "__metadata__"]
q = [k[: -len(".weight_scale")] for k in names if k.endswith(".weight_scale")]
json.dump({"quantized_modules": len(q), "float_linear_modules": 0, "size_bytes": size, "settings": settings}, open(out, "w"))
EOF
}
declare -A GPDIR
for m in $MODELS; do
  src="$GREENPRUNE_HOME/models/$m"
  mkdir -p "$WORK/models/$m-float"
  summarize "$src" "float32" "$WORK/models/$m-float/summary.json"
  GPDIR[$m/greenprune-float]="$src"
  for v in int8 int4; do
    flags="$GP_INT8"; [ "$v" = int4 ] && flags="$GP_INT4"
    dst="$WORK/models/$m-$v"
    if [ ! -f "$dst/summary.json" ]; then
      log "greenprune quantize $m $flags"
      # shellcheck disable=SC2086
      "$GP" quantize "$src" $flags --data-dir "$DATA" --out "$dst" --force --quiet
      summarize "$dst" "$flags" "$dst/summary.json"
    fi
    GPDIR[$m/greenprune-$v]="$dst"
  done
done

METHODS=(float bnb-int8 bnb-fp4 bnb-nf4 torch-dynamic-int8 greenprune-float greenprune-int8 greenprune-int4)
python3 - "$WORK" "$MODELS" "$GP_INT8" "$GP_INT4" <<'EOF'
import json, os, sys
work, models, int8, int4 = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
methods = {
    "float": {"framework": "pytorch", "bits": 32},
    "bnb-int8": {"framework": "bitsandbytes", "bits": 8, "settings": "load_in_8bit=True"},
    "bnb-fp4": {"framework": "bitsandbytes", "bits": 4, "variant": "fp4", "settings": "load_in_4bit=True"},
    "bnb-nf4": {"framework": "bitsandbytes", "bits": 4, "variant": "nf4", "settings": "bnb_4bit_quant_type=nf4"},
    "torch-dynamic-int8": {"framework": "pytorch", "bits": 8, "settings": "quantize_dynamic qint8"},
    "greenprune-float": {"framework": "greenprune", "bits": 32},
    "greenprune-int8": {"framework": "greenprune", "bits": 8, "settings": int8},
    "greenprune-int4": {"framework": "greenprune", "bits": 4, "settings": int4},
}
for m in methods.values():
    m.setdefault("framework_kind", "pytorch" if m["framework"] != "greenprune" else "greenprune")
dirs = {m: {k: os.path.join(work, "models", f"{m}-{k.split('-')[1]}") for k in methods if k.startswith("greenprune")} for m in models}
host = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
plan = {"models": models, "methods": methods, "greenprune_dirs": dirs, "host": f"{host}, {os.cpu_count()} CPUs"}
json.dump(plan, open(os.path.join(work, "plan.json"), "w"), indent=1)
EOF

run_one() {  # $1 model, $2 method, $3 round
  local m="$1" k="$2" r="$3" d="$WORK/runs/$1/$2/round-$3" cmd
  # A finished run is kept: the same OUT resumes, and a larger ROUNDS adds rounds.
  [ -f "$d/measure.json" ] && [ -f "$d/energy/energy.json" ] && return 0
  rm -rf "$d"; mkdir -p "$d"
  cut -d' ' -f1 /proc/loadavg >"$d/loadavg"
  if [[ "$k" == greenprune-* ]]; then
    cmd=("$GP" embed "${GPDIR[$m/$k]}" --text-file "$WORK/sentences.txt" --json --no-normalize)
  else
    cmd=("$VENV/bin/python" "$PY" embed --model "$GREENPRUNE_HOME/models/$m" --method "$k" --sentences "$WORK/sentences.txt" --out "$d")
  fi
  "$GP" energy --output-dir "$d/energy" --tracking-mode process -- \
    python3 "$PY" measure --json "$d/measure.json" --stdout "$d/stdout" --stderr "$d/stderr" -- "${cmd[@]}" 2>"$d/energy.log" \
    || { log "$m $k round $r failed:"; tail -5 "$d/stderr" >&2; exit 1; }
}
for ((r = 1; r <= ROUNDS; r++)); do
  n=${#METHODS[@]}
  for m in $MODELS; do
    for ((i = 0; i < n; i++)); do
      k="${METHODS[$(((i + r - 1) % n))]}"
      log "round $r/$ROUNDS: $m $k (load average $(cut -d' ' -f1-3 /proc/loadavg))"
      run_one "$m" "$k" "$r"
    done
  done
done
"$VENV/bin/python" "$PY" table --work "$WORK"
log "study.json: $WORK/study.json (greenprune report $WORK --layout study-fe|study-st)"
