#!/usr/bin/env bash
# TensorFlow checkpoints (tf_model.h5) from transformers for GreenPrune's h5 loader (issue 23).
# Not part of CI: it installs tensorflow-cpu, tf-keras and transformers 4.x (the last line with
# TensorFlow models) from PyPI into $GREENPRUNE_HOME/tf-venv. torch comes from an existing venv
# that has it ($GREENPRUNE_TORCH_VENV, else ct20-venv or peft-venv under $GREENPRUNE_HOME, seen
# through a .pth file), or is installed there from PyPI when none has.
#
#   scripts/make-tf-fixtures.sh [tiny|tiny-mpnet|minilm|mpnet|all]   (default all)
#
# tiny        Tests/GreenPruneTests/Fixtures/tf-bert/: a random two-layer BERT as h5/ (tf_model.h5)
#             and safetensors/ (what transformers makes of that h5 in PyTorch), expected.json
#             (both frameworks' embeddings). Committed; the TFCheckpoint tests read it.
# tiny-mpnet  Tests/GreenPruneTests/Fixtures/tf-mpnet/: the same for a random two-layer MPNet
#             (TFMPNetModel, its relative-position bias table included). Committed.
# minilm      $GREENPRUNE_HOME/models/all-minilm-l6-v2-tf/: all-MiniLM-L6-v2 converted to
#             tf_model.h5 (config, tokenizer and pooling files, no PyTorch weights). Too heavy for
#             CI (TensorFlow), so the check is here: `greenprune embed` on that directory and on
#             the safetensors one must agree (cosine >= 0.99999 for every text), and both must
#             agree with transformers' TensorFlow and PyTorch embeddings.
# mpnet       $GREENPRUNE_HOME/models/all-mpnet-base-v2-tf/: all-mpnet-base-v2 the same way (and
#             checked the same way). The TFCheckpoint tests compare it with the safetensors
#             directory when it exists, and say they skipped it when it does not.
# Exit status 1 when a check fails. GREENPRUNE_BIN picks the CLI (default: the debug build in
# .build-dbg, else the scripts' release build).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
what="${1:-all}"
case "$what" in tiny|tiny-mpnet|minilm|mpnet|all) ;; *) echo "usage: $0 [tiny|tiny-mpnet|minilm|mpnet|all]" >&2; exit 2 ;; esac

PINS=(tensorflow-cpu==2.21.0 tf-keras==2.21.0 transformers==4.57.6)
VENV="${GREENPRUNE_TF_VENV:-$GREENPRUNE_HOME/tf-venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
  # The folder torch is installed in (a venv may itself see torch through a .pth file, which
  # a path listed in another .pth does not follow).
  torch_site=""
  for v in ${GREENPRUNE_TORCH_VENV:-} "$GREENPRUNE_HOME/ct20-venv" "$GREENPRUNE_HOME/peft-venv"; do
    [ -z "$torch_site" ] || break
    torch_site="$("$v/bin/python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)" || torch_site=""
  done
  if [ -n "$torch_site" ]; then
    log "torch from $torch_site"
    echo "$torch_site" > "$("$PY" -c 'import site; print(site.getsitepackages()[0])')/greenprune-torch.pth"
  fi
fi
pins_ok() { "$PY" -c "import importlib.metadata as m, sys; sys.exit(any(m.version(p.split('==')[0]) != p.split('==')[1] for p in sys.argv[1:]))" "${PINS[@]}" 2>/dev/null; }
if ! pins_ok || ! "$PY" -c 'import torch' 2>/dev/null; then
  extra=(); "$PY" -c 'import torch' 2>/dev/null || extra=(torch)
  log "installing ${PINS[*]} ${extra[*]} into $VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" "${extra[@]}" >&2
