#!/usr/bin/env python3
"""TensorFlow checkpoints (tf_model.h5) made by transformers, for GreenPrune's h5 loader (issue 23).

Run by scripts/make-tf-fixtures.sh inside its venv (tensorflow-cpu, tf-keras, transformers 4.x,
torch); not part of CI.

Subcommands
  tiny OUT [--arch bert|mpnet]
      A randomly initialised two-layer encoder (hidden 32, 4 heads, intermediate 64, a 100-odd
      token WordPiece vocabulary; MPNet with its 32-bucket relative-position bias) built in
      TensorFlow, every weight drawn from a seeded normal (LayerNorm, biases and the bias table
      too, so a swapped gamma/beta or a missing transpose shows). Writes
        OUT/h5/           config.json, tokenizer files, tf_model.h5 (TFBertModel / TFMPNetModel.save_pretrained)
        OUT/safetensors/  config.json, tokenizer files, model.safetensors: the PyTorch BertModel /
                          MPNetModel transformers loads from that tf_model.h5
                          (load_tf2_checkpoint_in_pytorch_model, what from_pretrained(from_tf=True) calls)
        OUT/expected.json the sentences, their ids, and the L2-normalised mean-pooled embeddings
                          of both the TensorFlow and the PyTorch model
  minilm SRC OUT   (or: mpnet SRC OUT)
      SRC (a sentence-transformers BERT or MPNet directory with model.safetensors) as TensorFlow
      weights: TFAutoModel.from_pretrained(SRC, from_pt=True).save_pretrained(OUT), with SRC's
      other files (tokenizer, pooling, sentence_bert_config.json) but no PyTorch weights;
      OUT/expected.json as above (the TensorFlow model's embeddings and the PyTorch model's).
  compare A.jsonl B.jsonl [--min-cosine 0.99999]
      Two `greenprune embed --json` outputs of the same texts: prints cosine and max |diff| per
      text; exits 1 when a cosine is below --min-cosine or the ids differ.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "TensorFlow checkpoints load in GreenPrune, too!",
    "a short one",
]

# The tiny model's vocabulary: the architecture's special tokens, single characters and their
# word-piece continuations, and the words of SENTENCES (lower-cased), so nothing maps to the
# unknown token by accident.
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tensor", "##flow", "check",
         "##points", "load", "in", "green", "##prune", "too", "a", "short", "one"]

# Per architecture: transformers' class names, the special tokens in vocabulary order (MPNet's
# <pad> is id 1, its config's pad_token_id, from which positions count), extra config fields.
ARCHS = {
    "bert": {"config": "BertConfig", "pt": "BertModel", "tf": "TFBertModel", "tokenizer": "BertTokenizerFast",
             "specials": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "extra": {"type_vocab_size": 2}},
    "mpnet": {"config": "MPNetConfig", "pt": "MPNetModel", "tf": "TFMPNetModel", "tokenizer": "MPNetTokenizerFast",
              "specials": ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"],
              "extra": {"relative_attention_num_buckets": 32, "pad_token_id": 1}},
}


def embeddings(last_hidden, mask):
    """sentence-transformers' mean pooling over the non-padding tokens, then L2 normalisation."""
    import numpy as np
    h = np.asarray(last_hidden, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)[..., None]
    pooled = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def expected(tokenizer, tf_model, pt_model):
    """The SENTENCES through both models, one padded batch each."""
    import torch
    enc = tokenizer(SENTENCES, padding=True, return_tensors="np")
    # MPNet has no token types.
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    tf_out = tf_model(**inputs).last_hidden_state.numpy()
    with torch.no_grad():
        pt_out = pt_model(**{k: torch.tensor(v) for k, v in inputs.items()}).last_hidden_state.numpy()
    e_tf, e_pt = embeddings(tf_out, enc["attention_mask"]), embeddings(pt_out, enc["attention_mask"])
    rows = []
    for i, text in enumerate(SENTENCES):
        ids = [int(t) for t, m in zip(enc["input_ids"][i], enc["attention_mask"][i]) if m]
        rows.append({"text": text, "ids": ids, "embedding_tf": [float(x) for x in e_tf[i]],
                     "embedding_pt": [float(x) for x in e_pt[i]]})
    return rows


def report(rows, label):
    import numpy as np
    for r in rows:
        a, b = np.array(r["embedding_tf"]), np.array(r["embedding_pt"])
        print(f"{label}: transformers TF vs PT  cosine {float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)):.9f}"
              f"  max|diff| {float(np.abs(a - b).max()):.3e}  ({r['text']!r})", file=sys.stderr)


def versions():
    import importlib.metadata as m
    return {p: m.version(p) for p in ["tensorflow-cpu", "tf-keras", "transformers", "torch", "h5py", "numpy"]
            if _installed(m, p)}


