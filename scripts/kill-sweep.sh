#!/usr/bin/env bash
# Issue 22's kill check on a real sweep: kill `greenprune sweep` by process group KILLS times at
# random moments (SIGKILL to the whole group, as a batch system or `kill -- -PGID` does), rerun it
# each time, and check that
#   - no step outlives a kill (no process left naming the sweep folder 0.5 s after it),
#   - the finished folder's results.csv has the rows of an uninterrupted sweep (timestamps aside),
#   - no stale hidden attempt or pending folder or temporary file is left (`runs/.<run>.attempt-*`,
#     `runs/.<run>.pending`, `.*.tmp-*`).
# When a folder completes before all kills are spent, a fresh folder takes the remaining kills.
#
#   scripts/kill-sweep.sh [CONFIG.yaml] [KILLS]      (defaults: a small SmolLM2 sweep written here, 20)
#   GREENPRUNE_BIN=path   another greenprune binary than the static release build
#   KILL_SWEEP_REPEAT=k   the default sweep with `repeat: k` (interleaved rounds, pending run folders)
#
# Prints one line per kill and a summary; exits 0 when every check holds, 1 otherwise.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KILLS="${2:-20}"
GP="${GREENPRUNE_BIN:-$GP}"
[ -x "$GP" ] || build_release
command -v python3 >/dev/null || { log "needs python3 (to compare results.csv)"; exit 2; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gp-kill-sweep.XXXX")"
trap 'rm -rf "$WORK"' EXIT

if [ -n "${1:-}" ]; then
  CONFIG="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
else
  MODEL="$GREENPRUNE_HOME/models/smollm2-135m"
  [ -f "$MODEL/model.safetensors" ] || { log "$MODEL missing: run scripts/fetch-models.sh"; exit 1; }
  CONFIG="$WORK/kill.yaml"
  # Every kind of step (prune, quantize, both, evaluate under the energy tracker), on few documents.
  cat > "$CONFIG" <<EOF
output: $WORK/unused
energy: {enabled: true, country: FRA, measure_build: true}
repeat: ${KILL_SWEEP_REPEAT:-1}
tasks: [{name: piqa, limit: 4}, {name: wikitext2_chunked, limit: 2}]
models:
  - name: smollm2
    path: $MODEL
    variants:
      - {name: baseline}
      - {name: l2-20, prune: {ratio: 0.2, importance: l2, skip_first: 1, skip_last: 1}}
      - {name: int8, quantize: {bits: 8}}
      - {name: l2-20-int8, prune: {ratio: 0.2, importance: l2, skip_first: 1, skip_last: 1}, quantize: {bits: 8}}
EOF
fi
export GREENPRUNE_NO_PROGRESS=1

finished() { find "$1/runs" -mindepth 1 -maxdepth 1 -type d ! -name '.*' 2>/dev/null | wc -l; }
stale() { find "$1" "$1/runs" -mindepth 1 -maxdepth 1 -name '.*' ! -name .sweep.lock ! -name .results.lock 2>/dev/null; }
# results.csv without started_at / finished_at, which differ between runs.
rows() {
  python3 - "$1" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
drop = {i for i, c in enumerate(rows[0]) if c in ("started_at", "finished_at")}
for r in rows:
    print("\x1f".join(v for i, v in enumerate(r) if i not in drop))
PY
}

log "reference: one uninterrupted sweep of $CONFIG"
t0=$(date +%s.%N)
set +e
"$GP" sweep "$CONFIG" --output "$WORK/ref" --no-report >"$WORK/ref.log" 2>&1
ref_rc=$?
set -e
T=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
TOTAL=$(finished "$WORK/ref")
[ -f "$WORK/ref/results.csv" ] && [ "$TOTAL" -gt 0 ] || { log "the reference sweep wrote no results (exit $ref_rc): $(tail -3 "$WORK/ref.log")"; exit 1; }
rows "$WORK/ref/results.csv" > "$WORK/ref.rows"
log "reference: $TOTAL runs, $(($(wc -l < "$WORK/ref.rows") - 1)) rows, exit $ref_rc, ${T} s"

kills=0; orphans=0; mismatches=0; stale_left=0; folders=0; moments=()
while [ "$kills" -lt "$KILLS" ]; do
  folders=$((folders + 1)); OUT="$WORK/out$folders"
  while [ "$kills" -lt "$KILLS" ] && [ "$(finished "$OUT")" -lt "$TOTAL" ]; do
    # A random moment within the work left in this folder (runs differ in length: a fifth of
    # the whole sweep is added, so a long last run can still be passed now and then).
    left=$(awk -v f="$(finished "$OUT")" -v t="$TOTAL" 'BEGIN { print (t - f) / t }')
    delay=$(awk -v T="$T" -v l="$left" -v r="$RANDOM" 'BEGIN { d = 0.2 + (r / 32767) * T * (l * 0.8 + 0.2); printf "%.2f", d }')
    setsid "$GP" sweep "$CONFIG" --output "$OUT" --no-report >>"$WORK/kills.log" 2>&1 &
    pid=$!
    disown "$pid"  # no "Killed" job notice from bash for it
    sleep "$delay"
    pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)"
    if [ -n "$pgid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pgid" 2>/dev/null || true
      kills=$((kills + 1)); moments+=("$delay")
      sleep 0.5
      # Anything still naming the folder is a step that outlived its sweep.
      left_behind="$(pgrep -f -- "$OUT/" || true)"
      if [ -n "$left_behind" ]; then
        orphans=$((orphans + 1))
        log "kill $kills: processes outlived the sweep: $(echo $left_behind)"
        for p in $left_behind; do kill -KILL "$p" 2>/dev/null || true; done
      fi
      log "kill $kills at ${delay} s: $(finished "$OUT") of $TOTAL runs finished in $(basename "$OUT"), hidden now: $(stale "$OUT" | wc -l)"
    fi
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done  # the sweep finishing on its own
  done
  set +e
  "$GP" sweep "$CONFIG" --output "$OUT" --no-report >"$WORK/rerun.log" 2>&1
  rc=$?
  set -e
  rows "$OUT/results.csv" > "$WORK/out.rows" 2>/dev/null || true
  if cmp -s "$WORK/ref.rows" "$WORK/out.rows"; then
    log "$(basename "$OUT"): rerun (exit $rc) gives the reference rows"
  else
    mismatches=$((mismatches + 1))
    log "$(basename "$OUT"): rerun (exit $rc) rows differ from the reference:"
    diff "$WORK/ref.rows" "$WORK/out.rows" | head -10 >&2 || true
  fi
  s="$(stale "$OUT")"
  if [ -n "$s" ]; then stale_left=$((stale_left + 1)); log "$(basename "$OUT"): stale entries left: $(echo $s)"; fi
done

ok=$([ "$orphans" -eq 0 ] && [ "$mismatches" -eq 0 ] && [ "$stale_left" -eq 0 ] && echo yes || echo no)
echo "kill-sweep: $kills kills by process group over $folders folder(s) (reference ${T} s, $TOTAL runs); moments (s): ${moments[*]}"
echo "kill-sweep: steps left running after a kill: $orphans; folders whose rows differ from the reference: $mismatches; folders with stale hidden entries: $stale_left; all checks hold: $ok"
[ "$ok" = yes ]
