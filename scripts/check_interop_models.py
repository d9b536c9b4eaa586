"""GreenPrune's model outputs loaded by the field's own libraries; run by scripts/check-interop.sh in
a venv that has torch, transformers (4.x or 5.x), compressed-tensors and gguf.

    check_interop_models.py transformers LABEL MODEL_DIR RESULTS_JSON [--trust-remote-code]
    check_interop_models.py gguf LABEL GGUF_FILE MODEL_DIR
    check_interop_models.py llama.cpp LABEL GGUF_FILE MODEL_DIR RESULTS_JSON [F32_TWIN_GGUF]

`transformers`: loads MODEL_DIR with AutoModelForCausalLM (compressed-tensors decompresses a
quantized checkpoint on load), computes wikitext2_chunked perplexity over the windows GreenPrune
scored (WikiText-2 test joined as GreenPrune's ChunkedPerplexityTask does, tokenized once by
MODEL_DIR's tokenizer, 128-token windows, the first `sample_len` of RESULTS_JSON) and compares it
with RESULTS_JSON's (greenprune evaluate --tasks wikitext2_chunked). `gguf`: reads GGUF_FILE
with gguf-py's GGUFReader and checks its architecture metadata against MODEL_DIR's config.json
and tensor shapes. `llama.cpp`: llama-cpp-python's perplexity over the same windows against
RESULTS_JSON (float32 K/V cache; for a quantized file, bounded by llama.cpp's own difference
between it and F32_TWIN_GGUF, the same weights dequantized). Prints one PASS/FAIL line and one table row (`ROW|label|client|result`);
a model that fails to load prints the library's error as the row. Exit status 1 on FAIL.
"""
import json
import logging
import math
import os
import sys
from importlib.metadata import version
from pathlib import Path

TOLERANCE = 1e-4  # relative: 0.01%
WINDOW = 128


def report(label, client, ok, result):
    print(f"{'PASS' if ok else 'FAIL'}  {label} in {client}: {result}")
    print(f"ROW|{label}|{client}|{result}")
    sys.exit(0 if ok else 1)


def corpus_text(raw):
    """WikiText-2 test rows as Hugging Face's loader gives them, joined by blank lines."""
    lines = raw.split("\n")
    if raw.endswith("\n"):
        lines.pop()
    return "\n\n".join("" if line == " " else line + "\n" for line in lines)


def transformers_check(label, model_dir, results_path, trust):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    client = f"transformers {transformers.__version__}"
    try:
        client += f" + compressed-tensors {version('compressed-tensors')}"
    except Exception:
        pass
    results = json.loads(Path(results_path).read_text())["results"]["wikitext2_chunked"]
    theirs, windows = results["perplexity,none"], results["sample_len"]
    # transformers reports mismatched shapes as a warning before it raises: keep those lines.
    warnings = []

    class Keep(logging.Handler):
        def emit(self, record):
            warnings.extend(record.getMessage().splitlines())

    logging.getLogger("transformers").addHandler(Keep(level=logging.WARNING))
    transformers.logging.set_verbosity_warning()
    tok = AutoTokenizer.from_pretrained(model_dir)
    data = Path(os.environ["GREENPRUNE_DATA"]) / "wikitext2" / "wiki.test.raw"
    ids = tok(corpus_text(data.read_text(encoding="utf-8")), add_special_tokens=True)["input_ids"]
    nll, count = 0.0, 0
    try:  # some releases decompress on load, some on the first forward: both count as loading
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, trust_remote_code=trust)
        model.eval()
        with torch.no_grad():
            for w in range(windows):
                x = torch.tensor([ids[w * WINDOW:(w + 1) * WINDOW]])
                logp = torch.log_softmax(model(x).logits.double(), dim=-1)
                nll -= logp[0, :-1].gather(1, x[0, 1:, None]).sum().item()
                count += WINDOW - 1
    except Exception as e:  # the row shows the library's own error
        detail = next((" ".join(w.split()) for w in warnings if "MISMATCH" in w or "mismatch" in w.lower()), "")
        report(label, client, False, f"does not load: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
               + (f" [{detail[:200]}]" if detail else ""))
    ours = math.exp(nll / count)
    rel = abs(ours - theirs) / theirs
    report(label, client, rel <= TOLERANCE,
           f"loads; perplexity {ours:.5f} vs GreenPrune {theirs:.5f} ({windows} windows, rel. diff {rel:.1e})")


