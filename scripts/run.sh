#!/usr/bin/env bash
# The main job on the default models. Installs what is missing, imports the models, then
# inspects them and scores a text. (Grows into the full sweep of configs/default.yaml.)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
build_release
ensure_models
M="$GREENPRUNE_HOME/models"
"$GP" inspect "$M/smollm2-135m"
"$GP" score "$M/smollm2-135m" --text "The capital of France is Paris."
"$GP" inspect "$M/all-minilm-l6-v2"
"$GP" embed "$M/all-minilm-l6-v2" --text "A sentence to embed."
