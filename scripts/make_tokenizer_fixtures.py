#!/usr/bin/env python3
"""Writes the tokenizer test fixtures under Tests/GreenPruneTests/Fixtures/tokenizers/.

Expected ids come from the real Hugging Face `tokenizers` library (pip install tokenizers;
the reference outputs were made with 0.23). For every tokenizer below, every hard string is
encoded with and without special tokens and decoded back (skipping special tokens or not):

  smollm2        ../shared/reference/smollm2-135m/tokenizer.json (byte-level BPE, Digits + ByteLevel)
  minilm         ~/.cache/greenprune/models/all-minilm-l6-v2/tokenizer.json (BERT WordPiece)
  sp-bpe         built here: SentencePiece-style BPE with byte_fallback, Prepend+Replace
                 normalizer, Llama-2 decoder chain, BOS template (Llama-2/TinyLlama/Mistral)
  sp-metaspace   the same model with a Metaspace(prepend_scheme=first, split=false)
                 pre-tokenizer and Metaspace decoder (newer Llama/Mistral conversions)
  llama3         built here: byte-level BPE, Split(Llama-3 regex) + ByteLevel(use_regex=false),
                 ignore_merges, <|begin_of_text|> template
  qwen2          the llama3 model with Qwen2's single-digit regex, merges applied, no BOS,
                 and added tokens with lstrip/rstrip/single_word/normalized
  roberta        the llama3 model behind ByteLevel(add_prefix_space=true), RobertaProcessing

The built tokenizers are trained on the first 200 kB of WikiText-2 test (small vocabularies, so
CJK, emoji and rare accents go through byte fallback / byte-level symbols) and written next to
expected.json. Re-run only to regenerate; the Swift tests read the committed files.

usage: python3 scripts/make_tokenizer_fixtures.py [--reference DIR] [--minilm DIR] [--corpus FILE]
"""
import argparse
import copy
import json
import os

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")

HARD_STRINGS = [
    # digits
    "x  42", "12345", "3.14159 and 2,718", "x=1234567890;", "ABC123def", "½ ² Ⅻ ١٢٣",
    # spaces, tabs, newlines
    "   leading spaces", "trailing spaces   ", "a\tb\t\tc", "line1\nline2\n\n\nline3",
    "\r\n windows\r\nline\r\n", " ", "", "  \n  ", "tab\tand  two spaces",
    "non-breaking\u00a0space", "ideographic\u3000space", "zero\u200bwidth",
    # accents and scripts
    "Café naïve résumé Ångström", "ÉCOLE über STRASSE straße", "cafe\u0301 (combining)",
    "Σίσυφος ΟΔΥΣΣΕΥΣ", "Привет, мир!", "مرحبا بالعالم", "नमस्ते दुनिया",
    "日本語のテキスト 中文字符", "한국어 텍스트",
    # emoji
    "I ❤️ 🦀 and 👨‍👩‍👧 🇫🇷", "😀😀😀",
    # code
    "def f(x):\n    return x**2  # square\n", "if (a && b) { c++; } else {\n\treturn -1;\n}",
    "    indented = [1, 2, 3]\n\n\n", "<div class=\"a\">&amp;</div>",
    # URLs and addresses
    "https://huggingface.co/docs?q=token&lang=en#top", "mail user@example.com now",
    # contractions and quotes
    "I'm sure it's 'quoted' they'll we've you'd", "DON'T I'M HE'S THEY'RE", "rock'n'roll ''s",
    # special tokens in text
    "<|im_start|>user\nhi<|im_end|>\n", "[CLS] hello [SEP] [MASK]x", "<s> hi </s>",
    "<|begin_of_text|>x<|end_of_text|> y", "a<unk>b", "a  <mask>  b<mask>c", "cat concat cats cat. (cat)",
    # wikitext-isms and punctuation
    " = Robert Boulter = \n", "a @-@ b @,@ c", "...!!!???", "Hello, world!",
    # odd characters
    "vertical\u000btab\u0085nel\u2028line sep", "it'ſ long-s (folds to s)", "bell\u0007char", "nul\u0000char", "replacement\ufffdchar", "supercalifragilisticexpialidocious",
    "a" * 120, "x" + "y" * 30 + "!",
]


def train_bpe(corpus, pre_tokenizer, alphabet, vocab_size, limit_alphabet=None):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    extra = {} if limit_alphabet is None else {"limit_alphabet": limit_alphabet}
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, initial_alphabet=alphabet,
                                  special_tokens=[], **extra)
    tok.train_from_iterator(corpus, trainer=trainer)
    return json.loads(tok.to_str())["model"]


