#!/usr/bin/env bash
# Checks GreenPrune's outputs with the real clients (not part of CI; it installs from PyPI).
#
# files: lm-eval and CodeCarbon (no torch) in a venv at $GREENPRUNE_HOME/interop-venv; runs
#   greenprune evaluate SmolLM2 --tasks arc_easy,wikitext2_chunked --limit 5 --log-samples
#   greenprune energy --country USA -- sleep 3        (and CodeCarbon's own tracker on the same sleep)
# and prints, from scripts/check_interop.py, one line per check (PASS/FAIL) and a side-by-side
# table of the emissions.csv rows.
# models: SmolLM2 quantized to compressed-tensors (INT8 per channel, INT4 group 64 symmetric and
#   asymmetric, float16 scales) and pruned with per-layer widths, each loaded by transformers 5.25
#   + compressed-tensors 0.20.1 ($GREENPRUNE_HOME/ct20-venv: torch from PyPI, gguf 0.19) and
#   transformers 4.57.6 + compressed-tensors 0.12.2 ($GREENPRUNE_HOME/ct12-venv, reusing ct20's
#   torch through a .pth file), its wikitext2_chunked perplexity on the first 20 windows compared
#   with `greenprune evaluate` (within 0.01%, scripts/check_interop_models.py); the pruned model
#   also as GGUF (llama.cpp's deci architecture), read by gguf-py and by `greenprune convert`,
#   and by llama.cpp through llama-cpp-python where that is installed in ct20-venv.
# Prints the interop table (one row per model and client) at the end. Exit status 1 when any
# check fails.
#
#   scripts/check-interop.sh [files|models|all]   (default all) GREENPRUNE_BIN picks the binary
#                                       (default: the debug build in .build-dbg, else the
#                                       scripts' release build)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LM_EVAL=lm_eval==0.4.13
CODECARBON=codecarbon==3.3.2
VENV="$GREENPRUNE_HOME/interop-venv"

what="${1:-all}"
case "$what" in files|models|all) ;; *) echo "usage: $0 [files|models|all]" >&2; exit 2 ;; esac

# ensure_venv DIR BASE PACKAGE...: a venv at DIR holding PACKAGE... (pins checked, installed
# from PyPI when they differ); with BASE (another venv), BASE's packages are visible underneath
# (a .pth file), so torch is installed once.
ensure_venv() {
  local dir="$1" base="$2"; shift 2
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv "$dir"
    if [ -n "$base" ]; then
      "$base/bin/python" -c 'import site; print(site.getsitepackages()[0])' \
        > "$("$dir/bin/python" -c 'import site; print(site.getsitepackages()[0])')/greenprune-base.pth"
    fi
  fi
  local checks="" p
  for p in "$@"; do
    checks+="assert m.version('${p%%==*}') == '${p#*==}' if '==' in '$p' else m.version('$p'); "
  done
  if ! "$dir/bin/python" -c "import importlib.metadata as m; $checks" 2>/dev/null; then
    log "installing $* into $dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
  fi
}

bin="${GREENPRUNE_BIN:-}"
if [ -z "$bin" ]; then
  if [ -x "$ROOT/.build-dbg/debug/greenprune" ]; then bin="$ROOT/.build-dbg/debug/greenprune"
  else [ -x "$GP" ] || build_release; bin="$GP"; fi
fi
model="$GREENPRUNE_HOME/models/smollm2-135m"
[ -f "$model/model.safetensors" ] || bash "$ROOT/scripts/fetch-models.sh"
export GREENPRUNE_DATA="${GREENPRUNE_DATA:-$ROOT/../shared/data}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
if [ "$what" != models ]; then
  ensure_venv "$VENV" "" "$LM_EVAL" "$CODECARBON"
  log "greenprune evaluate ($bin)"
  "$bin" evaluate "$model" --tasks arc_easy,wikitext2_chunked --limit 5 --log-samples --output "$work/eval" >/dev/null
  log "greenprune energy -- sleep 3"
  "$bin" energy --output-dir "$work/energy" --country USA -- sleep 3 2>/dev/null
  "$VENV/bin/python" "$ROOT/scripts/check_interop.py" "$work" "$bin" || status=1
fi
[ "$what" = files ] && exit "$status"

# ---------------------------------------------------------------- models
NEW="$GREENPRUNE_HOME/ct20-venv" OLD="$GREENPRUNE_HOME/ct12-venv"
ensure_venv "$NEW" "" torch transformers==5.25.0 compressed-tensors==0.20.1 gguf==0.19.0
ensure_venv "$OLD" "$NEW" transformers==4.57.6 compressed-tensors==0.12.2
export TQDM_DISABLE=1 TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1
rows="$work/rows.txt"
: > "$rows"
# row VENV ARGS...: one check_interop_models.py row; its PASS/FAIL line to stderr, the row kept.
row() {
  local venv="$1"; shift
  # upstream=1: a row the library cannot load (its error is the row), not a failed check.
  local out; out="$("$venv/bin/python" "$ROOT/scripts/check_interop_models.py" "$@" 2>"$work/py.err")" || [ "${upstream:-0}" = 1 ] || status=1
  [ -n "$out" ] || out="FAIL  $2: $(tail -1 "$work/py.err")"$'\n'"ROW|$2|$1|crashed: $(tail -1 "$work/py.err")"
  grep -v '^ROW|' <<<"$out" >&2 || true
  grep '^ROW|' <<<"$out" >> "$rows" || true
}
evaluate() { "$bin" evaluate "$1" --tasks wikitext2_chunked --limit 20 --output "$1-eval" >/dev/null 2>&1; }

