"""A tiny random GPT-2 for GreenPrune's second decoder family (issue 19).

Run with a Python that has torch, transformers and tokenizers (the peft venv):

    ~/.cache/greenprune/peft-venv/bin/python scripts/make-gpt2-fixture.py [OUT]

OUT defaults to Tests/GreenPruneTests/Fixtures/gpt2. It writes a GPT2LMHeadModel (2 layers,
n_embd 64, 4 heads, MLP 128, 128 positions, gelu_new, weights drawn with seed 19) saved by
save_pretrained as safetensors, a byte-level BPE tokenizer.json trained on a few paragraphs,
and expected.json: transformers' float32 logits and per-token log-likelihoods for a few id
sequences, a right-padded batch (attention mask) and a prefix with continuations.
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "Tests", "GreenPruneTests", "Fixtures", "gpt2")
os.makedirs(out, exist_ok=True)

TEXT = [
    "The quick brown fox jumps over the lazy dog. A model reads tokens and predicts the next one.",
    "Pruning removes heads and channels; quantization stores weights in fewer bits.",
    "Energy is measured in joules, emissions in grams of carbon dioxide per kilowatt hour.",
    "GPT-2 adds learned position embeddings to its token embeddings before the first block.",
    "Each block normalises its input, attends over earlier positions and runs a small MLP.",
    "The wikitext benchmark reports perplexity over whole documents, word by word.",
]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train_from_iterator(TEXT, trainer)
tok.save(os.path.join(out, "tokenizer.json"))
vocab = tok.get_vocab_size()
eos = tok.token_to_id("<|endoftext|>")

torch.manual_seed(19)
config = GPT2Config(vocab_size=vocab, n_positions=128, n_embd=64, n_layer=2, n_head=4, n_inner=128,
                    activation_function="gelu_new", bos_token_id=eos, eos_token_id=eos,
                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
model = GPT2LMHeadModel(config).eval()
# Larger than the 0.02 initialisation, so the logits vary enough to test; LayerNorms and biases
# random too, so a mix-up of weight and bias shows.
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            p.copy_(1 + 0.2 * torch.randn_like(p))
        else:
            p.copy_(0.15 * torch.randn_like(p))
model.save_pretrained(out, safe_serialization=True)

def logits(ids, mask=None):
    with torch.no_grad():
        x = torch.tensor(ids)
        m = torch.tensor(mask) if mask is not None else None
        return model(input_ids=x, attention_mask=m).logits.float()

def loglik(ids):
    lg = torch.log_softmax(logits([ids])[0], dim=-1)
    return [float(lg[i - 1, ids[i]]) for i in range(1, len(ids))]

# Short sequences and 5 decimals keep the file small.
seqs = [tok.encode(t).ids[:n] for t, n in zip(TEXT[:3], [20, 13, 17])]
r5 = lambda rows: [[round(x, 5) for x in row] for row in rows]
single = []
for s in seqs:
    lg = logits([s])[0]
    single.append({"ids": s, "logits": r5(lg.tolist()), "loglik": loglik(s)})

# A right-padded batch: the real rows' logits must not depend on the padding.
width = max(len(s) for s in seqs)
padded = [s + [0] * (width - len(s)) for s in seqs]
mask = [[1] * len(s) + [0] * (width - len(s)) for s in seqs]
batch = logits(padded, mask)
batch_rows = [r5(batch[i, :len(s)].tolist()) for i, s in enumerate(seqs)]

prefix = tok.encode("Each block normalises its input").ids
conts = [tok.encode(c).ids for c in [" and attends", " then runs a small MLP", " twice"]]
prefix_case = {"prefix": prefix, "continuations": conts,
               "loglik": [loglik(prefix + c)[len(prefix) - 1:] for c in conts]}

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
               "single": single, "batch": {"ids": padded, "lengths": [len(s) for s in seqs], "logits": batch_rows},
               "prefix": prefix_case}, f)
print("vocab", vocab, "eos", eos, "lengths", [len(s) for s in seqs])