def added(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def build_sp_bpe(corpus):
    """A SentencePiece-style BPE: <unk> <s> </s>, 256 byte tokens, then trained pieces."""
    trained = train_bpe(corpus, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
                        ["▁"], 1500, limit_alphabet=80)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(t, len(vocab))
    model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
             "vocab": vocab, "merges": trained["merges"]}
    base = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": model,
    }
    meta = copy.deepcopy(base)
    meta["normalizer"] = None
    meta["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    meta["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>"}
    return base, meta, config


def build_llama3(corpus):
    split = pre_tokenizers.Split(pattern=Regex(LLAMA3_REGEX), behavior="isolated")
    trained = train_bpe(corpus, pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
                        pre_tokenizers.ByteLevel.alphabet(), 2000)
    vocab = dict(trained["vocab"])
    n = len(vocab)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|eot_id|>"]
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
             "vocab": vocab, "merges": trained["merges"]}
    llama3 = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(n + i, s) for i, s in enumerate(specials)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [n], "tokens": ["<|begin_of_text|>"]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": model,
    }
    qwen2 = copy.deepcopy(llama3)
    qwen2["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = QWEN2_REGEX
    qwen2["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    qwen2["model"]["ignore_merges"] = False
    qwen2["added_tokens"][3]["special"] = False      # a non-special added token: kept by skip_special_tokens
    # Added-token options: lstrip/rstrip swallow neighbouring whitespace, single_word needs word
    # boundaries, normalized=true tokens are matched after the normalizer.
    qwen2["added_tokens"] += [
        dict(added(n + 4, "<mask>"), lstrip=True, rstrip=True),
        dict(added(n + 5, "cat"), single_word=True, special=False, normalized=True),
    ]
    # GPT-2/RoBERTa style: ByteLevel(add_prefix_space, GPT-2 regex) alone, RobertaProcessing.
    roberta = copy.deepcopy(llama3)
    roberta["added_tokens"] = [added(n, "<s>"), added(n + 1, "</s>"), dict(added(n + 2, "<mask>"), lstrip=True)]
    roberta["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    roberta["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", n + 1], "cls": ["<s>", n],
                                 "trim_offsets": True, "add_prefix_space": True}
    roberta["model"]["ignore_merges"] = False
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
    return llama3, config, qwen2, {"eos_token": "<|end_of_text|>"}, roberta, {"bos_token": "<s>", "eos_token": "</s>"}


def cases(tok):
    # tokenizer.json padding/truncation (MiniLM pads to 128) must not enter the expected ids.
    tok.no_padding()
    tok.no_truncation()
    out = []
    for s in HARD_STRINGS:
        with_special = tok.encode(s, add_special_tokens=True).ids
        out.append({
            "text": s,
            "ids": with_special,
            "ids_no_special": tok.encode(s, add_special_tokens=False).ids,
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
        })
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default=os.path.join(root, "..", "shared", "reference"))
    ap.add_argument("--minilm", default=os.path.expanduser("~/.cache/greenprune/models/all-minilm-l6-v2"))
    ap.add_argument("--corpus", default=os.path.join(root, "..", "shared", "data", "wikitext2", "wiki.test.raw"))
    ap.add_argument("--out", default=os.path.join(root, "Tests", "GreenPruneTests", "Fixtures", "tokenizers"))
    args = ap.parse_args()

    with open(args.corpus, encoding="utf-8") as f:
        text = f.read(200_000)
    corpus = [line for line in text.split("\n") if line.strip()]

    built = {}
    sp, sp_meta, sp_config = build_sp_bpe(corpus)
    built["sp-bpe"] = (sp, sp_config)
    built["sp-metaspace"] = (sp_meta, sp_config)
    llama3, l3_config, qwen2, q2_config, roberta, rb_config = build_llama3(corpus)
    built["llama3"] = (llama3, l3_config)
    built["qwen2"] = (qwen2, q2_config)
    built["roberta"] = (roberta, rb_config)

    expected = {"tokenizers_version": tokenizers.__version__, "tokenizers": {}}
    sources = {
        "smollm2": os.path.join(args.reference, "smollm2-135m", "tokenizer.json"),
        "minilm": os.path.join(args.minilm, "tokenizer.json"),
    }
    for name, path in sources.items():
        expected["tokenizers"][name] = cases(Tokenizer.from_file(path))
    for name, (tj, config) in built.items():
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tj, f, ensure_ascii=False, separators=(",", ":"))
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
        expected["tokenizers"][name] = cases(Tokenizer.from_str(json.dumps(tj)))
    # One case per line: small, and diffs stay readable.
    lines = ['{"tokenizers_version": %s, "tokenizers": {' % json.dumps(expected["tokenizers_version"])]
    names = list(expected["tokenizers"])
    for k, name in enumerate(names):
        lines.append(' %s: [' % json.dumps(name))
        rows = expected["tokenizers"][name]
        for i, row in enumerate(rows):
            lines.append('  ' + json.dumps(row, ensure_ascii=False) + ("," if i + 1 < len(rows) else ""))
        lines.append(' ]' + ("," if k + 1 < len(names) else ""))
    lines.append("}}")
    with open(os.path.join(args.out, "expected.json"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
