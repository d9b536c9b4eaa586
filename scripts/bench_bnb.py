#!/usr/bin/env python3
"""The seed study's quantization table, measured side by side (driven by scripts/bench-bnb.sh).

Subcommands:
  prepare  the first N STS-B test pairs -> sentences.txt (sentence1, sentence2 of each pair, in
           order; the order `greenprune evaluate --tasks stsb` reads them in) and scores.json
  embed    (in the bench's venv) one PyTorch method: load, quantize, embed sentences.txt with
           mean pooling; writes pooled.npy (before L2 normalisation) and meta.json
  measure  run a command, record its wall time and the peak resident memory of its process tree
  table    every row from the files the runs left, by the same code: MSE of normalised and raw
           embeddings and cosine against PyTorch float32, STS-B Spearman, size, memory, embedding
           time and energy (median and min-max over the rounds) -> study.json + a Markdown table
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# The PyTorch methods, in table order: float32, the study's bitsandbytes loading path (int8,
# 4-bit fp4 - transformers' default for load_in_4bit - and nf4), and torch's dynamic int8.
TORCH_METHODS = ["float", "bnb-int8", "bnb-fp4", "bnb-nf4", "torch-dynamic-int8"]


def read_pairs(data_dir, n):
    """STS-B test pairs as the Swift reader takes them: tab-separated, no quote handling."""
    pairs = []
    with open(os.path.join(data_dir, "stsb", "sts-test.csv"), encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            pairs.append((float(cols[4]), cols[5], cols[6]))
    return pairs if n <= 0 else pairs[:n]


def cmd_prepare(a):
    pairs = read_pairs(a.data, a.pairs)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "sentences.txt"), "w", encoding="utf-8") as f:
        for _, s1, s2 in pairs:
            f.write(s1 + "\n" + s2 + "\n")
    with open(os.path.join(a.out, "scores.json"), "w") as f:
        json.dump([p[0] for p in pairs], f)


def load_torch_model(path, method):
    """The study's call: AutoModelForMaskedLM.from_pretrained with bitsandbytes' flags."""
    import torch
    from transformers import AutoModelForMaskedLM, BitsAndBytesConfig
    if method == "float":
        return AutoModelForMaskedLM.from_pretrained(path)
    if method == "bnb-int8":
        return AutoModelForMaskedLM.from_pretrained(path, load_in_8bit=True)
    if method == "bnb-fp4":
        return AutoModelForMaskedLM.from_pretrained(path, load_in_4bit=True)
    if method == "bnb-nf4":
        cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
        return AutoModelForMaskedLM.from_pretrained(path, quantization_config=cfg)
    if method == "torch-dynamic-int8":
        m = AutoModelForMaskedLM.from_pretrained(path)
        return torch.ao.quantization.quantize_dynamic(m, {torch.nn.Linear}, dtype=torch.qint8)
    raise SystemExit(f"unknown method {method}")


def quantized_modules(encoder):
    """Names of the encoder's quantized linear modules, and how many float nn.Linear remain."""
    import torch
    quantized, dense = [], 0
    for name, mod in encoder.named_modules():
        kind = type(mod).__name__
        if kind in ("Linear8bitLt", "Linear4bit") or (kind == "Linear" and type(mod).__module__.startswith("torch.ao.nn.quantized")):
            quantized.append(name)
        elif type(mod) is torch.nn.Linear:
            dense += 1
    return quantized, dense


