#!/usr/bin/env bash
# The main job: installs what is missing, imports the default models, then runs the sweep of
# configs/default.yaml (SmolLM2 and MiniLM variants, each built and evaluated under the energy
# tracker; < 30 min on 2 cores) into results/default, ending with report.md, report.html and the
# plots. Rerunning resumes: finished runs are skipped. Extra arguments go to `greenprune sweep`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
build_release greenprune
ensure_models
cd "$ROOT"
"$GP" sweep configs/default.yaml "$@"