# compressed-tensors: INT8 per channel, INT4 group 64 symmetric and asymmetric, float16 scales.
for spec in "int8-channel:--bits 8" "int4-g64-sym:--bits 4 --group-size 64" \
            "int4-g64-asym:--bits 4 --group-size 64 --scheme asymmetric" \
            "int4-g64-sym-f16-scales:--bits 4 --group-size 64 --scale-dtype float16"; do
  name="${spec%%:*}"; read -ra flags <<<"${spec#*:}"
  log "greenprune quantize ${flags[*]}"
  "$bin" quantize "$model" --out "$work/$name" "${flags[@]}" --quiet
  evaluate "$work/$name"
  # INT4 asymmetric: compressed-tensors 0.20.1 allocates the packed zero point unpacked, 0.12.2
  # refuses packed zero points (README).
  upstream=0; [[ "$name" == *asym* ]] && upstream=1
  row "$NEW" transformers "compressed-tensors $name" "$work/$name" "$work/$name-eval/results.json"
  [[ "$name" == *f16* ]] || row "$OLD" transformers "compressed-tensors $name" "$work/$name" "$work/$name-eval/results.json"
  upstream=0
done

# Per-layer widths: attention and MLP pruned in layers 4-25 only (the defaults' skip), kept
# widths multiples of 32 so every projection fits ggml's blocks.
log "greenprune prune --ratio 0.34 --importance l2 --round-to 32"
"$bin" prune "$model" --out "$work/pruned" --ratio 0.34 --importance l2 --round-to 32 --no-energy --quiet >/dev/null
evaluate "$work/pruned"
row "$NEW" transformers "pruned, per-layer widths (trust_remote_code)" "$work/pruned" "$work/pruned-eval/results.json" --trust-remote-code
row "$OLD" transformers "pruned, per-layer widths (trust_remote_code)" "$work/pruned" "$work/pruned-eval/results.json" --trust-remote-code
# The pruned model as GGUF: F32 (every projection skipped) and Q8_0. GreenPrune's reference for
# llama.cpp is its own evaluation of what `convert` reads back (the dequantized weights).
"$bin" quantize "$work/pruned" --out "$work/pruned-f32.gguf" --format gguf --bits 8 --skip '*' --quiet
"$bin" quantize "$work/pruned" --out "$work/pruned-q8_0.gguf" --format gguf --bits 8 --quiet
for gguf in "$work/pruned-f32.gguf" "$work/pruned-q8_0.gguf"; do
  label="pruned GGUF $(basename "$gguf" .gguf | sed 's/pruned-//') (deci)"
  row "$NEW" gguf "$label" "$gguf" "$work/pruned"
  if "$bin" convert "$gguf" --out "$gguf.hf" --quiet >/dev/null 2>"$work/convert.err"; then
    evaluate "$gguf.hf"
    row "$NEW" transformers "$label, back through greenprune convert" "$gguf.hf" "$gguf.hf-eval/results.json" --trust-remote-code
  else
    status=1
    echo "FAIL  greenprune convert reads $gguf: $(cat "$work/convert.err")" >&2
    echo "ROW|$label|greenprune convert|$(head -1 "$work/convert.err")" >> "$rows"
    continue
  fi
  if "$NEW/bin/python" -c 'import llama_cpp' 2>/dev/null; then
    # A quantized file's twin: the weights `convert` read back, as F32 GGUF, so llama.cpp measures
    # its own activation rounding.
    twin=()
    if [[ "$gguf" != *f32* ]]; then
      "$bin" quantize "$gguf.hf" --out "$gguf.f32-twin.gguf" --format gguf --bits 8 --skip '*' --quiet >/dev/null
      twin=("$gguf.f32-twin.gguf")
    fi
    row "$NEW" llama.cpp "$label" "$gguf" "$work/pruned" "$gguf.hf-eval/results.json" "${twin[@]}"
  else
    echo "ROW|$label|llama.cpp|not checked: llama_cpp is not installed in $NEW (pip install llama-cpp-python==0.3.36 builds llama.cpp from source)" >> "$rows"
  fi
done

echo
echo "interop table (SmolLM2-135M, wikitext2_chunked, first 20 windows of 128 tokens)"
awk -F'|' '{ printf "%-52s %-58s %s\n", $2, $3, $4 }' "$rows"
exit "$status"
