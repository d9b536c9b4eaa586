#!/usr/bin/env bash
# Checks GreenPrune's lm-eval and CodeCarbon outputs with the real clients (not part of CI; it
# installs from PyPI). Installs lm_eval and codecarbon (no torch: nothing here runs a PyTorch
# model) into a venv at $GREENPRUNE_HOME/interop-venv, runs
#   greenprune evaluate SmolLM2 --tasks arc_easy,wikitext2_chunked --limit 5 --log-samples
#   greenprune energy --country USA -- sleep 3        (and CodeCarbon's own tracker on the same sleep)
# and prints, from scripts/check_interop.py, one line per check (PASS/FAIL) and a side-by-side
# table of the emissions.csv rows. Exit status 1 when any check fails.
#
#   scripts/check-interop.sh            GREENPRUNE_BIN picks the binary (default: the debug
#                                       build in .build-dbg, else the scripts' release build)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LM_EVAL=lm_eval==0.4.13
CODECARBON=codecarbon==3.3.2
VENV="$GREENPRUNE_HOME/interop-venv"

if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('lm_eval') == '${LM_EVAL#*==}' and m.version('codecarbon') == '${CODECARBON#*==}'" 2>/dev/null; then
  log "installing $LM_EVAL $CODECARBON into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$LM_EVAL" "$CODECARBON" >&2
fi

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
log "greenprune evaluate ($bin)"
"$bin" evaluate "$model" --tasks arc_easy,wikitext2_chunked --limit 5 --log-samples --output "$work/eval" >/dev/null
log "greenprune energy -- sleep 3"
"$bin" energy --output-dir "$work/energy" --country USA -- sleep 3 2>/dev/null
"$VENV/bin/python" "$ROOT/scripts/check_interop.py" "$work" "$bin"