fi
export TF_CPP_MIN_LOG_LEVEL=3 TF_USE_LEGACY_KERAS=1 TQDM_DISABLE=1 TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1
log "$("$PY" -c 'import importlib.metadata as m; print(", ".join(p + " " + m.version(p) for p in ["tensorflow-cpu", "tf-keras", "transformers", "torch", "h5py", "numpy"]))')"

bin="${GREENPRUNE_BIN:-}"
if [ -z "$bin" ]; then
  if [ -x "$ROOT/.build-dbg/debug/greenprune" ]; then bin="$ROOT/.build-dbg/debug/greenprune"
  else [ -x "$GP" ] || build_release greenprune; bin="$GP"; fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0

# check NAME H5_DIR SAFETENSORS_DIR: both directories through `greenprune embed --json` on the
# expected.json texts, against each other and against transformers' embeddings.
check() {
  local name="$1" h5="$2" st="$3" expected="$4" args=()
  while IFS= read -r t; do args+=(--text "$t"); done < <("$PY" -c 'import json, sys; [print(s["text"]) for s in json.load(open(sys.argv[1]))["sentences"]]' "$expected")
  "$bin" embed "$h5" --json "${args[@]}" > "$work/$name-h5.jsonl"
  "$bin" embed "$st" --json "${args[@]}" > "$work/$name-st.jsonl"
  for fw in tf pt; do
    "$PY" -c 'import json, sys
for s in json.load(open(sys.argv[1]))["sentences"]:
    print(json.dumps({"text": s["text"], "ids": s["ids"], "embedding": s["embedding_" + sys.argv[2]]}))' "$expected" "$fw" > "$work/$name-$fw.jsonl"
  done
  log "$name: greenprune h5 vs greenprune safetensors"
  "$PY" "$ROOT/scripts/tf_fixtures.py" compare "$work/$name-h5.jsonl" "$work/$name-st.jsonl" || status=1
  log "$name: greenprune h5 vs transformers TensorFlow"
  "$PY" "$ROOT/scripts/tf_fixtures.py" compare "$work/$name-h5.jsonl" "$work/$name-tf.jsonl" || status=1
  log "$name: greenprune safetensors vs transformers PyTorch"
  "$PY" "$ROOT/scripts/tf_fixtures.py" compare "$work/$name-st.jsonl" "$work/$name-pt.jsonl" || status=1
}

wants() { [ "$what" = all ] || [ "$what" = "$1" ]; }
if wants tiny; then
  out="$ROOT/Tests/GreenPruneTests/Fixtures/tf-bert"
  "$PY" "$ROOT/scripts/tf_fixtures.py" tiny "$out" --arch bert
  check tiny "$out/h5" "$out/safetensors" "$out/expected.json"
fi
if wants tiny-mpnet; then
  out="$ROOT/Tests/GreenPruneTests/Fixtures/tf-mpnet"
  "$PY" "$ROOT/scripts/tf_fixtures.py" tiny "$out" --arch mpnet
  check tiny-mpnet "$out/h5" "$out/safetensors" "$out/expected.json"
fi
if wants minilm; then
  src="$GREENPRUNE_HOME/models/all-minilm-l6-v2"
  [ -f "$src/model.safetensors" ] || bash "$ROOT/scripts/fetch-models.sh"
  out="$GREENPRUNE_HOME/models/all-minilm-l6-v2-tf"
  "$PY" "$ROOT/scripts/tf_fixtures.py" minilm "$src" "$out"
  check minilm "$out" "$src" "$out/expected.json"
fi
if wants mpnet; then
  src="$GREENPRUNE_HOME/models/all-mpnet-base-v2"
  [ -f "$src/model.safetensors" ] || bash "$ROOT/scripts/fetch-models.sh" mpnet
  out="$GREENPRUNE_HOME/models/all-mpnet-base-v2-tf"
  "$PY" "$ROOT/scripts/tf_fixtures.py" mpnet "$src" "$out"
  check mpnet "$out" "$src" "$out/expected.json"
fi
exit "$status"