def gguf_check(label, path, model_dir):
    import gguf

    client = f"gguf-py {version('gguf')} GGUFReader"
    try:
        r = gguf.GGUFReader(path)
    except Exception as e:
        report(label, client, False, f"does not read: {type(e).__name__}: {e}")

    arch = r.fields["general.architecture"].contents()
    config = json.loads((Path(model_dir) / "config.json").read_text())
    n = config["num_hidden_layers"]
    dims = [{k: d[k] for k in ("num_attention_heads", "num_key_value_heads", "intermediate_size")}
            for d in config.get("greenprune_layer_dims") or [config] * n]
    ffn = [d["intermediate_size"] for d in dims]
    heads = [d["num_attention_heads"] for d in dims]
    shapes = {t.name: [int(d) for d in t.shape] for t in r.tensors}  # ggml order: (in, out)
    # llama.cpp's llama architecture reads one width for every layer; deci reads per-layer arrays.
    problems = [] if arch == ("deci" if len({json.dumps(d, sort_keys=True) for d in dims}) > 1 else "llama") \
        else [f"architecture {arch} for these widths"]
    got_ffn = r.fields[f"{arch}.feed_forward_length"].contents()
    got_heads = r.fields[f"{arch}.attention.head_count"].contents()
    if not isinstance(got_ffn, list):
        got_ffn = [got_ffn] * n
    if not isinstance(got_heads, list):
        got_heads = [got_heads] * n
    if got_ffn != ffn:
        problems.append(f"{arch}.feed_forward_length {got_ffn} vs config {ffn}")
    if got_heads != heads:
        problems.append(f"{arch}.attention.head_count {got_heads} vs config {heads}")
    hd = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    for i in range(n):
        if shapes.get(f"blk.{i}.ffn_gate.weight", [0, 0])[1] != ffn[i]:
            problems.append(f"blk.{i}.ffn_gate.weight {shapes.get(f'blk.{i}.ffn_gate.weight')} vs width {ffn[i]}")
        if shapes.get(f"blk.{i}.attn_q.weight", [0, 0])[1] != heads[i] * hd:
            problems.append(f"blk.{i}.attn_q.weight {shapes.get(f'blk.{i}.attn_q.weight')} vs {heads[i]} heads")
    ok = not problems
    report(label, client, ok, f"reads; architecture {arch}, per-layer widths and head counts match config.json and "
           f"the tensor shapes" if ok else "; ".join(problems[:3]))


def llamacpp_perplexity(path, ids, windows, kv_type):
    """llama.cpp's perplexity of GGUF file PATH over the first WINDOWS 128-token windows of IDS,
    its K/V cache in KV_TYPE (ggml type: 0 float32, 1 float16, llama.cpp's default)."""
    import numpy as np
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=WINDOW, n_batch=WINDOW, logits_all=True, verbose=False,
                          type_k=kv_type, type_v=kv_type)
    nll, count = 0.0, 0
    for w in range(windows):
        x = ids[w * WINDOW:(w + 1) * WINDOW]
        llm.reset()
        llm.eval(x)
        logits = np.asarray(llm.scores[:WINDOW], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nll -= sum(logp[i, x[i + 1]] for i in range(WINDOW - 1))
        count += WINDOW - 1
    return math.exp(nll / count)


def llamacpp_check(label, path, model_dir, results_path, twin=None):
    """llama.cpp's perplexity over the same token windows (tokenized by MODEL_DIR's tokenizer).

    llama.cpp keeps K/V in float16 by default, a rounding of its own that a degraded model (a
    heavily pruned one) amplifies; the check runs it with a float32 cache, so an F32 file is exact
    arithmetic on both sides, and reports the default cache's figure beside it. A quantized file
    also has its activations rounded to 8 bits inside each product: TWIN, an F32 GGUF of the same
    (dequantized) weights, measures that rounding in llama.cpp itself, and the file passes when its
    distance from GreenPrune is within it."""
    import llama_cpp
    from transformers import AutoTokenizer

    client = f"llama.cpp (llama-cpp-python {llama_cpp.__version__})"
    results = json.loads(Path(results_path).read_text())["results"]["wikitext2_chunked"]
    theirs, windows = results["perplexity,none"], results["sample_len"]
    tok = AutoTokenizer.from_pretrained(model_dir)
    data = Path(os.environ["GREENPRUNE_DATA"]) / "wikitext2" / "wiki.test.raw"
    ids = tok(corpus_text(data.read_text(encoding="utf-8")), add_special_tokens=True)["input_ids"]
    try:
        ours = llamacpp_perplexity(path, ids, windows, kv_type=0)
        default_cache = llamacpp_perplexity(path, ids, windows, kv_type=1)
    except Exception as e:
        report(label, client, False, f"does not load: {type(e).__name__}: {e}")
    rel = abs(ours - theirs) / theirs
    text = (f"loads; perplexity {ours:.5f} vs GreenPrune {theirs:.5f} ({windows} windows, float32 K/V cache, "
            f"rel. diff {rel:.1e}; float16 cache {default_cache:.5f}, {abs(default_cache - theirs) / theirs:.1e})")
    if twin is None:
        report(label, client, rel <= TOLERANCE, text + f", bound {TOLERANCE:.0e}")
    exact = llamacpp_perplexity(twin, ids, windows, kv_type=0)
    exact_rel = abs(exact - theirs) / theirs
    own = abs(ours - exact) / exact
    report(label, client, exact_rel <= TOLERANCE and rel <= own + TOLERANCE,
           text + f"; the same weights as F32 in llama.cpp {exact:.5f} (rel. diff {exact_rel:.1e}, bound {TOLERANCE:.0e}), "
           f"so llama.cpp's 8-bit activations account for {own:.1e} (bound: that + {TOLERANCE:.0e})")


if __name__ == "__main__":
    mode, label = sys.argv[1], sys.argv[2]
    if mode == "transformers":
        transformers_check(label, sys.argv[3], sys.argv[4], "--trust-remote-code" in sys.argv[5:])
    elif mode == "llama.cpp":
        llamacpp_check(label, sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] if len(sys.argv) > 6 else None)
    elif mode == "gguf":
        gguf_check(label, sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {mode}")
