#!/usr/bin/env bash
# A stand-in for the greenprune binary that honours the file contracts of docs/CLI.md for the
# steps a sweep runs (energy, prune, recover, quantize, evaluate) without models, so sweep tests are fast.
# Set GREENPRUNE_SWEEP_BINARY to this file. Deterministic: every number follows from the
# arguments and the files the previous step wrote (fake.params, fake.quality, fake.bytes).
#   FAKE_SLEEP=S   each step sleeps S seconds first (kill tests)
#   an argument `--fail` makes prune/recover/quantize/evaluate exit 3 with a message (failure tests), and so
#   does `--fail` anywhere in the `--options` file of prune/recover/quantize (`quantize: {bits: 8, skip: [--fail]}`)
set -euo pipefail
cmd="${1:-}"; shift || true
sleep "${FAKE_SLEEP:-0}"
arg() { # value after flag $1 in the remaining args
  local f="$1"; shift
  while (($#)); do [ "$1" = "$f" ] && { echo "$2"; return; }; shift; done
}
has() { local f="$1"; shift; for a in "$@"; do [ "$a" = "$f" ] && return 0; done; return 1; }
opt() { # value of key $1 in the --options file (JSON as the sweep writes it: one key per line)
  local k="$1"; shift; local f; f="$(arg --options "$@")"
  [ -n "$f" ] && [ -f "$f" ] || return 0
  sed -n "s/^ *\"$k\" *: *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\} *$/\1/p" "$f" | head -1
}
fails() { has --fail "$@" && return 0; local f; f="$(arg --options "$@")"; [ -n "$f" ] && grep -q -- '--fail' "$f"; }
readnum() { [ -f "$1" ] && cat "$1" || echo "$2"; }
calc() { awk "BEGIN { printf \"%.10g\", $1 }"; }

case "$cmd" in
energy)
  out="$(arg --output-dir "$@")"; project="$(arg --project-name "$@")"
  while (($#)) && [ "$1" != "--" ]; do shift; done; shift
  mkdir -p "$out"
  set +e; "$@"; rc=$?; set -e
  params="$(readnum "${3:-/nonexistent}/fake.params" 1000000)"
  if [ "${2:-}" = evaluate ]; then kwh="$(calc "2e-6 * $params / 1e6")"; else kwh="1e-6"; fi
  f="$out/emissions.csv"
  [ -f "$f" ] || echo "timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code" > "$f"
  echo "2026-01-01T00:00:00,$project,00000000-0000-0000-0000-000000000000,5b0fa12a-3dd7-45bb-9766-cc326314d9f1,1.0,$(calc "$kwh * 0.056"),0.0,10.0,0.0,1.0,$kwh,0.0,0.0,$kwh,France,FRA" >> "$f"
  j="$(calc "$kwh * 3.6e6")"
  echo "{\"energy_kwh\": $kwh, \"estimate\": true, \"components\": [{\"component\": \"cpu\", \"energy_j\": $j, \"methods\": [\"fake:constant\"], \"estimate\": true}], \"notes\": []}" > "$out/energy.json"
  exit $rc ;;
prune)
  src="$1"; out="$(arg --out "$@")"
  fails "$@" && { echo "prune: --fail: asked to fail" >&2; exit 3; }
  r="$(arg --ratio "$@")"; r="${r:-$(opt ratio "$@")}"; r="${r:-0.1}"
  imp="$(arg --importance "$@")"; imp="${imp:-$(opt importance "$@")}"
  mkdir -p "$out"; echo '{}' > "$out/config.json"
  echo "{\"ratio\": $r, \"importance\": \"$imp\"}" > "$out/pruning.json"
  calc "$(readnum "$src/fake.params" 1000000) * (1 - $r)" > "$out/fake.params"
  calc "$(readnum "$src/fake.quality" 0.6) - 0.3 * $r" > "$out/fake.quality"
  calc "$(readnum "$src/fake.bytes" 4000000) * (1 - $r)" > "$out/fake.bytes"
  echo "pruned $r" ;;
recover)
  src="$1"; out="$(arg --out "$@")"
  fails "$@" && { echo "recover: --fail: asked to fail" >&2; exit 3; }
  steps="$(arg --max-steps "$@")"; steps="${steps:-$(opt max_steps "$@")}"; steps="${steps:-10}"
  mkdir -p "$out"; cp "$src/config.json" "$out/"
  echo "{\"steps\": $steps, \"seconds\": 60, \"source_model\": \"$src\"}" > "$out/recovery.json"
  cp "$src/fake.params" "$out/" 2>/dev/null || echo 1000000 > "$out/fake.params"
  cp "$src/fake.bytes" "$out/" 2>/dev/null || echo 4000000 > "$out/fake.bytes"
  # Recovery closes half of the quality lost to the base's 0.6.
  q="$(readnum "$src/fake.quality" 0.6)"; calc "$q + 0.5 * (0.6 - $q)" > "$out/fake.quality"
  echo "recovered $steps steps" ;;
quantize)
  src="$1"; out="$(arg --out "$@")"; b="$(arg --bits "$@")"; b="${b:-$(opt bits "$@")}"
  fails "$@" && { echo "quantize: --fail: asked to fail" >&2; exit 3; }
  mkdir -p "$out"; echo '{"quantization_config": {}}' > "$out/config.json"
  echo "{\"bits\": $b}" > "$out/quantization.json"
  cp "$src/fake.params" "$out/" 2>/dev/null || echo 1000000 > "$out/fake.params"
  calc "$(readnum "$src/fake.quality" 0.6) - 0.01 * (8 - $b) - 0.005" > "$out/fake.quality"
  calc "$(readnum "$src/fake.bytes" 4000000) * $b / 32" > "$out/fake.bytes"
  echo "quantized $b" ;;
