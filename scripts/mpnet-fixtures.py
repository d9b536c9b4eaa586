#!/usr/bin/env python3
"""Reference values for the MPNet encoder from PyTorch + Hugging Face transformers (issue 23).

Not part of CI. Run with a Python that has torch (CPU), transformers and tokenizers, e.g. the
virtual environment scripts/peft-fixtures.py makes:
    ~/.cache/greenprune/peft-venv/bin/python scripts/mpnet-fixtures.py \
        ~/.cache/greenprune/models/all-mpnet-base-v2 ../shared/data \
        Tests/GreenPruneTests/Fixtures/mpnet/transformers_reference.json

What it writes (the ../shared/reference sentences are short: their distances reach only the
first logarithmic buckets, so these cover the rest):
  long_texts     STS-B sentences joined into two texts of 114 and over 384 tokens (the
                 second cut to sentence-transformers' max_seq_length 384, keeping </s>): ids,
                 the normalised mean-pooled embedding.
  stsb           100 x Spearman (average ranks for ties, as scipy) of the cosine similarities
                 against the gold scores, on the first 100 pairs and on all 1379 pairs.
Embeddings: AutoModel (MPNetModel) in float32, last_hidden_state averaged over the attention
mask, divided by its L2 norm: sentence-transformers' Transformer + Pooling(mean) + Normalize.
"""
import json
import sys

import numpy as np
import tokenizers
import torch
import transformers
from transformers import AutoModel

MAX_SEQ_LENGTH = 384  # sentence_bert_config.json


def main():
    model_dir, data_dir, out = sys.argv[1:4]
    torch.set_num_threads(2)
    tok = tokenizers.Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.no_truncation()
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    pad = model.config.pad_token_id

    def ids_of(text):
        ids = tok.encode(text).ids
        return ids if len(ids) <= MAX_SEQ_LENGTH else ids[: MAX_SEQ_LENGTH - 1] + [ids[-1]]

    @torch.no_grad()
    def embed(texts, batch=64):
        seqs = [ids_of(t) for t in texts]
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        result = [None] * len(seqs)
        for s in range(0, len(order), batch):
            group = order[s : s + batch]
            t = max(len(seqs[i]) for i in group)
            ids = torch.full((len(group), t), pad, dtype=torch.long)
            mask = torch.zeros((len(group), t), dtype=torch.long)
            for r, i in enumerate(group):
                ids[r, : len(seqs[i])] = torch.tensor(seqs[i])
                mask[r, : len(seqs[i])] = 1
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            for r, i in enumerate(group):
                result[i] = pooled[r].numpy()
        return seqs, result

    def ranks(x):
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        i = 0
        while i < len(x):
            j = i
            while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
                j += 1
            r[order[i : j + 1]] = (i + j) / 2 + 1
            i = j + 1
        return r

    def spearman(a, b):
        return float(np.corrcoef(ranks(a), ranks(b))[0, 1])

    pairs = []
    with open(f"{data_dir}/stsb/sts-test.csv", encoding="utf-8") as f:
        for line in f.read().split("\n"):
            if not line:
                continue
            cols = line.split("\t")
            pairs.append((float(cols[4].strip()), cols[5], cols[6]))

    texts = [" ".join(p[1] for p in pairs[:15]), " ".join(p[1] for p in pairs[:60])]
    ids, emb = embed(texts)
    long_texts = [{"text": t, "ids": i, "embedding_normalized": [float(v) for v in e]} for t, i, e in zip(texts, ids, emb)]

    sentences = [s for p in pairs for s in (p[1], p[2])]
    _, e = embed(sentences)
    cos = [float(np.dot(e[2 * k], e[2 * k + 1])) for k in range(len(pairs))]
    gold = [p[0] for p in pairs]
    stsb = {"pairs": len(pairs), "spearman_first_100": 100 * spearman(cos[:100], gold[:100]),
            "spearman_all": 100 * spearman(cos, gold)}

    doc = {"model": "all-mpnet-base-v2", "max_seq_length": MAX_SEQ_LENGTH,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "tokenizers": tokenizers.__version__},
           "long_texts": long_texts, "stsb": stsb}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(json.dumps({"lengths": [len(i) for i in ids], **stsb}))


if __name__ == "__main__":
    main()
