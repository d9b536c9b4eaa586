#!/usr/bin/env bash
# Fuzzes one reader: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
# (targets: safetensors gguf tokenizer config sweep taskspec taskdata h5; `all` runs each in turn).
# Builds greenprune-fuzz with libFuzzer and AddressSanitizer in .build-fuzz, makes the seed corpus
# from the real files (imported models, $GREENPRUNE_DATA), runs the target for SECONDS and prints
# one summary line per target. A crash, hang (> 10 s on one input) or allocation over 2 GB is
# saved under .build-fuzz/findings/TARGET/ and the script exits 1; replay it with the normal build:
#   swift build --product greenprune-fuzz && .build/debug/greenprune-fuzz TARGET FILE
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ $# -ge 2 ] || { echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]" >&2; exit 2; }
target="$1"; seconds="$2"; shift 2
TARGETS=(safetensors gguf tokenizer config sweep taskspec taskdata h5)
export GREENPRUNE_DATA="${GREENPRUNE_DATA:-$ROOT/../shared/data}"
SCRATCH="$ROOT/.build-fuzz"
FUZZ="$SCRATCH/release/greenprune-fuzz"

log "building greenprune-fuzz (release, libFuzzer + AddressSanitizer) in .build-fuzz"
# gold cannot link the sanitizer runtimes with Swift's debug info; the toolchain's lld can.
(cd "$ROOT" && swift build -c release --product greenprune-fuzz --scratch-path "$SCRATCH" \
   -Xswiftc -sanitize=fuzzer,address -Xswiftc -DGREENPRUNE_LIBFUZZER \
   -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2) || true
[ -x "$FUZZ" ] || { log "the fuzz build failed (above)"; exit 1; }

run_one() {
  local t="$1" corpus="$SCRATCH/corpus/$1" findings="$SCRATCH/findings/$1" logf="$SCRATCH/logs/$1.log"
  shift  # the rest: extra libFuzzer flags
  mkdir -p "$corpus" "$findings" "$(dirname "$logf")"
  (cd "$ROOT" && "$FUZZ" --task-files) > "$SCRATCH/task-files.txt"
  python3 "$ROOT/scripts/fuzz-seeds.py" "$t" "$corpus" "$ROOT" "$GREENPRUNE_HOME" "$GREENPRUNE_DATA" "$SCRATCH/task-files.txt" >/dev/null
  local before; before=$(find "$findings" -type f | wc -l)
  # The corpus folder keeps what earlier runs found (a longer run starts where the last one stopped).
  # No leak detection: Foundation's Data(contentsOf:) leaks a 4 KB buffer on some inputs (in the
  # toolchain, not here), and a leak in Swift code would be a retain cycle, which LSan cannot see.
  local rc=0
  # A Keras h5 is mostly headers and B-trees at fixed offsets: its seeds (the tiny fixtures) are
  # ~150 KB, and a cut one only tests the truncation check.
  local max_len=65536 asan="detect_leaks=0"
  if [ "$t" = h5 ]; then
    max_len=262144
    # libhdf5 (C, not instrumented) allocates what a size field in the file asks for, and
    # reports a refused allocation as an error: with glibc an impossible size returns NULL, and
    # so it must under ASan (which would otherwise stop on it). Swift code still traps on NULL.
    asan="$asan:allocator_may_return_null=1"
  fi
  (cd "$ROOT" && GREENPRUNE_FUZZ_TARGET="$t" ASAN_OPTIONS="$asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}" "$FUZZ" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=2048 \
     -detect_leaks=0 -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$findings/" "$@" "$corpus") >"$logf" 2>&1 || rc=$?
  local execs crashes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -1)
  crashes=$(( $(find "$findings" -type f | wc -l) - before ))
  echo "fuzz $t: ${seconds}s, ${execs:-?} executions, $(find "$corpus" -type f | wc -l) corpus inputs, $crashes crashes (exit $rc)"
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
    grep -E 'ERROR|SUMMARY|Fatal error|greenprune-fuzz:' "$logf" | head -5 >&2
    log "$t: finding saved in $findings (full log: $logf)"
    return 1
  fi
}

status=0
if [ "$target" = all ]; then
  for t in "${TARGETS[@]}"; do run_one "$t" "$@" || status=1; done
else
  [[ " ${TARGETS[*]} " == *" $target "* ]] || { echo "unknown target $target (${TARGETS[*]} or all)" >&2; exit 2; }
  run_one "$target" "$@" || status=1
fi
exit $status