def cmd_embed(a):
    import io
    import numpy as np
    import torch
    from transformers import AutoTokenizer
    torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(a.out, exist_ok=True)
    meta = {"method": a.method, "framework": "pytorch"}
    try:
        model = load_torch_model(a.model, a.method)
    except Exception as e:  # bitsandbytes' own words, where a path cannot run on this CPU
        meta["error"] = f"{type(e).__name__}: {e}"
        json.dump(meta, open(os.path.join(a.out, "meta.json"), "w"), indent=1)
        print(meta["error"], file=sys.stderr)
        return 0
    model.eval()
    encoder = model.base_model
    tok = AutoTokenizer.from_pretrained(a.model)
    texts = open(a.sentences, encoding="utf-8").read().split("\n")[:-1]
    # sentence-transformers' encode: batches of 32 of length-sorted texts, mean pooling over the
    # attention mask.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    pooled = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            for i in range(0, len(order), 32):
                idx = order[i:i + 32]
                batch = tok([texts[j] for j in idx], padding=True, truncation=True, max_length=512, return_tensors="pt")
                hidden = encoder(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled[idx] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    except Exception as e:
        meta["error"] = f"{type(e).__name__}: {e}"
        json.dump(meta, open(os.path.join(a.out, "meta.json"), "w"), indent=1)
        print(meta["error"], file=sys.stderr)
        return 0
    meta["embed_seconds"] = time.perf_counter() - start
    quantized, dense = quantized_modules(encoder)
    buf = io.BytesIO()
    torch.save(encoder.state_dict(), buf)
    meta.update({"quantized_modules": quantized, "float_linear_modules": dense,
                 "size_bytes": buf.getbuffer().nbytes,
                 "memory_footprint_bytes": model.get_memory_footprint(),
                 "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                              "bitsandbytes": _version("bitsandbytes")}})
    np.save(os.path.join(a.out, "pooled.npy"), pooled)
    json.dump(meta, open(os.path.join(a.out, "meta.json"), "w"), indent=1)
    return 0


def _version(name):
    try:
        return __import__(name).__version__
    except Exception:
        return None


def cmd_measure(a):
    cmd = a.command[1:] if a.command and a.command[0] == "--" else a.command
    start = time.perf_counter()
    with open(a.stdout, "wb") as out, open(a.stderr, "wb") as err:
        rc = subprocess.call(cmd, stdout=out, stderr=err)
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    json.dump({"rc": rc, "wall_seconds": wall, "peak_rss_bytes": rss}, open(a.json, "w"))
    return rc


# ---------------------------------------------------------------- the table

def greenprune_run(d):
    """Pooled vectors from `greenprune embed --json --no-normalize`, and its stderr timing line."""
    import numpy as np
    rows = [json.loads(l)["embedding"] for l in open(os.path.join(d, "stdout"), encoding="utf-8") if l.strip()]
    seconds = None
    for line in open(os.path.join(d, "stderr"), encoding="utf-8", errors="replace"):
        if line.startswith("embed: ") and " in " in line:
            seconds = float(line.rsplit(" in ", 1)[1].split()[0])
    return np.asarray(rows, dtype=np.float32), seconds


def energy_j(d):
    e = json.load(open(os.path.join(d, "energy", "energy.json")))
    return e["energy_kwh"] * 3.6e6


def spread(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def cmd_table(a):
    import numpy as np
    from scipy.stats import spearmanr
    work = a.work
    scores = np.asarray(json.load(open(os.path.join(work, "scores.json"))))
    plan = json.load(open(os.path.join(work, "plan.json")))
    rows, loads = [], []
    for model in plan["models"]:
        runs = {}
        for method in plan["methods"]:
            rounds = sorted(d for d in os.listdir(os.path.join(work, "runs", model, method)))
            runs[method] = [os.path.join(work, "runs", model, method, r) for r in rounds]
        ref = np.load(os.path.join(runs["float"][0], "pooled.npy"))
        ref_n = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        base = {}
        for method in plan["methods"]:
            first = runs[method][0]
            info = plan["methods"][method]
            row = {"model": model, "method": method, "framework": info["framework"], "bits": info["bits"],
                   "variant": info.get("variant"), "settings": info.get("settings")}
            seconds = []
            if info["framework_kind"] == "pytorch":
                meta = json.load(open(os.path.join(first, "meta.json")))
                if "error" in meta:
                    row["error"] = meta["error"]
                    rows.append(row)
                    continue
                emb = np.load(os.path.join(first, "pooled.npy"))
                row["quantized_modules"] = len(meta["quantized_modules"])
                row["float_linear_modules"] = meta["float_linear_modules"]
                row["size_bytes"] = meta["size_bytes"]
                row["memory_footprint_bytes"] = meta["memory_footprint_bytes"]
                for r in runs[method]:
                    seconds.append(json.load(open(os.path.join(r, "meta.json"))).get("embed_seconds"))
            else:
                emb, _ = greenprune_run(first)
                q = json.load(open(os.path.join(plan["greenprune_dirs"][model][method], "summary.json")))
                row.update(q)
                for r in runs[method]:
                    seconds.append(greenprune_run(r)[1])
            emb_n = emb / np.linalg.norm(emb, axis=1, keepdims=True)
            row["mse_normalised"] = float(np.mean((emb_n - ref_n) ** 2))
            row["mse_raw"] = float(np.mean((emb - ref) ** 2))
            row["cosine"] = float(np.mean(np.sum(emb_n * ref_n, axis=1)))
            cos_pairs = np.sum(emb_n[0::2] * emb_n[1::2], axis=1)
            row["spearman"] = float(100 * spearmanr(cos_pairs, scores).correlation)
            meas = [json.load(open(os.path.join(r, "measure.json"))) for r in runs[method]]
            row["embed_seconds"] = spread(seconds)
            row["peak_rss_bytes"] = spread([m["peak_rss_bytes"] for m in meas])
            row["process_seconds"] = spread([m["wall_seconds"] for m in meas])
            row["energy_j"] = spread([energy_j(r) for r in runs[method]])
            rows.append(row)
            loads += [float(open(os.path.join(r, "loadavg")).read()) for r in runs[method]]
        # Relative figures: against the same framework's float32 run (PyTorch's process pays for
        # its imports, GreenPrune's does not), as the study's "% of float"; errors and cosine are
        # against PyTorch float32 for every row.
        for r in rows:
            if r["model"] != model or "error" in r:
                continue
            own = "greenprune-float" if plan["methods"][r["method"]]["framework_kind"] == "greenprune" else "float"
            f = next(x for x in rows if x["model"] == model and x["method"] == own)
            r["size_pct"] = 100 * r["size_bytes"] / f["size_bytes"]
            for key, pct in (("embed_seconds", "embed_pct"), ("peak_rss_bytes", "rss_pct"), ("energy_j", "energy_pct")):
                if r[key] and f[key]:
                    r[pct] = 100 * r[key]["median"] / f[key]["median"]
    out = {"schema": "greenprune.study/1", "pairs": int(len(scores)), "sentences": int(2 * len(scores)),
           "reference": "PyTorch float32 (transformers AutoModelForMaskedLM), mean pooling",
           "load_average_1min": spread(loads), "rounds": max(len(os.listdir(os.path.join(work, "runs", m, k)))
                                                              for m in plan["models"] for k in plan["methods"]), "host": plan.get("host"), "rows": rows}
    json.dump(out, open(os.path.join(work, "study.json"), "w"), indent=1)
    print(markdown(out))


def fmt_spread(s, scale=1.0, digits=2):
    if not s:
        return "-"
    return f"{s['median'] * scale:.{digits}f} [{s['min'] * scale:.{digits}f}-{s['max'] * scale:.{digits}f}]"


def markdown(out):
    la = out["load_average_1min"]
    lines = [f"{out['host']}; {out['rounds']} interleaved rounds; 1-minute load average at the start of each run: "
             f"median {la['median']:.1f} [{la['min']:.1f}-{la['max']:.1f}]"]
    for model in dict.fromkeys(r["model"] for r in out["rows"]):
        lines.append(f"\n{model}, {out['sentences']} STS-B test sentences ({out['pairs']} pairs); "
                     "MSE and cosine against PyTorch float32; % of the same framework's float32")
        lines.append("| method | quantized linears | MSE (normalised) | MSE (raw) | cosine | Spearman | size MB (%) "
                     "| peak RSS MB (%) | embed s, median [min-max] (%) | energy J, median [min-max] (%) |")
        lines.append("|" + " --- |" * 10)
        for r in out["rows"]:
            if r["model"] != model:
                continue
            if "error" in r:
                lines.append(f"| {r['method']} | could not run: {r['error']} |" + " |" * 8)
                continue
            q = f"{r['quantized_modules']} (+{r['float_linear_modules']} float)" if r.get("float_linear_modules") else str(r["quantized_modules"])
            lines.append(
                f"| {r['method']} | {q} | {r['mse_normalised']:.3g} | {r['mse_raw']:.3g} | {r['cosine']:.6f} "
                f"| {r['spearman']:.2f} | {r['size_bytes'] / 1e6:.1f} ({r['size_pct']:.1f}%) "
                f"| {r['peak_rss_bytes']['median'] / 1e6:.0f} ({r.get('rss_pct', 0):.0f}%) "
                f"| {fmt_spread(r['embed_seconds'])} ({r.get('embed_pct', 0):.0f}%) "
                f"| {fmt_spread(r['energy_j'], digits=1)} ({r.get('energy_pct', 0):.0f}%) |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prepare"); s.add_argument("--data", required=True); s.add_argument("--pairs", type=int, default=500); s.add_argument("--out", required=True)
    s = sub.add_parser("embed"); s.add_argument("--model", required=True); s.add_argument("--method", required=True, choices=TORCH_METHODS)
    s.add_argument("--sentences", required=True); s.add_argument("--out", required=True)
    s = sub.add_parser("measure"); s.add_argument("--json", required=True); s.add_argument("--stdout", required=True); s.add_argument("--stderr", required=True)
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("table"); s.add_argument("--work", required=True)
    a = p.parse_args()
    return {"prepare": cmd_prepare, "embed": cmd_embed, "measure": cmd_measure, "table": cmd_table}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