evaluate)
  dir="$1"; out="$(arg --output "$@")"; tasks="$(arg --tasks "$@")"
  has --fail "$@" && { echo "evaluate: --fail: asked to fail" >&2; exit 3; }
  mkdir -p "$out"
  q="$(readnum "$dir/fake.quality" 0.6)"; p="$(readnum "$dir/fake.params" 1000000)"; by="$(readnum "$dir/fake.bytes" 4000000)"
  body=""; i=0
  for t in ${tasks//,/ }; do
    i=$((i + 1)); tq="$(calc "$q - 0.01 * $i")"
    case "$t" in
      *chunked|wikitext) m="\"perplexity,none\": $(calc "20 / $tq"), \"word_perplexity,none\": $(calc "30 / $tq")" ;;
      stsb) m="\"spearman,none\": $(calc "100 * $tq"), \"spearman_stderr,none\": \"N/A\"" ;;
      embedding_drift) m="\"mse,none\": $(calc "0.6 - $tq"), \"cosine,none\": $(calc "$tq + 0.4")" ;;
      *) m="\"acc,none\": $tq, \"acc_stderr,none\": 0.02, \"acc_norm,none\": $(calc "$tq + 0.02"), \"acc_norm_stderr,none\": 0.02" ;;
    esac
    body="$body${body:+, }\"$t\": {\"alias\": \"$t\", $m}"
  done
  tps="$(calc "1000 * 1000000 / $p")"
  cat > "$out/results.json" <<JSON
{"results": {$body}, "config": {"model": "$dir", "limit": "$(arg --limit "$@")"},
 "greenprune": {"tokens_per_second": $tps, "wall_seconds": 2.0, "parameters": $p, "non_embedding_parameters": $(calc "$p * 0.8"),
                "bytes_on_disk": $by, "peak_rss_bytes": $(calc "$by * 1.5")}}
JSON
  echo "evaluated $tasks" ;;
*) echo "fake-greenprune: unknown command '$cmd'" >&2; exit 2 ;;
esac
