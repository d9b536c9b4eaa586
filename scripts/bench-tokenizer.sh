#!/usr/bin/env bash
# Tokenizer throughput: GreenPrune's tokenizer on WikiText-2 test (1.3 MB) with SmolLM2's
# tokenizer.json, and, when the Python `tokenizers` package is importable, the Hugging Face
# library on the same text in the same run (one string, and line by line with encode_batch),
# with the ids compared.
#
# usage: scripts/bench-tokenizer.sh [MODEL_DIR] [TEXT_FILE]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DIR="${1:-$ROOT/../shared/reference/smollm2-135m}"
TEXT="${2:-$ROOT/../shared/data/wikitext2/wiki.test.raw}"
[ -x "$GP" ] || build_release
PY="${PYTHON:-python3}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# Best of 3 (the first run also warms the page cache).
for i in 1 2 3; do
  "$GP" tokenize "$DIR" --file "$TEXT" --no-special-tokens 2>>"$OUT/gp.err" >"$OUT/gp.ids"
done
echo "greenprune: $(sort -t'(' -k2 -n -r "$OUT/gp.err" | head -1)"

if "$PY" -c 'import tokenizers' 2>/dev/null; then
  "$PY" - "$DIR/tokenizer.json" "$TEXT" "$OUT/gp.ids" <<'PYEOF'
import sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
tok.no_padding(); tok.no_truncation()
text = open(sys.argv[2], encoding="utf-8").read()
ours = [int(x) for x in open(sys.argv[3]).read().split()]
n = len(text.encode("utf-8"))
best = 1e9
for _ in range(3):
    t = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False).ids; best = min(best, time.perf_counter() - t)
print(f"hf tokenizers {__import__('tokenizers').__version__} (one string): {len(ids)} tokens in {best:.3f} s ({n / best / 1e6:.2f} MB/s); ids identical: {ids == ours}")
lines = text.splitlines(keepends=True)
best = 1e9
for _ in range(3):
    t = time.perf_counter(); enc = tok.encode_batch(lines, add_special_tokens=False); best = min(best, time.perf_counter() - t)
print(f"hf tokenizers (encode_batch over {len(lines)} lines, all threads): {sum(len(e.ids) for e in enc)} tokens in {best:.3f} s ({n / best / 1e6:.2f} MB/s)")
PYEOF
else
  echo "(python tokenizers not importable: no Hugging Face comparison; PYTHON=... to choose an interpreter)"
fi