def _installed(m, p):
    try:
        m.version(p)
        return True
    except m.PackageNotFoundError:
        return False


def tiny(args):
    import numpy as np
    # torch before TensorFlow: the other order aborts on LLVM options both register.
    import torch  # noqa: F401
    import transformers
    from transformers.modeling_tf_pytorch_utils import load_tf2_checkpoint_in_pytorch_model
    arch = ARCHS[args.arch]
    PTModel = getattr(transformers, arch["pt"])
    TFModel = getattr(transformers, arch["tf"])
    Config, Tokenizer = getattr(transformers, arch["config"]), getattr(transformers, arch["tokenizer"])
    out = Path(args.out)
    h5_dir, st_dir = out / "h5", out / "safetensors"
    for d in (h5_dir, st_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    vocab = list(dict.fromkeys(arch["specials"] + CHARS + ["##" + c for c in CHARS if c.isalnum()] + WORDS))
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = Tokenizer(vocab_file=str(out / "vocab.txt"), do_lower_case=True)
    (out / "vocab.txt").unlink()
    config = Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=64, hidden_act="gelu", **arch["extra"])
    tf_model = TFModel(config)
    tf_model(tf_model.dummy_inputs)  # builds the weights
    rng = np.random.default_rng(23)
    for w in tf_model.weights:
        leaf = w.name.split("/")[-1].split(":")[0]
        shape = tuple(w.shape)
        if leaf == "gamma":
            value = 1.0 + 0.2 * rng.standard_normal(shape)
        elif leaf in ("beta", "bias"):
            value = 0.2 * rng.standard_normal(shape)
        elif leaf == "kernel":
            value = rng.standard_normal(shape) / np.sqrt(shape[0])
        else:  # embedding tables
            value = rng.standard_normal(shape)
        w.assign(value.astype(np.float32))
    tf_model.save_pretrained(h5_dir, safe_serialization=False)
    # What `from_pretrained(from_tf=True)` does, on a model built with real tensors (with torch 2.15
    # from_pretrained builds it on the meta device and the copy from TensorFlow is lost).
    pt_model = PTModel(config)
    load_tf2_checkpoint_in_pytorch_model(pt_model, str(h5_dir / "tf_model.h5"))
    pt_model.eval()
    pt_model.save_pretrained(st_dir, safe_serialization=True)
    for d in (h5_dir, st_dir):
        tokenizer.save_pretrained(d)
    rows = expected(tokenizer, tf_model, pt_model)
    report(rows, "tiny " + args.arch)
    (out / "expected.json").write_text(json.dumps({"versions": versions(), "sentences": rows}, indent=1) + "\n")


def from_pt(args):
    """`minilm` and `mpnet`: the model class follows SRC's config.json."""
    import torch  # noqa: F401  (before TensorFlow, as in tiny)
    from transformers import AutoModel, AutoTokenizer, TFAutoModel
    src, out = Path(args.src), Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pt_model = AutoModel.from_pretrained(src)
    pt_model.eval()
    tf_model = TFAutoModel.from_pretrained(src, from_pt=True)
    tf_model.save_pretrained(tmp, safe_serialization=False)
    weights = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "config.json", "tf_model.h5"}
    for item in src.iterdir():
        if item.name in weights or item.name.startswith(".") or item.suffix in (".onnx", ".safetensors", ".bin"):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
    tokenizer = AutoTokenizer.from_pretrained(src)
    rows = expected(tokenizer, tf_model, pt_model)
    report(rows, args.cmd)
    (tmp / "expected.json").write_text(json.dumps({"versions": versions(), "sentences": rows}, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def compare(args):
    import numpy as np
    a = [json.loads(line) for line in Path(args.a).read_text().splitlines() if line.strip()]
    b = [json.loads(line) for line in Path(args.b).read_text().splitlines() if line.strip()]
    ok = len(a) == len(b) and len(a) > 0
    for x, y in zip(a, b):
        u, v = np.array(x["embedding"], dtype=np.float64), np.array(y["embedding"], dtype=np.float64)
        cos = float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
        diff = float(np.abs(u - v).max())
        good = x["ids"] == y["ids"] and cos >= args.min_cosine
        ok = ok and good
        print(f"{'PASS' if good else 'FAIL'} cosine {cos:.9f} max|diff| {diff:.3e}  {x['text']!r}")
    sys.exit(0 if ok else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tiny")
    t.add_argument("out")
    t.add_argument("--arch", choices=sorted(ARCHS), default="bert")
    for name in ("minilm", "mpnet"):
        m = sub.add_parser(name)
        m.add_argument("src")
        m.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--min-cosine", type=float, default=0.99999)
    args = p.parse_args()
    {"tiny": tiny, "minilm": from_pt, "mpnet": from_pt, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    main()
