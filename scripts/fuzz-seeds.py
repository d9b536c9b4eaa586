#!/usr/bin/env python3
"""Builds the seed corpus of one fuzz target (scripts/fuzz.sh) from the real files on this machine.

Seeds are cut down from the imported models (~/.cache/greenprune/models) and the data sets
($GREENPRUNE_DATA), so that each parses in well under a millisecond; nothing here is committed.
Tiny hand-made seeds cover formats with no real file at hand (GGUF).

usage: fuzz-seeds.py TARGET OUT_DIR ROOT GREENPRUNE_HOME DATA_DIR TASK_FILES
(TASK_FILES: the output of `greenprune-fuzz --task-files`, for the taskdata selector bytes).
"""
import glob, json, os, struct, sys

target, out, root, home, data_dir, task_files = sys.argv[1:7]
os.makedirs(out, exist_ok=True)
models = sorted(glob.glob(os.path.join(home, "models", "*")))
count = 0


def seed(name, data):
    global count
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    count += 1


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def safetensors(header, tensors):
    """A file with `tensors` ([(name, dtype, shape)]) and zero-filled data, plus `header`'s metadata."""
    size = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "I32": 4, "I64": 8, "F64": 8, "BOOL": 1, "I16": 2}
    h, off = {}, 0
    if "__metadata__" in header:
        h["__metadata__"] = header["__metadata__"]
    for name, dtype, shape in tensors:
        n = size.get(dtype, 4)
        for d in shape:
            n *= d
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    body = json.dumps(h).encode()
    body += b" " * (-len(body) % 8)
    # Non-zero data so that the conversions see ordinary values.
    return struct.pack("<Q", len(body)) + body + bytes((i * 37 + 11) % 251 for i in range(off))


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors):
    """GGUF v3: `kvs` [(key, type, value)], `tensors` [(name, ggml_type, dims, nbytes)], aligned 32."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    enc = {4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 0: "<B", 12: "<d"}
    for key, t, v in kvs:
        out += gguf_string(key) + struct.pack("<I", t)
        if t == 8:
            out += gguf_string(v)
        elif t == 9:
            et, items = v
            out += struct.pack("<IQ", et, len(items))
            for it in items:
                out += gguf_string(it) if et == 8 else struct.pack(enc[et], it)
        else:
            out += struct.pack(enc[t], v)
    off, data = 0, b""
    for name, gt, dims, nbytes in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", gt, off)
        data += bytes((i * 13 + 5) % 256 for i in range(nbytes)) + b"\0" * (-nbytes % 32)
        off = len(data)
    out += b"\0" * (-len(out) % 32)
    return out + data


if target == "safetensors":
    for m in models:
        p = os.path.join(m, "model.safetensors")
        if not os.path.exists(p):
            continue
        h = read_header(p)
        names = sorted(k for k in h if k != "__metadata__")
        # The real names, dtypes and ranks, with every dimension cut to 2 or 3.
        small = [(k, h[k]["dtype"], [min(d, 3 - i % 2) for i, d in enumerate(h[k]["shape"])]) for k in names[:12]]
        seed(os.path.basename(m) + ".safetensors", safetensors(h, small))
        seed(os.path.basename(m) + "-one.safetensors", safetensors(h, small[:1]))
    seed("empty.safetensors", safetensors({}, []))
    seed("dtypes.safetensors", safetensors({"__metadata__": {"format": "pt"}},
         [("a", "F16", [2, 2]), ("b", "BF16", [3]), ("c", "I8", [4]), ("d", "F32", [1, 1, 2]), ("e", "F32", [0, 5])]))
elif target == "h5":
    # The committed TensorFlow fixtures (tf_model.h5 of a tiny BERT and MPNet, ~150 KB each), and
    # the first 4 KB of one (superblock and root group, the rest cut off: a truncated file).
    for fixture in ("tf-bert", "tf-mpnet"):
        p = os.path.join(root, "Tests", "GreenPruneTests", "Fixtures", fixture, "h5", "tf_model.h5")
        if os.path.exists(p):
            data = open(p, "rb").read()
            seed(fixture + ".h5", data)
            seed(fixture + "-head.h5", data[:4096])
elif target == "gguf":
    llama = [("general.architecture", 8, "llama"), ("general.name", 8, "tiny"), ("general.alignment", 4, 32),
             ("llama.block_count", 4, 1), ("llama.context_length", 4, 64), ("llama.embedding_length", 4, 8),
             ("llama.feed_forward_length", 4, 16), ("llama.attention.head_count", 4, 2),
             ("llama.attention.head_count_kv", 4, 1), ("llama.rope.freq_base", 6, 10000.0),
             ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5), ("tokenizer.ggml.model", 8, "gpt2"),
             ("tokenizer.ggml.tokens", 9, (8, ["a", "b", "ab", "<s>"])), ("tokenizer.ggml.merges", 9, (8, ["a b"])),
             ("tokenizer.ggml.token_type", 9, (5, [1, 1, 1, 3])), ("tokenizer.ggml.bos_token_id", 4, 3),
             ("flag", 7, True), ("big", 10, 1 << 40), ("small", 0, 7), ("pi", 12, 3.14)]
    # F32 (0), F16 (1), Q4_0 (2, 18-byte blocks of 32), Q8_0 (8, 34-byte blocks of 32).
    seed("llama.gguf", gguf(llama, [("token_embd.weight", 0, [8, 4], 128), ("blk.0.attn_q.weight", 8, [32, 2], 68),
                                    ("blk.0.ffn_up.weight", 2, [32, 1], 18), ("output_norm.weight", 1, [8], 16)]))
    seed("metadata-only.gguf", gguf(llama, []))
    seed("empty.gguf", gguf([], []))
elif target == "tokenizer":
    for m in models:
        p = os.path.join(m, "tokenizer.json")
        if not os.path.exists(p):
            continue
        t = json.load(open(p, encoding="utf-8"))
        model = t.get("model", {})
        # The real pipeline (normalizer, pre-tokenizer, post-processor, decoder, added tokens) over
        # the first few hundred vocabulary entries and the merges among them.
        vocab = model.get("vocab")
        if isinstance(vocab, dict):
            keep = dict(sorted(vocab.items(), key=lambda kv: kv[1])[:300])
            model["vocab"] = keep
            if "merges" in model:
                def parts(mg):
                    return mg.split(" ") if isinstance(mg, str) else mg
                model["merges"] = [mg for mg in model["merges"]
                                   if all(x in keep for x in parts(mg)) and "".join(parts(mg)) in keep][:200]
        t["added_tokens"] = [a for a in t.get("added_tokens", []) if a.get("id", 0) < 300]
        seed(os.path.basename(m) + ".tokenizer.json", json.dumps(t, ensure_ascii=False))
elif target == "config":
    for m in models:
        for name in ["config.json", "generation_config.json", "tokenizer_config.json"]:
            p = os.path.join(m, name)
            if os.path.exists(p):
                seed(os.path.basename(m) + "." + name, open(p, "rb").read())
elif target == "sweep":
    for p in sorted(glob.glob(os.path.join(root, "configs", "*.yaml"))):
        seed(os.path.basename(p), open(p, "rb").read())
elif target == "taskspec":
    for p in sorted(glob.glob(os.path.join(root, "configs", "tasks", "*.yaml"))):
        seed(os.path.basename(p), open(p, "rb").read())
elif target == "taskdata":
    for line in open(task_files, encoding="utf-8"):
        index, rel = line.rstrip("\n").split("\t")
        p = os.path.join(data_dir, rel)
        if not os.path.exists(p):
            continue
        with open(p, "rb") as f:
            lines = f.read(1 << 20).split(b"\n")
        n = 60 if rel.endswith(".raw") else 12
        body = b"\n".join(lines[:n]) + b"\n"
        labels = os.path.join(os.path.dirname(p), "valid-labels.lst")
        if rel.startswith("piqa/") and os.path.exists(labels):
            body += b"\0" + b"\n".join(open(labels, "rb").read().split(b"\n")[:n]) + b"\n"
        seed("task%s-%s" % (index, os.path.basename(rel)), bytes([int(index)]) + body)
else:
    sys.exit("fuzz-seeds.py: unknown target " + target)
print(count)
